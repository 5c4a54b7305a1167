//! Plain, readable reference implementations of every op: simple loops, f32 results with
//! f32/f64 internal math (each file's header says which), no unsafe, no threads. These are
//! the source of truth that every faster kernel (SIMD, CUDA) is compared against by NMSE
//! (see `crate::testing`). Slice lengths that disagree with the given sizes are programming
//! errors and panic with a message; the runtime validates shapes before calling.

pub mod activations;
pub mod argmax;
pub mod attention;
pub mod conv2d;
pub mod copy;
pub mod elementwise;
pub mod embedding;
pub mod matmul;
pub mod norm;
pub mod pixel_shuffle;
pub mod rope;
pub mod softmax;

pub use activations::{erf, erfc, gelu_erf, gelu_tanh, quick_gelu, silu, silu_mul};
pub use argmax::argmax;
pub use attention::{attention, kv_write, AttentionParams, KvStrides};
pub use conv2d::{conv2d, Conv2dParams};
pub use copy::copy_strided;
pub use elementwise::{add, mul, scale};
pub use embedding::{embedding, IdOutOfRange};
pub use matmul::matmul;
pub use norm::{layer_norm, rms_norm};
pub use pixel_shuffle::pixel_shuffle;
pub use rope::{rope, rope_inv_freq};
pub use softmax::softmax;
