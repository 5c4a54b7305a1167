//! Reference rotary position embedding (RoPE), HF `rotate_half` layout (Llama, Qwen2, ...).
//!
//! Layout: `x` and `out` are contiguous `[tokens, n_heads, head_dim]`, `tokens =
//! positions.len()`. `rotary_dim = 2 * inv_freq.len() <= head_dim`; with `half =
//! rotary_dim / 2`, dim `i < half` pairs with dim `i + half` (not interleaved):
//!   angle = pos * inv_freq[i]            (f32 multiply, as HF's `inv_freq @ position_ids`)
//!   c, s  = cos(angle), sin(angle)       (of that f32 angle, rounded to f32 like HF's tables)
//!   out[i]        = x[i] * c - x[i + half] * s
//!   out[i + half] = x[i + half] * c + x[i] * s
//! Dims `>= rotary_dim` are copied unchanged (partial rotary). The two products and the sum
//! are formed in f64 and rounded once. Frequency scaling (Llama 3, YaRN, ...) is the caller's
//! business: it only changes `inv_freq`.

/// `inv_freq[i] = 1 / theta^(2i / rotary_dim)` for `i < rotary_dim / 2`, computed like HF
/// `_compute_default_rope_parameters`: the exponent is an f32 (float arange / dim) and the
/// power and the reciprocal are f32 operations.
pub fn rope_inv_freq(rotary_dim: usize, theta: f32) -> Vec<f32> {
    (0..rotary_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / rotary_dim as f32;
            1.0f32 / theta.powf(exponent)
        })
        .collect()
}

