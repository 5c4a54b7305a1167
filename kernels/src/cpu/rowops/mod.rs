//! Vectorized row ops: elementwise `add` / `mul` (suffix broadcast), `scale`, `silu_mul`,
//! `exp`, `rms_norm` over the last axis and `rope`. Same contracts as the functions of the same
//! name in `cpu::reference` (which the scalar level runs); f32 math throughout. One file
//! each, with its own ISA bodies: `softmax`, `layer_norm`, `gelu_erf`, `sigmoid_gated`
//! (gelu_tanh, quick_gelu, silu), `embedding`, `argmax`, and `copy` (strided copy, KV-cache
//! write, pixel shuffle). Buffers sized by the call come from per-thread `scratch`, so
//! steady-state calls (decode) allocate nothing.
//!
//! Each ISA file holds loop bodies over `n` elements with `n` a multiple of the lane count;
//! this file splits rows into full vectors plus a tail that it pads into a stack buffer of
//! one vector, so the ISA code never needs masks. Large calls are split over rayon.
//!
//! Accuracy (vs the f64 references): elementwise ops are exact IEEE f32; `exp` is a
//! Cephes-style range reduction plus degree-6 polynomial (~1 ulp); `silu_mul` is
//! `g * u / (1 + exp(-g))` (a few ulp); `rms_norm` sums squares in f32 lanes, forms
//! `1 / sqrt(mean + eps)` in f64 and multiplies `x * inv * w` in f32 (~2 ulp).
//!
//! Criterion (`cargo bench --bench kernels -- rowops`), 2-core AMD EPYC VM, load ~3:
//!
//! | level | rms_norm 512x576 (bf16 w) | silu_mul 512x1536 | add 512x576 |
//! |---|---|---|---|
//! | scalar (= reference, f64) | 404 us | 2441 us | 34 us |
//! | avx2   | 28 us | 175 us | 26 us |
//! | avx512 | 47 us | 123 us | 44 us |
//!
//! (the avx2 / avx512 gap on the memory-bound ops is within this loaded machine's noise.)

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

mod argmax;
mod copy;
mod embedding;
mod gelu_erf;
mod layer_norm;
pub(crate) mod scratch;
mod sigmoid_gated;
mod softmax;

use rayon::prelude::*;

use crate::cpu::isa::Isa;
use crate::cpu::reference;
use crate::cpu::simd::widen_into;
use crate::WeightSlice;

/// Elements below which a call stays on the calling thread.
const PAR_MIN: usize = 1 << 15;

pub use argmax::argmax;
pub use copy::{copy_strided, kv_write, pixel_shuffle, MAX_RANK};
pub use embedding::embedding;
pub use gelu_erf::gelu_erf;
pub use layer_norm::layer_norm;
pub use sigmoid_gated::{gelu_tanh, quick_gelu, silu};
pub use softmax::softmax;

type Unary = unsafe fn(*const f32, *mut f32, usize);
type Binary = unsafe fn(*const f32, *const f32, *mut f32, usize);

/// The loop bodies of one ISA level.
#[derive(Clone, Copy)]
struct Bodies {
    lanes: usize,
    exp: Unary,
    add: Binary,
    mul: Binary,
    silu_mul: Binary,
    scale: unsafe fn(*const f32, f32, *mut f32, usize),
    scale_mul: unsafe fn(*const f32, f32, *const f32, *mut f32, usize),
    sum_sq: unsafe fn(*const f32, usize) -> f32,
    rotate: Rotate,
}

type Rotate = unsafe fn(*const f32, *const f32, *const f32, *const f32, *mut f32, *mut f32, usize);

