//! SigLIP-style vision tower as Idefics3 (SmolVLM) uses it (Idefics3VisionTransformer): patch
//! conv with bias, learned positions, pre-norm encoder layers, `post_layernorm`.
//!
//! Idefics3 gives each patch a bucketed position id so that padded, smaller images reuse the
//! position grid; for a full (unpadded) tile the ids are exactly 0..P-1 (checked against
//! transformers by scripts/make_multimodal_fixtures.py), which is what is recorded here: the
//! position table is added as is. Padded tiles (a `pixel_attention_mask`) are not supported.

use iris_runtime::graph::{GraphBuilder, ValueId};
use iris_runtime::Tensor;

use super::{check_pixels, record_patches, weight, EncoderLayer, LayerNorm, VisionConfig};
use crate::error::ModelError;
use crate::weights::Weights;

pub struct SiglipVision {
    pub config: VisionConfig,
    patch_name: String,
    patch_weight: Tensor,
    patch_bias: Tensor,
    position_name: String,
    /// [P, D]
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
}

impl SiglipVision {
    /// Loads from the scope holding `embeddings`, `encoder` and `post_layernorm`.
    pub fn load(config: VisionConfig, w: &Weights) -> Result<Self, ModelError> {
        let c = &config;
        let (d, p) = (c.hidden_size, c.patch_size);
        let emb = w.pp("embeddings");
        let conv = emb.pp("patch_embedding");
        let layers = (0..c.num_hidden_layers)
            .map(|i| EncoderLayer::load(&w.pp(format!("encoder.layers.{i}")), c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SiglipVision {
            patch_name: conv.full_name(""),
            patch_weight: conv.get("weight", &[d, c.num_channels, p, p])?,
            patch_bias: conv.get("bias", &[d])?,
            position_name: emb.full_name("position_embedding.weight"),
            position_embedding: emb
                .pp("position_embedding")
                .get("weight", &[c.num_patches(), d])?,
            layers,
            post_layernorm: LayerNorm::load(w, "post_layernorm", d, c.layer_norm_eps)?,
            config,
        })
    }

    /// Records `pixel_values [N, C, H, W]` (full tiles) -> `last_hidden_state [N, P, D]`.
    pub fn record(
        &self,
        g: &mut GraphBuilder,
        pixel_values: ValueId,
    ) -> Result<ValueId, ModelError> {
        let c = &self.config;
        check_pixels(c, g.shape(pixel_values).dims())?;
        let conv_w = weight(g, &format!("{}weight", self.patch_name), &self.patch_weight)?;
        let conv_b = weight(g, &format!("{}bias", self.patch_name), &self.patch_bias)?;
        let x = record_patches(g, pixel_values, conv_w, Some(conv_b), c.patch_size)?;
        let pos = weight(g, &self.position_name, &self.position_embedding)?;
        let mut x = g.add(x, pos)?;
        for layer in &self.layers {
            x = layer.record(g, x, c, None)?;
        }
        self.post_layernorm.record(g, x)
    }
}
