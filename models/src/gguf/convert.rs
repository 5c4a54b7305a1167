//! GGUF (llama architecture) -> Hugging Face folder: `model.safetensors` (f32 or bf16),
//! `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`.
//!
//! The result matches what transformers makes of the same file
//! (`AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=torch.float32)`): every
//! tensor bit for bit in f32 (dequantized as in [`super::dequant`], Q/K rows un-permuted as
//! its `LlamaTensorProcessor._reverse_permute_weights` does), bf16 as that f32 rounded to
//! nearest-even (norms too), and the tokenizer of [`super::tokenizer`].
//!
//! Tensor names (`N` = layer):
//!
//! | GGUF | Hugging Face |
//! |---|---|
//! | `token_embd.weight` | `model.embed_tokens.weight` |
//! | `blk.N.attn_norm.weight` | `model.layers.N.input_layernorm.weight` |
//! | `blk.N.attn_{q,k,v,output}.{weight,bias}` | `model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}` |
//! | `blk.N.ffn_norm.weight` | `model.layers.N.post_attention_layernorm.weight` |
//! | `blk.N.ffn_{gate,up,down}.weight` | `model.layers.N.mlp.{gate,up,down}_proj.weight` |
//! | `output_norm.weight` | `model.norm.weight` |
//! | `output.weight` | `lm_head.weight` (absent: `tie_word_embeddings` is true) |
//! | `rope_freqs.weight` | skipped (Llama 3 frequency factors; transformers ignores it too) |
//!
//! Any other tensor, a missing one, or a shape that disagrees with the metadata is an error
//! naming it, reported before anything is written. The output folder is written file by file
//! through temporary names and renames; `config.json` comes last, so its presence means the
//! conversion finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{json, Map, Value};

use super::dequant;
use super::error::GgufError;
use super::reader::GgufFile;
use super::tokenizer::build_tokenizer;
use super::types::GgmlType;
use super::writer::{write_file_atomic, Entry, SafetensorsWriter};

/// The dtype of the written weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutDType {
    #[default]
    F32,
    /// Round-to-nearest-even from the f32 dequantized value (as `torch.Tensor.to(bfloat16)`).
    Bf16,
}

impl OutDType {
    fn safetensors_name(self) -> &'static str {
        match self {
            OutDType::F32 => "F32",
            OutDType::Bf16 => "BF16",
        }
    }

    /// `torch_dtype` in `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            OutDType::F32 => "float32",
            OutDType::Bf16 => "bfloat16",
        }
    }

    fn size(self) -> u64 {
        match self {
            OutDType::F32 => 4,
            OutDType::Bf16 => 2,
        }
    }
}

impl FromStr for OutDType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "float32" => Ok(OutDType::F32),
            "bf16" | "bfloat16" => Ok(OutDType::Bf16),
            other => Err(format!("unknown dtype `{other}`; expected f32 or bf16")),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ConvertOptions {
    pub dtype: OutDType,
    /// Write into a non-empty output folder, replacing the files the converter writes.
    pub force: bool,
}

/// What a conversion did.
#[derive(Clone, Debug)]
pub struct ConvertSummary {
    pub architecture: String,
    /// `general.name`.
    pub model_name: Option<String>,
    pub layers: usize,
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub tie_word_embeddings: bool,
    /// Tensors written to `model.safetensors`.
    pub tensors: usize,
    pub parameters: u64,
    /// Written tensors by their type in the GGUF file.
    pub source_types: BTreeMap<GgmlType, usize>,
    /// GGUF tensors not written, with the reason.
    pub skipped: Vec<(String, &'static str)>,
    pub dtype: OutDType,
    /// Files written (name, bytes), in the order written.
    pub files: Vec<(String, u64)>,
    pub tokenizer_vocab: usize,
    pub tokenizer_added: usize,
    pub tokenizer_pre: Option<String>,
}

impl ConvertSummary {
    /// Total bytes written.
    pub fn output_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

/// Why a conversion failed. Each names the file and the key or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The file could not be read or is malformed (including an unsupported tensor type).
    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error("{}: architecture `{architecture}` is not supported; supported: llama", .file.display())]
    UnsupportedArchitecture { file: PathBuf, architecture: String },

