//! iris-models: model definitions on top of iris-runtime (configs, vision encoders,
//! projectors, LLM backbones, pipelines).

pub mod config_summary;

pub use config_summary::{ConfigError, ConfigSummary, Sizes};
