//! Antialiased separable resampling of RGB8 images.
//!
//! What the HF fast processors do: transformers 5 resizes the *uint8* image tensor with
//! `torchvision.transforms.v2.functional.resize(..., antialias=True)`. On CPU, torchvision
//! passes uint8 straight to `torch.nn.functional.interpolate` for BILINEAR, BICUBIC and
//! LANCZOS, whose uint8 antialias kernel is a port of Pillow-SIMD's `ImagingResample`:
//! - per output pixel i: `center = scale * (i + 0.5)`, `scale = in / out`,
//!   `support = base_support * max(scale, 1)`, taps `xmin = max(int(center - support + 0.5), 0)`
//!   to `min(int(center + support + 0.5), in)`, weight `filter((x - center + 0.5) / max(scale,1))`,
//!   normalised to sum 1 (all in f64);
//! - weights rounded to int16 with a per-axis precision `p` (the largest with
//!   `round(w_max * 2^(p+1)) < 2^15`, capped at 22), away from zero;
//! - horizontal pass first (if the width changes) into a uint8 image, then the vertical pass
//!   (if the height changes); each output is `(2^(p-1) + sum pix * w) >> p` saturated to 0..255;
//! - bicubic uses Keys' a = -0.5 on support 2, lanczos sinc(x) sinc(x/3) on support 3,
//!   bilinear the triangle on support 1.
//!
//! [`resize`] reproduces that bit for bit (checked against torch 2.15 / torchvision 0.29 on
//! random images: 0 differing pixels). Pillow's own `Image.resize` (the "slow" processors) is
//! the same algorithm with 22-bit int32 weights ([`Precision::Pil`]); it differs from
//! torchvision by at most 1-2 levels on a few percent of pixels.
//! [`resize_reference`] is the plain version: f64 weights and accumulation, no intermediate
//! rounding, f32 out; the tests bound the fixed-point versions against it.
//! Speed is not a goal here (a few ms for a 336x336 CLIP input).

use super::load::RgbImage;

/// Resampling filter (PIL ids: 1 LANCZOS, 2 BILINEAR, 3 BICUBIC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    Bilinear,
    Bicubic,
    Lanczos,
}

impl Filter {
    pub fn from_pil(id: i64) -> Option<Filter> {
        match id {
            1 => Some(Filter::Lanczos),
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            _ => None,
        }
    }

