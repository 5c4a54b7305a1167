//! `PreprocessorConfig`: `preprocessor_config.json` with transformers' field names.
//!
//! Every field is optional in the file; a missing field takes the default of the image
//! processor class named by `image_processor_type` (see [`PreprocessorConfig::resolved`]).
//! Sizes accept the forms transformers accepts: `{"shortest_edge"}`, `{"height","width"}`,
//! `{"longest_edge"}` (and combinations), or a bare integer.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{ImageError, Result};
use super::resample::Filter;

// OpenAI's constants as written in transformers (rounded to f32 on use).
#[allow(clippy::excessive_precision)]
pub const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
pub const IMAGENET_STANDARD_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
pub const IMAGENET_STANDARD_STD: [f32; 3] = [0.5, 0.5, 0.5];

/// transformers' `SizeDict` (only the keys the supported processors read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeDict {
    pub height: Option<usize>,
    pub width: Option<usize>,
    pub shortest_edge: Option<usize>,
    pub longest_edge: Option<usize>,
}

impl SizeDict {
    pub fn shortest_edge(n: usize) -> Self {
        SizeDict {
            shortest_edge: Some(n),
            ..Default::default()
        }
    }
    pub fn longest_edge(n: usize) -> Self {
        SizeDict {
            longest_edge: Some(n),
            ..Default::default()
        }
    }
    pub fn square(n: usize) -> Self {
        Self::hw(n, n)
    }
    pub fn hw(height: usize, width: usize) -> Self {
        SizeDict {
            height: Some(height),
            width: Some(width),
            ..Default::default()
        }
    }
}

/// The raw `preprocessor_config.json`: `None` = not in the file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreprocessorConfig {
    /// Where it was read from (for error messages); empty when built in code.
    pub path: PathBuf,
    pub image_processor_type: Option<String>,
    pub do_resize: Option<bool>,
    pub size: Option<SizeDict>,
    /// PIL filter id: 1 LANCZOS, 2 BILINEAR, 3 BICUBIC.
    pub resample: Option<i64>,
    pub do_center_crop: Option<bool>,
    pub crop_size: Option<SizeDict>,
    pub do_rescale: Option<bool>,
    pub rescale_factor: Option<f64>,
    pub do_normalize: Option<bool>,
    pub image_mean: Option<[f32; 3]>,
    pub image_std: Option<[f32; 3]>,
    pub do_convert_rgb: Option<bool>,
    pub do_image_splitting: Option<bool>,
    pub max_image_size: Option<SizeDict>,
    pub do_pad: Option<bool>,
}

/// The processor families `preprocess` dispatches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessorKind {
    Clip,
    Siglip,
    Idefics3,
}

impl ProcessorKind {
    /// `XImageProcessor` and `XImageProcessorFast` name the same processor.
    pub fn from_type_name(name: &str) -> Result<Self> {
        match name.strip_suffix("Fast").unwrap_or(name) {
            "CLIPImageProcessor" => Ok(ProcessorKind::Clip),
            "SiglipImageProcessor" => Ok(ProcessorKind::Siglip),
            "Idefics3ImageProcessor" => Ok(ProcessorKind::Idefics3),
            _ => Err(ImageError::UnknownProcessor { name: name.into() }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ProcessorKind::Clip => "CLIPImageProcessor",
            ProcessorKind::Siglip => "SiglipImageProcessor",
            ProcessorKind::Idefics3 => "Idefics3ImageProcessor",
        }
    }
}

/// Every setting decided: file values over the class defaults of the processor.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub kind: ProcessorKind,
    pub do_resize: bool,
    pub size: SizeDict,
    pub resample: Filter,
    pub do_center_crop: bool,
    pub crop_size: SizeDict,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub do_convert_rgb: bool,
    pub do_image_splitting: bool,
    pub max_image_size: SizeDict,
    pub do_pad: bool,
}

