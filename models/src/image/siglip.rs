//! SiglipImageProcessor(Fast): resize to a fixed `size` height x width (bicubic), rescale by
//! 1/255, normalize with mean = std = 0.5; no center crop by default. transformers 5 runs
//! it through the same `TorchvisionBackend._preprocess` as CLIP, so this reuses clip.rs.

use super::config::Resolved;
use super::error::Result;
use super::load::RgbImage;

/// All images -> (pixel_values data CHW-planar, height, width).
pub fn process(images: &[RgbImage], cfg: &Resolved) -> Result<(Vec<f32>, usize, usize)> {
    super::clip::process(images, cfg)
}