    /// Half-width of the kernel at scale 1.
    pub fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    pub fn eval(self, x: f64) -> f64 {
        match self {
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Fixed-point convention of the uint8 kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// torch's uint8 antialias kernel (torchvision, the HF fast processors).
    #[default]
    Torchvision,
    /// Pillow `ImagingResample` (22-bit weights; the HF PIL processors).
    Pil,
}

/// Taps of one output pixel along one axis.
struct Taps {
    start: usize,
    weights: Vec<f64>,
}

/// f64 weights for every output position (the common first step of all variants).
fn axis_taps(in_size: usize, out_size: usize, filter: Filter) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let max_taps = support.ceil() as usize * 2 + 1;
    let inv = 1.0 / filterscale;
    (0..out_size)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            // Truncation toward zero, as C's (int64_t) cast.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).clamp(0, max_taps as i64) as usize;
            let mut weights: Vec<f64> = (0..n)
                .map(|j| filter.eval(((j as i64 + xmin) as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            Taps {
                start: xmin as usize,
                weights,
            }
        })
        .collect()
}

/// Integer taps: (start, weights, precision bits).
struct FixedTaps {
    taps: Vec<(usize, Vec<i32>)>,
    precision: u32,
}

fn fixed_taps(in_size: usize, out_size: usize, filter: Filter, prec: Precision) -> FixedTaps {
    let taps = axis_taps(in_size, out_size, filter);
    let precision = match prec {
        Precision::Pil => 22,
        Precision::Torchvision => {
            let w_max = taps
                .iter()
                .flat_map(|t| t.weights.iter().copied())
                .fold(0.0f64, f64::max);
            let mut p = 0u32;
            while p < 22 {
                let next = (0.5 + w_max * (1u64 << (p + 1)) as f64) as i64;
                if next >= 1 << 15 {
                    break;
                }
                p += 1;
            }
            p
        }
    };
    let one = (1u64 << precision) as f64;
    let taps = taps
        .into_iter()
        .map(|t| {
            let w = t
                .weights
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (t.start, w)
        })
        .collect();
    FixedTaps { taps, precision }
}

/// One fixed-point pass along an axis. `stride_px` is the distance in pixels between
/// neighbouring taps; `lines`/`line_px` walk the other axis.
#[allow(clippy::too_many_arguments)]
fn fixed_pass(
    src: &[u8],
    dst: &mut [u8],
    ft: &FixedTaps,
    out_len: usize,
    tap_stride: usize,
    lines: usize,
    src_line_stride: usize,
    dst_line_stride: usize,
    dst_tap_stride: usize,
) {
    let round = 1i64 << (ft.precision.max(1) - 1);
    for line in 0..lines {
        let s_line = &src[line * src_line_stride..];
        let d_line = line * dst_line_stride;
        for (o, (start, w)) in ft.taps.iter().enumerate().take(out_len) {
            for c in 0..3 {
                let mut acc = round;
                for (j, &k) in w.iter().enumerate() {
                    acc += s_line[(start + j) * tap_stride * 3 + c] as i64 * k as i64;
                }
                dst[d_line + o * dst_tap_stride * 3 + c] =
                    (acc >> ft.precision).clamp(0, 255) as u8;
            }
        }
    }
}

/// Resizes like the HF fast processors (torchvision uint8 antialias); see the module doc.
pub fn resize(img: &RgbImage, out_w: usize, out_h: usize, filter: Filter) -> RgbImage {
    resize_with(img, out_w, out_h, filter, Precision::Torchvision)
}

/// Resizes with the fixed-point convention `prec` (torchvision or Pillow).
pub fn resize_with(
    img: &RgbImage,
    out_w: usize,
    out_h: usize,
    filter: Filter,
    prec: Precision,
) -> RgbImage {
    assert!(out_w > 0 && out_h > 0, "resize to an empty image");
    let (w, h) = (img.width, img.height);
    let mut cur = img.clone();
    if out_w != w {
        let ft = fixed_taps(w, out_w, filter, prec);
        let mut dst = vec![0u8; out_w * h * 3];
        fixed_pass(&cur.data, &mut dst, &ft, out_w, 1, h, w * 3, out_w * 3, 1);
        cur = RgbImage {
            width: out_w,
            height: h,
            data: dst,
        };
    }
    if out_h != h {
        let ft = fixed_taps(h, out_h, filter, prec);
        let cw = cur.width;
        let mut dst = vec![0u8; cw * out_h * 3];
        // Lines are columns: tap stride one row, line stride one pixel.
        fixed_pass(&cur.data, &mut dst, &ft, out_h, cw, cw, 3, 3, cw);
        cur = RgbImage {
            width: cw,
            height: out_h,
            data: dst,
        };
    }
    cur
}

/// Plain reference: f64 separable filter, no intermediate rounding; HWC f32 in 0..255 units.
pub fn resize_reference(img: &RgbImage, out_w: usize, out_h: usize, filter: Filter) -> Vec<f32> {
    let (w, h) = (img.width, img.height);
    let src: Vec<f64> = img.data.iter().map(|&v| v as f64).collect();
    let horiz: Vec<f64> = if out_w == w {
        src
    } else {
        let taps = axis_taps(w, out_w, filter);
        let mut out = vec![0.0; out_w * h * 3];
        for y in 0..h {
            for (x, t) in taps.iter().enumerate() {
                for c in 0..3 {
                    out[(y * out_w + x) * 3 + c] = t
                        .weights
                        .iter()
                        .enumerate()
                        .map(|(j, k)| k * src[(y * w + t.start + j) * 3 + c])
                        .sum();
                }
            }
        }
        out
    };
    let out: Vec<f64> = if out_h == h {
        horiz
    } else {
        let taps = axis_taps(h, out_h, filter);
        let mut out = vec![0.0; out_w * out_h * 3];
        for (y, t) in taps.iter().enumerate() {
            for x in 0..out_w {
                for c in 0..3 {
                    out[(y * out_w + x) * 3 + c] = t
                        .weights
                        .iter()
                        .enumerate()
                        .map(|(j, k)| k * horiz[((t.start + j) * out_w + x) * 3 + c])
                        .sum();
                }
            }
        }
        out
    };
    out.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Smooth (no clipping by overshoot, so the fixed-point passes stay comparable to the
    /// unclamped reference) but not separable, with a per-seed phase.
    fn test_image(w: usize, h: usize, seed: u64) -> RgbImage {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let (xf, yf) = (x as f64, y as f64);
                    let ph = seed as f64 + c as f64;
                    let v = 128.0
                        + 50.0 * (0.31 * xf + ph).sin() * (0.17 * yf).cos()
                        + 20.0 * (0.05 * (xf + 2.0 * yf) + ph).sin();
                    data.push(v.round() as u8);
                }
            }
        }
        RgbImage::new(w, h, data).unwrap()
    }

    #[test]
    fn identity_size_is_a_copy() {
        let img = test_image(17, 9, 1);
        assert_eq!(resize(&img, 17, 9, Filter::Bicubic), img);
    }

    #[test]
    fn fixed_point_tracks_reference() {
        for filter in [Filter::Bilinear, Filter::Bicubic, Filter::Lanczos] {
            for (w, h, ow, oh) in [(61, 47, 23, 19), (13, 11, 40, 29), (64, 64, 64, 31)] {
                let img = test_image(w, h, 7);
                let reference = resize_reference(&img, ow, oh, filter);
                for prec in [Precision::Torchvision, Precision::Pil] {
                    let got = resize_with(&img, ow, oh, filter, prec);
                    let max = got
                        .data
                        .iter()
                        .zip(&reference)
                        .map(|(&g, &r)| (g as f32 - r.clamp(0.0, 255.0)).abs())
                        .fold(0.0f32, f32::max);
                    // Two roundings to uint8 (one per pass) plus weight quantisation.
                    assert!(max <= 1.6, "{filter:?} {prec:?} {w}x{h}->{ow}x{oh}: {max}");
                }
            }
        }
    }

    #[test]
    fn weights_are_normalised() {
        for filter in [Filter::Bilinear, Filter::Bicubic, Filter::Lanczos] {
            for (i, o) in [(100, 7), (7, 100), (333, 336)] {
                for t in axis_taps(i, o, filter) {
                    let s: f64 = t.weights.iter().sum();
                    assert!((s - 1.0).abs() < 1e-12);
                    assert!(t.start + t.weights.len() <= i);
                }
            }
        }
    }
}
