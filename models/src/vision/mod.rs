//! Vision encoders: CLIP (LLaVA) and SigLIP / Idefics3 (SmolVLM) ViTs, recorded as iris
//! graphs over `pixel_values [N, C, H, W]`. Both share the pre-norm encoder layer here.

pub mod clip;
pub mod config;
pub mod siglip;

use iris_runtime::graph::{GraphBuilder, ValueId};
use iris_runtime::Tensor;

pub use clip::{ClipVision, FeatureLayers, FeatureSelect};
pub use config::{Activation, VisionConfig, VisionFamily};
pub use siglip::SiglipVision;

use crate::error::ModelError;
use crate::weights::Weights;

/// A weight recorded once per graph under its checkpoint name.
pub(crate) fn weight(
    g: &mut GraphBuilder,
    name: &str,
    tensor: &Tensor,
) -> Result<ValueId, ModelError> {
    match g.find(name) {
        Some(id) => Ok(id),
        None => Ok(g.weight(name, tensor.clone())?),
    }
}

/// `nn.Linear`: weight [out, in], optional bias [out].
pub(crate) struct Linear {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn load(
        w: &Weights,
        name: &str,
        out_dim: usize,
        in_dim: usize,
        bias: bool,
    ) -> Result<Self, ModelError> {
        let scoped = w.pp(name);
        let weight = scoped.get("weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(scoped.get("bias", &[out_dim])?)
        } else {
            None
        };
        Ok(Linear {
            name: w.full_name(name),
            weight,
            bias,
        })
    }

    pub(crate) fn record(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId, ModelError> {
        let w = weight(g, &format!("{}.weight", self.name), &self.weight)?;
        let b = match &self.bias {
            Some(bias) => Some(weight(g, &format!("{}.bias", self.name), bias)?),
            None => None,
        };
        Ok(g.matmul(x, w, b)?)
    }
}

/// `nn.LayerNorm` with weight and bias.
pub(crate) struct LayerNorm {
    name: String,
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub(crate) fn load(w: &Weights, name: &str, dim: usize, eps: f32) -> Result<Self, ModelError> {
        let scoped = w.pp(name);
        Ok(LayerNorm {
            name: w.full_name(name),
            weight: scoped.get("weight", &[dim])?,
            bias: scoped.get("bias", &[dim])?,
            eps,
        })
    }

    pub(crate) fn record(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId, ModelError> {
        let w = weight(g, &format!("{}.weight", self.name), &self.weight)?;
        let b = weight(g, &format!("{}.bias", self.name), &self.bias)?;
        Ok(g.layer_norm(x, w, Some(b), self.eps)?)
    }
}

pub(crate) fn record_activation(
    g: &mut GraphBuilder,
    x: ValueId,
    act: Activation,
) -> Result<ValueId, ModelError> {
    Ok(match act {
        Activation::QuickGelu => g.quick_gelu(x)?,
        Activation::Gelu(kind) => g.gelu(x, kind)?,
    })
}

/// One pre-norm ViT encoder layer (CLIPEncoderLayer / SiglipEncoderLayer):
/// x + out_proj(attn(layer_norm1(x))), then + fc2(act(fc1(layer_norm2(x)))).
pub(crate) struct EncoderLayer {
    layer_norm1: LayerNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl EncoderLayer {
    pub(crate) fn load(w: &Weights, c: &VisionConfig) -> Result<Self, ModelError> {
        let (d, eps) = (c.hidden_size, c.layer_norm_eps);
        let attn = w.pp("self_attn");
        let mlp = w.pp("mlp");
        Ok(EncoderLayer {
            layer_norm1: LayerNorm::load(w, "layer_norm1", d, eps)?,
            q_proj: Linear::load(&attn, "q_proj", d, d, true)?,
            k_proj: Linear::load(&attn, "k_proj", d, d, true)?,
            v_proj: Linear::load(&attn, "v_proj", d, d, true)?,
            out_proj: Linear::load(&attn, "out_proj", d, d, true)?,
            layer_norm2: LayerNorm::load(w, "layer_norm2", d, eps)?,
            fc1: Linear::load(&mlp, "fc1", c.intermediate_size, d, true)?,
            fc2: Linear::load(&mlp, "fc2", d, c.intermediate_size, true)?,
        })
    }

    /// `x [N, S, D]` -> `[N, S, D]`; `mask` (additive, [N, S, S]) for padded patches.
    pub(crate) fn record(
        &self,
        g: &mut GraphBuilder,
        x: ValueId,
        c: &VisionConfig,
        mask: Option<ValueId>,
    ) -> Result<ValueId, ModelError> {
        let dims = g.shape(x).dims().to_vec();
        let (n, s) = (dims[0], dims[1]);
        let (heads, hd) = (c.num_attention_heads, c.head_dim());
        let h = self.layer_norm1.record(g, x)?;
        let q = self.q_proj.record(g, h)?;
        let k = self.k_proj.record(g, h)?;
        let v = self.v_proj.record(g, h)?;
        let q = g.reshape(q, [n, s, heads, hd])?;
        let k = g.reshape(k, [n, s, heads, hd])?;
        let v = g.reshape(v, [n, s, heads, hd])?;
        let attn = g.attention(q, k, v, mask, false, (hd as f32).powf(-0.5))?;
        let attn = g.reshape(attn, [n, s, c.hidden_size])?;
        let o = self.out_proj.record(g, attn)?;
        let x = g.add(x, o)?;
        let h = self.layer_norm2.record(g, x)?;
        let h = self.fc1.record(g, h)?;
        let h = record_activation(g, h, c.hidden_act)?;
        let h = self.fc2.record(g, h)?;
        Ok(g.add(x, h)?)
    }
}

/// Patch embedding: `pixel_values [N, C, H, W]` -> conv (stride = kernel) -> `[N, P, D]`.
pub(crate) fn record_patches(
    g: &mut GraphBuilder,
    pixel_values: ValueId,
    conv_weight: ValueId,
    conv_bias: Option<ValueId>,
    patch: usize,
) -> Result<ValueId, ModelError> {
    let x = g.conv2d(pixel_values, conv_weight, conv_bias, [patch, patch], [0, 0])?;
    let dims = g.shape(x).dims().to_vec();
    let (n, d, p) = (dims[0], dims[1], dims[2] * dims[3]);
    let x = g.reshape(x, [n, d, p])?;
    Ok(g.permute(x, &[0, 2, 1])?)
}

/// Checks `pixel_values` dims against the tower's config.
pub(crate) fn check_pixels(c: &VisionConfig, dims: &[usize]) -> Result<(), ModelError> {
    if dims.len() != 4
        || dims[1] != c.num_channels
        || dims[2] != c.image_size
        || dims[3] != c.image_size
    {
        return Err(ModelError::Invalid(format!(
            "pixel_values must be [N, {}, {}, {}], got {dims:?}",
            c.num_channels, c.image_size, c.image_size
        )));
    }
    Ok(())
}
