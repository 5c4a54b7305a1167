//! Reference row normalizations over the last axis.
//!
//! Layout: `x` and `out` are contiguous `[rows, dim]` with `rows = x.len() / dim`; `weight`
//! (and `bias`) hold `dim` elements of any weight dtype, widened to f32 on read.
//! Statistics are accumulated in f64 and the normalized value is formed in f64 and rounded to
//! f32 once, so the result is as exact as f32 allows.
//!   rms_norm:   out = x / sqrt(mean(x^2) + eps) * w               (HF LlamaRMSNorm, Qwen2)
//!   layer_norm: out = (x - mean) / sqrt(var + eps) * w + b        (torch LayerNorm: biased
//!               variance, i.e. divided by dim, computed two-pass around the mean)

use crate::WeightSlice;

fn check_shapes(op: &str, x: &[f32], out: &[f32], weight: &WeightSlice, dim: usize) {
    assert_eq!(x.len(), out.len(), "{op}: x and out lengths differ");
    assert_eq!(
        weight.len(),
        dim,
        "{op}: weight must hold dim = {dim} elements"
    );
    assert!(
        x.len().checked_rem(dim) == Some(0) || x.is_empty(),
        "{op}: x.len() = {} is not a multiple of dim = {dim}",
        x.len()
    );
}

/// RMSNorm: `out = x / sqrt(mean(x^2) + eps) * weight`, row by row.
pub fn rms_norm(x: &[f32], weight: WeightSlice, eps: f32, dim: usize, out: &mut [f32]) {
    check_shapes("rms_norm", x, out, &weight, dim);
    if x.is_empty() {
        return;
    }
    for (x_row, out_row) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let sum_sq: f64 = x_row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let inv_rms = 1.0 / (sum_sq / dim as f64 + eps as f64).sqrt();
        for (i, (o, &v)) in out_row.iter_mut().zip(x_row).enumerate() {
            *o = (v as f64 * inv_rms * weight.get(i) as f64) as f32;
        }
    }
}

