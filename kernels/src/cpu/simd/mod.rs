//! Vector building blocks shared by the fast kernels, one file per ISA level: loads that
//! widen f32/bf16/f16 to f32 lanes, horizontal sums, and row widening. Every function is an
//! `unsafe` `#[target_feature]` function: callers must have checked the level (see
//! `cpu::isa`); they inline into the kernels of the same level.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

use crate::cpu::isa::Isa;
use crate::WeightSlice;

/// Widens `w[start..start + out.len()]` into `out` with the vector loads of `isa`.
pub fn widen_into(isa: Isa, w: WeightSlice, start: usize, out: &mut [f32]) {
    isa.assert_supported();
    let end = start + out.len();
    assert!(
        end <= w.len(),
        "widen_into: {start}..{end} outside {} elements",
        w.len()
    );
    match isa {
        // SAFETY: `assert_supported` checked the CPU has every feature of the level; the
        // range was bounds-checked above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::widen_row(w, start, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::widen_row(w, start, out) },
        _ => w.widen_into(start, out),
    }
}

/// A raw pointer that may cross rayon tasks. Users promise (SAFETY at each use) that tasks
/// write disjoint elements and the pointee outlives the parallel section.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: only used to write disjoint elements from parallel tasks (see each use).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn widen_matches_scalar_for_every_isa() {
        let mut rng = crate::testing::Rng::new(5);
        let v = rng.vec(77, -3.0, 3.0);
        let b: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        for isa in Isa::available() {
            for w in [
                WeightSlice::F32(&v),
                WeightSlice::BF16(&b),
                WeightSlice::F16(&h),
            ] {
                for (start, len) in [(0, 77), (3, 33), (5, 1), (60, 17), (0, 0)] {
                    let mut got = vec![0.0; len];
                    let mut want = vec![0.0; len];
                    widen_into(isa, w, start, &mut got);
                    w.widen_into(start, &mut want);
                    assert_eq!(got, want, "{isa} {w:?} {start}+{len}");
                }
            }
        }
    }
}
