//! Idefics3ImageProcessor(Fast) (SmolVLM) and the prompt expansion of Idefics3Processor.
//!
//! Per image, as transformers 5's torchvision Idefics3 processor (each resize on uint8):
//! 1. resize so the longest edge is `size.longest_edge` (up or down; the other side
//!    `int(longest / aspect)` rounded up to even), then capped at 4096;
//! 2. with `do_image_splitting`: resize both sides up to multiples of
//!    `max_image_size.longest_edge` (M); if larger than M, cut into rows x cols tiles of
//!    M x M (row-major) and append the global image (the step-2 image resized to M x M);
//!    otherwise the single M x M image with rows = cols = 0.
//!    Without splitting: resize to M x M, rows = cols = 0;
//! 3. rescale + normalize. All tiles are M x M, so within one image nothing is padded and
//!    `pixel_attention_mask` is all ones.

use super::config::Resolved;
use super::error::{ImageError, Result};
use super::load::RgbImage;
use super::ops;

/// transformers' MAX_IMAGE_SIZE for Idefics3: no side beyond 4096 after step 1.
pub const MAX_IMAGE_SIDE: usize = 4096;

/// `_resize_output_size_rescale_to_max_len` (min_len 1).
fn rescale_to_max_len(height: usize, width: usize, max_len: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w);
    if width >= height {
        w = max_len;
        h = (w as f64 / aspect) as usize;
        if h % 2 != 0 {
            h += 1;
        }
    } else {
        h = max_len;
        w = (h as f64 * aspect) as usize;
        if w % 2 != 0 {
            w += 1;
        }
    }
    (h.max(1), w.max(1))
}

/// `_resize_output_size_scale_below_upper_bound`.
fn scale_below_upper_bound(height: usize, width: usize, max_len: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w) = (height, width);
    if width >= height && width > max_len {
        w = max_len;
        h = (w as f64 / aspect) as usize;
    } else if height > width && height > max_len {
        h = max_len;
        w = (h as f64 * aspect) as usize;
    }
    (h.max(1), w.max(1))
}

/// `resize_for_vision_encoder`: both sides up to multiples of `m`.
fn vision_encoder_size(height: usize, width: usize, m: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    if width >= height {
        let w = width.div_ceil(m) * m;
        let h = (w as f64 / aspect) as usize;
        (h.div_ceil(m) * m, w)
    } else {
        let h = height.div_ceil(m) * m;
        let w = (h as f64 * aspect) as usize;
        (h, w.div_ceil(m) * m)
    }
}

/// One image's tiles (uint8, M x M each, global image last) and its (rows, cols).
pub fn split_image(img: &RgbImage, cfg: &Resolved) -> Result<(Vec<RgbImage>, usize, usize)> {
    let processor = cfg.kind.name();
    let m = cfg
        .max_image_size
        .longest_edge
        .ok_or(ImageError::Preprocess {
            processor,
            detail: "max_image_size needs `longest_edge`".into(),
        })?;
    let mut img = img.clone();
    if cfg.do_resize {
        let (h, w) = if let Some(l) = cfg.size.longest_edge {
            let (h, w) = rescale_to_max_len(img.height, img.width, l);
            scale_below_upper_bound(h, w, MAX_IMAGE_SIDE)
        } else if let (Some(h), Some(w)) = (cfg.size.height, cfg.size.width) {
            (h, w)
        } else {
            return Err(ImageError::Preprocess {
                processor,
                detail: "size must have `longest_edge` or `height` and `width`".into(),
            });
        };
        img = ops::resize_to(&img, h, w, cfg);
    }
    if !cfg.do_image_splitting {
        return Ok((vec![ops::resize_to(&img, m, m, cfg)], 0, 0));
    }
    let (h, w) = vision_encoder_size(img.height, img.width, m);
    img = ops::resize_to(&img, h, w, cfg);
    if img.height <= m && img.width <= m {
        return Ok((vec![img], 0, 0));
    }
    let (rows, cols) = (img.height.div_ceil(m), img.width.div_ceil(m));
    let mut tiles = Vec::with_capacity(rows * cols + 1);
    // `unfold` keeps only whole tiles; the sides are multiples of m here, so that is all.
    for r in 0..img.height / m {
        for c in 0..img.width / m {
            let mut data = Vec::with_capacity(m * m * 3);
            for y in r * m..(r + 1) * m {
                let s = (y * img.width + c * m) * 3;
                data.extend_from_slice(&img.data[s..s + m * 3]);
            }
            tiles.push(RgbImage {
                width: m,
                height: m,
                data,
            });
        }
    }
    tiles.push(ops::resize_to(&img, m, m, cfg));
    Ok((tiles, rows, cols))
}

