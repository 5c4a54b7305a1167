//! Image input: decoding (load.rs), `preprocessor_config.json` (config.rs), resampling
//! (resample.rs) and the HF image processors (clip.rs, siglip.rs, idefics3.rs), producing
//! `pixel_values` as the vision encoders take them.
//!
//! The processors reproduce the ones transformers 5 loads by default: the torchvision
//! ("fast") variants, whose uint8 resize resample.rs matches bit for bit; see
//! fixtures/images and models/tests/image_parity.rs for the measured agreement.

pub mod clip;
pub mod config;
pub mod error;
pub mod idefics3;
pub mod load;
pub mod ops;
pub mod resample;
pub mod siglip;

use iris_runtime::Tensor;

pub use config::{PreprocessorConfig, ProcessorKind, Resolved, SizeDict};
pub use error::{ImageError, Result};
pub use idefics3::{expand_prompt, PromptTokens};
pub use load::{load_image, load_image_with, AlphaMode, RgbImage, MAX_DIMENSION};
pub use resample::Filter;

/// The output of [`preprocess`].
#[derive(Clone, Debug)]
pub struct Processed {
    /// f32 [N, 3, H, W]; N = number of images (CLIP, SigLIP) or of tiles (Idefics3:
    /// each image's tiles in row-major order, then its global image).
    pub pixel_values: Tensor,
    /// Idefics3: u8 [N, H, W], 1 = real pixel (all ones: tiles are never padded within a
    /// prompt). `None` for CLIP / SigLIP.
    pub pixel_attention_mask: Option<Tensor>,
    /// How many of the N entries belong to each input image (1 each for CLIP / SigLIP).
    pub tiles_per_image: Vec<usize>,
    /// Idefics3: (rows, cols) of the split per image, (0, 0) when not split. Empty otherwise.
    pub rows_cols: Vec<(usize, usize)>,
}

/// Runs the processor named by `config.image_processor_type` on `images`.
pub fn preprocess(config: &PreprocessorConfig, images: &[RgbImage]) -> Result<Processed> {
    let cfg = config.resolved()?;
    if images.is_empty() {
        return Err(ImageError::Preprocess {
            processor: cfg.kind.name(),
            detail: "no images given".into(),
        });
    }
    if let Some((i, img)) = images.iter().enumerate().find(|(_, im)| {
        im.width == 0 || im.height == 0 || im.data.len() != im.width * im.height * 3
    }) {
        return Err(ImageError::Preprocess {
            processor: cfg.kind.name(),
            detail: format!(
                "image {i} is malformed: {}x{} with {} bytes",
                img.width,
                img.height,
                img.data.len()
            ),
        });
    }
    match cfg.kind {
        ProcessorKind::Clip | ProcessorKind::Siglip => {
            let (data, h, w) = if cfg.kind == ProcessorKind::Clip {
                clip::process(images, &cfg)?
            } else {
                siglip::process(images, &cfg)?
            };
            Ok(Processed {
                pixel_values: Tensor::from_slice(&data, vec![images.len(), 3, h, w])?,
                pixel_attention_mask: None,
                tiles_per_image: vec![1; images.len()],
                rows_cols: Vec::new(),
            })
        }
        ProcessorKind::Idefics3 => {
            let t = idefics3::process(images, &cfg)?;
            let n: usize = t.tiles_per_image.iter().sum();
            let mask = vec![1u8; n * t.side * t.side];
            Ok(Processed {
                pixel_values: Tensor::from_slice(&t.data, vec![n, 3, t.side, t.side])?,
                pixel_attention_mask: Some(Tensor::from_slice(&mask, vec![n, t.side, t.side])?),
                tiles_per_image: t.tiles_per_image,
                rows_cols: t.rows_cols,
            })
        }
    }
}
