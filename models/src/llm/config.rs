//! `config.json` of LlamaForCausalLM / Qwen2ForCausalLM (and Mistral-style Llamas), with
//! HF's field names and defaults. Reads both the older `rope_theta` + `rope_scaling` keys
//! and transformers 5's `rope_parameters`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::ModelError;

/// One or several token ids (`eos_token_id` may be either in HF configs).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    #[default]
    None,
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::None => Vec::new(),
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// How rotary frequencies are derived (`rope_type`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    Default,
    /// Positions divided by `factor` (inverse frequencies divided by it).
    Linear {
        factor: f32,
    },
    /// Llama 3.1 band-wise rescaling.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
}

#[derive(Clone, Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    rope_parameters: Option<Value>,
    partial_rotary_factor: Option<f64>,
    #[serde(default = "default_max_position_embeddings")]
    max_position_embeddings: usize,
    vocab_size: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default)]
    bos_token_id: TokenIds,
    #[serde(default)]
    eos_token_id: TokenIds,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_position_embeddings() -> usize {
    2048
}
fn default_hidden_act() -> String {
    "silu".into()
}

/// The decoder-only LLM configuration iris runs (Llama family and Qwen2).
#[derive(Clone, Debug)]
pub struct LlmConfig {
    pub architecture: String,
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    pub partial_rotary_factor: f32,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry a bias (Qwen2 always; Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// o_proj carries a bias (Llama `attention_bias`; never in Qwen2).
    pub o_bias: bool,
    pub mlp_bias: bool,
    pub bos_token_id: Vec<u32>,
    pub eos_token_id: Vec<u32>,
}

fn invalid(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

impl LlmConfig {
    /// Reads `config.json` of a model folder (or the file itself).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let path: PathBuf = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Io {
            path: path.clone(),
            error: e,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: path.clone(),
            error: e,
        })?;
        // Multimodal configs hold the LLM under text_config.
        let text_config = value.get("text_config").cloned();
        Self::from_value(&path, text_config.as_ref().unwrap_or(&value), &value)
    }

    /// Parses an LLM config object. `outer` is the whole file (for `architectures` of
    /// multimodal configs).
    pub fn from_value(path: &Path, value: &Value, outer: &Value) -> Result<Self, ModelError> {
        let raw: RawConfig = serde_json::from_value(value.clone())
            .map_err(|e| invalid(path, "(config)", e.to_string()))?;
        let architecture = raw
            .architectures
            .first()
            .cloned()
            .or_else(|| {
                outer
                    .get("architectures")?
                    .get(0)?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let model_type = raw.model_type.clone();
        let is_qwen2 = model_type == "qwen2" || architecture.starts_with("Qwen2");
        let known = match model_type.as_str() {
            "llama" | "mistral" | "qwen2" => true,
            "" => matches!(
                architecture.as_str(),
                "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM"
            ),
            _ => false,
        };
        if !known {
            return Err(invalid(
                path,
                "model_type",
                format!("`{model_type}` ({architecture}) is not supported; iris runs llama, mistral and qwen2 LLMs"),
            ));
        }
        if raw.hidden_act != "silu" {
            return Err(invalid(
                path,
                "hidden_act",
                format!("`{}` is not supported (silu expected)", raw.hidden_act),
            ));
        }
        if raw.num_attention_heads == 0 {
            return Err(invalid(path, "num_attention_heads", "must be positive"));
        }
        let num_key_value_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if num_key_value_heads == 0 || !raw.num_attention_heads.is_multiple_of(num_key_value_heads)
        {
            return Err(invalid(
                path,
                "num_key_value_heads",
                format!(
                    "{num_key_value_heads} does not divide num_attention_heads {}",
                    raw.num_attention_heads
                ),
            ));
        }
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(invalid(
                path,
                "head_dim",
                format!("{head_dim} must be a positive even number"),
            ));
        }

        // transformers 5 keeps theta and scaling in `rope_parameters`; older files use
        // `rope_theta` and `rope_scaling`.
        let rope = raw
            .rope_parameters
            .clone()
            .or_else(|| raw.rope_scaling.clone())
            .unwrap_or(Value::Null);
        let rope_theta = raw
            .rope_theta
            .or_else(|| rope.get("rope_theta").and_then(Value::as_f64))
            .unwrap_or(10000.0);
        let partial_rotary_factor = raw
            .partial_rotary_factor
            .or_else(|| rope.get("partial_rotary_factor").and_then(Value::as_f64))
            .unwrap_or(1.0);
        let rope_scaling = parse_rope_scaling(path, &rope, raw.max_position_embeddings)?;

        Ok(LlmConfig {
            architecture,
            model_type,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps as f32,
            rope_theta: rope_theta as f32,
            rope_scaling,
            partial_rotary_factor: partial_rotary_factor as f32,
            max_position_embeddings: raw.max_position_embeddings,
            vocab_size: raw.vocab_size,
            tie_word_embeddings: raw.tie_word_embeddings,
            qkv_bias: is_qwen2 || raw.attention_bias,
            o_bias: !is_qwen2 && raw.attention_bias,
            mlp_bias: raw.mlp_bias,
            bos_token_id: raw.bos_token_id.to_vec(),
            eos_token_id: raw.eos_token_id.to_vec(),
        })
    }

    /// Dims of each head that rotate (`partial_rotary_factor`), as transformers computes it.
    pub fn rotary_dim(&self) -> usize {
        (self.head_dim as f64 * self.partial_rotary_factor as f64) as usize
    }
}

fn parse_rope_scaling(
    path: &Path,
    rope: &Value,
    max_position_embeddings: usize,
) -> Result<RopeScaling, ModelError> {
    if rope.is_null() {
        return Ok(RopeScaling::Default);
    }
    let kind = rope
        .get("rope_type")
        .or_else(|| rope.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let number = |key: &str| -> Result<f32, ModelError> {
        rope.get(key)
            .and_then(Value::as_f64)
            .map(|v| v as f32)
            .ok_or_else(|| {
                invalid(
                    path,
                    &format!("rope_scaling.{key}"),
                    "missing or not a number",
                )
            })
    };
    Ok(match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: number("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: number("factor")?,
            low_freq_factor: number("low_freq_factor")?,
            high_freq_factor: number("high_freq_factor")?,
            original_max_position_embeddings: rope
                .get("original_max_position_embeddings")
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .unwrap_or(max_position_embeddings),
        },
        other => {
            return Err(invalid(
                path,
                "rope_scaling.rope_type",
                format!("`{other}` is not supported (default, linear and llama3 are)"),
            ))
        }
    })
}
