//! `Tensor`: shared CPU storage plus a layout and a dtype. Views (reshape, permute, narrow)
//! share the storage and cost nothing.

use std::sync::Arc;

use half::{bf16, f16};

use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::layout::{Layout, Shape};
use crate::storage::{AlignedBuffer, CpuStorage};

#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Arc<CpuStorage>,
    layout: Layout,
    dtype: DType,
}

impl Tensor {
    /// Wraps storage; checks that the layout stays inside it.
    pub fn from_storage(storage: Arc<CpuStorage>, layout: Layout, dtype: DType) -> Result<Self> {
        let needed = layout.extent() * dtype.size_in_bytes();
        if needed > storage.len() {
            return Err(Error::DataSize {
                bytes: storage.len(),
                dtype,
                shape: layout.shape.clone(),
                needed,
            });
        }
        Ok(Tensor {
            storage,
            layout,
            dtype,
        })
    }

    /// An owned, zero-filled contiguous tensor.
    pub fn zeros(dtype: DType, shape: impl Into<Shape>) -> Self {
        let layout = Layout::contiguous(shape);
        let bytes = layout.shape.numel() * dtype.size_in_bytes();
        let storage = Arc::new(CpuStorage::Owned(AlignedBuffer::zeroed(bytes)));
        Tensor {
            storage,
            layout,
            dtype,
        }
    }

    /// Copies `data` into a new owned contiguous tensor.
    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>) -> Result<Self> {
        let layout = Layout::contiguous(shape);
        if layout.shape.numel() != data.len() {
            return Err(Error::DataSize {
                bytes: std::mem::size_of_val(data),
                dtype: T::DTYPE,
                shape: layout.shape.clone(),
                needed: layout.shape.numel() * T::DTYPE.size_in_bytes(),
            });
        }
        let buf = AlignedBuffer::from_bytes(bytemuck::cast_slice(data));
        Ok(Tensor {
            storage: Arc::new(CpuStorage::Owned(buf)),
            layout,
            dtype: T::DTYPE,
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn shape(&self) -> &Shape {
        &self.layout.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.layout.shape.dims()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn storage(&self) -> &Arc<CpuStorage> {
        &self.storage
    }
    pub fn numel(&self) -> usize {
        self.layout.shape.numel()
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// True when the bytes are read in place from a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.storage.is_mapped()
    }

    /// Address of the first element: lets tests prove a weight was not copied.
    pub fn data_ptr(&self) -> *const u8 {
        self.storage.as_bytes()[self.layout.offset * self.dtype.size_in_bytes()..].as_ptr()
    }

    /// Bytes of a contiguous view.
    pub fn contiguous_bytes(&self) -> Result<&[u8]> {
        if !self.is_contiguous() {
            return Err(Error::InvalidShape(format!(
                "tensor {} is not contiguous",
                self.shape()
            )));
        }
        let size = self.dtype.size_in_bytes();
        let start = self.layout.offset * size;
        Ok(&self.storage.as_bytes()[start..start + self.numel() * size])
    }

    /// Elements of a contiguous view, read in place. Fails on a dtype mismatch, a strided
    /// view, or storage not aligned for `T` (possible for mapped files with odd offsets).
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        if self.dtype != T::DTYPE {
            return Err(Error::DTypeMismatch {
                name: String::new(),
                expected: T::DTYPE,
                found: self.dtype,
            });
        }
        bytemuck::try_cast_slice(self.contiguous_bytes()?).map_err(|e| {
            Error::InvalidShape(format!(
                "tensor {} cannot be read as {}: {e}",
                self.shape(),
                T::DTYPE
            ))
        })
    }

    /// A contiguous owned copy (or `self` when it already is contiguous).
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        let size = self.dtype.size_in_bytes();
        let src = self.storage.as_bytes();
        let mut out = AlignedBuffer::zeroed(self.numel() * size);
        let dst = out.as_mut_slice();
        for (i, idx) in self.layout.indices().enumerate() {
            dst[i * size..(i + 1) * size].copy_from_slice(&src[idx * size..(idx + 1) * size]);
        }
        Tensor {
            storage: Arc::new(CpuStorage::Owned(out)),
            layout: Layout::contiguous(self.shape().clone()),
            dtype: self.dtype,
        }
    }

    /// All elements converted to f32, row-major (any float or integer dtype).
    pub fn to_vec_f32(&self) -> Vec<f32> {
        let t = self.contiguous();
        let bytes = t.contiguous_bytes().expect("contiguous by construction");
        match self.dtype {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::I32 => bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            DType::I64 => bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            DType::U8 => bytes.iter().map(|&b| b as f32).collect(),
        }
    }

    /// All elements as i64 (integer dtypes only).
    pub fn to_vec_i64(&self) -> Result<Vec<i64>> {
        let t = self.contiguous();
        let bytes = t.contiguous_bytes()?;
        match self.dtype {
            DType::I32 => Ok(bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect()),
            DType::I64 => Ok(bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect()),
            DType::U8 => Ok(bytes.iter().map(|&b| b as i64).collect()),
            other => Err(Error::DTypeMismatch {
                name: String::new(),
                expected: DType::I64,
                found: other,
            }),
        }
    }

    /// Converts to another float dtype (owned copy; same tensor when already `dtype`).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype {
            return Ok(self.clone());
        }
        let values = self.to_vec_f32();
        let shape = self.shape().clone();
        match dtype {
            DType::F32 => Tensor::from_slice(&values, shape),
            DType::F16 => Tensor::from_slice(
                &values.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(),
                shape,
            ),
            DType::BF16 => Tensor::from_slice(
                &values
                    .iter()
                    .map(|&v| bf16::from_f32(v))
                    .collect::<Vec<_>>(),
                shape,
            ),
            other => Err(Error::Unsupported {
                backend: "tensor",
                what: format!("conversion to {other}"),
            }),
        }
    }

    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        let layout = self.layout.reshape(shape.clone()).ok_or_else(|| {
            Error::InvalidShape(format!("cannot reshape {} into {shape}", self.shape()))
        })?;
        Ok(Tensor {
            layout,
            ..self.clone()
        })
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let layout = self.layout.permute(perm).ok_or_else(|| {
            Error::InvalidShape(format!(
                "{perm:?} is not a permutation of the dims of {}",
                self.shape()
            ))
        })?;
        Ok(Tensor {
            layout,
            ..self.clone()
        })
    }

    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        let layout = self
            .layout
            .narrow(axis, start, start + len)
            .ok_or_else(|| {
                Error::InvalidShape(format!(
                    "narrow({axis}, {start}, {len}) out of range for {}",
                    self.shape()
                ))
            })?;
        Ok(Tensor {
            layout,
            ..self.clone()
        })
    }
}
