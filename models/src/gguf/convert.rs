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
//!
//! This file is the driver and its public types; the hyper-parameters and `config.json` are
//! in `convert_config.rs`, the tensor plan, Q/K un-permutation and bf16 rounding in
//! `convert_tensors.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value};

use super::convert_config::{config_json, LlamaParams};
use super::convert_tensors::plan;
pub use super::convert_tensors::{f32_to_bf16_bits, unpermute_rows};
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
