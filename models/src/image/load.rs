//! Image files in: PNG, JPEG and WebP through the `image` crate, out as packed RGB8.
//!
//! Conversion to RGB follows what the HF processors see with `do_convert_rgb=True`
//! (transformers' `convert_to_rgb`, PIL underneath):
//! - images with alpha (RGBA, LA, PNG `tRNS`) are composited onto opaque white with PIL's
//!   `alpha_composite` integer arithmetic ([`AlphaMode::CompositeWhite`], the default);
//!   [`AlphaMode::Drop`] instead drops alpha the way PIL's plain `convert("RGB")` does;
//! - grayscale is replicated into the three channels;
//! - 16-bit RGB(A) and gray+alpha keep the most significant byte (PIL's `;16B` raw modes);
//!   16-bit grayscale without alpha is clipped to 255, as PIL's `I;16` -> `RGB` does.
//!
//! Dimensions are checked from the header before any pixel is decoded, so a decompression
//! bomb is refused without allocating for it. Nothing here panics on bad input.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader};

use super::error::{ImageError, Result};

/// Largest accepted width or height.
pub const MAX_DIMENSION: u32 = 16384;

/// An 8-bit RGB image, row-major, channels interleaved (`data.len() == width * height * 3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Wraps packed RGB8 data; `None` when the length does not match or a side is zero.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (width > 0 && height > 0 && width.checked_mul(height)?.checked_mul(3)? == data.len())
            .then_some(RgbImage {
                width,
                height,
                data,
            })
    }

    /// The pixel at (x, y) as [r, g, b].
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// What to do with an alpha channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AlphaMode {
    /// Composite onto opaque white (transformers' `convert_to_rgb`, used by every processor).
    #[default]
    CompositeWhite,
    /// Drop alpha (PIL `Image.convert("RGB")`).
    Drop,
}

/// Loads an image file as RGB8, compositing alpha onto white like the HF processors.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    load_image_with(path, AlphaMode::CompositeWhite)
}

/// Loads an image file as RGB8 with the given alpha handling.
pub fn load_image_with(path: impl AsRef<Path>, alpha: AlphaMode) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(&bytes, path, alpha)
}

/// Decodes an in-memory PNG/JPEG/WebP file; `path` is only used in error messages.
pub fn decode_image(bytes: &[u8], path: &Path, alpha: AlphaMode) -> Result<RgbImage> {
    let format = detect_format(bytes, path)?;
    let corrupt = |e: &dyn std::fmt::Display| ImageError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    // Header-only probe first: reject zero and absurd sizes before allocating pixels.
    // PNG's IHDR is read directly so a zero side is reported as such (decoders only say
    // "invalid header").
    let (width, height) = match png_ihdr_dims(bytes) {
        Some(dims) if format == ImageFormat::Png => dims,
        _ => ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .map_err(|e| corrupt(&e))?,
    };
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max: MAX_DIMENSION,
        });
    }
    if format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        // The JPEG decoder fills a cut-off scan with grey; PIL refuses ("image file is
        // truncated"), and so do we.
        return Err(corrupt(&"JPEG data ends before the end-of-image marker"));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    // 16384^2 RGBA16 = 2 GiB; enough for any accepted image, refuses worse.
    limits.max_alloc = Some(2 * 1024 * 1024 * 1024);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Unsupported(u) => ImageError::Unsupported {
            path: path.to_path_buf(),
            detail: u.to_string(),
        },
        other => corrupt(&other),
    })?;
    Ok(to_rgb8(decoded, alpha))
}

fn detect_format(bytes: &[u8], path: &Path) -> Result<ImageFormat> {
    let unsupported = |detail: String| ImageError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.is_empty() {
        return Err(ImageError::Corrupt {
            path: path.to_path_buf(),
            detail: "file is empty".into(),
        });
    }
    // The content decides, never the extension (a GIF renamed .png is still a GIF).
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP)) => Ok(f),
        Ok(other) => Err(unsupported(format!("{other:?} data"))),
        Err(_) => {
            // Truncated signatures of supported formats are corrupt files, not unknown ones.
            // (WebP: "RIFF", a 4-byte length, "WEBP"; 12 bytes needed to tell.)
            const SIGNATURES: [&[u8]; 3] = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF"];
            let webp_prefix = bytes.len() < 12 && bytes.starts_with(b"RIFF");
            if webp_prefix
                || SIGNATURES
                    .iter()
                    .any(|s| bytes.len() < s.len() && s.starts_with(bytes))
            {
                Err(ImageError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("truncated file header ({} bytes)", bytes.len()),
                })
            } else {
                Err(unsupported("not a PNG, JPEG or WebP file".into()))
            }
        }
    }
}