    #[error(
        "{}: tokenizer model `{model}` (`tokenizer.ggml.model`) is not supported; supported: gpt2 (byte-level BPE)",
        .file.display()
    )]
    UnsupportedTokenizer { file: PathBuf, model: String },

    #[error("{}: tokenizer: {problem}", .file.display())]
    InvalidTokenizer { file: PathBuf, problem: String },

    #[error("{}: metadata key `{key}`: {problem}", .file.display())]
    InvalidMetadata {
        file: PathBuf,
        key: String,
        problem: String,
    },

    #[error("{}: tensor `{tensor}`: {problem}", .file.display())]
    UnexpectedTensor {
        file: PathBuf,
        tensor: String,
        problem: String,
    },

    #[error("{}: tensor `{tensor}` is missing", .file.display())]
    MissingTensor { file: PathBuf, tensor: String },

    #[error(
        "{}: tensor `{tensor}` has shape {found:?}, expected {expected:?}",
        .file.display()
    )]
    TensorShape {
        file: PathBuf,
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },

    #[error("{}: output folder is not empty (force overwrites it)", .path.display())]
    OutputNotEmpty { path: PathBuf },

    #[error("{}: cannot {action}: {error}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },

    /// A bug in the converter (an invariant it checks while writing).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The llama hyper-parameters, from the `llama.*` keys.
