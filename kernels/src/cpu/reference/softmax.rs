//! Reference softmax over the last axis.
//!
//! Layout: `x` and `out` are contiguous `[rows, cols]`, `rows = x.len() / cols`.
//! Per row: m = max(x); out[j] = exp(x[j] - m) / sum_k exp(x[k] - m), with the exponentials
//! and the sum in f64 and one rounding to f32.
//! Special values: a `-inf` entry gives exactly 0; a row whose entries are all `-inf` (fully
//! masked) gives all zeros rather than NaN; a NaN or `+inf` in a row makes that row NaN
//! (as in torch).

/// Row-wise, max-subtracted softmax.
pub fn softmax(x: &[f32], cols: usize, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "softmax: x and out lengths differ");
    if x.is_empty() {
        return;
    }
    assert!(
        x.len().checked_rem(cols) == Some(0),
        "softmax: x.len() = {} is not a multiple of cols = {cols}",
        x.len()
    );
    for (x_row, out_row) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        if x_row.iter().any(|v| v.is_nan()) {
            out_row.fill(f32::NAN);
            continue;
        }
        let max = x_row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if max == f32::NEG_INFINITY {
            out_row.fill(0.0);
            continue;
        }
        let max = max as f64;
        let mut sum = 0.0f64;
        for &v in x_row {
            sum += (v as f64 - max).exp();
        }
        // A +inf entry makes inf - inf = NaN, which propagates through `sum`.
        for (o, &v) in out_row.iter_mut().zip(x_row) {
            *o = ((v as f64 - max).exp() / sum) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};

    #[test]
    fn rows_sum_to_one_and_are_positive() {
        let mut rng = Rng::new(41);
        let (rows, cols) = (9, 37);
        let x = rng.vec(rows * cols, -20.0, 20.0);
        let mut out = vec![0.0; x.len()];
        softmax(&x, cols, &mut out);
        for row in out.chunks(cols) {
            let s: f64 = row.iter().map(|&v| v as f64).sum();
            assert!((s - 1.0).abs() < 1e-6, "row sum {s}");
            assert!(row.iter().all(|&v| v > 0.0 && v <= 1.0));
        }
    }

    #[test]
    fn matches_hand_example_and_naive_formula() {
        let mut out = [0.0f32; 3];
        softmax(&[1.0, 2.0, 3.0], 3, &mut out);
        let e = [1.0f64.exp(), 2.0f64.exp(), 3.0f64.exp()];
        let s: f64 = e.iter().sum();
        assert_eq!(
            out,
            [(e[0] / s) as f32, (e[1] / s) as f32, (e[2] / s) as f32]
        );

        // Naive f32 exp / sum (fine without overflow for small inputs).
        let mut rng = Rng::new(42);
        let (rows, cols) = (4, 23);
        let x = rng.vec(rows * cols, -5.0, 5.0);
        let mut want = vec![0.0f32; x.len()];
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let s: f32 = row.iter().map(|v| v.exp()).sum();
            for j in 0..cols {
                want[r * cols + j] = row[j].exp() / s;
            }
        }
        let mut got = vec![0.0; x.len()];
        softmax(&x, cols, &mut got);
        assert_nmse("softmax", &got, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn shift_invariant_and_no_overflow() {
        let mut rng = Rng::new(43);
        let x = rng.vec(29, -3.0, 3.0);
        let shifted: Vec<f32> = x.iter().map(|v| v + 1000.0).collect();
        let (mut a, mut b) = (vec![0.0; 29], vec![0.0; 29]);
        softmax(&x, 29, &mut a);
        softmax(&shifted, 29, &mut b);
        assert_nmse("softmax shift", &b, &a, 1e-9);
    }

    #[test]
    fn neg_infinity_entries_and_rows() {
        let ninf = f32::NEG_INFINITY;
        let x = [0.0, ninf, 0.0, ninf, ninf, ninf, 5.0, ninf, ninf];
        let mut out = [1.0f32; 9];
        softmax(&x, 3, &mut out);
        assert_eq!(out, [0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn nan_poisons_its_row_only() {
        let x = [1.0, f32::NAN, 2.0, 1.0];
        let mut out = [0.0f32; 4];
        softmax(&x, 2, &mut out);
        assert!(out[0].is_nan() && out[1].is_nan());
        assert!((out[2] + out[3] - 1.0).abs() < 1e-6);
        softmax(&[f32::NAN, f32::NAN, 1.0, f32::INFINITY], 2, &mut out);
        assert!(out.iter().all(|v| v.is_nan()));
    }
}
