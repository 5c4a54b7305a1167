//! Reference activations, elementwise over contiguous slices (`x.len() == out.len()`).
//!
//! Every activation is evaluated in f64 and rounded to f32 once, so these are as close to the
//! exact value as f32 allows (within ~1 ulp); f32 kernels are compared to them by NMSE.
//! std has no erf, so `erf`/`erfc` below are our own f64 implementations (relative error
//! ~1e-15, far below the 1e-7 needed):
//!   |x| < 2: erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))
//!            (all terms positive: no cancellation; <= 32 terms);
//!   |x| >= 2: erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
//!            Laplace's continued fraction, evaluated with the modified Lentz method (<= 60
//!            steps); erfc is 0 beyond x = 27.5 where it underflows f64 anyway.
//! GELU uses `0.5 x erfc(-x/sqrt2)`, which equals `0.5 x (1 + erf(x/sqrt2))` but keeps full
//! relative accuracy for negative x.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};

/// Where the power series hands over to the continued fraction.
const SERIES_LIMIT: f64 = 2.0;
/// erfc(x) for x above this is below the smallest f64 subnormal.
const ERFC_UNDERFLOW: f64 = 27.5;

/// Error function, f64.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < SERIES_LIMIT {
        erf_series(x)
    } else {
        (1.0 - erfc_continued_fraction(a)).copysign(x)
    }
}

/// Complementary error function `1 - erf(x)`, f64, accurate in relative terms for large x.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x >= SERIES_LIMIT {
        erfc_continued_fraction(x)
    } else if x <= -SERIES_LIMIT {
        2.0 - erfc_continued_fraction(-x)
    } else {
        1.0 - erf_series(x)
    }
}

/// erf by the series 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!!, for |x| < 2.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0u32;
    while term.abs() > sum.abs() * 1e-17 && n < 200 {
        n += 1;
        term *= 2.0 * x2 / (2 * n + 1) as f64;
        sum += term;
    }
    FRAC_2_SQRT_PI * (-x2).exp() * sum
}

