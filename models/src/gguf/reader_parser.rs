//! The checked cursor over a GGUF image and the parse of its layout: magic, version,
//! counts, the metadata entries and tensor infos in turn, then the alignment, range and
//! overlap checks of the data section. Metadata values are decoded in `reader_values.rs`,
//! tensor infos in `reader_tensor_info.rs`.

use std::collections::HashMap;
use std::path::Path;

use super::error::GgufError;
use super::reader::{TensorInfo, DEFAULT_ALIGNMENT};
use super::types::MetadataValue;

/// What the parser hands back.
pub(super) struct Header {
    pub(super) version: u32,
    pub(super) metadata: Vec<(String, MetadataValue)>,
    pub(super) key_index: HashMap<String, usize>,
    pub(super) tensors: Vec<TensorInfo>,
    pub(super) tensor_index: HashMap<String, usize>,
    pub(super) alignment: u64,
    pub(super) data_start: u64,
}

/// A checked cursor over the file.
pub(super) struct Parser<'a> {
    pub(super) file: &'a Path,
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

/// The smallest tensor info: empty name (8), n_dims (4), one dim (8), type (4), offset (8).
const MIN_TENSOR_INFO: u64 = 32;
/// The smallest metadata entry: empty key (8), value type (4), a one-byte value.
const MIN_METADATA_ENTRY: u64 = 13;

impl<'a> Parser<'a> {
    pub(super) fn new(file: &'a Path, bytes: &'a [u8]) -> Parser<'a> {
        Parser {
            file,
            bytes,
            pos: 0,
        }
    }

    pub(super) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    pub(super) fn take(
        &mut self,
        n: u64,
        what: &dyn Fn() -> String,
    ) -> Result<&'a [u8], GgufError> {
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

    pub(super) fn array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], GgufError> {
        let slice = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(super) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Refuses `count` items of at least `min_size` bytes each when the rest of the file
    /// cannot hold them.
    pub(super) fn check_count(
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

    pub(super) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
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

    pub(super) fn parse(mut self) -> Result<Header, GgufError> {
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
}
