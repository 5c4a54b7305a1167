//! iris-models: model definitions on top of iris-runtime (configs, vision encoders,
//! projectors, LLM backbones, pipelines).

pub mod check;
pub mod check_multimodal;
pub mod config_summary;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod image;
pub mod llm;
pub mod pipeline;
pub mod projector;
pub mod text_model;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use config_summary::{ConfigError, ConfigSummary, Sizes};
