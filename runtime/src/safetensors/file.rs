//! `SafetensorsFile`: one memory-mapped safetensors file, validated on open; tensors are
//! handed out as views of the shared map, never copied.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

use super::error::LoadError;
use super::header::{self, Header};
use super::TensorInfo;
use crate::dtype::DType;
use crate::layout::Layout;
use crate::storage::CpuStorage;
use crate::tensor::Tensor;

/// One safetensors file, mapped read-only and validated.
pub struct SafetensorsFile {
    path: Arc<Path>,
    map: Arc<Mmap>,
    data_start: usize,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Maps and validates the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let io = |action, error| LoadError::Io {
            path: path.to_path_buf(),
            action,
            error,
        };
        let file = File::open(&path).map_err(|e| io("open", e))?;
        let meta = file.metadata().map_err(|e| io("read metadata of", e))?;
        if !meta.is_file() {
            let error = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(io("open", error));
        }
        if meta.len() < 8 {
            return Err(LoadError::TooShort {
                file: path.to_path_buf(),
                len: meta.len(),
            });
        }
        // SAFETY: the map is read-only and only ever read through `&[u8]`. Like every mmap
        // loader we rely on the file not being truncated or rewritten while it is mapped
        // (that would be a SIGBUS or changing weights, not memory unsafety in this process's
        // own allocations); checkpoints are not edited while a model runs.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| io("map", e))?;
        Self::from_map(path, map)
    }

    /// Validates `bytes` as a whole safetensors file, copied into an anonymous map so the
    /// tensors are mapped storage exactly as with [`SafetensorsFile::open`]. `name` is used in
    /// messages only. This is the path the fuzzer takes (no file I/O).
    pub fn from_bytes(name: impl AsRef<Path>, bytes: &[u8]) -> Result<Self, LoadError> {
        let path: Arc<Path> = Arc::from(name.as_ref());
        // Validate before copying, so a bad input costs no allocation.
        header::parse(&path, bytes)?;
        let io = |error| LoadError::Io {
            path: path.to_path_buf(),
            action: "map memory for",
            error,
        };
        let mut anon = MmapOptions::new().len(bytes.len()).map_anon().map_err(io)?;
        anon.copy_from_slice(bytes);
        let map = anon.make_read_only().map_err(io)?;
        Self::from_map(path, map)
    }

    fn from_map(path: Arc<Path>, map: Mmap) -> Result<Self, LoadError> {
        let Header {
            data_start,
            tensors,
            metadata,
        } = header::parse(&path, &map)?;
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(SafetensorsFile {
            path,
            map: Arc::new(map),
            data_start,
            tensors,
            by_name,
            metadata,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensors in header order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Tensor names in header order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|t| t.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The `__metadata__` strings (empty when the header has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The shared map of the whole file: tensors from [`get`](Self::get) point into it.
    pub fn mmap(&self) -> &Arc<Mmap> {
        &self.map
    }

    /// Dtype, shape, byte range and file of `name`; any safetensors dtype.
    pub fn info(&self, name: &str) -> Result<&TensorInfo, LoadError> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| LoadError::TensorNotFound {
                file: self.path.to_path_buf(),
                tensor: name.to_string(),
            })
    }

    /// The raw little-endian bytes of `name`, read in place; any safetensors dtype.
    pub fn bytes(&self, name: &str) -> Result<&[u8], LoadError> {
        let info = self.info(name)?;
        let (start, end) = info.data_offsets;
        Ok(&self.map[self.data_start + start..self.data_start + end])
    }

    /// `name` as a contiguous tensor over the mapped bytes (no copy). Fails with
    /// [`LoadError::UnsupportedDType`] for dtypes iris does not hold (F64, I8, BOOL, F8, ...).
    pub fn get(&self, name: &str) -> Result<Tensor, LoadError> {
        let info = self.info(name)?;
        let Some(dtype) = info.dtype.to_dtype() else {
            return Err(LoadError::UnsupportedDType {
                file: self.path.to_path_buf(),
                tensor: info.name.clone(),
                dtype: info.dtype,
            });
        };
        let (start, end) = info.data_offsets;
        let storage = Arc::new(CpuStorage::Mapped {
            map: self.map.clone(),
            start: self.data_start + start,
            len: end - start,
        });
        // Cannot fail: the header check proved `end - start == numel * size`.
        Tensor::from_storage(storage, Layout::contiguous(info.shape.clone()), dtype).map_err(|_| {
            LoadError::SizeMismatch {
                file: self.path.to_path_buf(),
                tensor: info.name.clone(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                expected: info.byte_len() as u64,
                actual: (end - start) as u64,
            }
        })
    }

    /// [`get`](Self::get), then checks the dtype (when given) and the shape; the error names
    /// the tensor and both values.
    pub fn get_expect(
        &self,
        name: &str,
        dtype: Option<DType>,
        shape: &[usize],
    ) -> Result<Tensor, LoadError> {
        self.info(name)?.expect(dtype, shape)?;
        self.get(name)
    }
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("bytes", &self.map.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}
