//! GEMV for decode: `out[m, n] = x[m, k] @ w[n, k]^T + bias[n]` for small `m` (the
//! `matmul` contract of `cpu::reference`, f32 accumulation). Memory-bound: each row of `w`
//! is streamed once (widened from bf16/f16 in registers) and dotted with the `m <= 4` rows
//! of `x`, `R = 4` rows of `w` at a time; rayon splits `n` into chunks. Larger `m` is handled
//! 4 rows of `x` at a time (each pass re-streams `w`; `gemm` is the right kernel there).
//! A matrix below `PAR_MIN_MACS` stays on the calling thread (waking the pool costs more
//! than it saves there). No allocation: the bias is widened per output as it is added.
//!
//! | variant | 1x1536x576 bf16 | 1x49152x576 bf16 (2 threads, AMD EPYC, AVX-512) |
//! |---|---|---|
//! | scalar / avx2 / avx512 | see BENCHMARKS.md | see BENCHMARKS.md |

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use rayon::prelude::*;

use crate::cpu::isa::Isa;
use crate::cpu::simd::SendPtr;
use crate::WeightSlice;

/// Rows of `x` handled per pass over `w`.
pub const MAX_M: usize = 4;
/// Rows of `w` per inner step.
const R: usize = 4;
/// Multiply-adds per row of `x` (`n k`) below which the call stays on one thread.
const PAR_MIN_MACS: usize = 1 << 15;
/// Widest `k` slice the scalar level widens at a time (on the stack).
const SCALAR_K_BLOCK: usize = 256;

/// Bias element `j` widened to f32 (0 without a bias).
#[inline(always)]
fn bias_at(bias: Option<WeightSlice>, j: usize) -> f32 {
    bias.map_or(0.0, |b| b.get(j))
}

/// `out = x @ w^T + bias` at `isa`, streaming `w` once per 4 rows of `x`.
#[allow(clippy::too_many_arguments)] // the matmul contract: operands and sizes
pub fn gemv(
    isa: Isa,
    x: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    isa.assert_supported();
    assert_eq!(x.len(), m * k, "gemv: x must be [m = {m}, k = {k}]");
    assert_eq!(w.len(), n * k, "gemv: w must be [n = {n}, k = {k}]");
    assert_eq!(out.len(), m * n, "gemv: out must be [m = {m}, n = {n}]");
    if let Some(b) = &bias {
        assert_eq!(b.len(), n, "gemv: bias must hold n = {n} elements");
    }
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let chunk = if n * k < PAR_MIN_MACS {
        n
    } else {
        (n.div_ceil(threads * 8)).next_multiple_of(R).max(16)
    };
    for i0 in (0..m).step_by(MAX_M) {
        let mm = MAX_M.min(m - i0);
        let x = &x[i0 * k..(i0 + mm) * k];
        let out_ptr = SendPtr(out[i0 * n..].as_mut_ptr());
        let columns = |c: usize| {
            let (j0, j1) = (c * chunk, ((c + 1) * chunk).min(n));
            // SAFETY (out): this task writes out[i, j0..j1] for its own column range only;
            // rows i < mm lie inside `out` (checked lengths); `out` outlives the loop.
            let out = out_ptr.get();
            match isa {
                // SAFETY: `assert_supported` checked AVX-512; lengths checked above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { avx512::rows(x, mm, k, w, j0, j1, bias, out, n) },
                // SAFETY: `assert_supported` checked AVX2; lengths checked above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { avx2::rows(x, mm, k, w, j0, j1, bias, out, n) },
                // SAFETY: as above for the plain loop.
                _ => unsafe { scalar_rows(x, mm, k, w, j0, j1, bias, out, n) },
            }
        };
        let chunks = n.div_ceil(chunk);
        if chunks == 1 {
            columns(0);
        } else {
            (0..chunks).into_par_iter().for_each(columns);
        }
    }
}

/// The plain loop over rows `j0..j1` of `w`.
///
/// # Safety
/// `out + i * n + j` is writable for `i < m`, `j0 <= j < j1`.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn scalar_rows(
    x: &[f32],
    m: usize,
    k: usize,
    w: WeightSlice,
    j0: usize,
    j1: usize,
    bias: Option<WeightSlice>,
    out: *mut f32,
    n: usize,
) {
    let mut row = [0.0f32; SCALAR_K_BLOCK];
    for j in j0..j1 {
        let mut acc = [0.0f32; MAX_M];
        for p0 in (0..k).step_by(SCALAR_K_BLOCK) {
            let row = &mut row[..SCALAR_K_BLOCK.min(k - p0)];
            w.widen_into(j * k + p0, row);
            for (i, acc) in acc.iter_mut().enumerate().take(m) {
                let x = &x[i * k + p0..][..row.len()];
                *acc = x.iter().zip(&*row).fold(*acc, |s, (&a, &b)| s + a * b);
            }
        }
        for (i, &acc) in acc.iter().enumerate().take(m) {
            // SAFETY: caller's contract.
            unsafe { *out.add(i * n + j) = acc + bias_at(bias, j) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
    use half::{bf16, f16};

    #[test]
    fn gemv_matches_reference_for_every_isa() {
        let mut rng = Rng::new(91);
        for m in [1, 2, 3, 4, 5, 17] {
            for (n, k) in [(1, 1), (7, 33), (33, 7), (577, 17), (13, 1031), (70, 577)] {
                let x = rng.vec(m * k, -1.0, 1.0);
                let w = rng.vec(n * k, -1.0, 1.0);
                let b = rng.vec(n, -1.0, 1.0);
                let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
                let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                let bh: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
                let cases = [
                    (WeightSlice::F32(&w), Some(WeightSlice::F32(&b)), "f32"),
                    (WeightSlice::BF16(&wb), None, "bf16"),
                    (WeightSlice::F16(&wh), Some(WeightSlice::F16(&bh)), "f16"),
                ];
                for (wt, bias, name) in cases {
                    let mut want = vec![0.0; m * n];
                    reference::matmul(&x, wt, bias, m, n, k, &mut want);
                    for isa in Isa::available() {
                        let mut got = vec![f32::NAN; m * n];
                        gemv(isa, &x, wt, bias, m, n, k, &mut got);
                        let what = format!("gemv {isa} {name} {m}x{n}x{k}");
                        assert_nmse(&what, &got, &want, NMSE_F32_REDUCTION);
                    }
                }
            }
        }
    }
}
