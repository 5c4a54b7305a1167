//! LlavaForConditionalGeneration: CLIP vision tower -> `multi_modal_projector` -> Llama.
//!
//! Weight layouts read (the first that holds the tensors wins):
//! - transformers 5 module names: `model.vision_tower.vision_model.*` (or
//!   `model.vision_tower.*`), `model.multi_modal_projector.*`, `model.language_model.*`,
//!   `lm_head.weight`;
//! - the layout of Hub checkpoints (and of what transformers 5 save_pretrained writes):
//!   `vision_tower.vision_model.*` (save_pretrained of transformers 5.24: `vision_tower.*`),
//!   `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.weight`.

use std::path::Path;

use iris_runtime::graph::{GraphBuilder, ValueId};
use serde_json::Value;

use super::{config_error, find_scope, load_llm, VisionStack};
use crate::error::ModelError;
use crate::llm::LlamaModel;
use crate::projector::LlavaProjector;
use crate::vision::{
    Activation, ClipVision, FeatureLayers, FeatureSelect, VisionConfig, VisionFamily,
};
use crate::weights::Weights;

pub struct LlavaVision {
    pub tower: ClipVision,
    pub feature_layers: FeatureLayers,
    pub select: FeatureSelect,
    pub projector: LlavaProjector,
}

impl LlavaVision {
    /// Feature rows per image: one per patch (+ the class token with strategy `full`).
    pub fn tokens_per_image(&self) -> usize {
        self.tower.config.num_patches() + (self.select == FeatureSelect::Full) as usize
    }

    /// `pixel_values [N, C, S, S]` -> projector output `[N, tokens, H]`.
    pub fn record(
        &self,
        g: &mut GraphBuilder,
        pixel_values: ValueId,
    ) -> Result<ValueId, ModelError> {
        let features =
            self.tower
                .record_features(g, pixel_values, &self.feature_layers, self.select)?;
        g.name(features, "vision_features")?;
        self.projector.record(g, features)
    }
}

fn feature_layers(path: &Path, config: &Value) -> Result<FeatureLayers, ModelError> {
    match config.get("vision_feature_layer") {
        None | Some(Value::Null) => Ok(FeatureLayers::One(-2)),
        Some(Value::Number(n)) if n.is_i64() => {
            Ok(FeatureLayers::One(n.as_i64().unwrap_or_default()))
        }
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_i64().ok_or_else(|| {
                    config_error(
                        path,
                        "vision_feature_layer",
                        format!("`{v}` is not an integer"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(FeatureLayers::Many),
        Some(v) => Err(config_error(
            path,
            "vision_feature_layer",
            format!("expected an integer or a list, found {v}"),
        )),
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
    if let Some(t) = vision_value.get("model_type").and_then(Value::as_str) {
        if t != "clip_vision_model" {
            return Err(config_error(
                path,
                "vision_config.model_type",
                format!("`{t}` is not supported (clip_vision_model)"),
            ));
        }
    }
    let vision_config = VisionConfig::from_value(path, vision_value, VisionFamily::Clip)?;
    let tower_scope = find_scope(
        w,
        &[
            "model.vision_tower.vision_model",
            "model.vision_tower",
            "vision_tower.vision_model",
            "vision_tower",
        ],
        "embeddings.patch_embedding.weight",
    )?;
    let tower = ClipVision::load(vision_config, &tower_scope)?;

    let (lm_scope, lm_head_scope) = if w.contains("model.language_model.embed_tokens.weight") {
        (w.pp("model.language_model"), w.clone())
    } else {
        let scope = find_scope(w, &["language_model.model"], "embed_tokens.weight")?;
        (scope, w.pp("language_model"))
    };
    let llm = load_llm(path, config, &lm_scope, &lm_head_scope)?;

    let feature_layers = feature_layers(path, config)?;
    let select = match config
        .get("vision_feature_select_strategy")
        .and_then(Value::as_str)
        .unwrap_or("default")
    {
        "default" => FeatureSelect::Default,
        "full" => FeatureSelect::Full,
        other => {
            return Err(config_error(
                path,
                "vision_feature_select_strategy",
                format!("`{other}` is not default or full"),
            ))
        }
    };
    for &i in &feature_layers.indices() {
        tower
            .resolve_layer(i)
            .map_err(|e| config_error(path, "vision_feature_layer", e.to_string()))?;
    }
    let act_name = config
        .get("projector_hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("gelu");
    let act = Activation::from_name(path, "projector_hidden_act", act_name)?;
    let bias = config
        .get("multimodal_projector_bias")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let projector_scope = find_scope(
        w,
        &["model.multi_modal_projector", "multi_modal_projector"],
        "linear_1.weight",
    )?;
    let in_dim = tower.config.hidden_size * feature_layers.indices().len();
    let projector =
        LlavaProjector::load(&projector_scope, in_dim, llm.config.hidden_size, act, bias)?;

    let image_token = config
        .get("image_token_index")
        .or_else(|| config.get("image_token_id"))
        .and_then(Value::as_u64)
        .unwrap_or(32000) as u32;
    Ok((
        llm,
        VisionStack::Llava(Box::new(LlavaVision {
            tower,
            feature_layers,
            select,
            projector,
        })),
        image_token,
    ))
}