/// The bodies of `isa`, or `None` for the scalar level. Panics if the CPU lacks `isa`.
fn bodies(isa: Isa) -> Option<Bodies> {
    isa.assert_supported();
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(Bodies {
            lanes: 16,
            exp: avx512::exp,
            add: avx512::add,
            mul: avx512::mul,
            silu_mul: avx512::silu_mul,
            scale: avx512::scale,
            scale_mul: avx512::scale_mul,
            sum_sq: avx512::sum_sq,
            rotate: avx512::rotate,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(Bodies {
            lanes: 8,
            exp: avx2::exp,
            add: avx2::add,
            mul: avx2::mul,
            silu_mul: avx2::silu_mul,
            scale: avx2::scale,
            scale_mul: avx2::scale_mul,
            sum_sq: avx2::sum_sq,
            rotate: avx2::rotate,
        }),
        _ => None,
    }
}

/// Widest vector of any level, for the padded tails.
const MAX_LANES: usize = 16;

/// Runs `body(inputs.., out, n)` over equal-length slices: full vectors in place, the tail
/// through zero-padded buffers of one vector. `body` must be a body of a supported level
/// with `lanes` lanes (callers get both from [`bodies`]).
fn run_binary(body: Binary, lanes: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    debug_assert!(a.len() == out.len() && b.len() == out.len());
    let n = out.len();
    let full = n / lanes * lanes;
    // SAFETY: `body` belongs to a level the CPU supports (`bodies` checked it); it reads
    // and writes exactly `full` (a multiple of lanes) elements, all inside the slices.
    unsafe { body(a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), full) };
    if full < n {
        let (mut ta, mut tb, mut to) = ([0.0f32; MAX_LANES], [0.0; MAX_LANES], [0.0; MAX_LANES]);
        ta[..n - full].copy_from_slice(&a[full..]);
        tb[..n - full].copy_from_slice(&b[full..]);
        // SAFETY: as above, on buffers of MAX_LANES >= lanes elements.
        unsafe { body(ta.as_ptr(), tb.as_ptr(), to.as_mut_ptr(), lanes) };
        out[full..].copy_from_slice(&to[..n - full]);
    }
}

/// [`run_binary`] split over rayon for large inputs (chunks are multiples of `lanes`).
fn par_binary(body: Binary, lanes: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    let n = out.len();
    if n < PAR_MIN {
        return run_binary(body, lanes, a, b, out);
    }
    let chunk = (n / rayon::current_num_threads().max(1)).div_ceil(64) * 64;
    out.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
        .for_each(|(o, (a, b))| run_binary(body, lanes, a, b, o));
}

/// `out = exp(x)` elementwise (scalar level: f64 `exp` rounded once).
pub fn exp(isa: Isa, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "exp: x and out lengths differ");
    let Some(k) = bodies(isa) else {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (v as f64).exp() as f32;
        }
        return;
    };
    let n = x.len();
    let full = n / k.lanes * k.lanes;
    // SAFETY: as in `run_binary`.
    unsafe { (k.exp)(x.as_ptr(), out.as_mut_ptr(), full) };
    if full < n {
        let (mut tx, mut to) = ([0.0f32; MAX_LANES], [0.0f32; MAX_LANES]);
        tx[..n - full].copy_from_slice(&x[full..]);
        // SAFETY: as in `run_binary`.
        unsafe { (k.exp)(tx.as_ptr(), to.as_mut_ptr(), k.lanes) };
        out[full..].copy_from_slice(&to[..n - full]);
    }
}

/// `out = silu(gate) * up` (the gated MLP activation of Llama / Qwen2).
pub fn silu_mul(isa: Isa, gate: &[f32], up: &[f32], out: &mut [f32]) {
    let Some(k) = bodies(isa) else {
        return reference::silu_mul(gate, up, out);
    };
    assert_eq!(gate.len(), up.len(), "silu_mul: gate and up lengths differ");
    assert_eq!(
        gate.len(),
        out.len(),
        "silu_mul: gate and out lengths differ"
    );
    par_binary(k.silu_mul, k.lanes, gate, up, out);
}

/// `out = a + b`, `b` a suffix broadcast over `a` (see `reference::add`).
pub fn add(isa: Isa, a: &[f32], b: &[f32], out: &mut [f32]) {
    match bodies(isa) {
        Some(k) => broadcast(k, k.add, a, b, out, "add"),
        None => reference::add(a, b, out),
    }
}

/// `out = a * b`, `b` a suffix broadcast over `a` (see `reference::mul`).
pub fn mul(isa: Isa, a: &[f32], b: &[f32], out: &mut [f32]) {
    match bodies(isa) {
        Some(k) => broadcast(k, k.mul, a, b, out, "mul"),
        None => reference::mul(a, b, out),
    }
}

