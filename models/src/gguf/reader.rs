//! Reading a GGUF file: header, metadata, tensor infos, and the tensors' bytes in place.
//!
//! Layout (all little-endian): `"GGUF"`, version u32 (2 or 3), tensor count u64, metadata
//! count u64; the metadata entries (key string, value type u32, value); the tensor infos
//! (name string, n_dims u32, n_dims x u64 dims in ggml order (innermost first), type u32,
//! offset u64 relative to the data section); then, at the next multiple of
//! `general.alignment` (default 32), the data section. A string is a u64 length and UTF-8
//! bytes; an array is an element type u32, a count u64 and the elements (arrays may nest).
//!
//! Every read is checked against the end of the buffer, and every count or length is compared
//! with what the rest of the file could hold before anything is allocated for it, so no input
//! makes the reader panic or allocate more than a small multiple of the file size.
//!
//! This file holds [`GgufFile`] and its accessors; the parser is in `reader_parser.rs`
//! (layout and checks), `reader_values.rs` (metadata values) and `reader_tensor_info.rs`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::{self, DequantError};
use super::error::GgufError;
use super::reader_parser::Parser;
use super::types::{GgmlType, MetadataArray, MetadataValue};

/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays of arrays deeper than this are refused (the recursion must stay shallow).
pub const MAX_ARRAY_NESTING: usize = 8;
/// ggml tensors have at most this many dimensions.
pub const MAX_DIMS: u32 = 4;

/// Where one tensor lives and how it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the innermost (contiguous) dimension, so the Hugging Face /
    /// PyTorch shape is this reversed (see [`TensorInfo::shape`]).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The shape in PyTorch order (outermost first): `dims` reversed.
    pub fn shape(&self) -> Vec<usize> {
        // Each dim is at most the element count, which was checked to fit in usize.
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

/// A parsed GGUF file; tensor data stays in the (memory-mapped) file until asked for.
pub struct GgufFile {
    path: PathBuf,
    bytes: Bytes,
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |action, error| GgufError::Io {
            file: path.clone(),
            action,
            error,
        };
        let file = File::open(&path).map_err(|e| io("open", e))?;
        let len = file.metadata().map_err(|e| io("stat", e))?.len();
        let bytes = if len == 0 {
            // Mapping an empty file fails on some systems; it is simply too short.
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and private to this value. As with every mmap, a
            // process truncating or rewriting the file while it is mapped would change (or
            // fault) what we read; GGUF files are not modified in place while models load.
            Bytes::Mapped(unsafe { Mmap::map(&file) }.map_err(|e| io("memory-map", e))?)
        };
        Self::parse(path, bytes)
    }

    /// Parses a GGUF image held in memory; `name` stands in for the path in messages. The
    /// same parser as [`GgufFile::open`], for tests and fuzzing.
    pub fn from_bytes(name: &str, data: &[u8]) -> Result<GgufFile, GgufError> {
        Self::parse(PathBuf::from(name), Bytes::Owned(data.to_vec()))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<GgufFile, GgufError> {
        let header = Parser::new(&path, bytes.as_slice()).parse()?;
        Ok(GgufFile {
            path,
            bytes,
            version: header.version,
            metadata: header.metadata,
            key_index: header.key_index,
            tensors: header.tensors,
            tensor_index: header.tensor_index,
            alignment: header.alignment,
            data_start: header.data_start,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or [`DEFAULT_ALIGNMENT`].
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// Size of the whole file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }

    /// All metadata entries, in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The stored bytes of tensor `name` (blocks for a quantized type).
    pub fn tensor_data(&self, name: &str) -> Result<&[u8], GgufError> {
        let info = self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            file: self.path.clone(),
            tensor: name.to_string(),
        })?;
        if info.n_bytes == 0 {
            // An empty tensor may sit at a data section that starts past the end of the file.
            return Ok(&[]);
        }
        // In range: checked against the file length when parsed.
        let start = (self.data_start + info.offset) as usize;
        let end = start + info.n_bytes as usize;
        self.bytes
            .as_slice()
            .get(start..end)
            .ok_or_else(|| GgufError::TensorOutOfRange {
                file: self.path.clone(),
                tensor: name.to_string(),
                offset: info.offset,
                len: info.n_bytes,
                data_len: self.file_len().saturating_sub(self.data_start),
            })
    }

    /// Tensor `name` as f32 values, row-major in [`TensorInfo::shape`] order; bit-exact
    /// with the `gguf` Python package (see [`super::dequant`]).
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let mut out = Vec::new();
        self.dequantize_into_vec(name, &mut out)?;
        Ok(out)
    }

    /// [`GgufFile::dequantize`] into `out` (resized), so a caller converting many tensors
    /// can reuse one buffer.
    pub fn dequantize_into_vec(&self, name: &str, out: &mut Vec<f32>) -> Result<(), GgufError> {
        let data = self.tensor_data(name)?;
        // tensor_data found it.
        let info = &self.tensors[self.tensor_index[name]];
        let fail = |error: DequantError| GgufError::Dequant {
            file: self.path.clone(),
            tensor: name.to_string(),
            error,
        };
        if !dequant::is_supported(info.ggml_type) {
            return Err(fail(DequantError::Unsupported {
                ggml_type: info.ggml_type,
            }));
        }
        out.clear();
        out.resize(info.n_elements as usize, 0.0);
        dequant::dequantize_into(info.ggml_type, data, out).map_err(fail)
    }

    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value of `key`, or [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.get(key).ok_or_else(|| self.missing(key))
    }

    /// [`GgufError::MissingKey`] for `key` in this file.
    pub fn missing(&self, key: &str) -> GgufError {
        GgufError::MissingKey {
            file: self.path.clone(),
            key: key.to_string(),
        }
    }

    fn wrong(&self, key: &str, expected: &'static str, found: &MetadataValue) -> GgufError {
        GgufError::WrongValueType {
            file: self.path.clone(),
            key: key.to_string(),
            expected,
            found: format!("{} {}", found.value_type().name(), found.brief()),
        }
    }

    /// An unsigned integer of any integer type; `None` when absent.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.as_i128().map(u64::try_from) {
            Some(Ok(v)) => Ok(Some(v)),
            _ => Err(self.wrong(key, "a non-negative integer", value)),
        }
    }

    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.require(key)?;
        self.get_u64(key).map(|v| v.unwrap_or_default())
    }

    /// A number (f32, f64, or any integer type) as f64; `None` when absent.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match (value.as_f64(), value.as_i128()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(v)) => Ok(Some(v as f64)),
            _ => Err(self.wrong(key, "a number", value)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .as_str()
            .map(Some)
            .ok_or_else(|| self.wrong(key, "a string", value))
    }

    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        self.require(key)?;
        self.get_str(key).map(|v| v.unwrap_or_default())
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .as_bool()
            .map(Some)
            .ok_or_else(|| self.wrong(key, "a bool", value))
    }

    pub fn get_string_array(&self, key: &str) -> Result<Option<&[String]>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .as_array()
            .and_then(MetadataArray::as_strings)
            .map(Some)
            .ok_or_else(|| self.wrong(key, "an array of strings", value))
    }

    /// An array of any integer type, widened; `None` when absent.
    pub fn get_int_array(&self, key: &str) -> Result<Option<Vec<i128>>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .as_array()
            .and_then(MetadataArray::to_i128_vec)
            .map(Some)
            .ok_or_else(|| self.wrong(key, "an array of integers", value))
    }
}
