//! Vectorized argmax over the last axis (greedy decoding over the vocabulary), the contract
//! of `reference::argmax`: per row the index of the first maximum, NaN entries ignored, an
//! all-NaN row gives 0.
//!
//! Two passes per row: the max over the lanes (`max(v, m)` keeps `m` when `v` is NaN), then
//! the first index holding it. That is the reference's answer in every case: ties go to the
//! first index, and a row of `-inf` and NaN finds its first `-inf` (no element equals the
//! `-inf` start value in an all-NaN row, which gives 0). The tail is padded with NaN.
//! Rows stay on the calling thread (a decode step has one). Criterion
//! `rowops/*/argmax/1x49152` (2-core AMD EPYC VM, load ~4): scalar (the reference) 77 us,
//! avx2 5.0 us, avx512 2.6 us.

use crate::cpu::isa::Isa;
use crate::cpu::reference;

/// `max` over `n` elements (a multiple of the lanes), NaN ignored; `-inf` if none.
type Max = unsafe fn(*const f32, usize) -> f32;
/// The first index `< n` (a multiple of the lanes) holding `value`, or `n`.
type Find = unsafe fn(*const f32, f32, usize) -> usize;

fn bodies(isa: Isa) -> Option<(usize, Max, Find)> {
    isa.assert_supported();
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some((16, avx512::max, avx512::find)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some((8, avx2::max, avx2::find)),
        _ => None,
    }
}

/// Per row of `x` (`[rows, cols]`), the index of the first maximum; the scalar level is the
/// reference.
pub fn argmax(isa: Isa, x: &[f32], cols: usize, out: &mut [i64]) {
    let Some((lanes, max, find)) = bodies(isa) else {
        return reference::argmax(x, cols, out);
    };
    if x.is_empty() && out.is_empty() {
        return;
    }
    assert!(
        x.len().checked_rem(cols) == Some(0),
        "argmax: x.len() = {} is not a multiple of cols = {cols}",
        x.len()
    );
    assert_eq!(
        out.len(),
        x.len() / cols,
        "argmax: out must hold one index per row"
    );
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        let full = cols / lanes * lanes;
        let mut tail = [f32::NAN; 16];
        tail[..cols - full].copy_from_slice(&row[full..]);
        // SAFETY (all four calls): the bodies belong to a level the CPU supports (`bodies`
        // checked it); they read `full` (a multiple of the lanes) elements of the row and
        // `lanes <= 16` of `tail`.
        let best = unsafe { max(row.as_ptr(), full).max(max(tail.as_ptr(), lanes)) };
        // SAFETY: as above.
        let mut at = unsafe { find(row.as_ptr(), best, full) };
        if at == full {
            // SAFETY: as above.
            at += unsafe { find(tail.as_ptr(), best, lanes) };
        }
        *o = if at < cols { at as i64 } else { 0 };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn max(x: *const f32, n: usize) -> f32 {
        let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n elements readable at x (caller).
            m = _mm512_max_ps(unsafe { _mm512_loadu_ps(x.add(i)) }, m);
        }
        _mm512_reduce_max_ps(m)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn find(x: *const f32, value: f32, n: usize) -> usize {
        let v = _mm512_set1_ps(value);
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n elements readable at x (caller).
            let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(unsafe { _mm512_loadu_ps(x.add(i)) }, v);
            if hit != 0 {
                return i + hit.trailing_zeros() as usize;
            }
        }
        n
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn max(x: *const f32, n: usize) -> f32 {
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n elements readable at x (caller).
            m = _mm256_max_ps(unsafe { _mm256_loadu_ps(x.add(i)) }, m);
        }
        let h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn find(x: *const f32, value: f32, n: usize) -> usize {
        let v = _mm256_set1_ps(value);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n elements readable at x (caller).
            let eq = _mm256_cmp_ps::<_CMP_EQ_OQ>(unsafe { _mm256_loadu_ps(x.add(i)) }, v);
            let hit = _mm256_movemask_ps(eq);
            if hit != 0 {
                return i + hit.trailing_zeros() as usize;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    #[test]
    fn matches_the_reference_at_every_isa() {
        let mut rng = Rng::new(88);
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        for (rows, cols) in [(1, 1), (3, 7), (4, 17), (2, 33), (5, 1003), (1, 49_157)] {
            let mut x = rng.vec(rows * cols, -5.0, 5.0);
            // Ties (a repeated maximum) and ignored NaNs in some rows.
            if cols > 4 {
                x[cols - 2] = 9.0;
                x[cols - 4] = 9.0;
                x[1] = nan;
            }
            let mut want = vec![0i64; rows];
            reference::argmax(&x, cols, &mut want);
            for isa in Isa::available() {
                let mut got = vec![-1i64; rows];
                argmax(isa, &x, cols, &mut got);
                assert_eq!(got, want, "{isa} argmax {rows}x{cols}");
            }
        }
        // Special rows of 19: all NaN, NaN then -inf, +inf in the tail, -inf ties.
        let ninf = f32::NEG_INFINITY;
        let mut x = vec![nan; 4 * 19];
        x[19 + 2..2 * 19].fill(ninf);
        x[2 * 19..3 * 19].fill(1.0);
        x[2 * 19 + 17] = inf;
        x[3 * 19..].fill(ninf);
        let mut want = vec![0i64; 4];
        reference::argmax(&x, 19, &mut want);
        assert_eq!(want, [0, 2, 17, 0]);
        for isa in Isa::available() {
            let mut got = vec![-1i64; 4];
            argmax(isa, &x, 19, &mut got);
            assert_eq!(got, want, "{isa} special rows");
        }
    }
}