fn broadcast(k: Bodies, body: Binary, a: &[f32], b: &[f32], out: &mut [f32], op: &str) {
    assert_eq!(a.len(), out.len(), "{op}: a and out lengths differ");
    if a.is_empty() {
        return;
    }
    assert!(
        a.len().checked_rem(b.len()) == Some(0),
        "{op}: b.len() = {} must divide a.len() = {}",
        b.len(),
        a.len()
    );
    if b.len() == a.len() {
        par_binary(body, k.lanes, a, b, out);
    } else if b.len() < k.lanes {
        // Short suffixes (a scalar, a tiny bias): the plain loop is as fast.
        match op {
            "add" => reference::add(a, b, out),
            _ => reference::mul(a, b, out),
        }
    } else {
        let d = b.len();
        let rows = |(o, a): (&mut [f32], &[f32])| run_binary(body, k.lanes, a, b, o);
        if a.len() < PAR_MIN {
            out.chunks_mut(d).zip(a.chunks(d)).for_each(rows);
        } else {
            out.par_chunks_mut(d).zip(a.par_chunks(d)).for_each(rows);
        }
    }
}

/// `out = x * factor`.
pub fn scale(isa: Isa, x: &[f32], factor: f32, out: &mut [f32]) {
    let Some(k) = bodies(isa) else {
        return reference::scale(x, factor, out);
    };
    assert_eq!(x.len(), out.len(), "scale: x and out lengths differ");
    let n = x.len();
    let full = n / k.lanes * k.lanes;
    // SAFETY: as in `run_binary`.
    unsafe { (k.scale)(x.as_ptr(), factor, out.as_mut_ptr(), full) };
    for i in full..n {
        out[i] = x[i] * factor;
    }
}

/// RMSNorm over rows of `dim`: `out = x / sqrt(mean(x^2) + eps) * weight`.
pub fn rms_norm(isa: Isa, x: &[f32], weight: WeightSlice, eps: f32, dim: usize, out: &mut [f32]) {
    let Some(k) = bodies(isa) else {
        return reference::rms_norm(x, weight, eps, dim, out);
    };
    assert_eq!(x.len(), out.len(), "rms_norm: x and out lengths differ");
    assert_eq!(
        weight.len(),
        dim,
        "rms_norm: weight must hold dim = {dim} elements"
    );
    if x.is_empty() {
        return;
    }
    assert!(
        x.len().checked_rem(dim) == Some(0),
        "rms_norm: x.len() = {} is not a multiple of dim = {dim}",
        x.len()
    );
    scratch::with_f32(dim, |w| {
        widen_into(isa, weight, 0, w);
        let w = &*w;
        let row = |(o, x): (&mut [f32], &[f32])| rms_norm_row(k, x, w, eps, o);
        if x.len() < PAR_MIN {
            out.chunks_mut(dim).zip(x.chunks(dim)).for_each(row);
        } else {
            out.par_chunks_mut(dim).zip(x.par_chunks(dim)).for_each(row);
        }
    });
}

fn rms_norm_row(k: Bodies, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len();
    let full = n / k.lanes * k.lanes;
    // SAFETY: as in `run_binary` (x, w and out all hold n elements).
    let mut ss = unsafe { (k.sum_sq)(x.as_ptr(), full) } as f64;
    ss += x[full..].iter().map(|&v| v as f64 * v as f64).sum::<f64>();
    let inv = (1.0 / (ss / n as f64 + eps as f64).sqrt()) as f32;
    // SAFETY: as above.
    unsafe { (k.scale_mul)(x.as_ptr(), inv, w.as_ptr(), out.as_mut_ptr(), full) };
    for i in full..n {
        out[i] = x[i] * inv * w[i];
    }
}

