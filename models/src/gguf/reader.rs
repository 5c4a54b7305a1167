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

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::{self, DequantError};
use super::error::GgufError;
use super::types::{GgmlType, MetadataArray, MetadataValue, ValueType};

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

/// What the parser hands back.
struct Header {
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
}

/// A checked cursor over the file.
struct Parser<'a> {
    file: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

/// The smallest tensor info: empty name (8), n_dims (4), one dim (8), type (4), offset (8).
const MIN_TENSOR_INFO: u64 = 32;
/// The smallest metadata entry: empty key (8), value type (4), a one-byte value.
const MIN_METADATA_ENTRY: u64 = 13;

impl<'a> Parser<'a> {
    fn new(file: &'a Path, bytes: &'a [u8]) -> Parser<'a> {
        Parser {
            file,
            bytes,
            pos: 0,
        }
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        match usize::try_from(n)
            .ok()
            .and_then(|n| self.bytes.get(self.pos..self.pos.checked_add(n)?))
        {
            Some(slice) => {
                self.pos += slice.len();
                Ok(slice)
            }
            None => Err(GgufError::Truncated {
                file: self.file.to_path_buf(),
                what: what(),
                offset: self.pos as u64,
                needed: n,
                file_len: self.bytes.len() as u64,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let slice = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Refuses `count` items of at least `min_size` bytes each when the rest of the file
    /// cannot hold them.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &dyn Fn() -> String,
    ) -> Result<usize, GgufError> {
        let fits = count
            .checked_mul(min_size)
            .is_some_and(|bytes| bytes <= self.remaining());
        match usize::try_from(count) {
            Ok(count) if fits => Ok(count),
            _ => Err(GgufError::CountTooLarge {
                file: self.file.to_path_buf(),
                what: what(),
                count,
                remaining: self.remaining(),
            }),
        }
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        self.check_count(len, 1, &|| format!("length of {}", what()))?;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(error) => Err(GgufError::InvalidUtf8 {
                file: self.file.to_path_buf(),
                what: what(),
                error,
            }),
        }
    }

    fn parse(mut self) -> Result<Header, GgufError> {
        let magic = self.take(4, &|| "magic".to_string()).map_err(|_| {
            // Shorter than the magic: report what is there.
            GgufError::BadMagic {
                file: self.file.to_path_buf(),
                found: self.bytes.to_vec(),
            }
        })?;
        if magic != b"GGUF" {
            return Err(GgufError::BadMagic {
                file: self.file.to_path_buf(),
                found: magic.to_vec(),
            });
        }
        let version = self.u32(&|| "version".to_string())?;
        if version != 2 && version != 3 {
            let hint = if matches!(version.swap_bytes(), 1..=3) {
                " (the file looks big-endian; only little-endian GGUF is supported)"
            } else {
                ""
            };
            return Err(GgufError::UnsupportedVersion {
                file: self.file.to_path_buf(),
                version,
                hint,
            });
        }
        let tensor_count = self.u64(&|| "tensor count".to_string())?;
        let kv_count = self.u64(&|| "metadata count".to_string())?;

        let kv_count = self.check_count(kv_count, MIN_METADATA_ENTRY, &|| {
            "metadata entry count".to_string()
        })?;
        let mut metadata = Vec::with_capacity(kv_count);
        let mut key_index = HashMap::with_capacity(kv_count);
        for i in 0..kv_count {
            let key = self.string(&|| format!("key of metadata entry {i}"))?;
            if key_index.contains_key(&key) {
                return Err(GgufError::DuplicateKey {
                    file: self.file.to_path_buf(),
                    key,
                });
            }
            let type_id = self.u32(&|| format!("value type of `{key}`"))?;
            let value = self.value(type_id, &key, 0)?;
            key_index.insert(key.clone(), metadata.len());
            metadata.push((key, value));
        }

        let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(MetadataValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(MetadataValue::U32(a)) => {
                return Err(GgufError::BadAlignment {
                    file: self.file.to_path_buf(),
                    problem: format!("{a} is not a power of two"),
                })
            }
            Some(other) => {
                return Err(GgufError::BadAlignment {
                    file: self.file.to_path_buf(),
                    problem: format!("is {}, expected u32", other.value_type().name()),
                })
            }
        };

        let tensor_count = self.check_count(tensor_count, MIN_TENSOR_INFO, &|| {
            "tensor count".to_string()
        })?;
        let mut tensors = Vec::with_capacity(tensor_count);
        let mut tensor_index = HashMap::with_capacity(tensor_count);
        for i in 0..tensor_count {
            let info = self.tensor_info(i)?;
            if tensor_index.contains_key(&info.name) {
                return Err(GgufError::DuplicateTensor {
                    file: self.file.to_path_buf(),
                    tensor: info.name,
                });
            }
            tensor_index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }

        // The data section starts at the next multiple of the alignment (it may be past the
        // end of a file whose tensors are all empty).
        let data_start = (self.pos as u64).div_ceil(alignment) * alignment;
        let data_len = (self.bytes.len() as u64).saturating_sub(data_start);
        for t in &tensors {
            if !t.offset.is_multiple_of(alignment) {
                return Err(GgufError::MisalignedTensor {
                    file: self.file.to_path_buf(),
                    tensor: t.name.clone(),
                    offset: t.offset,
                    alignment,
                });
            }
            if t.offset
                .checked_add(t.n_bytes)
                .is_none_or(|end| end > data_len)
            {
                return Err(GgufError::TensorOutOfRange {
                    file: self.file.to_path_buf(),
                    tensor: t.name.clone(),
                    offset: t.offset,
                    len: t.n_bytes,
                    data_len,
                });
            }
        }
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            if pair[0].offset + pair[0].n_bytes > pair[1].offset {
                return Err(GgufError::OverlappingTensors {
                    file: self.file.to_path_buf(),
                    first: pair[0].name.clone(),
                    second: pair[1].name.clone(),
                });
            }
        }

        Ok(Header {
            version,
            metadata,
            key_index,
            tensors,
            tensor_index,
            alignment,
            data_start,
        })
    }

