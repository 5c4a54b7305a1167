//! `ImageError`: everything image loading and preprocessing can fail with. Each variant
//! names the file, the config field or the counts involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {path}: cannot read file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {path}: unsupported image format ({detail}); supported: PNG, JPEG, WebP")]
    Unsupported { path: PathBuf, detail: String },
    #[error("image {path}: corrupt or truncated image data: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("image {path}: zero-sized image ({width}x{height})")]
    ZeroSize {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("image {path}: {width}x{height} exceeds the limit of {max}x{max} pixels")]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max: u32,
    },
    #[error("preprocessor config {path}: {detail}")]
    Config { path: PathBuf, detail: String },
    #[error("preprocessor config {path}: field `{field}`: {detail}")]
    ConfigField {
        path: PathBuf,
        field: &'static str,
        detail: String,
    },
    #[error(
        "unknown image_processor_type {name:?}; supported: CLIPImageProcessor(Fast), \
         SiglipImageProcessor(Fast), Idefics3ImageProcessor(Fast)"
    )]
    UnknownProcessor { name: String },
    #[error("{processor}: {detail}")]
    Preprocess {
        processor: &'static str,
        detail: String,
    },
    #[error(
        "prompt has {markers} `{token}` marker(s) but {images} image(s) were given; \
         each image needs exactly one marker"
    )]
    ImageCountMismatch {
        token: String,
        markers: usize,
        images: usize,
    },
    #[error("building tensor: {0}")]
    Tensor(#[from] iris_runtime::Error),
}

pub type Result<T> = std::result::Result<T, ImageError>;