/// RoPE, HF `rotate_half` layout, same contract as `reference::rope`: the cos / sin tables
/// are the reference's (f64 trig of the f32 angle, rounded to f32); the rotation is f32
/// (one FMA: ~1 ulp, more where the two products cancel). Tokens are split over rayon.
pub fn rope(
    isa: Isa,
    x: &[f32],
    positions: &[i64],
    n_heads: usize,
    head_dim: usize,
    inv_freq: &[f32],
    out: &mut [f32],
) {
    let Some(k) = bodies(isa) else {
        return reference::rope(x, positions, n_heads, head_dim, inv_freq, out);
    };
    let half = inv_freq.len();
    assert!(
        2 * half <= head_dim,
        "rope: rotary_dim = {} exceeds head_dim = {head_dim}",
        2 * half
    );
    let token_len = n_heads * head_dim;
    assert_eq!(
        x.len(),
        positions.len() * token_len,
        "rope: x must be [tokens = {}, n_heads = {n_heads}, head_dim = {head_dim}]",
        positions.len()
    );
    assert_eq!(x.len(), out.len(), "rope: x and out lengths differ");
    if token_len == 0 {
        return;
    }
    let token = |(pos, (x, out)): (&i64, (&[f32], &mut [f32]))| {
        scratch::with_f32(2 * half, |cs| {
            rope_token(k, *pos, x, head_dim, inv_freq, cs, out)
        })
    };
    let chunks = positions
        .iter()
        .zip(x.chunks(token_len).zip(out.chunks_mut(token_len)));
    if x.len() < PAR_MIN {
        chunks.for_each(token);
    } else {
        positions
            .par_iter()
            .zip(x.par_chunks(token_len).zip(out.par_chunks_mut(token_len)))
            .for_each(token);
    }
}

