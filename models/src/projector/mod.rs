//! Projectors from vision features into the LLM's embedding space: LLaVA's MLP and the
//! Idefics3 connector (pixel shuffle + linear).

pub mod idefics3;
pub mod llava;

pub use idefics3::Idefics3Connector;
pub use llava::LlavaProjector;
