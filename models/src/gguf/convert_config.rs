//! The llama hyper-parameters read from a GGUF file's `llama.*` metadata, and the
//! `config.json` written from them.

use serde_json::{json, Map, Value};

use super::convert::{ConvertError, OutDType};
use super::convert_tensors::Plan;
use super::reader::GgufFile;

/// The llama hyper-parameters, from the `llama.*` keys.
#[derive(Clone, Debug)]
pub(super) struct LlamaParams {
    pub(super) hidden: usize,
    pub(super) layers: usize,
    pub(super) intermediate: usize,
    pub(super) heads: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
    /// `head_dim` as the file states it (`attention.key_length`, else `rope.dimension_count`).
    pub(super) explicit_head_dim: Option<usize>,
    pub(super) rms_eps: f32,
    pub(super) rope_theta: f32,
    pub(super) context: usize,
    pub(super) vocab: usize,
    pub(super) rope_scaling: Option<Value>,
}

fn metadata_error(gguf: &GgufFile, key: &str, problem: impl Into<String>) -> ConvertError {
    ConvertError::InvalidMetadata {
        file: gguf.path().to_path_buf(),
        key: key.to_string(),
        problem: problem.into(),
    }
}

fn size(gguf: &GgufFile, key: &str, value: u64) -> Result<usize, ConvertError> {
    usize::try_from(value)
        .ok()
        .filter(|&v| v > 0 && v <= 1 << 40)
        .ok_or_else(|| metadata_error(gguf, key, format!("{value} is not a usable size")))
}

fn required_size(gguf: &GgufFile, key: &str) -> Result<usize, ConvertError> {
    size(gguf, key, gguf.require_u64(key)?)
}

fn optional_size(gguf: &GgufFile, key: &str) -> Result<Option<usize>, ConvertError> {
    gguf.get_u64(key)?.map(|v| size(gguf, key, v)).transpose()
}

/// f32 metadata as the shortest decimal that reads back as the same f32 (`1e-5`, not
/// `9.999999747378752e-06`): what the original config said, and the same f32.
fn f32_json(value: f64) -> Value {
    let short: f64 = (value as f32).to_string().parse().unwrap_or(value);
    json!(short)
}

impl LlamaParams {
    pub(super) fn from_gguf(gguf: &GgufFile) -> Result<LlamaParams, ConvertError> {
        let hidden = required_size(gguf, "llama.embedding_length")?;
        let layers = required_size(gguf, "llama.block_count")?;
        let intermediate = required_size(gguf, "llama.feed_forward_length")?;
        let heads = required_size(gguf, "llama.attention.head_count")?;
        let kv_heads = optional_size(gguf, "llama.attention.head_count_kv")?.unwrap_or(heads);
        if !heads.is_multiple_of(kv_heads) {
            return Err(metadata_error(
                gguf,
                "llama.attention.head_count_kv",
                format!("{kv_heads} does not divide the {heads} attention heads"),
            ));
        }
        let explicit_head_dim = match optional_size(gguf, "llama.attention.key_length")? {
            Some(d) => Some(d),
            None => optional_size(gguf, "llama.rope.dimension_count")?,
        };
        let head_dim = match explicit_head_dim {
            Some(d) => d,
            None if hidden.is_multiple_of(heads) => hidden / heads,
            None => {
                return Err(metadata_error(
                    gguf,
                    "llama.attention.head_count",
                    format!("{heads} heads do not divide the hidden size {hidden}, and no `llama.attention.key_length` says the head size"),
                ))
            }
        };
        if !head_dim.is_multiple_of(2) {
            return Err(metadata_error(
                gguf,
                "llama.attention.key_length",
                format!("head size {head_dim} is odd; rotary embeddings need it even"),
            ));
        }
        let rms_eps = gguf
            .get_f64("llama.attention.layer_norm_rms_epsilon")?
            .ok_or_else(|| gguf.missing("llama.attention.layer_norm_rms_epsilon"))?
            as f32;
        let rope_theta = gguf.get_f64("llama.rope.freq_base")?.unwrap_or(10000.0) as f32;
        let context = required_size(gguf, "llama.context_length")?;
        let vocab = match optional_size(gguf, "llama.vocab_size")? {
            Some(v) => v,
            None => match gguf.get_string_array("tokenizer.ggml.tokens")? {
                Some(tokens) => size(gguf, "tokenizer.ggml.tokens", tokens.len() as u64)?,
                None => gguf
                    .tensor("token_embd.weight")
                    .and_then(|t| t.shape().first().copied())
                    .ok_or_else(|| gguf.missing("llama.vocab_size"))?,
            },
        };
        Ok(LlamaParams {
            hidden,
            layers,
            intermediate,
            heads,
            kv_heads,
            head_dim,
            explicit_head_dim,
            rms_eps,
            rope_theta,
            context,
            vocab,
            rope_scaling: rope_scaling(gguf)?,
        })
    }
}