impl PreprocessorConfig {
    /// Reads `preprocessor_config.json` (a file, or a model folder holding one).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let mut path = path.as_ref().to_path_buf();
        if path.is_dir() {
            path = path.join("preprocessor_config.json");
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ImageError::Config {
            path: path.clone(),
            detail: format!("cannot read: {e}"),
        })?;
        Self::from_json_str(&text, &path)
    }

    /// Parses the JSON text; `path` names the source in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| ImageError::Config {
            path: path.to_path_buf(),
            detail: format!("invalid JSON: {e}"),
        })?;
        let Value::Object(obj) = value else {
            return Err(ImageError::Config {
                path: path.to_path_buf(),
                detail: "top level is not a JSON object".into(),
            });
        };
        let p = FieldParser { obj: &obj, path };
        Ok(PreprocessorConfig {
            path: path.to_path_buf(),
            image_processor_type: p.get("image_processor_type")?,
            do_resize: p.get("do_resize")?,
            size: p.size("size", false)?,
            resample: p.get("resample")?,
            do_center_crop: p.get("do_center_crop")?,
            crop_size: p.size("crop_size", true)?,
            do_rescale: p.get("do_rescale")?,
            rescale_factor: p.positive("rescale_factor")?,
            do_normalize: p.get("do_normalize")?,
            image_mean: p.triple("image_mean", false)?,
            image_std: p.triple("image_std", true)?,
            do_convert_rgb: p.get("do_convert_rgb")?,
            do_image_splitting: p.get("do_image_splitting")?,
            max_image_size: p.size("max_image_size", false)?,
            do_pad: p.get("do_pad")?,
        })
    }

    fn field_err(&self, field: &'static str, detail: impl Into<String>) -> ImageError {
        ImageError::ConfigField {
            path: self.path.clone(),
            field,
            detail: detail.into(),
        }
    }

    /// Fills every unset field with the defaults of the processor class (transformers 5).
    pub fn resolved(&self) -> Result<Resolved> {
        let type_name = self
            .image_processor_type
            .as_deref()
            .ok_or_else(|| self.field_err("image_processor_type", "missing"))?;
        let kind = ProcessorKind::from_type_name(type_name)?;
        // Class attributes of CLIPImageProcessor / SiglipImageProcessor / Idefics3ImageProcessor.
        let (size, resample, crop, center_crop, mean, std) = match kind {
            ProcessorKind::Clip => (
                SizeDict::shortest_edge(224),
                3,
                SizeDict::square(224),
                true,
                OPENAI_CLIP_MEAN,
                OPENAI_CLIP_STD,
            ),
            ProcessorKind::Siglip => (
                SizeDict::square(224),
                3,
                SizeDict::default(),
                false,
                IMAGENET_STANDARD_MEAN,
                IMAGENET_STANDARD_STD,
            ),
            ProcessorKind::Idefics3 => (
                SizeDict::longest_edge(4 * 364),
                1,
                SizeDict::default(),
                false,
                IMAGENET_STANDARD_MEAN,
                IMAGENET_STANDARD_STD,
            ),
        };
        let resample_id = self.resample.unwrap_or(resample);
        let resample = Filter::from_pil(resample_id).ok_or_else(|| {
            self.field_err(
                "resample",
                format!(
                    "PIL filter {resample_id} not supported (1 LANCZOS, 2 BILINEAR, 3 BICUBIC)"
                ),
            )
        })?;
        let is_idefics = kind == ProcessorKind::Idefics3;
        let r = Resolved {
            kind,
            do_resize: self.do_resize.unwrap_or(true),
            size: self.size.unwrap_or(size),
            resample,
            do_center_crop: self.do_center_crop.unwrap_or(center_crop),
            crop_size: self.crop_size.unwrap_or(crop),
            do_rescale: self.do_rescale.unwrap_or(true),
            rescale_factor: self.rescale_factor.unwrap_or(1.0 / 255.0),
            do_normalize: self.do_normalize.unwrap_or(true),
            image_mean: self.image_mean.unwrap_or(mean),
            image_std: self.image_std.unwrap_or(std),
            do_convert_rgb: self.do_convert_rgb.unwrap_or(true),
            do_image_splitting: self.do_image_splitting.unwrap_or(is_idefics),
            max_image_size: self.max_image_size.unwrap_or(SizeDict::longest_edge(364)),
            do_pad: self.do_pad.unwrap_or(is_idefics),
        };
        if r.do_center_crop && (r.crop_size.height.is_none() || r.crop_size.width.is_none()) {
            return Err(self.field_err("crop_size", "needs `height` and `width` for center crop"));
        }
        if is_idefics && r.max_image_size.longest_edge.is_none() {
            return Err(self.field_err("max_image_size", "needs `longest_edge`"));
        }
        Ok(r)
    }
}

