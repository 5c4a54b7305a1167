//! Multimodal pipelines: vision tower -> projector -> LLM. `MultimodalModel::load` reads an HF
//! folder of `LlavaForConditionalGeneration` or `Idefics3ForConditionalGeneration`; the
//! vision graph turns `pixel_values` into `image_features`, and the prefill graph puts those
//! rows in place of the image tokens of the prompt's embeddings before the LLM decoder.

pub mod idefics3;
pub mod llava;
pub mod prompt;
pub mod session;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use iris_runtime::graph::{Graph, GraphBuilder};
use iris_runtime::DType;
use serde_json::Value;

pub use idefics3::Idefics3Vision;
pub use llava::LlavaVision;
pub use session::{MultimodalOutput, MultimodalSession};

use crate::error::ModelError;
use crate::llm::{LlamaModel, LlmConfig, PhaseShape, TokenIds};
use crate::weights::Weights;

/// The image half of a pipeline.
pub enum VisionStack {
    Llava(Box<LlavaVision>),
    Idefics3(Box<Idefics3Vision>),
}

/// A loaded multimodal model.
pub struct MultimodalModel {
    pub architecture: String,
    pub llm: Arc<LlamaModel>,
    pub vision: VisionStack,
    /// The token whose positions the image features replace (`image_token_index` /
    /// `image_token_id`).
    pub image_token_id: u32,
    /// End-of-sequence ids from generation_config.json, else the text config.
    pub eos_token_ids: Vec<u32>,
    /// The dtype the weights are read in (as stored unless one was requested).
    pub weight_dtype: DType,
}

/// Which pipeline an architecture name selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipelineKind {
    Llava,
    Idefics3,
}

impl PipelineKind {
    pub fn from_architecture(name: &str) -> Option<Self> {
        match name {
            "LlavaForConditionalGeneration" => Some(PipelineKind::Llava),
            "Idefics3ForConditionalGeneration" => Some(PipelineKind::Idefics3),
            _ => None,
        }
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Json {
        path: path.to_path_buf(),
        error: e,
    })
}

