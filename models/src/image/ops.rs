//! Steps shared by the processors, each as transformers' `TorchvisionBackend` does it:
//! output-size rules, center crop (zero padding when the crop is larger), and the fused
//! rescale + normalize in f32.

use super::config::{Resolved, SizeDict};
use super::load::RgbImage;
use super::resample;

/// `TorchvisionBackend.resize`'s target (height, width) for the generic size forms.
pub fn resize_output_size(
    height: usize,
    width: usize,
    size: &SizeDict,
) -> Result<(usize, usize), String> {
    match (
        size.shortest_edge,
        size.longest_edge,
        size.height,
        size.width,
    ) {
        (Some(short), Some(long), _, _) => Ok(size_with_aspect_ratio(height, width, short, long)),
        (Some(short), None, _, _) => {
            // image_transforms.get_resize_output_image_size(default_to_square=False)
            let (s, l) = if width <= height {
                (width, height)
            } else {
                (height, width)
            };
            let new_long = (short as f64 * l as f64 / s as f64) as usize;
            Ok(if width <= height {
                (new_long, short)
            } else {
                (short, new_long)
            })
        }
        (None, _, Some(h), Some(w)) => Ok((h, w)),
        _ => Err(format!(
            "size {size:?} needs `shortest_edge` or `height` and `width`"
        )),
    }
}

/// image_transforms.get_size_with_aspect_ratio (shortest_edge with a longest_edge cap).
fn size_with_aspect_ratio(
    height: usize,
    width: usize,
    short: usize,
    long: usize,
) -> (usize, usize) {
    let (h, w) = (height as f64, width as f64);
    let mut size = short as f64;
    let mut raw = None;
    let (min_o, max_o) = (h.min(w), h.max(w));
    if max_o / min_o * size > long as f64 {
        let r = long as f64 * min_o / max_o;
        raw = Some(r);
        size = r.round_ties_even();
    }
    if (h <= w && h == size) || (w <= h && w == size) {
        return (height, width);
    }
    let base = raw.unwrap_or(size);
    if w < h {
        ((base * h / w) as usize, size as usize)
    } else {
        (size as usize, (base * w / h) as usize)
    }
}

/// Resizes to (height, width); unchanged when the size is already right (as torchvision).
pub fn resize_to(img: &RgbImage, height: usize, width: usize, cfg: &Resolved) -> RgbImage {
    if img.height == height && img.width == width {
        return img.clone();
    }
    resample::resize(img, width, height, cfg.resample)
}

/// `TorchvisionBackend.center_crop`: zero-pads when the crop is larger than the image.
pub fn center_crop(img: &RgbImage, crop_h: usize, crop_w: usize) -> RgbImage {
    let (mut h, mut w) = (img.height, img.width);
    let mut src = img.clone();
    if crop_w > w || crop_h > h {
        let left = if crop_w > w { (crop_w - w) / 2 } else { 0 };
        let top = if crop_h > h { (crop_h - h) / 2 } else { 0 };
        let right = if crop_w > w {
            (crop_w - w).div_ceil(2)
        } else {
            0
        };
        let bottom = if crop_h > h {
            (crop_h - h).div_ceil(2)
        } else {
            0
        };
        let (pw, ph) = (w + left + right, h + top + bottom);
        let mut data = vec![0u8; pw * ph * 3];
        for y in 0..h {
            let d = ((y + top) * pw + left) * 3;
            data[d..d + w * 3].copy_from_slice(&img.data[y * w * 3..(y + 1) * w * 3]);
        }
        src = RgbImage {
            width: pw,
            height: ph,
            data,
        };
        (h, w) = (ph, pw);
        if crop_w == w && crop_h == h {
            return src;
        }
    }
    let top = (h - crop_h) / 2;
    let left = (w - crop_w) / 2;
    let mut data = Vec::with_capacity(crop_h * crop_w * 3);
    for y in top..top + crop_h {
        let s = (y * w + left) * 3;
        data.extend_from_slice(&src.data[s..s + crop_w * 3]);
    }
    RgbImage {
        width: crop_w,
        height: crop_h,
        data,
    }
}

/// `rescale_and_normalize` into planar CHW f32, appended to `out`.
/// With both on, transformers folds the rescale into mean/std (mean/rf, std/rf, in f32).
pub fn rescale_normalize_into(img: &RgbImage, cfg: &Resolved, out: &mut Vec<f32>) {
    let plane = img.width * img.height;
    let base = out.len();
    out.resize(base + 3 * plane, 0.0);
    let (mut mean, mut std, mut scale) = ([0.0f32; 3], [1.0f32; 3], 1.0f32);
    if cfg.do_normalize {
        mean = cfg.image_mean;
        std = cfg.image_std;
        if cfg.do_rescale {
            let inv = (1.0 / cfg.rescale_factor) as f32;
            mean = mean.map(|m| m * inv);
            std = std.map(|s| s * inv);
        }
    } else if cfg.do_rescale {
        scale = cfg.rescale_factor as f32;
    }
    for c in 0..3 {
        let dst = &mut out[base + c * plane..base + (c + 1) * plane];
        for (i, d) in dst.iter_mut().enumerate() {
            let x = img.data[i * 3 + c] as f32;
            *d = if cfg.do_normalize {
                (x - mean[c]) / std[c]
            } else {
                x * scale
            };
        }
    }
}
