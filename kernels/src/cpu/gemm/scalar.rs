//! Scalar GEMM: the plain loop (f32 accumulation), one widened row of `w` at a time, rows
//! of `out` split over rayon.

use rayon::prelude::*;

use crate::WeightSlice;

pub(super) fn gemm(
    a: &[f32],
    w: WeightSlice,
    bias: &[f32],
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    let rows = m.div_ceil(rayon::current_num_threads() * 4).max(1);
    out.par_chunks_mut(rows * n)
        .zip(a.par_chunks(rows * k))
        .for_each(|(out, a)| {
            let mut w_row = vec![0.0f32; k];
            for j in 0..n {
                w.widen_into(j * k, &mut w_row);
                for (i, a_row) in a.chunks(k).enumerate() {
                    let mut acc = 0.0f32;
                    for (&x, &y) in a_row.iter().zip(&w_row) {
                        acc += x * y;
                    }
                    out[i * n + j] = acc + bias[j];
                }
            }
        });
}