/// `rope_scaling` from `llama.rope.scaling.*` (or the older `llama.rope.scale_linear`).
fn rope_scaling(gguf: &GgufFile) -> Result<Option<Value>, ConvertError> {
    let kind = gguf.get_str("llama.rope.scaling.type")?;
    let factor = gguf.get_f64("llama.rope.scaling.factor")?;
    let original = gguf.get_u64("llama.rope.scaling.original_context_length")?;
    let scaling = match (kind, factor) {
        (Some("none"), _) => None,
        (Some(kind), Some(factor)) => {
            let mut s = Map::new();
            s.insert("rope_type".into(), kind.into());
            s.insert("factor".into(), f32_json(factor));
            if let Some(original) = original {
                s.insert("original_max_position_embeddings".into(), original.into());
            }
            Some(Value::Object(s))
        }
        (Some(kind), None) => {
            return Err(metadata_error(
                gguf,
                "llama.rope.scaling.factor",
                format!("missing, but `llama.rope.scaling.type` is `{kind}`"),
            ))
        }
        (None, _) => gguf
            .get_f64("llama.rope.scale_linear")?
            .filter(|&f| f != 1.0)
            .map(|f| json!({"rope_type": "linear", "factor": f32_json(f)})),
    };
    Ok(scaling)
}

pub(super) fn config_json(
    p: &LlamaParams,
    plan: &Plan,
    dtype: OutDType,
    bos: Option<u64>,
    eos: Option<u64>,
    pad: Option<u64>,
) -> Value {
    let mut c = Map::new();
    c.insert("architectures".into(), json!(["LlamaForCausalLM"]));
    c.insert("model_type".into(), "llama".into());
    c.insert("hidden_size".into(), p.hidden.into());
    c.insert("intermediate_size".into(), p.intermediate.into());
    c.insert("num_hidden_layers".into(), p.layers.into());
    c.insert("num_attention_heads".into(), p.heads.into());
    c.insert("num_key_value_heads".into(), p.kv_heads.into());
    if let Some(head_dim) = p.explicit_head_dim {
        c.insert("head_dim".into(), head_dim.into());
    }
    c.insert("hidden_act".into(), "silu".into());
    c.insert("max_position_embeddings".into(), p.context.into());
    c.insert("rms_norm_eps".into(), f32_json(p.rms_eps.into()));
    c.insert("rope_theta".into(), f32_json(p.rope_theta.into()));
    if let Some(scaling) = &p.rope_scaling {
        c.insert("rope_scaling".into(), scaling.clone());
    }
    c.insert("attention_bias".into(), plan.attention_bias.into());
    c.insert("mlp_bias".into(), false.into());
    c.insert("vocab_size".into(), p.vocab.into());
    c.insert("tie_word_embeddings".into(), plan.tied.into());
    for (key, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("pad_token_id", pad),
    ] {
        if let Some(id) = id {
            c.insert(key.into(), id.into());
        }
    }
    c.insert("torch_dtype".into(), dtype.torch_name().into());
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_metadata_prints_short() {
        assert_eq!(f32_json(f64::from(1e-5f32)).as_f64(), Some(1e-5));
        assert_eq!(f32_json(f64::from(100000.0f32)).to_string(), "100000.0");
    }
}
