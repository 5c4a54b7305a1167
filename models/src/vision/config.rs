//! `vision_config` of multimodal checkpoints (CLIP vision for LLaVA, SigLIP / Idefics3 vision
//! for SmolVLM), with HF's field names and each family's defaults.

use std::path::Path;

use iris_runtime::graph::GeluKind;
use serde_json::Value;

use crate::error::ModelError;

/// Which vision family a config describes (its defaults differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisionFamily {
    /// CLIPVisionConfig: class token, `pre_layrnorm`, patch conv without bias.
    Clip,
    /// SiglipVisionConfig / Idefics3VisionConfig: no class token, patch conv with bias,
    /// `post_layernorm`.
    Siglip,
}

/// The activation of the vision MLP (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    QuickGelu,
    Gelu(GeluKind),
}

impl Activation {
    /// Parses an HF activation name (`quick_gelu`, `gelu`, `gelu_pytorch_tanh`, `gelu_new`).
    pub fn from_name(path: &Path, field: &str, name: &str) -> Result<Self, ModelError> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu(GeluKind::Erf)),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Activation::Gelu(GeluKind::Tanh)),
            other => Err(ModelError::Config {
                path: path.to_path_buf(),
                field: field.to_string(),
                message: format!(
                    "activation `{other}` is not supported (quick_gelu, gelu, gelu_pytorch_tanh)"
                ),
            }),
        }
    }
}

#[derive(Clone, Debug)]
pub struct VisionConfig {
    pub family: VisionFamily,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f32,
}

fn usize_field(
    path: &Path,
    value: &Value,
    field: &str,
    default: usize,
) -> Result<usize, ModelError> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ModelError::Config {
                path: path.to_path_buf(),
                field: format!("vision_config.{field}"),
                message: format!("expected a non-negative integer, found {v}"),
            }),
    }
}

impl VisionConfig {
    /// Parses `vision_config` (the object itself) with the defaults of `family`.
    pub fn from_value(
        path: &Path,
        value: &Value,
        family: VisionFamily,
    ) -> Result<Self, ModelError> {
        // CLIPVisionConfig / Idefics3VisionConfig defaults.
        let (hidden, inter, layers, heads, image, patch, act, eps) = match family {
            VisionFamily::Clip => (768, 3072, 12, 12, 224, 32, "quick_gelu", 1e-5),
            VisionFamily::Siglip => (1152, 3072, 12, 16, 224, 32, "gelu_pytorch_tanh", 1e-6),
        };
        let act_name = value
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or(act);
        let config = VisionConfig {
            family,
            hidden_size: usize_field(path, value, "hidden_size", hidden)?,
            intermediate_size: usize_field(path, value, "intermediate_size", inter)?,
            num_hidden_layers: usize_field(path, value, "num_hidden_layers", layers)?,
            num_attention_heads: usize_field(path, value, "num_attention_heads", heads)?,
            num_channels: usize_field(path, value, "num_channels", 3)?,
            image_size: usize_field(path, value, "image_size", image)?,
            patch_size: usize_field(path, value, "patch_size", patch)?,
            hidden_act: Activation::from_name(path, "vision_config.hidden_act", act_name)?,
            layer_norm_eps: value
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(eps) as f32,
        };
        let bad = |field: &str, message: String| ModelError::Config {
            path: path.to_path_buf(),
            field: format!("vision_config.{field}"),
            message,
        };
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    config.num_attention_heads, config.hidden_size
                ),
            ));
        }
        if config.patch_size == 0 || !config.image_size.is_multiple_of(config.patch_size) {
            return Err(bad(
                "patch_size",
                format!(
                    "{} does not divide image_size {}",
                    config.patch_size, config.image_size
                ),
            ));
        }
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Patches per side of a full image.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn num_patches(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }
}
