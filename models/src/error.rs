//! Errors of model loading and generation, naming the file, field or tensor at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: cannot read: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: invalid JSON: {error}", .path.display())]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{}: field `{field}`: {message}", .path.display())]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("weight `{name}`: {message}")]
    Weight { name: String, message: String },
    #[error(
        "prompt of {prompt} tokens (+ {new} new) does not fit the context of {context} tokens"
    )]
    PromptTooLong {
        prompt: usize,
        new: usize,
        context: usize,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Runtime(#[from] iris_runtime::Error),
    #[error(transparent)]
    Load(#[from] iris_runtime::safetensors::LoadError),
}
