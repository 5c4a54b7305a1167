//! CLIPImageProcessor(Fast): resize (shortest edge to `size.shortest_edge`, or to a fixed
//! height x width), center crop to `crop_size`, rescale by 1/255, normalize with the OpenAI
//! mean/std. This is `TorchvisionBackend._preprocess`; SigLIP runs the same steps with other
//! defaults (see siglip.rs).

use super::config::Resolved;
use super::error::{ImageError, Result};
use super::load::RgbImage;
use super::ops;

/// One image through resize -> center crop; returns the uint8 image before normalization.
pub fn prepare(img: &RgbImage, cfg: &Resolved) -> Result<RgbImage> {
    let processor = cfg.kind.name();
    let mut img = img.clone();
    if cfg.do_resize {
        let (h, w) = ops::resize_output_size(img.height, img.width, &cfg.size)
            .map_err(|detail| ImageError::Preprocess { processor, detail })?;
        if h == 0 || w == 0 {
            return Err(ImageError::Preprocess {
                processor,
                detail: format!(
                    "{}x{} image resizes to an empty {w}x{h} image",
                    img.width, img.height
                ),
            });
        }
        img = ops::resize_to(&img, h, w, cfg);
    }
    if cfg.do_center_crop {
        // Presence of height/width is checked when the config is resolved.
        let (ch, cw) = (
            cfg.crop_size.height.unwrap_or(img.height),
            cfg.crop_size.width.unwrap_or(img.width),
        );
        img = ops::center_crop(&img, ch, cw);
    }
    Ok(img)
}

/// All images -> (pixel_values data CHW-planar, height, width); every image must end up the
/// same size so they stack into [N, 3, H, W].
pub fn process(images: &[RgbImage], cfg: &Resolved) -> Result<(Vec<f32>, usize, usize)> {
    let mut out = Vec::new();
    let mut hw: Option<(usize, usize)> = None;
    for (i, img) in images.iter().enumerate() {
        let p = prepare(img, cfg)?;
        match hw {
            None => hw = Some((p.height, p.width)),
            Some((h, w)) if (h, w) != (p.height, p.width) => {
                return Err(ImageError::Preprocess {
                    processor: cfg.kind.name(),
                    detail: format!(
                        "image {i} comes out {}x{} but image 0 {w}x{h}; without a center crop \
                         or a fixed size they cannot be stacked",
                        p.width, p.height
                    ),
                })
            }
            _ => {}
        }
        ops::rescale_normalize_into(&p, cfg, &mut out);
    }
    let (h, w) = hw.unwrap_or((0, 0));
    Ok((out, h, w))
}