/// Per-image (rows, cols) and tile counts, plus CHW-planar pixel data and the tile side.
pub struct Tiles {
    pub data: Vec<f32>,
    pub side: usize,
    pub rows_cols: Vec<(usize, usize)>,
    pub tiles_per_image: Vec<usize>,
}

pub fn process(images: &[RgbImage], cfg: &Resolved) -> Result<Tiles> {
    let mut out = Tiles {
        data: Vec::new(),
        side: cfg.max_image_size.longest_edge.unwrap_or(0),
        rows_cols: Vec::with_capacity(images.len()),
        tiles_per_image: Vec::with_capacity(images.len()),
    };
    for img in images {
        let (tiles, rows, cols) = split_image(img, cfg)?;
        for t in &tiles {
            ops::rescale_normalize_into(t, cfg, &mut out.data);
        }
        out.rows_cols.push((rows, cols));
        out.tiles_per_image.push(tiles.len());
    }
    Ok(out)
}

/// The special tokens of the Idefics3 prompt expansion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptTokens {
    /// `<image>`: the marker in the prompt and the per-patch placeholder.
    pub image: String,
    /// `<fake_token_around_image>`.
    pub fake_image: String,
    /// `<global-img>`.
    pub global_image: String,
}

impl Default for PromptTokens {
    fn default() -> Self {
        PromptTokens {
            image: "<image>".into(),
            fake_image: "<fake_token_around_image>".into(),
            global_image: "<global-img>".into(),
        }
    }
}

/// `Idefics3Processor.replace_image_token` for one image.
pub fn image_prompt_string(
    rows: usize,
    cols: usize,
    image_seq_len: usize,
    tokens: &PromptTokens,
) -> String {
    let seq = tokens.image.repeat(image_seq_len);
    let global = format!(
        "{}{}{seq}{}",
        tokens.fake_image, tokens.global_image, tokens.fake_image
    );
    if rows == 0 && cols == 0 {
        return global;
    }
    let mut s = String::new();
    for r in 0..rows {
        for c in 0..cols {
            s.push_str(&tokens.fake_image);
            s.push_str(&format!("<row_{}_col_{}>", r + 1, c + 1));
            s.push_str(&seq);
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&global);
    s
}

/// Replaces the i-th `<image>` marker of `text` with image i's expansion (rows, cols from
/// [`process`]). The number of markers must equal the number of images.
pub fn expand_prompt(
    text: &str,
    image_rows_cols: &[(usize, usize)],
    image_seq_len: usize,
    tokens: &PromptTokens,
) -> Result<String> {
    let markers = text.matches(tokens.image.as_str()).count();
    if tokens.image.is_empty() || markers != image_rows_cols.len() {
        return Err(ImageError::ImageCountMismatch {
            token: tokens.image.clone(),
            markers,
            images: image_rows_cols.len(),
        });
    }
    let mut out = String::with_capacity(text.len() + markers * image_seq_len * 8);
    let mut parts = text.split(tokens.image.as_str());
    out.push_str(parts.next().unwrap_or(""));
    for (part, &(rows, cols)) in parts.zip(image_rows_cols) {
        out.push_str(&image_prompt_string(rows, cols, image_seq_len, tokens));
        out.push_str(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_hf() {
        // 97x113 (w x h) to longest 2048: height 2048, width int(2048*97/113)=1757 -> 1758.
        assert_eq!(rescale_to_max_len(113, 97, 2048), (2048, 1758));
        assert_eq!(vision_encoder_size(2048, 1758, 512), (2048, 2048));
        assert_eq!(rescale_to_max_len(480, 640, 2048), (1536, 2048));
        assert_eq!(scale_below_upper_bound(100, 5000, 4096), (81, 4096));
    }

    #[test]
    fn expansion_counts() {
        let t = PromptTokens::default();
        let s = expand_prompt("a<image>b", &[(2, 3)], 4, &t).unwrap();
        assert_eq!(s.matches("<image>").count(), 4 * 7);
        assert!(s.contains("<row_2_col_3>"));
        assert!(expand_prompt("a<image>b", &[], 4, &t).is_err());
    }
}
