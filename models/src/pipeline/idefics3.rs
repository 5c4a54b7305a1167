//! Idefics3ForConditionalGeneration (SmolVLM): SigLIP-style vision tower -> connector (pixel
//! shuffle + linear) -> Llama. Weights: `model.vision_model.*`, `model.connector.*`,
//! `model.text_model.*`, `lm_head.weight` (also read without the leading `model.`).
//!
//! One vision run encodes the tiles of one image together (`pixel_values [tiles, C, S, S]`,
//! full tiles only); each tile gives (S / patch / scale_factor)^2 feature rows.

use std::path::Path;

use iris_runtime::graph::{GraphBuilder, ValueId};
use serde_json::Value;

use super::{config_error, find_scope, load_llm, VisionStack};
use crate::error::ModelError;
use crate::llm::LlamaModel;
use crate::projector::Idefics3Connector;
use crate::vision::{SiglipVision, VisionConfig, VisionFamily};
use crate::weights::Weights;

pub struct Idefics3Vision {
    pub tower: SiglipVision,
    pub scale_factor: usize,
    pub connector: Idefics3Connector,
}

impl Idefics3Vision {
    pub fn tokens_per_tile(&self) -> usize {
        self.tower.config.num_patches() / (self.scale_factor * self.scale_factor)
    }

    /// `pixel_values [tiles, C, S, S]` -> connector output `[tiles, tokens, H]`.
    pub fn record(
        &self,
        g: &mut GraphBuilder,
        pixel_values: ValueId,
    ) -> Result<ValueId, ModelError> {
        let hidden = self.tower.record(g, pixel_values)?;
        g.name(hidden, "vision_features")?;
        self.connector.record(g, hidden)
    }
}

pub(crate) fn load(
    path: &Path,
    config: &Value,
    w: &Weights,
) -> Result<(LlamaModel, VisionStack, u32), ModelError> {
    let vision_value = config
        .get("vision_config")
        .ok_or_else(|| config_error(path, "vision_config", "missing"))?;
    let vision_config = VisionConfig::from_value(path, vision_value, VisionFamily::Siglip)?;
    let scale_factor = config
        .get("scale_factor")
        .and_then(Value::as_u64)
        .unwrap_or(2) as usize;
    let side = vision_config.patches_per_side();
    if scale_factor == 0 || !side.is_multiple_of(scale_factor) {
        return Err(config_error(
            path,
            "scale_factor",
            format!("{scale_factor} does not divide the {side} patches per side"),
        ));
    }
    let tower_scope = find_scope(
        w,
        &["model.vision_model", "vision_model"],
        "embeddings.patch_embedding.weight",
    )?;
    let tower = SiglipVision::load(vision_config, &tower_scope)?;
    let text_scope = find_scope(
        w,
        &["model.text_model", "text_model"],
        "embed_tokens.weight",
    )?;
    let llm = load_llm(path, config, &text_scope, w)?;
    let connector_scope = find_scope(
        w,
        &["model.connector", "connector"],
        "modality_projection.proj.weight",
    )?;
    let connector = Idefics3Connector::load(
        &connector_scope,
        tower.config.hidden_size,
        llm.config.hidden_size,
        scale_factor,
    )?;
    let image_token = config
        .get("image_token_id")
        .or_else(|| config.get("image_token_index"))
        .and_then(Value::as_u64)
        .unwrap_or(128257) as u32;
    Ok((
        llm,
        VisionStack::Idefics3(Box::new(Idefics3Vision {
            tower,
            scale_factor,
            connector,
        })),
        image_token,
    ))
}
