//! iris-models: model definitions on top of iris-runtime (configs, vision encoders,
//! projectors, LLM backbones, pipelines).

pub mod check;
pub mod config_summary;
pub mod error;
pub mod generate;
pub mod llm;
pub mod text_model;
pub mod weights;

pub use config_summary::{ConfigError, ConfigSummary, Sizes};