    fn value(&mut self, type_id: u32, key: &str, depth: usize) -> Result<MetadataValue, GgufError> {
        let what = || format!("value of `{key}`");
        let value_type =
            ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value_type: type_id,
            })?;
        Ok(match value_type {
            ValueType::U8 => MetadataValue::U8(u8::from_le_bytes(self.array(&what)?)),
            ValueType::I8 => MetadataValue::I8(i8::from_le_bytes(self.array(&what)?)),
            ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(self.array(&what)?)),
            ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(self.array(&what)?)),
            ValueType::U32 => MetadataValue::U32(u32::from_le_bytes(self.array(&what)?)),
            ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(self.array(&what)?)),
            ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(self.array(&what)?)),
            ValueType::U64 => MetadataValue::U64(u64::from_le_bytes(self.array(&what)?)),
            ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(self.array(&what)?)),
            ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(self.array(&what)?)),
            ValueType::Bool => {
                let [b] = self.array(&what)?;
                MetadataValue::Bool(self.bool(b, key)?)
            }
            ValueType::String => MetadataValue::String(self.string(&what)?),
            ValueType::Array => MetadataValue::Array(self.array_value(key, depth)?),
        })
    }

    fn bool(&self, byte: u8, key: &str) -> Result<bool, GgufError> {
        match byte {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value,
            }),
        }
    }

    /// An array's element type, count and elements; `depth` counts the enclosing arrays.
    fn array_value(&mut self, key: &str, depth: usize) -> Result<MetadataArray, GgufError> {
        if depth >= MAX_ARRAY_NESTING {
            return Err(GgufError::NestingTooDeep {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                limit: MAX_ARRAY_NESTING,
            });
        }
        let type_id = self.u32(&|| format!("array element type of `{key}`"))?;
        let element_type =
            ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value_type: type_id,
            })?;
        let count = self.u64(&|| format!("array length of `{key}`"))?;
        let n = self.check_count(count, element_type.min_size(), &|| {
            format!("array length of `{key}`")
        })?;
        let what = || format!("elements of `{key}`");

        /// Fixed-size elements: one checked read of the whole run, then decode.
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                let bytes = self.take((n * SIZE) as u64, &what)?;
                MetadataArray::$variant(
                    bytes
                        .chunks_exact(SIZE)
                        .map(|c| {
                            let mut raw = [0u8; SIZE];
                            raw.copy_from_slice(c);
                            <$t>::from_le_bytes(raw)
                        })
                        .collect(),
                )
            }};
        }
        Ok(match element_type {
            ValueType::U8 => MetadataArray::U8(self.take(n as u64, &what)?.to_vec()),
            ValueType::I8 => fixed!(I8, i8),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => {
                let bytes = self.take(n as u64, &what)?;
                let values = bytes
                    .iter()
                    .map(|&b| self.bool(b, key))
                    .collect::<Result<_, _>>()?;
                MetadataArray::Bool(values)
            }
            ValueType::String => {
                let mut values = Vec::with_capacity(n);
                for j in 0..n {
                    values.push(self.string(&|| format!("element {j} of `{key}`"))?);
                }
                MetadataArray::String(values)
            }
            ValueType::Array => {
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(self.array_value(key, depth + 1)?);
                }
                MetadataArray::Array(values)
            }
        })
    }

    fn tensor_info(&mut self, i: usize) -> Result<TensorInfo, GgufError> {
        let name = self.string(&|| format!("name of tensor info {i}"))?;
        let n_dims = self.u32(&|| format!("dimension count of tensor `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::InvalidDims {
                file: self.file.to_path_buf(),
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(&|| format!("dimensions of tensor `{name}`"))?);
        }
        let type_id = self.u32(&|| format!("type of tensor `{name}`"))?;
        let offset = self.u64(&|| format!("data offset of tensor `{name}`"))?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(GgufError::UnknownTensorType {
                file: self.file.to_path_buf(),
                tensor: name,
                type_id,
            });
        };

        // Like ggml: sizes stay below 2^63. The product of the non-zero dims must not
        // overflow even when a zero dim makes the tensor empty.
        let overflow = || GgufError::ShapeOverflow {
            file: self.file.to_path_buf(),
            tensor: name.clone(),
            dims: dims.clone(),
        };
        let nonzero_product = dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&p| p <= i64::MAX as u64)
            .ok_or_else(overflow)?;
        let n_elements = if dims.contains(&0) {
            0
        } else {
            nonzero_product
        };
        let block = ggml_type.block_elements();
        if !dims[0].is_multiple_of(block) {
            return Err(GgufError::BlockMismatch {
                file: self.file.to_path_buf(),
                tensor: name,
                ggml_type,
                row: dims[0],
                block,
            });
        }
        let n_bytes = (n_elements / block)
            .checked_mul(ggml_type.block_bytes())
            .filter(|&b| b <= i64::MAX as u64)
            .ok_or_else(overflow)?;
        if usize::try_from(n_elements).is_err() {
            return Err(overflow());
        }
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        })
    }
}
