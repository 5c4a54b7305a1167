//! The copy ops on the CPU: permute, slice and concat as strided copies in the operand's own
//! element type, with the backend's kernel set. Strides live on the stack for every model's
//! ranks, so these allocate nothing.

use iris_kernels::cpu::reference as kernel;
use iris_kernels::cpu::rowops::{self, MAX_RANK};

use super::{dims, view, view_mut, CpuKernels, CpuOperand};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};

/// `input` with its axes reordered by `perm`, into `output`.
///
/// SAFETY (callers): as [`view`].
pub(super) unsafe fn permute(
    kernels: CpuKernels,
    input: &CpuOperand,
    output: &CpuOperand,
    perm: &[usize],
) -> Result<()> {
    let strides = Strides::contiguous(dims(input));
    let src_strides = Strides::permuted(&strides, perm);
    // SAFETY: forwarded contract.
    unsafe {
        let layouts = Layouts {
            dims: dims(output),
            src_strides: &src_strides,
            src_offset: 0,
            dst_strides: &Strides::contiguous(dims(output)),
            dst_offset: 0,
        };
        copy(kernels, input, output, &layouts)
    }
}

/// The part of `input` from `start` along `axis` that fits `output`.
///
/// SAFETY (callers): as [`view`].
pub(super) unsafe fn slice(
    kernels: CpuKernels,
    input: &CpuOperand,
    output: &CpuOperand,
    axis: usize,
    start: usize,
) -> Result<()> {
    let strides = Strides::contiguous(dims(input));
    // SAFETY: forwarded contract.
    unsafe {
        let layouts = Layouts {
            dims: dims(output),
            src_strides: &strides,
            src_offset: start * strides[axis],
            dst_strides: &Strides::contiguous(dims(output)),
            dst_offset: 0,
        };
        copy(kernels, input, output, &layouts)
    }
}

/// `inputs` one after another along `axis`, into `output`.
///
/// SAFETY (callers): as [`view`].
pub(super) unsafe fn concat(
    kernels: CpuKernels,
    inputs: &[CpuOperand],
    output: &CpuOperand,
    axis: usize,
) -> Result<()> {
    let dst_strides = Strides::contiguous(dims(output));
    let mut at = 0;
    for input in inputs {
        let d = dims(input);
        // SAFETY: forwarded contract.
        unsafe {
            let layouts = Layouts {
                dims: d,
                src_strides: &Strides::contiguous(d),
                src_offset: 0,
                dst_strides: &dst_strides,
                dst_offset: at * dst_strides[axis],
            };
            copy(kernels, input, output, &layouts)?;
        }
        at += d[axis];
    }
    Ok(())
}

/// Element strides of a copy: on the stack up to `rowops::MAX_RANK` dims (every model's
/// tensors), so the copies of a run allocate nothing; a `Vec` above.
enum Strides {
    Stack([usize; MAX_RANK], usize),
    Heap(Vec<usize>),
}

impl Strides {
    fn from_fn(rank: usize, f: impl Fn(usize) -> usize) -> Strides {
        if rank <= MAX_RANK {
            let mut s = [0; MAX_RANK];
            for (i, s) in s[..rank].iter_mut().enumerate() {
                *s = f(i);
            }
            Strides::Stack(s, rank)
        } else {
            Strides::Heap((0..rank).map(f).collect())
        }
    }

    /// Row-major strides of `dims`.
    fn contiguous(dims: &[usize]) -> Strides {
        Strides::from_fn(dims.len(), |i| dims[i + 1..].iter().product())
    }

    /// `strides` reordered: entry `i` is `strides[perm[i]]`.
    fn permuted(strides: &[usize], perm: &[usize]) -> Strides {
        Strides::from_fn(perm.len(), |i| strides[perm[i]])
    }
}

impl std::ops::Deref for Strides {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        match self {
            Strides::Stack(s, rank) => &s[..*rank],
            Strides::Heap(v) => v,
        }
    }
}

/// Where a strided copy reads and writes: element `index` of `dims` goes from `src_offset +
/// index . src_strides` to `dst_offset + index . dst_strides`.
struct Layouts<'a> {
    dims: &'a [usize],
    src_strides: &'a [usize],
    src_offset: usize,
    dst_strides: &'a [usize],
    dst_offset: usize,
}

/// Strided copy of `src` into `dst` in the operand's own element type, with the backend's
/// kernel set.
///
/// SAFETY (callers): as [`view`].
unsafe fn copy(
    kernels: CpuKernels,
    src: &CpuOperand,
    dst: &CpuOperand,
    layouts: &Layouts,
) -> Result<()> {
    // SAFETY: forwarded contract.
    unsafe {
        match src.dtype {
            DType::F32 => typed_copy::<f32>(kernels, src, dst, layouts),
            DType::I64 => typed_copy::<i64>(kernels, src, dst, layouts),
            DType::I32 => typed_copy::<i32>(kernels, src, dst, layouts),
            DType::U8 => typed_copy::<u8>(kernels, src, dst, layouts),
            other => Err(Error::Unsupported {
                backend: "cpu",
                what: format!("copying {other} activations"),
            }),
        }
    }
}

/// [`copy`] for one element type.
///
/// SAFETY (callers): as [`view`].
unsafe fn typed_copy<T: Element + Send + Sync>(
    kernels: CpuKernels,
    src: &CpuOperand,
    dst: &CpuOperand,
    l: &Layouts,
) -> Result<()> {
    // SAFETY: forwarded contract.
    let (src, dst) = unsafe { (view::<T>(src)?, view_mut::<T>(dst)?) };
    let copy_strided = match kernels {
        CpuKernels::Reference => kernel::copy_strided::<T>,
        CpuKernels::Fast(_) => rowops::copy_strided::<T>,
    };
    copy_strided(
        src,
        l.dims,
        l.src_strides,
        l.src_offset,
        dst,
        l.dst_strides,
        l.dst_offset,
    );
    Ok(())
}