/// erfc by Laplace's continued fraction (modified Lentz), for x >= 2.
fn erfc_continued_fraction(x: f64) -> f64 {
    if x > ERFC_UNDERFLOW {
        return 0.0;
    }
    const TINY: f64 = 1e-300;
    // f = x + a1/(x + a2/(x + ...)) with a_n = n/2.
    let mut f = x;
    let mut c = f;
    let mut d = 0.0;
    for n in 1..1000u32 {
        let a = 0.5 * n as f64;
        d = x + a * d;
        if d == 0.0 {
            d = TINY;
        }
        c = x + a / c;
        if c == 0.0 {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (PI.sqrt() * f)
}

fn map(x: &[f32], out: &mut [f32], op: &str, f: impl Fn(f64) -> f64) {
    assert_eq!(x.len(), out.len(), "{op}: x and out lengths differ");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v as f64) as f32;
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Exact GELU: `0.5 x (1 + erf(x / sqrt 2))` (torch `gelu`, approximate="none").
pub fn gelu_erf(x: &[f32], out: &mut [f32]) {
    map(x, out, "gelu_erf", |v| 0.5 * v * erfc(-v * FRAC_1_SQRT_2));
}

/// Tanh GELU: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (torch approximate="tanh",
/// HF "gelu_pytorch_tanh" / "gelu_new").
pub fn gelu_tanh(x: &[f32], out: &mut [f32]) {
    let k = (2.0 / PI).sqrt();
    map(x, out, "gelu_tanh", |v| {
        0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
    });
}

/// CLIP's quick GELU: `x * sigmoid(1.702 x)`.
pub fn quick_gelu(x: &[f32], out: &mut [f32]) {
    map(x, out, "quick_gelu", |v| v * sigmoid(1.702 * v));
}

/// SiLU / swish: `x * sigmoid(x)`.
pub fn silu(x: &[f32], out: &mut [f32]) {
    map(x, out, "silu", |v| v * sigmoid(v));
}

/// The gated MLP activation of Llama/Qwen2: `out = silu(gate) * up`, one rounding.
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul: gate and up lengths differ");
    assert_eq!(
        gate.len(),
        out.len(),
        "silu_mul: gate and out lengths differ"
    );
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let g = g as f64;
        *o = (g * sigmoid(g) * u as f64) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE};

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    // (x, erf(x), erfc(x)) from Python's math.erf / math.erfc (libm, ~1 ulp).
    const ERF_TABLE: [(f64, f64, f64); 10] = [
        (0.1, 0.1124629160182849, 0.8875370839817152),
        (0.5, 0.5204998778130465, 0.4795001221869535),
        (1.0, 0.8427007929497149, 0.15729920705028513),
        (1.5, 0.9661051464753108, 0.033894853524689274),
        (1.9999, 0.9953201979070294, 0.004679802092970608),
        (2.0, 0.9953222650189527, 0.004677734981047265),
        (2.5, 0.999593047982555, 0.0004069520174449589),
        (3.0, 0.9999779095030014, 2.2090496998585438e-05),
        (4.5, 0.9999999998033839, 1.9661604415428873e-10),
        (6.0, 1.0, 2.1519736712498916e-17),
    ];

    #[test]
    fn erf_and_erfc_match_libm_values() {
        for (x, e, ec) in ERF_TABLE {
            assert!(rel(erf(x), e) < 1e-14, "erf({x}) = {} want {e}", erf(x));
            assert!(rel(erf(-x), -e) < 1e-14, "erf(-{x})");
            // erfc loses a little to 1 - erf just below the hand-over point.
            assert!(
                rel(erfc(x), ec) < 1e-12,
                "erfc({x}) = {} want {ec}",
                erfc(x)
            );
            assert!(rel(erfc(-x), 1.0 + e) < 1e-14, "erfc(-{x})");
        }
    }

    #[test]
    fn erf_special_values() {
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(f64::INFINITY), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert_eq!(erfc(f64::INFINITY), 0.0);
        assert_eq!(erfc(f64::NEG_INFINITY), 2.0);
        assert_eq!(erfc(0.0), 1.0);
        assert!(erf(f64::NAN).is_nan() && erfc(f64::NAN).is_nan());
        // Tiny arguments: erf(x) ~ 2x/sqrt(pi).
        assert!(rel(erf(1e-10), FRAC_2_SQRT_PI * 1e-10) < 1e-15);
    }

    #[test]
    fn series_and_continued_fraction_agree_at_the_hand_over() {
        for x in [1.5, 1.9, 2.0, 2.1, 2.5] {
            let s = 1.0 - erf_series(x);
            let c = erfc_continued_fraction(x);
            assert!(rel(s, c) < 1e-11, "x {x}: series {s} cf {c}");
        }
    }

    const ACT_X: [f32; 12] = [
        -6.0, -3.0, -1.2345, -0.5, -1e-3, 0.0, 1e-3, 0.25, 0.7, 1.0, 2.5, 5.0,
    ];

    /// Values from torch (float64) at `ACT_X`.
    fn check(name: &str, f: fn(&[f32], &mut [f32]), want: [f64; 12]) {
        let mut out = [0.0f32; 12];
        f(&ACT_X, &mut out);
        for i in 0..12 {
            let (got, w) = (out[i] as f64, want[i]);
            let err = if w == 0.0 { got.abs() } else { rel(got, w) };
            assert!(err < 2e-7, "{name}({}) = {got}, torch {w}", ACT_X[i]);
        }
    }

    #[test]
    fn gelu_erf_matches_torch() {
        check(
            "gelu_erf",
            gelu_erf,
            [
                -5.919525869479969e-09,
                -0.00404969409489031,
                -0.13395352519121634,
                -0.15426876936299344,
                -0.000499601057786089,
                0.0,
                0.000500398942213911,
                0.14967658142073093,
                0.5306254434438489,
                0.841344746068543,
                2.4844758366855597,
                4.999998566742141,
            ],
        );
    }

    #[test]
    fn gelu_tanh_matches_torch() {
        check(
            "gelu_tanh",
            gelu_tanh,
            [
                -8.43964897967453e-11,
                -0.0036373920817729943,
                -0.13417433606741885,
                -0.15428599017485606,
                -0.000499601057786418,
                0.0,
                0.000500398942213582,
                0.149675350701685,
                0.5305701347051167,
                0.8411919906082768,
                2.484915733910001,
                4.999999770820381,
            ],
        );
    }

    #[test]
    fn quick_gelu_matches_torch() {
        check(
            "quick_gelu",
            quick_gelu,
            [
                -0.00022035354978739243,
                -0.01807130970778597,
                -0.1345458191849366,
                -0.1496115633936199,
                -0.0004995745001027158,
                0.0,
                0.0005004254998972841,
                0.1511996499001942,
                0.5368939517231501,
                0.8457957659328212,
                2.46501383495143,
                4.998992983732648,
            ],
        );
    }

    #[test]
    fn silu_matches_torch() {
        check(
            "silu",
            silu,
            [
                -0.014835738939808647,
                -0.14227761953270035,
                -0.27824986959881703,
                -0.1887703343990727,
                -0.0004997500000208334,
                0.0,
                0.0005002499999791667,
                0.14054412522144952,
                0.46773144051771626,
                0.7310585786300049,
                2.3103545499468914,
                4.966535745378576,
            ],
        );
    }

    #[test]
    fn gelu_variants_agree_roughly_and_saturate() {
        let mut rng = Rng::new(21);
        let x = rng.vec(1001, -8.0, 8.0);
        let (mut a, mut b) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        gelu_erf(&x, &mut a);
        gelu_tanh(&x, &mut b);
        for i in 0..x.len() {
            assert!(
                (a[i] - b[i]).abs() < 1e-3,
                "x {}: {} vs {}",
                x[i],
                a[i],
                b[i]
            );
        }
        let mut out = [0.0f32; 4];
        gelu_erf(&[-100.0, 100.0, -1e30, 1e30], &mut out);
        assert_eq!(out, [-0.0, 100.0, -0.0, 1e30]);
        silu(&[-1000.0, 1000.0, -1e30, 1e30], &mut out);
        assert_eq!(out, [-0.0, 1000.0, -0.0, 1e30]);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn silu_mul_is_silu_times_up() {
        let mut rng = Rng::new(22);
        let n = 257;
        let gate = rng.vec(n, -6.0, 6.0);
        let up = rng.vec(n, -3.0, 3.0);
        let mut s = vec![0.0; n];
        silu(&gate, &mut s);
        let want: Vec<f32> = s.iter().zip(&up).map(|(a, b)| a * b).collect();
        let mut got = vec![0.0; n];
        silu_mul(&gate, &up, &mut got);
        assert_nmse("silu_mul", &got, &want, NMSE_F32_ELEMENTWISE);
    }

    #[test]
    fn activations_match_their_f32_formulas() {
        // Independent f32 evaluation of the closed forms (not via erf).
        let mut rng = Rng::new(23);
        let x = rng.vec(999, -10.0, 10.0);
        let mut got = vec![0.0; x.len()];
        let k = (2.0f32 / std::f32::consts::PI).sqrt();
        type Case = (&'static str, fn(&[f32], &mut [f32]), fn(f32, f32) -> f32);
        let cases: [Case; 3] = [
            ("gelu_tanh", gelu_tanh, |v, k| {
                0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
            }),
            ("quick_gelu", quick_gelu, |v, _| {
                v / (1.0 + (-1.702 * v).exp())
            }),
            ("silu", silu, |v, _| v / (1.0 + (-v).exp())),
        ];
        for (name, f, formula) in cases {
            f(&x, &mut got);
            let want: Vec<f32> = x.iter().map(|&v| formula(v, k)).collect();
            assert_nmse(name, &got, &want, NMSE_F32_ELEMENTWISE);
        }
    }
}