struct FieldParser<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

impl FieldParser<'_> {
    fn err(&self, field: &'static str, detail: impl Into<String>) -> ImageError {
        ImageError::ConfigField {
            path: self.path.to_path_buf(),
            field,
            detail: detail.into(),
        }
    }

    fn get<T: DeserializeOwned>(&self, field: &'static str) -> Result<Option<T>> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| self.err(field, format!("{e} (got {v})"))),
        }
    }

    fn positive(&self, field: &'static str) -> Result<Option<f64>> {
        let v: Option<f64> = self.get(field)?;
        match v {
            Some(x) if !(x.is_finite() && x > 0.0) => {
                Err(self.err(field, format!("must be a positive number, got {x}")))
            }
            _ => Ok(v),
        }
    }

    /// A float or a list of 1 or 3 floats; `nonzero` for divisors.
    fn triple(&self, field: &'static str, nonzero: bool) -> Result<Option<[f32; 3]>> {
        let Some(v) = self.obj.get(field).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let values: Vec<f64> = match v {
            Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN)],
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_f64()
                        .ok_or_else(|| self.err(field, format!("not a number: {x}")))
                })
                .collect::<Result<_>>()?,
            other => {
                return Err(self.err(field, format!("expected a number or a list, got {other}")))
            }
        };
        let t = match values.as_slice() {
            [x] => [*x as f32; 3],
            [a, b, c] => [*a as f32, *b as f32, *c as f32],
            _ => {
                return Err(self.err(
                    field,
                    format!("expected 1 or 3 values (RGB), got {}", values.len()),
                ))
            }
        };
        if t.iter().any(|x| !x.is_finite() || (nonzero && *x == 0.0)) {
            return Err(self.err(field, format!("invalid values {t:?}")));
        }
        Ok(Some(t))
    }

    /// A size dict or a bare int (`square` picks {"height","width"} over {"shortest_edge"}
    /// for a bare int, as transformers' `get_size_dict` does for crop sizes).
    fn size(&self, field: &'static str, square: bool) -> Result<Option<SizeDict>> {
        let Some(v) = self.obj.get(field).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let dim = |key: &str, x: &Value| -> Result<usize> {
            match x.as_u64() {
                Some(n) if n > 0 && n <= 1 << 20 => Ok(n as usize),
                _ => Err(self.err(
                    field,
                    format!("`{key}` must be a positive integer, got {x}"),
                )),
            }
        };
        let s = match v {
            Value::Number(_) => {
                let n = dim(field, v)?;
                if square {
                    SizeDict::square(n)
                } else {
                    SizeDict::shortest_edge(n)
                }
            }
            Value::Object(m) => {
                let mut s = SizeDict::default();
                for (k, x) in m {
                    let slot = match k.as_str() {
                        "height" => &mut s.height,
                        "width" => &mut s.width,
                        "shortest_edge" => &mut s.shortest_edge,
                        "longest_edge" => &mut s.longest_edge,
                        other => {
                            return Err(self.err(field, format!("unsupported key `{other}`")));
                        }
                    };
                    if !x.is_null() {
                        *slot = Some(dim(k, x)?);
                    }
                }
                if s == SizeDict::default() {
                    return Err(self.err(field, "empty size"));
                }
                if s.height.is_some() != s.width.is_some() {
                    return Err(self.err(field, "`height` and `width` go together"));
                }
                s
            }
            other => {
                return Err(self.err(field, format!("expected an object or integer, got {other}")))
            }
        };
        Ok(Some(s))
    }
}