/// Whether an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Entropy-
/// coded data never holds FF D9 (0xFF bytes are stuffed), and an embedded EXIF thumbnail
/// (with its own EOI) comes before the main scan.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_sos, last_eoi), (Some(s), Some(e)) if e > s)
}

/// (width, height) from a PNG's IHDR chunk, which must come first.
fn png_ihdr_dims(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

/// PIL's `alpha_composite` of `src` (straight alpha `a`) over opaque white, one channel.
/// (Pillow AlphaComposite.c with PRECISION_BITS = 7 and an opaque destination.)
fn composite_on_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    const PRECISION_BITS: u32 = 7;
    let (c, a) = (c as u32, a as u32);
    let coef1 = a << PRECISION_BITS; // a*255*255*2^7 / (255*255)
    let coef2 = (255 << PRECISION_BITS) - coef1;
    let tmp = c * coef1 + 255 * coef2 + (0x80 << PRECISION_BITS);
    let div255 = ((tmp >> 8) + tmp) >> 8;
    (div255 >> PRECISION_BITS) as u8
}

fn to_rgb8(img: DynamicImage, alpha: AlphaMode) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = Vec::with_capacity(w * h * 3);
    let mut push_rgba = |r: u8, g: u8, b: u8, a: u8| match alpha {
        AlphaMode::Drop => out.extend_from_slice(&[r, g, b]),
        AlphaMode::CompositeWhite => out.extend_from_slice(&[
            composite_on_white(r, a),
            composite_on_white(g, a),
            composite_on_white(b, a),
        ]),
    };
    let hi = |v: u16| (v >> 8) as u8;
    match img {
        DynamicImage::ImageRgb8(b) => {
            return RgbImage {
                width: w,
                height: h,
                data: b.into_raw(),
            }
        }
        DynamicImage::ImageRgba8(b) => b.pixels().for_each(|p| push_rgba(p[0], p[1], p[2], p[3])),
        DynamicImage::ImageLuma8(b) => b.pixels().for_each(|p| push_rgba(p[0], p[0], p[0], 255)),
        DynamicImage::ImageLumaA8(b) => b.pixels().for_each(|p| push_rgba(p[0], p[0], p[0], p[1])),
        DynamicImage::ImageRgb16(b) => b
            .pixels()
            .for_each(|p| push_rgba(hi(p[0]), hi(p[1]), hi(p[2]), 255)),
        DynamicImage::ImageRgba16(b) => b
            .pixels()
            .for_each(|p| push_rgba(hi(p[0]), hi(p[1]), hi(p[2]), hi(p[3]))),
        DynamicImage::ImageLuma16(b) => b.pixels().for_each(|p| {
            let v = p[0].min(255) as u8;
            push_rgba(v, v, v, 255)
        }),
        DynamicImage::ImageLumaA16(b) => b
            .pixels()
            .for_each(|p| push_rgba(hi(p[0]), hi(p[0]), hi(p[0]), hi(p[1]))),
        other => {
            let rgba = other.to_rgba8();
            rgba.pixels()
                .for_each(|p| push_rgba(p[0], p[1], p[2], p[3]));
        }
    }
    RgbImage {
        width: w,
        height: h,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_matches_closed_form() {
        // Opaque and transparent ends, and PIL's rounding in between (checked against Pillow).
        assert_eq!(composite_on_white(10, 255), 10);
        assert_eq!(composite_on_white(10, 0), 255);
        for a in 0..=255u32 {
            for c in [0u32, 17, 128, 254, 255] {
                let exact = (c * a + 255 * (255 - a)) as f64 / 255.0;
                let got = composite_on_white(c as u8, a as u8) as f64;
                assert!(
                    (got - exact).abs() <= 1.0,
                    "c={c} a={a} got={got} exact={exact}"
                );
            }
        }
    }
}
