//! Reference matmul in the `nn.Linear` convention: `out = a @ w^T + bias`.
//!
//! Layout: `a` is `[m, k]`, `w` is `[n, k]` (one row per output feature, as stored in HF
//! checkpoints), `bias` is `[n]`, `out` is `[m, n]`; all row-major and contiguous.
//! `w`/`bias` may be f32, f16 or bf16 and are widened to f32 on read. Products of two f32
//! values are exact in f64, so the dot products are accumulated in f64 and rounded once:
//! the result is close to the exactly rounded value, whatever the summation order of the
//! kernel under test. `k == 0` gives `out = bias` (or zeros).

use crate::WeightSlice;

/// `out[i, j] = sum_p a[i, p] * w[j, p] + bias[j]`.
pub fn matmul(
    a: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    assert_eq!(a.len(), m * k, "matmul: a must be [m = {m}, k = {k}]");
    assert_eq!(w.len(), n * k, "matmul: w must be [n = {n}, k = {k}]");
    assert_eq!(out.len(), m * n, "matmul: out must be [m = {m}, n = {n}]");
    if let Some(b) = &bias {
        assert_eq!(b.len(), n, "matmul: bias must hold n = {n} elements");
    }
    // One widened row of w at a time, reused for every row of a.
    let mut w_row = vec![0.0f32; k];
    for j in 0..n {
        w.widen_into(j * k, &mut w_row);
        let b = bias.as_ref().map_or(0.0, |b| b.get(j) as f64);
        for i in 0..m {
            let a_row = &a[i * k..(i + 1) * k];
            let mut acc = 0.0f64;
            for (&x, &y) in a_row.iter().zip(&w_row) {
                acc += x as f64 * y as f64;
            }
            out[i * n + j] = (acc + b) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION, NMSE_HALF};
    use half::{bf16, f16};

    /// Naive f32 `a @ w^T + b`, looping in the textbook (i, j, p) order.
    fn naive(a: &[f32], w: &[f32], b: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f32;
                for p in 0..k {
                    s += a[i * k + p] * w[j * k + p];
                }
                out[i * n + j] = s + b.map_or(0.0, |b| b[j]);
            }
        }
        out
    }

    #[test]
    fn hand_example() {
        // a [2,3], w [2,3] -> out [2,2]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, -1.0, 0.5, 0.5, 0.5];
        let b = [10.0, -1.0];
        let mut out = [0.0; 4];
        matmul(
            &a,
            WeightSlice::F32(&w),
            Some(WeightSlice::F32(&b)),
            2,
            2,
            3,
            &mut out,
        );
        assert_eq!(out, [8.0, 2.0, 8.0, 6.5]);
    }

    #[test]
    fn odd_sizes_match_naive_f32() {
        let mut rng = Rng::new(51);
        for (m, n, k) in [
            (1, 1, 1),
            (1, 67, 129),
            (7, 13, 33),
            (17, 5, 1),
            (3, 31, 257),
        ] {
            let a = rng.vec(m * k, -1.0, 1.0);
            let w = rng.vec(n * k, -1.0, 1.0);
            let b = rng.vec(n, -1.0, 1.0);
            let want = naive(&a, &w, Some(&b), m, n, k);
            let mut got = vec![0.0; m * n];
            let bias = Some(WeightSlice::F32(&b));
            matmul(&a, WeightSlice::F32(&w), bias, m, n, k, &mut got);
            assert_nmse(
                &format!("matmul {m}x{n}x{k}"),
                &got,
                &want,
                NMSE_F32_REDUCTION,
            );
            let want = naive(&a, &w, None, m, n, k);
            matmul(&a, WeightSlice::F32(&w), None, m, n, k, &mut got);
            assert_nmse("matmul no bias", &got, &want, NMSE_F32_REDUCTION);
        }
    }

    #[test]
    fn half_weights_equal_widened_f32_weights() {
        let mut rng = Rng::new(52);
        let (m, n, k) = (5, 11, 71);
        let a = rng.vec(m * k, -2.0, 2.0);
        let w = rng.vec(n * k, -1.0, 1.0);
        let b = rng.vec(n, -1.0, 1.0);
        let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let wbf: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        let b16: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
        let w16_wide: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
        let wbf_wide: Vec<f32> = wbf.iter().map(|v| v.to_f32()).collect();
        let b16_wide: Vec<f32> = b16.iter().map(|v| v.to_f32()).collect();
        let (mut got, mut want) = (vec![0.0; m * n], vec![0.0; m * n]);

        let bias = Some(WeightSlice::F16(&b16));
        matmul(&a, WeightSlice::F16(&w16), bias, m, n, k, &mut got);
        let bias = Some(WeightSlice::F32(&b16_wide));
        matmul(&a, WeightSlice::F32(&w16_wide), bias, m, n, k, &mut want);
        assert_eq!(got, want, "f16 weights");

        matmul(&a, WeightSlice::BF16(&wbf), None, m, n, k, &mut got);
        matmul(&a, WeightSlice::F32(&wbf_wide), None, m, n, k, &mut want);
        assert_eq!(got, want, "bf16 weights");

        // Rounding the weights to half costs at most half precision.
        matmul(&a, WeightSlice::F32(&w), None, m, n, k, &mut want);
        assert_nmse("matmul bf16 vs f32 weights", &got, &want, NMSE_HALF);
    }

    #[test]
    fn identity_weight_copies_a_and_k_zero_gives_bias() {
        let mut rng = Rng::new(53);
        let (m, k) = (4, 9);
        let a = rng.vec(m * k, -1.0, 1.0);
        let mut eye = vec![0.0f32; k * k];
        for i in 0..k {
            eye[i * k + i] = 1.0;
        }
        let mut out = vec![0.0; m * k];
        matmul(&a, WeightSlice::F32(&eye), None, m, k, k, &mut out);
        assert_eq!(out, a);

        let b = [1.5f32, -2.0, 3.0];
        let mut out = [0.0; 6];
        matmul(
            &[],
            WeightSlice::F32(&[]),
            Some(WeightSlice::F32(&b)),
            2,
            3,
            0,
            &mut out,
        );
        assert_eq!(out, [1.5, -2.0, 3.0, 1.5, -2.0, 3.0]);
    }
}