/// LayerNorm: `out = (x - mean) / sqrt(var + eps) * weight + bias`, biased variance.
pub fn layer_norm(
    x: &[f32],
    weight: WeightSlice,
    bias: Option<WeightSlice>,
    eps: f32,
    dim: usize,
    out: &mut [f32],
) {
    check_shapes("layer_norm", x, out, &weight, dim);
    if let Some(b) = &bias {
        assert_eq!(
            b.len(),
            dim,
            "layer_norm: bias must hold dim = {dim} elements"
        );
    }
    if x.is_empty() {
        return;
    }
    for (x_row, out_row) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let mean = x_row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let var = x_row
            .iter()
            .map(|&v| (v as f64 - mean) * (v as f64 - mean))
            .sum::<f64>()
            / dim as f64;
        let inv_std = 1.0 / (var + eps as f64).sqrt();
        for (i, (o, &v)) in out_row.iter_mut().zip(x_row).enumerate() {
            let b = bias.as_ref().map_or(0.0, |b| b.get(i) as f64);
            *o = ((v as f64 - mean) * inv_std * weight.get(i) as f64 + b) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION, NMSE_HALF};
    use half::{bf16, f16};

    fn row_stats(row: &[f32]) -> (f64, f64) {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn layer_norm_gives_zero_mean_unit_variance_before_affine() {
        let mut rng = Rng::new(31);
        let (rows, dim) = (5, 77);
        let x: Vec<f32> = rng.vec(rows * dim, -4.0, 9.0);
        let ones = vec![1.0f32; dim];
        let mut out = vec![0.0; x.len()];
        layer_norm(&x, WeightSlice::F32(&ones), None, 1e-12, dim, &mut out);
        for row in out.chunks(dim) {
            let (mean, var) = row_stats(row);
            assert!(mean.abs() < 1e-6, "mean {mean}");
            assert!((var - 1.0).abs() < 1e-5, "var {var}");
        }
    }

    #[test]
    fn layer_norm_affine_is_applied_per_column() {
        let mut rng = Rng::new(32);
        let (rows, dim) = (3, 19);
        let x = rng.vec(rows * dim, -2.0, 2.0);
        let w = rng.vec(dim, 0.5, 1.5);
        let b = rng.vec(dim, -1.0, 1.0);
        let ones = vec![1.0f32; dim];
        let mut plain = vec![0.0; x.len()];
        layer_norm(&x, WeightSlice::F32(&ones), None, 1e-5, dim, &mut plain);
        let want: Vec<f32> = plain
            .iter()
            .enumerate()
            .map(|(i, &v)| v * w[i % dim] + b[i % dim])
            .collect();
        let mut got = vec![0.0; x.len()];
        let bias = Some(WeightSlice::F32(&b));
        layer_norm(&x, WeightSlice::F32(&w), bias, 1e-5, dim, &mut got);
        assert_nmse("layer_norm affine", &got, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn layer_norm_hand_example() {
        // mean 2.5, biased var 1.25
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut out = [0.0; 4];
        layer_norm(&x, WeightSlice::F32(&[1.0; 4]), None, 0.0, 4, &mut out);
        let s = 1.25f64.sqrt();
        let want = [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s].map(|v| v as f32);
        assert_eq!(out, want);
    }

    #[test]
    fn rms_norm_gives_unit_mean_square_and_matches_formula() {
        let mut rng = Rng::new(33);
        let (rows, dim) = (6, 101);
        let x = rng.vec(rows * dim, -3.0, 3.0);
        let ones = vec![1.0f32; dim];
        let mut out = vec![0.0; x.len()];
        rms_norm(&x, WeightSlice::F32(&ones), 0.0, dim, &mut out);
        for row in out.chunks(dim) {
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / dim as f64;
            assert!((ms - 1.0).abs() < 1e-6, "mean square {ms}");
        }
        // Independent f32 evaluation of the HF formula with a weight.
        let w = rng.vec(dim, -2.0, 2.0);
        let eps = 1e-6f32;
        let mut want = vec![0.0f32; x.len()];
        for r in 0..rows {
            let row = &x[r * dim..(r + 1) * dim];
            let var = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for i in 0..dim {
                want[r * dim + i] = w[i] * (row[i] * inv);
            }
        }
        rms_norm(&x, WeightSlice::F32(&w), eps, dim, &mut out);
        assert_nmse("rms_norm", &out, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn half_weights_equal_widened_f32_weights() {
        let mut rng = Rng::new(34);
        let (rows, dim) = (4, 33);
        let x = rng.vec(rows * dim, -3.0, 3.0);
        let w = rng.vec(dim, -2.0, 2.0);
        let b = rng.vec(dim, -1.0, 1.0);
        let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let wb16: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        let b16: Vec<bf16> = b.iter().map(|&v| bf16::from_f32(v)).collect();
        let w16_wide: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
        let wb16_wide: Vec<f32> = wb16.iter().map(|v| v.to_f32()).collect();
        let b16_wide: Vec<f32> = b16.iter().map(|v| v.to_f32()).collect();
        let (mut got, mut want) = (vec![0.0; x.len()], vec![0.0; x.len()]);

        rms_norm(&x, WeightSlice::F16(&w16), 1e-5, dim, &mut got);
        rms_norm(&x, WeightSlice::F32(&w16_wide), 1e-5, dim, &mut want);
        assert_eq!(got, want);

        let bias = Some(WeightSlice::BF16(&b16));
        layer_norm(&x, WeightSlice::BF16(&wb16), bias, 1e-5, dim, &mut got);
        let bias = Some(WeightSlice::F32(&b16_wide));
        layer_norm(&x, WeightSlice::F32(&wb16_wide), bias, 1e-5, dim, &mut want);
        assert_eq!(got, want);

        // And the half weights stay close to the f32 originals.
        rms_norm(&x, WeightSlice::F32(&w), 1e-5, dim, &mut want);
        rms_norm(&x, WeightSlice::BF16(&wb16), 1e-5, dim, &mut got);
        assert_nmse("rms_norm bf16 weight", &got, &want, NMSE_HALF);
    }

    #[test]
    fn empty_input_is_fine() {
        let mut out: [f32; 0] = [];
        rms_norm(&[], WeightSlice::F32(&[1.0; 8]), 1e-5, 8, &mut out);
        layer_norm(&[], WeightSlice::F32(&[]), None, 1e-5, 0, &mut out);
    }
}
