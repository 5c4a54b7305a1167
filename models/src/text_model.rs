//! Loading a text model (LlamaForCausalLM / Qwen2ForCausalLM) from a Hugging Face folder:
//! config.json, the safetensors weights and generation_config.json's stop tokens.

use std::path::Path;
use std::sync::Arc;

use iris_runtime::DType;
use serde_json::Value;

use crate::error::ModelError;
use crate::llm::{LlamaModel, LlmConfig, TokenIds};
use crate::weights::Weights;

/// A loaded text model with what generation needs beside the weights.
pub struct TextModel {
    pub model: Arc<LlamaModel>,
    /// End-of-sequence ids from generation_config.json, else config.json.
    pub eos_token_ids: Vec<u32>,
    /// The dtype the weights are read in (as stored unless one was requested).
    pub weight_dtype: DType,
}

/// Reads `eos_token_id` from generation_config.json when the folder has one.
fn generation_eos(dir: &Path) -> Result<Option<Vec<u32>>, ModelError> {
    let path = dir.join("generation_config.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Io {
        path: path.clone(),
        error: e,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
        path: path.clone(),
        error: e,
    })?;
    match value.get("eos_token_id") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let ids: TokenIds =
                serde_json::from_value(v.clone()).map_err(|e| ModelError::Config {
                    path: path.clone(),
                    field: "eos_token_id".into(),
                    message: e.to_string(),
                })?;
            Ok(Some(ids.to_vec()))
        }
    }
}

impl TextModel {
    /// Loads `dir`; `dtype` converts the weights at load (one copy), `None` reads them in
    /// place as stored.
    pub fn load(dir: impl AsRef<Path>, dtype: Option<DType>) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let config = LlmConfig::from_file(dir)?;
        let weights = Weights::open(dir, dtype)?;
        let eos_token_ids = generation_eos(dir)?.unwrap_or_else(|| config.eos_token_id.clone());
        let model = LlamaModel::load(config, &weights.pp("model"), &weights)?;
        let weight_dtype = match dtype {
            Some(d) => d,
            None => weights
                .store()
                .info("model.embed_tokens.weight")?
                .iris_dtype()
                .unwrap_or(DType::F32),
        };
        Ok(TextModel {
            model: Arc::new(model),
            eos_token_ids,
            weight_dtype,
        })
    }
}
