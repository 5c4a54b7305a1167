//! Which GGUF tensors are written under which Hugging Face names (checked against the
//! metadata), and the per-tensor transforms: undoing llama.cpp's Q/K row permutation and
//! rounding f32 to bf16.

use super::convert::ConvertError;
use super::convert_config::LlamaParams;
use super::dequant;
use super::error::GgufError;
use super::reader::GgufFile;

/// How one GGUF tensor is written.
#[derive(Clone, Debug)]
pub(super) struct Planned {
    pub(super) gguf_name: String,
    pub(super) hf_name: String,
    pub(super) shape: Vec<usize>,
    /// Undo llama.cpp's rotary permutation with this many heads.
    pub(super) unpermute_heads: Option<usize>,
}

/// Per-layer tensors: GGUF suffix, HF suffix.
const LAYER_WEIGHTS: [(&str, &str); 9] = [
    ("attn_norm.weight", "input_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

const LAYER_BIASES: [(&str, &str); 4] = [
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.bias", "self_attn.o_proj.bias"),
];

/// The tensors to write, in order (embeddings, layers, final norm, head), checked against
/// the metadata; whether the head is tied; whether attention has biases; skipped tensors.
pub(super) struct Plan {
    pub(super) tensors: Vec<Planned>,
    pub(super) tied: bool,
    pub(super) attention_bias: bool,
    pub(super) skipped: Vec<(String, &'static str)>,
}

pub(super) fn plan(gguf: &GgufFile, p: &LlamaParams) -> Result<Plan, ConvertError> {
    let file = gguf.path().to_path_buf();
    let q_rows = p.heads * p.head_dim;
    let kv_rows = p.kv_heads * p.head_dim;
    let expected_shape = |suffix: &str| -> Vec<usize> {
        match suffix {
            "attn_norm.weight" | "ffn_norm.weight" | "attn_output.bias" => vec![p.hidden],
            "attn_q.weight" => vec![q_rows, p.hidden],
            "attn_k.weight" | "attn_v.weight" => vec![kv_rows, p.hidden],
            "attn_output.weight" => vec![p.hidden, q_rows],
            "ffn_gate.weight" | "ffn_up.weight" => vec![p.intermediate, p.hidden],
            "ffn_down.weight" => vec![p.hidden, p.intermediate],
            "attn_q.bias" => vec![q_rows],
            "attn_k.bias" | "attn_v.bias" => vec![kv_rows],
            _ => Vec::new(),
        }
    };
    let unpermute = |suffix: &str| -> Option<usize> {
        match suffix {
            "attn_q.weight" | "attn_q.bias" => Some(p.heads),
            "attn_k.weight" | "attn_k.bias" => Some(p.kv_heads),
            _ => None,
        }
    };

    // Every tensor in the file must be one we know.
    let mut skipped = Vec::new();
    for t in gguf.tensors() {
        let name = t.name.as_str();
        let known = match name {
            "token_embd.weight" | "output_norm.weight" | "output.weight" => true,
            "rope_freqs.weight" => {
                skipped.push((
                    name.to_string(),
                    "Llama 3 rope frequency factors (transformers ignores them too)",
                ));
                true
            }
            _ => match name
                .strip_prefix("blk.")
                .and_then(|rest| rest.split_once('.'))
            {
                Some((layer, suffix)) => {
                    let known_suffix = LAYER_WEIGHTS
                        .iter()
                        .chain(&LAYER_BIASES)
                        .any(|(g, _)| *g == suffix);
                    match layer.parse::<usize>() {
                        Ok(n) if known_suffix && n < p.layers && layer == n.to_string() => true,
                        Ok(n) if known_suffix && layer == n.to_string() => {
                            return Err(ConvertError::UnexpectedTensor {
                                file,
                                tensor: name.to_string(),
                                problem: format!(
                                    "layer {n}, but `llama.block_count` is {}",
                                    p.layers
                                ),
                            })
                        }
                        _ => false,
                    }
                }
                None => false,
            },
        };
        if !known {
            return Err(ConvertError::UnexpectedTensor {
                file,
                tensor: name.to_string(),
                problem: "not a llama tensor this converter knows how to map".to_string(),
            });
        }
    }

    let mut tensors = Vec::new();
    let mut take = |gguf_name: String,
                    hf_name: String,
                    expected: Vec<usize>,
                    unpermute_heads: Option<usize>|
     -> Result<(), ConvertError> {
        let info = gguf
            .tensor(&gguf_name)
            .ok_or_else(|| ConvertError::MissingTensor {
                file: file.clone(),
                tensor: gguf_name.clone(),
            })?;
        if info.shape() != expected {
            return Err(ConvertError::TensorShape {
                file: file.clone(),
                tensor: gguf_name,
                found: info.shape(),
                expected,
            });
        }
        if !dequant::is_supported(info.ggml_type) {
            return Err(GgufError::Dequant {
                file: file.clone(),
                tensor: gguf_name,
                error: dequant::DequantError::Unsupported {
                    ggml_type: info.ggml_type,
                },
            }
            .into());
        }
        tensors.push(Planned {
            shape: info.shape(),
            gguf_name,
            hf_name,
            unpermute_heads,
        });
        Ok(())
    };

    let attention_bias = gguf
        .tensors()
        .iter()
        .any(|t| LAYER_BIASES.iter().any(|(g, _)| t.name.ends_with(g)));
    take(
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        vec![p.vocab, p.hidden],
        None,
    )?;
    for layer in 0..p.layers {
        let biases: &[(&str, &str)] = if attention_bias { &LAYER_BIASES } else { &[] };
        for (gguf_suffix, hf_suffix) in LAYER_WEIGHTS.iter().chain(biases) {
            take(
                format!("blk.{layer}.{gguf_suffix}"),
                format!("model.layers.{layer}.{hf_suffix}"),
                expected_shape(gguf_suffix),
                unpermute(gguf_suffix),
            )?;
        }
    }
    take(
        "output_norm.weight".into(),
        "model.norm.weight".into(),
        vec![p.hidden],
        None,
    )?;
    let tied = gguf.tensor("output.weight").is_none();
    if !tied {
        take(
            "output.weight".into(),
            "lm_head.weight".into(),
            vec![p.vocab, p.hidden],
            None,
        )?;
    }
    Ok(Plan {
        tensors,
        tied,
        attention_bias,
        skipped,
    })
}

/// Undoes llama.cpp's `permute` of Q/K rows, as transformers'
/// `_reverse_permute_weights`: rows viewed as `[n_head, dim, 2]` are transposed to
/// `[n_head, 2, dim]`, `dim = rows / n_head / 2`; i.e. HF row `h*2*dim + half*dim + i` is
/// GGUF row `h*2*dim + 2*i + half`. `data` is `[rows, cols]` row-major, `rows` a multiple
/// of `2 * n_head` (rows past the last whole head, if any, are copied unchanged).
pub fn unpermute_rows(data: &[f32], cols: usize, n_head: usize, out: &mut Vec<f32>) {
    out.clear();
    out.reserve(data.len());
    if n_head == 0 || cols == 0 {
        out.extend_from_slice(data);
        return;
    }
    let rows = data.len() / cols;
    let dim = rows / n_head / 2;
    for h in 0..n_head {
        for half in 0..2 {
            for i in 0..dim {
                let src = h * 2 * dim + 2 * i + half;
                out.extend_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out.extend_from_slice(&data[out.len()..]);
}

/// f32 to bf16 bits exactly as PyTorch's `round_to_nearest_even` (every NaN becomes the
/// canonical `0x7FC0`).
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let rounding_bias = ((bits >> 16) & 1) + 0x7fff;
    (bits.wrapping_add(rounding_bias) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_matches_the_reshape() {
        // 2 heads, head_dim 4 (dim 2), 3 columns: GGUF row r holds value r in each column.
        let rows = 8;
        let cols = 3;
        let data: Vec<f32> = (0..rows * cols).map(|i| (i / cols) as f32).collect();
        let mut out = Vec::new();
        unpermute_rows(&data, cols, 2, &mut out);
        let order: Vec<f32> = out.chunks(cols).map(|r| r[0]).collect();
        // numpy: arange(8).reshape(2, 2, 2).swapaxes(2, 1).reshape(8) = [0,2,1,3,4,6,5,7]
        assert_eq!(order, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        // Halfway cases round to even.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80);
        assert_eq!(f32_to_bf16_bits(-f32::NAN), 0x7fc0);
        for x in [0.1f32, -3.7, 1e-30, 6.5e4] {
            assert_eq!(f32_to_bf16_bits(x), half::bf16::from_f32(x).to_bits());
        }
    }
}
