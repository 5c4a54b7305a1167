//! Decoder-only LLM backbones: configuration, rotary frequencies, the Llama/Qwen2 graph.

pub mod config;
pub mod llama;
pub mod rope;

pub use config::{LlmConfig, RopeScaling, TokenIds};
pub use llama::{KvCacheDtype, LlamaModel, LogitsMode, PhaseShape};
