//! Op-level differential test utilities, shared by the tests of every crate in the workspace
//! and by the SIMD / CUDA kernel tests: error metrics (NMSE, max abs diff, cosine), the
//! thresholds from DESIGN.md, a small deterministic RNG (no dependency) and `assert_nmse`.
//!
//! NMSE = sum (a - b)^2 / sum b^2, accumulated in f64. A NaN or infinity anywhere always fails.

/// NMSE bound for f32 elementwise ops (add, mul, activations, copies).
pub const NMSE_F32_ELEMENTWISE: f64 = 1e-10;
/// NMSE bound for f32 reductions: matmul, norms, softmax, attention, conv.
pub const NMSE_F32_REDUCTION: f64 = 1e-7;
/// NMSE bound for bf16 / f16 compute (f32 accumulation).
pub const NMSE_HALF: f64 = 1e-4;

/// Normalized mean squared error `sum (a-b)^2 / sum b^2` in f64.
///
/// Returns `f64::INFINITY` when the lengths differ or when either slice holds a NaN or an
/// infinity (so a non-finite value can never pass a threshold). When `expected` is all zeros
/// the denominator is dropped and the plain `sum (a-b)^2` is returned. Two empty slices give 0.
pub fn nmse(actual: &[f32], expected: &[f32]) -> f64 {
    if actual.len() != expected.len() {
        return f64::INFINITY;
    }
    let mut err = 0.0f64;
    let mut norm = 0.0f64;
    for (&a, &b) in actual.iter().zip(expected) {
        if !a.is_finite() || !b.is_finite() {
            return f64::INFINITY;
        }
        let d = a as f64 - b as f64;
        err += d * d;
        norm += (b as f64) * (b as f64);
    }
    if norm == 0.0 {
        err
    } else {
        err / norm
    }
}

/// Largest `|a[i] - b[i]|`. NaN if any difference is NaN; infinity on a length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    let mut max = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        let d = (x - y).abs();
        if d.is_nan() {
            return f32::NAN;
        }
        if d > max {
            max = d;
        }
    }
    max
}

/// Cosine similarity `a.b / (|a| |b|)` in f64. Two all-zero vectors give 1, one all-zero
/// vector gives 0; a length mismatch gives NaN.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    let mut dot = 0.0f64;
    let mut na = 0.0f64;
    let mut nb = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    match (na == 0.0, nb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => dot / (na.sqrt() * nb.sqrt()),
    }
}

/// Panics unless `nmse(actual, expected) <= threshold`. The message names `what`, the NMSE,
/// the threshold, the max abs diff and the first index whose error stands out (non-finite,
/// or `|a-b| > sqrt(threshold) * max(|b|, rms(b))`), with both values there.
pub fn assert_nmse(what: &str, actual: &[f32], expected: &[f32], threshold: f64) {
    if actual.len() != expected.len() {
        panic!(
            "{what}: length mismatch: actual has {} elements, expected {}",
            actual.len(),
            expected.len()
        );
    }
    let err = nmse(actual, expected);
    if err <= threshold {
        return;
    }
    let index = first_mismatch(actual, expected, threshold);
    let at = match index {
        Some(i) => format!(
            "first mismatch at index {i}: actual {} expected {}",
            actual[i], expected[i]
        ),
        None => "no single element stands out".to_string(),
    };
    panic!(
        "{what}: NMSE {err:e} > threshold {threshold:e} (max abs diff {}, {} elements); {at}",
        max_abs_diff(actual, expected),
        actual.len()
    );
}

/// First index that is non-finite or whose error exceeds the per-element share of the bound.
fn first_mismatch(actual: &[f32], expected: &[f32], threshold: f64) -> Option<usize> {
    let n = expected.len().max(1) as f64;
    let rms = (expected
        .iter()
        .map(|&b| (b as f64) * (b as f64))
        .filter(|v| v.is_finite())
        .sum::<f64>()
        / n)
        .sqrt();
    let tol = threshold.sqrt();
    let by_tolerance = actual.iter().zip(expected).position(|(&a, &b)| {
        if !a.is_finite() || !b.is_finite() {
            return true;
        }
        let scale = (b as f64).abs().max(rms);
        (a as f64 - b as f64).abs() > tol * scale
    });
    by_tolerance.or_else(|| {
        // Fall back to the largest difference.
        let mut best: Option<(usize, f64)> = None;
        for (i, (&a, &b)) in actual.iter().zip(expected).enumerate() {
            let d = (a as f64 - b as f64).abs();
            match best {
                Some((_, m)) if d <= m => {}
                _ => best = Some((i, d)),
            }
        }
        best.map(|(i, _)| i)
    })
}

