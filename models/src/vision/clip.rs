//! CLIP vision tower (CLIPVisionTransformer) as LLaVA uses it: patch conv without bias, class
//! token, learned positions, `pre_layrnorm` (sic), pre-norm encoder layers. LLaVA reads
//! `hidden_states[vision_feature_layer]` (index 0 = embeddings after pre_layrnorm, i = output of
//! layer i) and never applies post_layernorm, so only the layers up to the deepest selected one
//! are recorded.

use iris_runtime::graph::{GraphBuilder, ValueId};
use iris_runtime::Tensor;

use super::{check_pixels, record_patches, weight, EncoderLayer, LayerNorm, VisionConfig};
use crate::error::ModelError;
use crate::weights::Weights;

/// `vision_feature_layer`: one index into hidden_states or several (concatenated on features).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureLayers {
    One(i64),
    Many(Vec<i64>),
}

impl FeatureLayers {
    pub fn indices(&self) -> Vec<i64> {
        match self {
            FeatureLayers::One(i) => vec![*i],
            FeatureLayers::Many(v) => v.clone(),
        }
    }
}

/// `vision_feature_select_strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureSelect {
    /// Drop the class token.
    Default,
    /// Keep it.
    Full,
}

pub struct ClipVision {
    pub config: VisionConfig,
    patch_name: String,
    patch_embedding: Tensor,
    class_name: String,
    /// [1, 1, D]
    class_embedding: Tensor,
    position_name: String,
    /// [P + 1, D]
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    layers: Vec<EncoderLayer>,
}

impl ClipVision {
    /// Loads from the scope holding `embeddings`, `pre_layrnorm` and `encoder`.
    pub fn load(config: VisionConfig, w: &Weights) -> Result<Self, ModelError> {
        let c = &config;
        let (d, p) = (c.hidden_size, c.patch_size);
        let emb = w.pp("embeddings");
        let patch_embedding = emb
            .pp("patch_embedding")
            .get("weight", &[d, c.num_channels, p, p])?;
        let class_embedding = emb.get("class_embedding", &[d])?.reshape([1, 1, d])?;
        let position_embedding = emb
            .pp("position_embedding")
            .get("weight", &[c.num_patches() + 1, d])?;
        let pre_layrnorm = LayerNorm::load(w, "pre_layrnorm", d, c.layer_norm_eps)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| EncoderLayer::load(&w.pp(format!("encoder.layers.{i}")), c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClipVision {
            patch_name: emb.full_name("patch_embedding.weight"),
            class_name: emb.full_name("class_embedding"),
            position_name: emb.full_name("position_embedding.weight"),
            config,
            patch_embedding,
            class_embedding,
            position_embedding,
            pre_layrnorm,
            layers,
        })
    }

    /// Resolves a (possibly negative) hidden_states index to 0..=num_hidden_layers.
    pub fn resolve_layer(&self, index: i64) -> Result<usize, ModelError> {
        let n = self.config.num_hidden_layers as i64 + 1;
        let i = if index < 0 { n + index } else { index };
        if !(0..n).contains(&i) {
            return Err(ModelError::Invalid(format!(
                "vision_feature_layer {index} is outside the {n} hidden states of a {}-layer vision tower",
                n - 1
            )));
        }
        Ok(i as usize)
    }

    /// Records `pixel_values [N, C, H, W]` -> selected features `[N, S, D * layers]`
    /// (S = patches, + 1 with `FeatureSelect::Full`).
    pub fn record_features(
        &self,
        g: &mut GraphBuilder,
        pixel_values: ValueId,
        layers: &FeatureLayers,
        select: FeatureSelect,
    ) -> Result<ValueId, ModelError> {
        let c = &self.config;
        check_pixels(c, g.shape(pixel_values).dims())?;
        let n = g.shape(pixel_values).dims()[0];
        let indices = layers
            .indices()
            .into_iter()
            .map(|i| self.resolve_layer(i))
            .collect::<Result<Vec<_>, _>>()?;
        let deepest = indices.iter().copied().max().unwrap_or(0);

        let conv = weight(g, &self.patch_name, &self.patch_embedding)?;
        let patches = record_patches(g, pixel_values, conv, None, c.patch_size)?;
        let class = weight(g, &self.class_name, &self.class_embedding)?;
        let classes = vec![class; n];
        let classes = if n == 1 {
            class
        } else {
            g.concat(&classes, 0)?
        };
        let x = g.concat(&[classes, patches], 1)?;
        let pos = weight(g, &self.position_name, &self.position_embedding)?;
        let x = g.add(x, pos)?;
        let mut hidden = vec![self.pre_layrnorm.record(g, x)?];
        for layer in &self.layers[..deepest] {
            let last = *hidden
                .last()
                .expect("hidden states start with the embeddings");
            hidden.push(layer.record(g, last, c, None)?);
        }
        let s = c.num_patches() + 1;
        let mut selected = Vec::with_capacity(indices.len());
        for &i in &indices {
            selected.push(match select {
                FeatureSelect::Default => g.slice(hidden[i], 1, 1, s)?,
                FeatureSelect::Full => hidden[i],
            });
        }
        Ok(if selected.len() == 1 {
            selected[0]
        } else {
            g.concat(&selected, 2)?
        })
    }
}
