//! iris: the umbrella crate. Re-exports the layers so integration tests, benches and
//! embedders can depend on one crate.

pub use iris_kernels as kernels;
pub use iris_models as models;
pub use iris_runtime as runtime;