/// `architectures[0]` of a folder's config.json (empty when absent).
pub fn architecture(dir: &Path) -> Result<String, ModelError> {
    let config = read_json(&dir.join("config.json"))?;
    Ok(config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// Finds which of `prefixes` holds `probe` (the first that does).
pub(crate) fn find_scope(
    w: &Weights,
    prefixes: &[&str],
    probe: &str,
) -> Result<Weights, ModelError> {
    for p in prefixes {
        if w.pp(p).contains(probe) {
            return Ok(w.pp(p));
        }
    }
    let tried: Vec<String> = prefixes.iter().map(|p| format!("{p}.{probe}")).collect();
    Err(ModelError::Weight {
        name: tried.join(" | "),
        message: format!("none of these is in {}", w.store().path().display()),
    })
}

pub(crate) fn config_error(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

/// Loads the LLM of a multimodal checkpoint: `text_config`, the decoder under `model`, and the
/// LM head under `lm_head_scope` (tied to the embeddings when no `lm_head.weight` is stored).
pub(crate) fn load_llm(
    path: &Path,
    config: &Value,
    model: &Weights,
    lm_head_scope: &Weights,
) -> Result<LlamaModel, ModelError> {
    let text = config
        .get("text_config")
        .ok_or_else(|| config_error(path, "text_config", "missing"))?;
    let mut llm = LlmConfig::from_value(path, text, config)?;
    llm.tie_word_embeddings = !lm_head_scope.contains("lm_head.weight");
    LlamaModel::load(llm, model, lm_head_scope)
}

fn generation_eos(dir: &Path) -> Result<Option<Vec<u32>>, ModelError> {
    let path = dir.join("generation_config.json");
    if !path.exists() {
        return Ok(None);
    }
    match read_json(&path)?.get("eos_token_id") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let ids: TokenIds = serde_json::from_value(v.clone())
                .map_err(|e| config_error(&path, "eos_token_id", e.to_string()))?;
            Ok(Some(ids.to_vec()))
        }
    }
}

impl MultimodalModel {
    /// Loads `dir` (config.json, safetensors weights, generation_config.json); `dtype`
    /// converts the weights at load (one copy), `None` reads them in place as stored.
    pub fn load(dir: impl AsRef<Path>, dtype: Option<DType>) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let path: PathBuf = dir.join("config.json");
        let config = read_json(&path)?;
        let architecture = architecture(dir)?;
        let kind = PipelineKind::from_architecture(&architecture).ok_or_else(|| {
            config_error(
                &path,
                "architectures",
                format!("`{architecture}` is not a multimodal pipeline iris runs (LlavaForConditionalGeneration, Idefics3ForConditionalGeneration)"),
            )
        })?;
        let weights = Weights::open(dir, dtype)?;
        let (llm, vision, image_token_id) = match kind {
            PipelineKind::Llava => llava::load(&path, &config, &weights)?,
            PipelineKind::Idefics3 => idefics3::load(&path, &config, &weights)?,
        };
        let eos_token_ids = generation_eos(dir)?.unwrap_or_else(|| llm.config.eos_token_id.clone());
        let weight_dtype = match dtype {
            Some(d) => d,
            None => weights
                .store()
                .tensors()
                .find(|t| t.name.ends_with("embed_tokens.weight"))
                .and_then(|t| t.iris_dtype())
                .unwrap_or(DType::F32),
        };
        Ok(MultimodalModel {
            architecture,
            llm: Arc::new(llm),
            vision,
            image_token_id,
            eos_token_ids,
            weight_dtype,
        })
    }

    /// Feature rows one vision run gives per image (LLaVA) or per tile (Idefics3).
    pub fn tokens_per_image(&self) -> usize {
        match &self.vision {
            VisionStack::Llava(v) => v.tokens_per_image(),
            VisionStack::Idefics3(v) => v.tokens_per_tile(),
        }
    }

    /// Side of the square images (tiles) the tower takes.
    pub fn image_size(&self) -> usize {
        match &self.vision {
            VisionStack::Llava(v) => v.tower.config.image_size,
            VisionStack::Idefics3(v) => v.tower.config.image_size,
        }
    }

    /// Images (tiles) per vision run for `n` given: LLaVA encodes one image per run,
    /// Idefics3 the tiles of one image together.
    pub fn vision_batch(&self, n: usize) -> usize {
        match &self.vision {
            VisionStack::Llava(_) => 1,
            VisionStack::Idefics3(_) => n.max(1),
        }
    }

    /// The vision graph: input `pixel_values` f32 [batch, C, S, S], output `image_features`
    /// [batch, tokens_per_image, H].
    pub fn build_vision_graph(&self, batch: usize) -> Result<Graph, ModelError> {
        let mut g = GraphBuilder::new();
        let s = self.image_size();
        let channels = match &self.vision {
            VisionStack::Llava(v) => v.tower.config.num_channels,
            VisionStack::Idefics3(v) => v.tower.config.num_channels,
        };
        let pixels = g.input("pixel_values", DType::F32, [batch, channels, s, s])?;
        let features = match &self.vision {
            VisionStack::Llava(v) => v.record(&mut g, pixels)?,
            VisionStack::Idefics3(v) => v.record(&mut g, pixels)?,
        };
        g.output("image_features", features)?;
        Ok(g.build())
    }

    /// The prefill graph for `input_ids` whose image-token positions take the rows of input
    /// `image_features` [1, n, H] in order. Inputs: `input_ids` [1, T] (image tokens may
    /// hold any in-vocabulary id), `image_features` (when n > 0), `positions`, `past_len`;
    /// output `logits`.
    pub fn build_prefill_graph(
        &self,
        input_ids: &[u32],
        shape: PhaseShape,
    ) -> Result<Graph, ModelError> {
        let t = input_ids.len();
        let h = self.llm.config.hidden_size;
        let n_image = input_ids
            .iter()
            .filter(|&&id| id == self.image_token_id)
            .count();
        let mut g = GraphBuilder::new();
        let ids = g.input("input_ids", DType::I64, [1, t])?;
        let positions = g.input("positions", DType::I64, [1, t])?;
        let past_len = g.input("past_len", DType::I64, [1])?;
        let text = self.llm.record_embeddings(&mut g, ids)?;
        let hidden = if n_image == 0 {
            text
        } else {
            let features = g.input("image_features", DType::F32, [1, n_image, h])?;
            // Runs of equal kind (text / image) in prompt order.
            let mut parts = Vec::new();
            let (mut start, mut used) = (0, 0);
            while start < t {
                let is_image = input_ids[start] == self.image_token_id;
                let mut end = start;
                while end < t && (input_ids[end] == self.image_token_id) == is_image {
                    end += 1;
                }
                parts.push(if is_image {
                    let part = g.slice(features, 1, used, used + end - start)?;
                    used += end - start;
                    part
                } else {
                    g.slice(text, 1, start, end)?
                });
                start = end;
            }
            if parts.len() == 1 {
                parts[0]
            } else {
                g.concat(&parts, 1)?
            }
        };
        g.name(hidden, "inputs_embeds")?;
        let logits = self
            .llm
            .record_decoder(&mut g, hidden, positions, past_len, shape)?;
        g.output("logits", logits)?;
        Ok(g.build())
    }
}