/// Applies RoPE to every head of every token; `positions[t]` is token `t`'s position.
pub fn rope(
    x: &[f32],
    positions: &[i64],
    n_heads: usize,
    head_dim: usize,
    inv_freq: &[f32],
    out: &mut [f32],
) {
    let tokens = positions.len();
    let half = inv_freq.len();
    assert!(
        2 * half <= head_dim,
        "rope: rotary_dim = {} exceeds head_dim = {head_dim}",
        2 * half
    );
    assert_eq!(
        x.len(),
        tokens * n_heads * head_dim,
        "rope: x must be [tokens = {tokens}, n_heads = {n_heads}, head_dim = {head_dim}]"
    );
    assert_eq!(x.len(), out.len(), "rope: x and out lengths differ");
    let token_len = n_heads * head_dim;
    // Frequency-major, so each (cos, sin) pair is computed once per token with no table
    // (the CPU backend's scalar level runs this in the decode loop, which must not allocate).
    for (t, &pos) in positions.iter().enumerate() {
        for i in 0..half {
            let angle = pos as f32 * inv_freq[i];
            let c = (angle as f64).cos() as f32 as f64;
            let s = (angle as f64).sin() as f32 as f64;
            for h in 0..n_heads {
                let base = t * token_len + h * head_dim;
                let (x1, x2) = (x[base + i] as f64, x[base + i + half] as f64);
                out[base + i] = (x1 * c - x2 * s) as f32;
                out[base + i + half] = (x2 * c + x1 * s) as f32;
            }
        }
        for h in 0..n_heads {
            let base = t * token_len + h * head_dim;
            out[base + 2 * half..base + head_dim]
                .copy_from_slice(&x[base + 2 * half..base + head_dim]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE, NMSE_F32_REDUCTION};

    #[test]
    fn inv_freq_values() {
        assert_eq!(rope_inv_freq(4, 10000.0), vec![1.0, 0.01]);
        let f = rope_inv_freq(128, 500000.0);
        assert_eq!(f.len(), 64);
        assert_eq!(f[0], 1.0);
        for (i, &fi) in f.iter().enumerate() {
            let want = 1.0 / 500000f64.powf(2.0 * i as f64 / 128.0);
            assert!(((fi as f64 - want) / want).abs() < 2e-6, "i {i}");
        }
        assert!(f.windows(2).all(|w| w[1] < w[0]));
        assert!(rope_inv_freq(0, 10000.0).is_empty());
    }

    #[test]
    fn position_zero_is_identity() {
        let mut rng = Rng::new(61);
        let (tokens, n_heads, head_dim) = (3, 5, 18);
        let x = rng.vec(tokens * n_heads * head_dim, -2.0, 2.0);
        let inv = rope_inv_freq(head_dim, 10000.0);
        let mut out = vec![0.0; x.len()];
        rope(&x, &[0, 0, 0], n_heads, head_dim, &inv, &mut out);
        assert_eq!(out, x);
    }

    #[test]
    fn preserves_pair_norms_and_passes_through_extra_dims() {
        let mut rng = Rng::new(62);
        let (n_heads, head_dim, rotary_dim) = (3, 22, 12);
        let positions = [5i64, 17, 1023, 4096, 3];
        let x = rng.vec(positions.len() * n_heads * head_dim, -3.0, 3.0);
        let inv = rope_inv_freq(rotary_dim, 10000.0);
        let mut out = vec![0.0; x.len()];
        rope(&x, &positions, n_heads, head_dim, &inv, &mut out);
        let half = rotary_dim / 2;
        for (xh, oh) in x.chunks(head_dim).zip(out.chunks(head_dim)) {
            for i in 0..half {
                let before = xh[i].hypot(xh[i + half]);
                let after = oh[i].hypot(oh[i + half]);
                assert!((before - after).abs() <= 1e-6 * before.max(1.0));
            }
            assert_eq!(&oh[rotary_dim..], &xh[rotary_dim..]);
        }
    }

    /// Independent formulation: each pair is a complex number multiplied by e^{i angle}.
    #[test]
    fn matches_complex_rotation() {
        let mut rng = Rng::new(63);
        let (n_heads, head_dim) = (4, 14);
        let positions: Vec<i64> = (0..7).map(|_| rng.below(2000) as i64).collect();
        let x = rng.vec(positions.len() * n_heads * head_dim, -1.0, 1.0);
        let inv = rope_inv_freq(head_dim, 10000.0);
        let half = head_dim / 2;
        let mut want = vec![0.0f32; x.len()];
        for (t, &pos) in positions.iter().enumerate() {
            for h in 0..n_heads {
                let base = (t * n_heads + h) * head_dim;
                for i in 0..half {
                    let angle = (pos as f32 * inv[i]) as f64;
                    let (re, im) = (x[base + i] as f64, x[base + i + half] as f64);
                    let (c, s) = (angle.cos(), angle.sin());
                    want[base + i] = (re * c - im * s) as f32;
                    want[base + i + half] = (re * s + im * c) as f32;
                }
            }
        }
        let mut got = vec![0.0; x.len()];
        rope(&x, &positions, n_heads, head_dim, &inv, &mut got);
        assert_nmse("rope", &got, &want, NMSE_F32_ELEMENTWISE);
    }

    /// The point of RoPE: q.k after rotation depends only on the position difference.
    #[test]
    fn dot_product_depends_on_relative_position() {
        let mut rng = Rng::new(64);
        let head_dim = 16;
        let q = rng.vec(head_dim, -1.0, 1.0);
        let k = rng.vec(head_dim, -1.0, 1.0);
        let inv = rope_inv_freq(head_dim, 10000.0);
        let dot_at = |pq: i64, pk: i64| {
            let (mut rq, mut rk) = (vec![0.0; head_dim], vec![0.0; head_dim]);
            rope(&q, &[pq], 1, head_dim, &inv, &mut rq);
            rope(&k, &[pk], 1, head_dim, &inv, &mut rk);
            vec![rq.iter().zip(&rk).map(|(a, b)| a * b).sum::<f32>()]
        };
        let base = dot_at(7, 3);
        assert_nmse("rope relative", &dot_at(11, 7), &base, NMSE_F32_REDUCTION);
        assert_nmse(
            "rope relative",
            &dot_at(104, 100),
            &base,
            NMSE_F32_REDUCTION,
        );
    }
}