/// RoPE of one token's heads; `cos_sin` is scratch of `2 * inv_freq.len()`.
fn rope_token(
    k: Bodies,
    pos: i64,
    x: &[f32],
    head_dim: usize,
    inv_freq: &[f32],
    cos_sin: &mut [f32],
    out: &mut [f32],
) {
    let half = inv_freq.len();
    let full = half / k.lanes * k.lanes;
    let (cos, sin) = cos_sin.split_at_mut(half);
    for i in 0..half {
        let angle = (pos as f32 * inv_freq[i]) as f64;
        cos[i] = angle.cos() as f32;
        sin[i] = angle.sin() as f32;
    }
    for (xh, oh) in x.chunks_exact(head_dim).zip(out.chunks_exact_mut(head_dim)) {
        let (o1, o2) = oh.split_at_mut(half);
        // SAFETY: as in `run_binary`; every pointer has >= full elements (x1, o1, cos,
        // sin: half; x2, o2: head_dim - half >= half).
        unsafe {
            (k.rotate)(
                xh.as_ptr(),
                xh.as_ptr().add(half),
                cos.as_ptr(),
                sin.as_ptr(),
                o1.as_mut_ptr(),
                o2.as_mut_ptr(),
                full,
            )
        };
        for i in full..half {
            let (x1, x2) = (xh[i], xh[i + half]);
            o1[i] = x1.mul_add(cos[i], -(x2 * sin[i]));
            o2[i] = x2.mul_add(cos[i], x1 * sin[i]);
        }
        o2[half..].copy_from_slice(&xh[2 * half..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE, NMSE_F32_REDUCTION};
    use half::{bf16, f16};

    const SIZES: [usize; 6] = [1, 7, 17, 33, 577, 40_001];

    #[test]
    fn exp_matches_f64_exp() {
        let mut rng = Rng::new(71);
        for isa in Isa::available() {
            for n in SIZES {
                let x = rng.vec(n, -87.0, 88.0);
                let want: Vec<f32> = x.iter().map(|&v| (v as f64).exp() as f32).collect();
                let mut got = vec![0.0; n];
                exp(isa, &x, &mut got);
                // Relative error per element (the values span 70 orders of magnitude).
                for i in 0..n {
                    let rel = ((got[i] as f64 - want[i] as f64) / want[i] as f64).abs();
                    assert!(
                        rel < 4e-7,
                        "{isa} exp({}) = {} want {}",
                        x[i],
                        got[i],
                        want[i]
                    );
                }
            }
            let mut out = [0.0f32; 4];
            exp(isa, &[0.0, 1000.0, f32::INFINITY, -1.0], &mut out);
            assert_eq!(out[..3], [1.0, f32::INFINITY, f32::INFINITY], "{isa}");
        }
    }

    #[test]
    fn silu_mul_matches_reference() {
        let mut rng = Rng::new(72);
        for isa in Isa::available() {
            for n in SIZES {
                let g = rng.vec(n, -12.0, 12.0);
                let u = rng.vec(n, -3.0, 3.0);
                let (mut got, mut want) = (vec![0.0; n], vec![0.0; n]);
                silu_mul(isa, &g, &u, &mut got);
                reference::silu_mul(&g, &u, &mut want);
                assert_nmse(
                    &format!("{isa} silu_mul {n}"),
                    &got,
                    &want,
                    NMSE_F32_ELEMENTWISE,
                );
            }
            let mut out = [0.0f32; 4];
            silu_mul(isa, &[-1000.0, 1000.0, -1e30, 1e30], &[1.0; 4], &mut out);
            assert_eq!(out, [-0.0, 1000.0, -0.0, 1e30], "{isa}");
        }
    }

    #[test]
    fn add_mul_scale_match_reference_exactly() {
        let mut rng = Rng::new(73);
        for isa in Isa::available() {
            for n in SIZES {
                let a = rng.vec(n * 3, -5.0, 5.0);
                for b_len in [n * 3, n, 1] {
                    let b = rng.vec(b_len, -2.0, 2.0);
                    let (mut got, mut want) = (vec![0.0; a.len()], vec![0.0; a.len()]);
                    add(isa, &a, &b, &mut got);
                    reference::add(&a, &b, &mut want);
                    assert_eq!(got, want, "{isa} add {n} b {b_len}");
                    assert_nmse("add", &got, &want, NMSE_F32_ELEMENTWISE);
                    mul(isa, &a, &b, &mut got);
                    reference::mul(&a, &b, &mut want);
                    assert_eq!(got, want, "{isa} mul {n} b {b_len}");
                }
                let (mut got, mut want) = (vec![0.0; a.len()], vec![0.0; a.len()]);
                scale(isa, &a, -0.3, &mut got);
                reference::scale(&a, -0.3, &mut want);
                assert_eq!(got, want, "{isa} scale {n}");
            }
        }
    }

    #[test]
    fn rope_matches_reference() {
        let mut rng = Rng::new(75);
        for isa in Isa::available() {
            // (tokens, heads, head_dim, rotary_dim): full, partial and odd halves.
            for (t, h, d, r) in [
                (1, 1, 2, 2),
                (3, 2, 14, 14),
                (5, 3, 64, 64),
                (7, 2, 40, 24),
                (130, 9, 64, 64),
            ] {
                let x = rng.vec(t * h * d, -3.0, 3.0);
                let pos: Vec<i64> = (0..t as i64).map(|p| p * 37 % 4001).collect();
                let inv = reference::rope_inv_freq(r, 10000.0);
                let (mut got, mut want) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                rope(isa, &x, &pos, h, d, &inv, &mut got);
                reference::rope(&x, &pos, h, d, &inv, &mut want);
                let what = format!("{isa} rope {t}x{h}x{d} rot {r}");
                assert_nmse(&what, &got, &want, NMSE_F32_ELEMENTWISE);
            }
        }
    }

    #[test]
    fn rms_norm_matches_reference_for_every_weight_type() {
        let mut rng = Rng::new(74);
        for isa in Isa::available() {
            for (rows, dim) in [(1, 1), (3, 7), (5, 17), (2, 33), (64, 577), (3, 2049)] {
                let x = rng.vec(rows * dim, -4.0, 4.0);
                let w = rng.vec(dim, -2.0, 2.0);
                let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
                let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                for ws in [
                    WeightSlice::F32(&w),
                    WeightSlice::BF16(&wb),
                    WeightSlice::F16(&wh),
                ] {
                    let (mut got, mut want) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                    rms_norm(isa, &x, ws, 1e-5, dim, &mut got);
                    reference::rms_norm(&x, ws, 1e-5, dim, &mut want);
                    let what = format!("{isa} rms_norm {rows}x{dim}");
                    assert_nmse(&what, &got, &want, NMSE_F32_REDUCTION);
                }
            }
        }
    }
}
