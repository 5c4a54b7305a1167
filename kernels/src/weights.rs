//! A read-only weight operand in any float dtype the CPU kernels accept directly.

use half::{bf16, f16};

/// Weights as stored (often straight from a memory-mapped file); kernels widen each element
/// to f32 as they read it.
#[derive(Clone, Copy, Debug)]
pub enum WeightSlice<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
}

impl<'a> WeightSlice<'a> {
    pub fn len(&self) -> usize {
        match self {
            WeightSlice::F32(w) => w.len(),
            WeightSlice::F16(w) => w.len(),
            WeightSlice::BF16(w) => w.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` widened to f32.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            WeightSlice::F32(w) => w[i],
            WeightSlice::F16(w) => w[i].to_f32(),
            WeightSlice::BF16(w) => w[i].to_f32(),
        }
    }

    /// Elements `start..end` as a new slice of the same dtype.
    pub fn sub(&self, start: usize, end: usize) -> WeightSlice<'a> {
        match *self {
            WeightSlice::F32(w) => WeightSlice::F32(&w[start..end]),
            WeightSlice::F16(w) => WeightSlice::F16(&w[start..end]),
            WeightSlice::BF16(w) => WeightSlice::BF16(&w[start..end]),
        }
    }

    /// Widens `start..start+out.len()` into `out`.
    pub fn widen_into(&self, start: usize, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.get(start + i);
        }
    }
}
