//! Safetensors loading over memmap2: one file ([`SafetensorsFile`]) or a whole Hugging Face
//! checkpoint, single-file or sharded by `model.safetensors.index.json` ([`WeightStore`]).
//!
//! Tensors come back as [`Tensor`]s whose storage is `CpuStorage::Mapped` over the file's
//! shared `Arc<Mmap>`: weights are read in place, never copied.
//!
//! # Validation (at open time; every problem is a typed [`LoadError`], never a panic)
//! The header is parsed by hand (8-byte little-endian length, then JSON) so that each way a
//! file can be malformed has its own variant naming the file and, where there is one, the
//! tensor: a file shorter than 8 bytes, a header length past the end of the file (or above
//! [`MAX_HEADER_LEN`]), a header that is not UTF-8 / not JSON / not an object, an entry that
//! is not an object or lacks `dtype`, `shape` or `data_offsets`, a field of the wrong form,
//! reversed offsets, offsets past the end of the data section, two tensors whose bytes
//! overlap, a byte size that does not match `dtype x shape` (computed with checked arithmetic:
//! a product of the non-zero dims that overflows is an error even when a zero dim makes the
//! tensor empty), a string that is no safetensors dtype, and a tensor name that appears twice
//! in the raw JSON. `__metadata__` must be an object of strings and is kept.
//! Gaps between tensors and trailing bytes after the last one are accepted.
//!
//! # Dtypes
//! Every safetensors dtype ([`FileDType`]: F64, I8, BOOL, F8_E4M3, F4, ...) is accepted at
//! open time and listed by `info`/`tensors`, and its raw bytes are available through `bytes`;
//! `get` returns a tensor only for the dtypes iris holds (F32, F16, BF16, I32, I64, U8) and
//! [`LoadError::UnsupportedDType`] for the rest. A dtype string that is not a safetensors
//! dtype at all is [`LoadError::UnknownDType`] at open time.
//!
//! # Shards
//! [`WeightStore::open`] on a folder takes `model.safetensors`, else
//! `model.safetensors.index.json`. The index must be a JSON object with a `weight_map` object
//! of tensor -> shard file name (a plain name beside the index). Errors: index not JSON
//! ([`LoadError::IndexJson`]), of the wrong form ([`LoadError::InvalidIndex`]), a duplicate
//! tensor, a missing shard ([`LoadError::MissingShard`]), a tensor its shard lacks
//! ([`LoadError::IndexTensorMissing`]), and every error of the shard files themselves.
//!
//! # Alignment
//! The data section starts at `8 + N`; Hugging Face writers pad `N` so tensors are aligned,
//! but a file is not required to be: [`Tensor::as_slice`] reports a misaligned tensor as an
//! error rather than reading it unaligned.

mod dtype;
mod error;
mod file;
mod header;
mod index;
mod json;
mod store;

use std::path::Path;
use std::sync::Arc;

pub use dtype::FileDType;
pub use error::LoadError;
pub use file::SafetensorsFile;
pub use header::MAX_HEADER_LEN;
pub use index::INDEX_FILE;
pub use store::{WeightStore, SINGLE_FILE};

use crate::dtype::DType;
#[cfg(doc)]
use crate::tensor::Tensor;

/// What the header says about one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: FileDType,
    pub shape: Vec<usize>,
    /// `[start, end)` in bytes, relative to the start of the data section (as in the file).
    pub data_offsets: (usize, usize),
    /// The file holding the tensor.
    pub file: Arc<Path>,
}

impl TensorInfo {
    /// Size of the tensor's data in bytes.
    pub fn byte_len(&self) -> usize {
        self.data_offsets.1 - self.data_offsets.0
    }

    /// Number of elements (1 for a scalar, 0 with a zero dim). Cannot overflow: checked on
    /// open.
    pub fn numel(&self) -> usize {
        if self.shape.contains(&0) {
            0
        } else {
            self.shape.iter().product()
        }
    }

    /// The iris dtype, `None` for a safetensors dtype iris tensors do not hold.
    pub fn iris_dtype(&self) -> Option<DType> {
        self.dtype.to_dtype()
    }

    /// Checks the dtype (when given) and the shape; the error names the file and the tensor.
    pub fn expect(&self, dtype: Option<DType>, shape: &[usize]) -> Result<(), LoadError> {
        if let Some(expected) = dtype {
            if self.dtype != FileDType::from(expected) {
                return Err(LoadError::DTypeMismatch {
                    file: self.file.to_path_buf(),
                    tensor: self.name.clone(),
                    expected,
                    found: self.dtype,
                });
            }
        }
        if self.shape != shape {
            return Err(LoadError::ShapeMismatch {
                file: self.file.to_path_buf(),
                tensor: self.name.clone(),
                expected: shape.to_vec(),
                found: self.shape.clone(),
            });
        }
        Ok(())
    }
}
