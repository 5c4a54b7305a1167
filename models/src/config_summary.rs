//! `ConfigSummary`: the headline numbers of a Hugging Face `config.json`, read tolerantly
//! (any architecture, missing or odd fields are simply absent). For `iris inspect`; the typed
//! per-architecture configs live with their models.
//!
//! Multimodal configs (LLaVA, Idefics3/SmolVLM, ...) keep their language model in
//! `text_config` and their vision tower in `vision_config`; both are summarised too.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Why a `config.json` could not be summarised.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not JSON; serde_json's message carries the line and column.
    #[error("{}: invalid JSON: {error}", .path.display())]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{}: expected a JSON object, found {found}", .path.display())]
    NotObject { path: PathBuf, found: &'static str },
}

/// The sizes of one (sub-)config; `None` where the field is absent or not of the usual type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sizes {
    pub model_type: Option<String>,
    pub hidden_size: Option<u64>,
    pub num_hidden_layers: Option<u64>,
    pub num_attention_heads: Option<u64>,
    pub num_key_value_heads: Option<u64>,
    pub intermediate_size: Option<u64>,
    pub vocab_size: Option<u64>,
    pub max_position_embeddings: Option<u64>,
    pub rope_theta: Option<f64>,
    pub image_size: Option<u64>,
    pub patch_size: Option<u64>,
    /// `torch_dtype` (or the newer `dtype` key).
    pub torch_dtype: Option<String>,
}

impl Sizes {
    /// Reads the known keys of `object`, ignoring everything else.
    pub fn from_object(object: &Map<String, Value>) -> Sizes {
        let uint = |key: &str| object.get(key).and_then(Value::as_u64);
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
        // Newer transformers nest rope_theta under `rope_parameters`.
        let rope_theta = object
            .get("rope_theta")
            .and_then(Value::as_f64)
            .or_else(|| object.get("rope_parameters")?.get("rope_theta")?.as_f64());
        Sizes {
            model_type: string("model_type"),
            hidden_size: uint("hidden_size"),
            num_hidden_layers: uint("num_hidden_layers"),
            num_attention_heads: uint("num_attention_heads"),
            num_key_value_heads: uint("num_key_value_heads"),
            intermediate_size: uint("intermediate_size"),
            vocab_size: uint("vocab_size"),
            max_position_embeddings: uint("max_position_embeddings"),
            rope_theta,
            image_size: uint("image_size"),
            patch_size: uint("patch_size"),
            torch_dtype: string("torch_dtype").or_else(|| string("dtype")),
        }
    }

    /// The present fields as `(HF key, value)` pairs, in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut push = |key: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((key, v));
            }
        };
        let num = |v: Option<u64>| v.map(|v| v.to_string());
        push("model_type", self.model_type.clone());
        push("hidden_size", num(self.hidden_size));
        push("num_hidden_layers", num(self.num_hidden_layers));
        push("num_attention_heads", num(self.num_attention_heads));
        push("num_key_value_heads", num(self.num_key_value_heads));
        push("intermediate_size", num(self.intermediate_size));
        push("vocab_size", num(self.vocab_size));
        push("max_position_embeddings", num(self.max_position_embeddings));
        push("rope_theta", self.rope_theta.map(|v| v.to_string()));
        push("image_size", num(self.image_size));
        push("patch_size", num(self.patch_size));
        push("torch_dtype", self.torch_dtype.clone());
        out
    }

    pub fn is_empty(&self) -> bool {
        *self == Sizes::default()
    }
}

/// The summary of one `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigSummary {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
    /// The top-level sizes (the whole model for a plain LLM).
    pub model: Sizes,
    /// `text_config`, when present.
    pub text: Option<Sizes>,
    /// `vision_config`, when present.
    pub vision: Option<Sizes>,
}