#[derive(Clone, Debug)]
struct LlamaParams {
    hidden: usize,
    layers: usize,
    intermediate: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// `head_dim` as the file states it (`attention.key_length`, else `rope.dimension_count`).
    explicit_head_dim: Option<usize>,
    rms_eps: f32,
    rope_theta: f32,
    context: usize,
    vocab: usize,
    rope_scaling: Option<Value>,
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
    fn from_gguf(gguf: &GgufFile) -> Result<LlamaParams, ConvertError> {
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

/// How one GGUF tensor is written.
#[derive(Clone, Debug)]
struct Planned {
    gguf_name: String,
    hf_name: String,
    shape: Vec<usize>,
    /// Undo llama.cpp's rotary permutation with this many heads.
    unpermute_heads: Option<usize>,
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
struct Plan {
    tensors: Vec<Planned>,
    tied: bool,
    attention_bias: bool,
    skipped: Vec<(String, &'static str)>,
}

fn plan(gguf: &GgufFile, p: &LlamaParams) -> Result<Plan, ConvertError> {
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

/// Creates `dir` or checks it is empty (unless `force`).
fn prepare_output(dir: &Path, force: bool) -> Result<(), ConvertError> {
    let io = |action| {
        let path = dir.to_path_buf();
        move |error| ConvertError::Io {
            path,
            action,
            error,
        }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io("list"))?;
        if entries.next().is_some() && !force {
            return Err(ConvertError::OutputNotEmpty {
                path: dir.to_path_buf(),
            });
        }
        // Stale files that would be read instead of (or beside) ours.
        for stale in ["config.json", "model.safetensors.index.json"] {
            let path = dir.join(stale);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|error| ConvertError::Io {
                    path,
                    action: "remove",
                    error,
                })?;
            }
        }
    } else {
        std::fs::create_dir_all(dir).map_err(io("create"))?;
    }
    Ok(())
}

fn to_pretty(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}

/// Converts the llama GGUF `gguf_path` into a Hugging Face folder `out_dir`.
pub fn convert_gguf(
    gguf_path: &Path,
    out_dir: &Path,
    options: &ConvertOptions,
) -> Result<ConvertSummary, ConvertError> {
    let gguf = GgufFile::open(gguf_path)?;
    convert_file(&gguf, out_dir, options)
}

/// [`convert_gguf`] for a file already open.
pub fn convert_file(
    gguf: &GgufFile,
    out_dir: &Path,
    options: &ConvertOptions,
) -> Result<ConvertSummary, ConvertError> {
    let file = gguf.path().to_path_buf();
    let architecture = gguf.require_str("general.architecture")?.to_string();
    if architecture != "llama" {
        return Err(ConvertError::UnsupportedArchitecture { file, architecture });
    }
    let params = LlamaParams::from_gguf(gguf)?;
    let plan = plan(gguf, &params)?;
    let tokenizer = build_tokenizer(gguf, Some(params.context as u64))?;
    let bos = gguf.get_u64("tokenizer.ggml.bos_token_id")?;
    let eos = gguf.get_u64("tokenizer.ggml.eos_token_id")?;
    let pad = gguf.get_u64("tokenizer.ggml.padding_token_id")?;
    let config = config_json(&params, &plan, options.dtype, bos, eos, pad);
    let mut generation = Map::new();
    for (key, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("pad_token_id", pad),
    ] {
        if let Some(id) = id {
            generation.insert(key.into(), id.into());
        }
    }

    // Everything is checked; now write.
    prepare_output(out_dir, options.force)?;
    let mut files = Vec::new();
    let mut small = |name: &str, bytes: &[u8]| -> Result<(), ConvertError> {
        let len = write_file_atomic(out_dir, name, bytes)?;
        files.push((name.to_string(), len));
        Ok(())
    };
    small("tokenizer.json", tokenizer.tokenizer_json.as_bytes())?;
    small(
        "tokenizer_config.json",
        &to_pretty(&tokenizer.tokenizer_config),
    )?;
    small(
        "generation_config.json",
        &to_pretty(&Value::Object(generation)),
    )?;

    let dtype = options.dtype;
    let entries: Vec<Entry> = plan
        .tensors
        .iter()
        .map(|t| Entry {
            name: t.hf_name.clone(),
            dtype: dtype.safetensors_name(),
            shape: t.shape.clone(),
            n_bytes: t.shape.iter().product::<usize>() as u64 * dtype.size(),
        })
        .collect();
    let mut writer = SafetensorsWriter::create(out_dir, "model.safetensors", &entries)?;
    let mut values = Vec::new();
    let mut permuted = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut source_types = BTreeMap::new();
    let mut parameters = 0u64;
    for t in &plan.tensors {
        gguf.dequantize_into_vec(&t.gguf_name, &mut values)?;
        let cols = if t.shape.len() > 1 { t.shape[1] } else { 1 };
        let data = match t.unpermute_heads {
            Some(heads) => {
                unpermute_rows(&values, cols, heads, &mut permuted);
                &permuted
            }
            None => &values,
        };
        bytes.clear();
        match dtype {
            OutDType::F32 => bytes.extend(data.iter().flat_map(|x| x.to_le_bytes())),
            OutDType::Bf16 => {
                bytes.extend(data.iter().flat_map(|&x| f32_to_bf16_bits(x).to_le_bytes()))
            }
        }
        writer.write_tensor(&t.hf_name, &bytes)?;
        parameters += data.len() as u64;
        // plan() found it.
        if let Some(info) = gguf.tensor(&t.gguf_name) {
            *source_types.entry(info.ggml_type).or_insert(0) += 1;
        }
    }
    let model_bytes = writer.finish()?;
    files.push(("model.safetensors".to_string(), model_bytes));
    let len = write_file_atomic(out_dir, "config.json", &to_pretty(&config))?;
    files.push(("config.json".to_string(), len));

    Ok(ConvertSummary {
        architecture,
        model_name: gguf.get_str("general.name")?.map(str::to_string),
        layers: params.layers,
        hidden_size: params.hidden,
        vocab_size: params.vocab,
        tie_word_embeddings: plan.tied,
        tensors: plan.tensors.len(),
        parameters,
        source_types,
        skipped: plan.skipped,
        dtype,
        files,
        tokenizer_vocab: tokenizer.vocab_len,
        tokenizer_added: tokenizer.added_tokens,
        tokenizer_pre: tokenizer.pre,
    })
}

fn config_json(
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

    #[test]
    fn f32_metadata_prints_short() {
        assert_eq!(f32_json(f64::from(1e-5f32)).as_f64(), Some(1e-5));
        assert_eq!(f32_json(f64::from(100000.0f32)).to_string(), "100000.0");
    }
}
