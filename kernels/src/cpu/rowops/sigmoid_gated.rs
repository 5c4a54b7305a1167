//! Activations of the form `x * sigmoid(g(x))` on the vector `exp` of this module:
//! `gelu_tanh` (`gelu_pytorch_tanh`: g = 2 sqrt(2/pi) (x + 0.044715 x^3), since
//! 0.5 (1 + tanh(u)) = sigmoid(2u)), `quick_gelu` (g = 1.702 x) and `silu` (g = x).
//! Computed in f32 blocks of `BLOCK` through a stack buffer, split over rayon for large
//! inputs; the scalar level is the reference. Within 1e-10 NMSE of the f64 reference.

use rayon::prelude::*;

use super::{exp, PAR_MIN};
use crate::cpu::isa::Isa;
use crate::cpu::reference;

const BLOCK: usize = 256;

/// `out = x * sigmoid(gate(x))` block by block: `gate` fills `-g(x)` in place.
fn gated(isa: Isa, x: &[f32], out: &mut [f32], neg_gate: impl Fn(f32) -> f32 + Sync) {
    assert_eq!(x.len(), out.len(), "activation: x and out lengths differ");
    let run = |x: &[f32], out: &mut [f32]| {
        let mut t = [0.0f32; BLOCK];
        let mut e = [0.0f32; BLOCK];
        for (xs, os) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            let n = xs.len();
            for (t, &v) in t[..n].iter_mut().zip(xs) {
                *t = neg_gate(v);
            }
            exp(isa, &t[..n], &mut e[..n]);
            for ((o, &v), &e) in os.iter_mut().zip(xs).zip(&e[..n]) {
                *o = v / (1.0 + e);
            }
        }
    };
    if x.len() < PAR_MIN {
        return run(x, out);
    }
    let chunk = (x.len() / rayon::current_num_threads().max(1)).div_ceil(BLOCK) * BLOCK;
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(o, x)| run(x, o));
}

/// `gelu_pytorch_tanh`.
pub fn gelu_tanh(isa: Isa, x: &[f32], out: &mut [f32]) {
    if isa == Isa::Scalar {
        return reference::gelu_tanh(x, out);
    }
    let k = (8.0 / std::f64::consts::PI).sqrt() as f32; // 2 sqrt(2 / pi)
    gated(isa, x, out, move |v| -k * (v + 0.044715 * v * v * v));
}

/// CLIP's `quick_gelu`: `x * sigmoid(1.702 x)`.
pub fn quick_gelu(isa: Isa, x: &[f32], out: &mut [f32]) {
    if isa == Isa::Scalar {
        return reference::quick_gelu(x, out);
    }
    gated(isa, x, out, |v| -1.702 * v);
}

/// `x * sigmoid(x)`.
pub fn silu(isa: Isa, x: &[f32], out: &mut [f32]) {
    if isa == Isa::Scalar {
        return reference::silu(x, out);
    }
    gated(isa, x, out, |v| -v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE};

    #[test]
    fn match_the_reference_at_every_isa() {
        let mut rng = Rng::new(5);
        for n in [1usize, 7, 255, 257, 1031, 40_003] {
            let mut x = rng.vec(n, -9.0, 9.0);
            if n > 4 {
                x[..4].copy_from_slice(&[-90.0, 90.0, -0.001, 0.002]);
            }
            type Pair = (
                fn(Isa, &[f32], &mut [f32]),
                fn(&[f32], &mut [f32]),
                &'static str,
            );
            let pairs: [Pair; 3] = [
                (gelu_tanh, reference::gelu_tanh, "gelu_tanh"),
                (quick_gelu, reference::quick_gelu, "quick_gelu"),
                (silu, reference::silu, "silu"),
            ];
            for (fast, slow, name) in pairs {
                let mut expected = vec![0.0; n];
                slow(&x, &mut expected);
                for isa in Isa::available() {
                    let mut got = vec![f32::NAN; n];
                    fast(isa, &x, &mut got);
                    assert_nmse(
                        &format!("{name} {isa:?} n={n}"),
                        &got,
                        &expected,
                        NMSE_F32_ELEMENTWISE,
                    );
                }
            }
        }
    }
}