/// Small deterministic RNG (SplitMix64) for test data: seedable, no dependency, the same
/// sequence on every platform.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// Next 64 random bits (SplitMix64 step).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi] (hi itself only through rounding).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = self.unit_f64();
        (lo as f64 + (hi as f64 - lo as f64) * u) as f32
    }

    /// `n` uniform values in [lo, hi], none of them exactly zero: a zero draw is nudged to a
    /// tiny non-zero value (inside the range when the range allows one).
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.uniform(lo, hi);
                if v != 0.0 {
                    return v;
                }
                let tiny = (hi - lo).abs() * (1.0 / 4096.0);
                if tiny > 0.0 && tiny <= hi {
                    tiny
                } else if tiny > 0.0 && -tiny >= lo {
                    -tiny
                } else {
                    f32::EPSILON
                }
            })
            .collect()
    }

    /// Uniform integer in [0, n). Panics if `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0): empty range");
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal sample (Box-Muller, computed in f64).
    pub fn normal(&mut self) -> f32 {
        let u1 = 1.0 - self.unit_f64(); // (0, 1]: ln is finite
        let u2 = self.unit_f64();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmse_basic_values() {
        assert_eq!(nmse(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        // err = 1, norm = 1 + 4 + 4 = 9
        let v = nmse(&[1.0, 2.0, 3.0], &[1.0, 2.0, 2.0]);
        assert!((v - 1.0 / 9.0).abs() < 1e-15, "{v}");
        assert_eq!(nmse(&[], &[]), 0.0);
    }

    #[test]
    fn nmse_is_infinite_on_nan_inf_and_length_mismatch() {
        assert_eq!(nmse(&[1.0, f32::NAN], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(nmse(&[1.0, f32::INFINITY], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(nmse(&[f32::NEG_INFINITY], &[1.0]), f64::INFINITY);
        assert_eq!(nmse(&[1.0], &[f32::NAN]), f64::INFINITY);
        assert_eq!(nmse(&[1.0, 2.0], &[1.0]), f64::INFINITY);
        // NaN never passes any threshold.
        assert!(nmse(&[f32::NAN], &[0.0]) > NMSE_HALF);
    }

    #[test]
    fn nmse_zero_expected_is_plain_squared_error() {
        let v = nmse(&[0.5, -0.5, 0.0], &[0.0, 0.0, 0.0]);
        assert!((v - 0.5).abs() < 1e-15, "{v}");
    }

    #[test]
    fn max_abs_diff_and_cosine() {
        assert_eq!(max_abs_diff(&[1.0, -3.0, 2.0], &[1.5, -1.0, 2.0]), 2.0);
        assert!(max_abs_diff(&[f32::NAN], &[1.0]).is_nan());
        assert_eq!(max_abs_diff(&[1.0], &[]), f32::INFINITY);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[-2.0, 0.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!(cosine(&[1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn assert_nmse_passes_close_values() {
        let mut rng = Rng::new(1);
        let e = rng.vec(101, -1.0, 1.0);
        let a: Vec<f32> = e.iter().map(|v| v * (1.0 + 1e-7)).collect();
        assert_nmse("close", &a, &e, NMSE_F32_ELEMENTWISE);
    }

    #[test]
    #[should_panic(expected = "my-op: NMSE")]
    fn assert_nmse_names_the_op() {
        assert_nmse("my-op", &[1.0, 2.0, 3.0], &[1.0, 2.5, 3.0], NMSE_HALF);
    }

    #[test]
    #[should_panic(expected = "first mismatch at index 1")]
    fn assert_nmse_reports_first_mismatch() {
        assert_nmse("x", &[1.0, 2.0, 3.0, 9.0], &[1.0, 2.5, 3.0, 4.0], NMSE_HALF);
    }

    #[test]
    #[should_panic(expected = "first mismatch at index 2")]
    fn assert_nmse_fails_on_nan() {
        assert_nmse("nan", &[1.0, 2.0, f32::NAN], &[1.0, 2.0, 3.0], 1.0);
    }

    #[test]
    #[should_panic(expected = "length mismatch")]
    fn assert_nmse_fails_on_length_mismatch() {
        assert_nmse("len", &[1.0], &[1.0, 2.0], 1.0);
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut c = Rng::new(43);
        let va = a.vec(1000, -2.0, 3.0);
        assert_eq!(va, b.vec(1000, -2.0, 3.0));
        assert_ne!(va, c.vec(1000, -2.0, 3.0));
        assert!(va.iter().all(|&v| (-2.0..=3.0).contains(&v) && v != 0.0));
        let mean = va.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.15, "{mean}");
        for _ in 0..1000 {
            assert!(a.below(7) < 7);
        }
        assert_eq!(a.below(1), 0);
    }

    #[test]
    fn rng_vec_never_returns_zero() {
        let mut rng = Rng::new(3);
        // A degenerate range can only produce zero draws: all are nudged.
        assert!(rng.vec(10, 0.0, 0.0).iter().all(|&v| v != 0.0));
        let v = rng.vec(10, 0.0, 1.0);
        assert!(v.iter().all(|&v| v != 0.0 && (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn rng_normal_has_unit_moments() {
        let mut rng = Rng::new(7);
        let n = 20000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal() as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }
}