impl ConfigSummary {
    /// Reads and summarises the `config.json` at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|error| ConfigError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_json(path, &text)
    }

    /// Summarises JSON text; `path` names it in errors.
    pub fn from_json(path: impl AsRef<Path>, text: &[u8]) -> Result<Self, ConfigError> {
        let path = path.as_ref().to_path_buf();
        let value: Value = match serde_json::from_slice(text) {
            Ok(value) => value,
            Err(error) => return Err(ConfigError::Json { path, error }),
        };
        let Value::Object(object) = value else {
            return Err(ConfigError::NotObject {
                path,
                found: kind(&value),
            });
        };
        let architectures = match object.get("architectures") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let sub = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_object)
                .map(Sizes::from_object)
        };
        Ok(ConfigSummary {
            architectures,
            model_type: object
                .get("model_type")
                .and_then(Value::as_str)
                .map(str::to_string),
            model: Sizes::from_object(&object),
            text: sub("text_config"),
            vision: sub("vision_config"),
            path,
        })
    }

    /// The sizes of the language model: `text_config` when present, else the top level.
    pub fn text_sizes(&self) -> &Sizes {
        self.text.as_ref().unwrap_or(&self.model)
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl fmt::Display for ConfigSummary {
    /// Lines of `key: value`, the sub-configs indented under their names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let archs = if self.architectures.is_empty() {
            "(none)".to_string()
        } else {
            self.architectures.join(", ")
        };
        writeln!(f, "architectures: {archs}")?;
        for (key, value) in self.model.fields() {
            writeln!(f, "{key}: {value}")?;
        }
        for (name, sizes) in [("text_config", &self.text), ("vision_config", &self.vision)] {
            if let Some(sizes) = sizes {
                writeln!(f, "{name}:")?;
                for (key, value) in sizes.fields() {
                    writeln!(f, "  {key}: {value}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
        "max_position_embeddings": 8192, "rope_theta": 100000.0, "torch_dtype": "bfloat16",
        "rms_norm_eps": 1e-05, "tie_word_embeddings": true
    }"#;

    const LLAVA: &str = r#"{
        "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
        "image_token_index": 32000,
        "text_config": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                        "vocab_size": 32064, "rope_parameters": {"rope_theta": 10000.0}},
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024,
                          "image_size": 336, "patch_size": 14, "num_hidden_layers": 24},
        "dtype": "float16"
    }"#;

    #[test]
    fn llm_config_top_level_sizes() {
        let s = ConfigSummary::from_json("config.json", LLAMA.as_bytes()).unwrap();
        assert_eq!(s.architectures, ["LlamaForCausalLM"]);
        assert_eq!(s.model_type.as_deref(), Some("llama"));
        assert_eq!(s.model.hidden_size, Some(576));
        assert_eq!(s.model.num_key_value_heads, Some(3));
        assert_eq!(s.model.rope_theta, Some(100000.0));
        assert_eq!(s.model.torch_dtype.as_deref(), Some("bfloat16"));
        assert!(s.text.is_none() && s.vision.is_none());
        assert_eq!(s.text_sizes().vocab_size, Some(49152));
        let shown = s.to_string();
        assert!(shown.contains("architectures: LlamaForCausalLM"), "{shown}");
        assert!(shown.contains("num_hidden_layers: 30"), "{shown}");
    }

    #[test]
    fn multimodal_config_sub_objects() {
        let s = ConfigSummary::from_json("config.json", LLAVA.as_bytes()).unwrap();
        let text = s.text.as_ref().unwrap();
        let vision = s.vision.as_ref().unwrap();
        assert_eq!(text.hidden_size, Some(4096));
        assert_eq!(text.rope_theta, Some(10000.0));
        assert_eq!(text.num_attention_heads, None);
        assert_eq!(vision.image_size, Some(336));
        assert_eq!(vision.patch_size, Some(14));
        assert_eq!(vision.model_type.as_deref(), Some("clip_vision_model"));
        assert_eq!(s.model.torch_dtype.as_deref(), Some("float16"));
        assert_eq!(s.model.hidden_size, None);
        assert_eq!(s.text_sizes().num_hidden_layers, Some(32));
        let shown = s.to_string();
        assert!(
            shown.contains("vision_config:\n  model_type: clip_vision_model"),
            "{shown}"
        );
        assert!(shown.contains("  image_size: 336"), "{shown}");
    }

    #[test]
    fn odd_fields_are_tolerated() {
        let text = br#"{"architectures": "Foo", "hidden_size": "big", "vision_config": 3, "num_hidden_layers": -1}"#;
        let s = ConfigSummary::from_json("config.json", text).unwrap();
        assert_eq!(s.architectures, ["Foo"]);
        assert!(s.model.is_empty());
        assert!(s.vision.is_none());
        let empty = ConfigSummary::from_json("config.json", b"{}").unwrap();
        assert!(empty.architectures.is_empty() && empty.model.is_empty());
        assert!(empty.to_string().contains("architectures: (none)"));
    }

    #[test]
    fn malformed_json_names_file_line_and_column() {
        let err = ConfigSummary::from_json("/m/config.json", b"{\n  \"hidden_size\": 4096,\n}")
            .unwrap_err();
        assert!(matches!(err, ConfigError::Json { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("/m/config.json") && msg.contains("line 3 column 1"),
            "{msg}"
        );

        let err = ConfigSummary::from_json("/m/config.json", b"[1]").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::NotObject {
                    found: "an array",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("/m/config.json"));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = ConfigSummary::from_file("/nonexistent/iris/config.json").unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/iris/config.json"),
            "{err}"
        );
    }
}
