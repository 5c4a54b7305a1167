//! CPU attention: `out = softmax(scale * q k^T + mask [+ causal]) v`, the contract (layouts,
//! `KvStrides`, GQA, causal offset, fully-masked rows give zeros) of
//! `cpu::reference::attention`, f32 math. Three kernels:
//! - AVX-512, `q_len >= MIN_Q_LEN` (prefill, ViT): tiled flash attention (`tiled.rs`);
//! - AVX-512, shorter (decode): split-KV with the vector `exp` (`split_kv.rs`);
//! - AVX2 and scalar: the per-row flash loop below. Per query row, keys are visited in
//!   blocks of `BLOCK`; each block's scores are computed (SIMD dot over `head_dim`), then the
//!   running max / sum / output accumulator are rescaled once per block (online softmax) and
//!   the block's values are added with SIMD axpys. Rayon splits over (batch, head, chunk of
//!   `Q_CHUNK` queries).
//!
//! K/V are read in place (bthd projections or the bhsd cache), f32 or an f16 cache that every
//! kernel widens as it loads (the tiled kernel as it packs `K`). Timings: BENCHMARKS.md.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod split_kv;
#[cfg(target_arch = "x86_64")]
mod split_kv_avx512;
#[cfg(target_arch = "x86_64")]
mod split_kv_scores;
#[cfg(target_arch = "x86_64")]
mod tiled;
#[cfg(target_arch = "x86_64")]
mod tiled_avx512;

use rayon::prelude::*;

use crate::cpu::isa::Isa;
use crate::cpu::kv_element::KvElement;
use crate::cpu::reference::attention::check_operands;
use crate::cpu::reference::{AttentionParams, KvStrides};
use crate::cpu::simd::SendPtr;

/// Keys per online-softmax block.
const BLOCK: usize = 64;
/// Queries per parallel task.
const Q_CHUNK: usize = 16;
/// Score multiply-adds (`q_len kv_len head_dim`, all heads) below which a call (an early
/// decode step) stays on the calling thread.
const PAR_MIN_MACS: usize = 1 << 15;

/// One query row's inputs: `k`/`v` start at the (batch, kv head) base; key `j` is at
/// `j * pos`.
pub(crate) struct Row<'a, T> {
    pub q: &'a [f32],
    pub k: &'a [T],
    pub v: &'a [T],
    pub pos: usize,
    pub visible: usize,
    pub mask: Option<&'a [f32]>,
    pub scale: f32,
}

/// The online-softmax loop over one query row, written once and expanded inside each ISA's
/// `#[target_feature]` function so its `dot`, `axpy` and `scale` primitives inline.
macro_rules! flash_row {
    ($row:expr, $out:expr, $scores:expr, $dot:path, $axpy:path, $scale:path) => {{
        let row = $row;
        let out: &mut [f32] = $out;
        let scores: &mut [f32] = $scores;
        let d = out.len();
        out.fill(0.0);
        let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
        let mut start = 0;
        while start < row.visible {
            let end = (start + BLOCK).min(row.visible);
            let mut block_max = f32::NEG_INFINITY;
            for (j, s) in (start..end).zip(scores.iter_mut()) {
                let kj = &row.k[j * row.pos..][..d];
                let mut x = row.scale * $dot(row.q, kj);
                if let Some(m) = row.mask {
                    x += m[j];
                }
                *s = x;
                block_max = block_max.max(x);
            }
            if block_max > f32::NEG_INFINITY {
                let new_max = max.max(block_max);
                if new_max > max {
                    let corr = (max - new_max).exp();
                    sum *= corr;
                    $scale(out, corr);
                    max = new_max;
                }
                for (j, &s) in (start..end).zip(scores.iter()) {
                    let p = (s - max).exp();
                    if p != 0.0 {
                        sum += p;
                        $axpy(out, p, &row.v[j * row.pos..][..d]);
                    }
                }
            }
            start = end;
        }
        if sum > 0.0 {
            $scale(out, 1.0 / sum);
        } else {
            out.fill(0.0);
        }
    }};
}
pub(crate) use flash_row;

fn dot<T: KvElement>(a: &[f32], b: &[T]) -> f32 {
    a.iter().zip(b).fold(0.0, |s, (&x, &y)| s + x * y.to_f32())
}

fn axpy<T: KvElement>(y: &mut [f32], a: f32, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x.to_f32();
    }
}

fn scale(y: &mut [f32], a: f32) {
    for y in y.iter_mut() {
        *y *= a;
    }
}

fn row_scalar<T: KvElement>(row: &Row<T>, out: &mut [f32], scores: &mut [f32]) {
    flash_row!(row, out, scores, dot, axpy, scale)
}

/// Flash-style attention at `isa`; same arguments and result as the reference, with K/V
/// f32 or an f16 cache (exactly widened: the result is the reference's on the widened K/V).
/// Panics if the CPU lacks `isa` or sizes disagree (as the reference does).
#[allow(clippy::too_many_arguments)] // the reference's arguments plus the ISA
pub fn attention<T: KvElement>(
    isa: Isa,
    q: &[f32],
    k: &[T],
    v: &[T],
    kv: KvStrides,
    mask: Option<&[f32]>,
    p: &AttentionParams,
    out: &mut [f32],
) {
    isa.assert_supported();
    if !check_operands(q, k, v, kv, mask, p, out) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        if p.q_len < tiled::MIN_Q_LEN {
            return split_kv::attention(q, k, v, kv, mask, p, out);
        }
        return tiled::attention(q, k, v, kv, mask, p, out);
    }
    per_row(isa, q, k, v, kv, mask, p, out)
}

/// The per-row kernel (AVX2 and scalar), past the operand checks.
#[allow(clippy::too_many_arguments)] // as `attention`
fn per_row<T: KvElement>(
    isa: Isa,
    q: &[f32],
    k: &[T],
    v: &[T],
    kv: KvStrides,
    mask: Option<&[f32]>,
    p: &AttentionParams,
    out: &mut [f32],
) {
    let AttentionParams {
        batch,
        q_len,
        kv_len,
        n_heads,
        n_kv_heads,
        head_dim,
        scale,
        ..
    } = *p;
    let group = n_heads / n_kv_heads;
    let chunks = q_len.div_ceil(Q_CHUNK);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let (b, qh, c) = (t / (n_heads * chunks), t / chunks % n_heads, t % chunks);
        let kv_base = b * kv.batch + (qh / group) * kv.head;
        let mut scores = [0.0f32; BLOCK];
        for i in c * Q_CHUNK..((c + 1) * Q_CHUNK).min(q_len) {
            let visible = p.visible_keys(i);
            let q_off = ((b * q_len + i) * n_heads + qh) * head_dim;
            let row = Row {
                q: &q[q_off..q_off + head_dim],
                k: &k[kv_base..],
                v: &v[kv_base..],
                pos: kv.pos,
                visible,
                mask: mask.map(|m| &m[(b * q_len + i) * kv_len..][..kv_len]),
                scale,
            };
            // SAFETY: q_off + head_dim <= out.len() (same shape as q); each (b, i, qh) row
            // belongs to exactly one task, so tasks write disjoint rows; `out` outlives the
            // parallel loop.
            let o = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(q_off), head_dim) };
            match isa {
                // SAFETY: `assert_supported` checked the CPU has the AVX2 level.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { avx2::row(&row, o, &mut scores) },
                _ => row_scalar(&row, o, &mut scores),
            }
        }
    };
    let tasks = batch * n_heads * chunks;
    if batch * n_heads * q_len * kv_len * head_dim < PAR_MIN_MACS {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
    use half::f16;

    fn to_f16(x: &[f32]) -> Vec<f16> {
        x.iter().map(|&x| f16::from_f32(x)).collect()
    }

    fn to_f32(x: &[f16]) -> Vec<f32> {
        x.iter().map(|x| x.to_f32()).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        rng: &mut Rng,
        b: usize,
        tq: usize,
        tk: usize,
        nh: usize,
        nkv: usize,
        d: usize,
        causal: bool,
        masked: bool,
        cache: Option<usize>,
    ) {
        let p = AttentionParams {
            batch: b,
            q_len: tq,
            kv_len: tk,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: d,
            scale: 1.0 / (d as f32).sqrt(),
            causal,
        };
        let q = rng.vec(b * tq * nh * d, -2.0, 2.0);
        let (strides, len) = match cache {
            Some(max_seq) => (KvStrides::bhsd(max_seq, nkv, d), b * nkv * max_seq * d),
            None => (KvStrides::bthd(tk, nkv, d), b * tk * nkv * d),
        };
        let k = rng.vec(len, -2.0, 2.0);
        let v = rng.vec(len, -2.0, 2.0);
        let mut mask = rng.vec(b * tq * tk, -3.0, 0.5);
        if masked {
            // Some -inf entries, and one fully masked row.
            for (i, m) in mask.iter_mut().enumerate() {
                if i % 7 == 3 || i < tk {
                    *m = f32::NEG_INFINITY;
                }
            }
        }
        let mask = masked.then_some(mask.as_slice());
        let mut want = vec![0.0; q.len()];
        reference::attention(&q, &k, &v, strides, mask, &p, &mut want);
        // The same K/V as an f16 cache; its reference reads the widened values.
        let (k16, v16) = (to_f16(&k), to_f16(&v));
        let (kw, vw) = (to_f32(&k16), to_f32(&v16));
        let mut want16 = vec![0.0; q.len()];
        reference::attention(&q, &kw, &vw, strides, mask, &p, &mut want16);
        for isa in Isa::available() {
            let what = format!("attention {isa} b{b} q{tq} k{tk} h{nh}/{nkv} d{d} causal={causal} mask={masked} cache={cache:?}");
            let mut got = vec![f32::NAN; q.len()];
            attention(isa, &q, &k, &v, strides, mask, &p, &mut got);
            assert_nmse(&what, &got, &want, NMSE_F32_REDUCTION);
            let mut got = vec![f32::NAN; q.len()];
            attention(isa, &q, &k16, &v16, strides, mask, &p, &mut got);
            assert_nmse(
                &format!("{what} f16 K/V"),
                &got,
                &want16,
                NMSE_F32_REDUCTION,
            );
        }
    }

    #[test]
    fn matches_reference_for_every_isa() {
        let mut rng = Rng::new(101);
        for &(tq, tk) in &[
            (1, 1),
            (1, 7),
            (5, 5),
            (3, 130),
            (67, 67),
            (17, 200),
            (8, 8),
            (40, 33),
        ] {
            for d in [1, 7, 16, 33, 64] {
                for causal in [false, true] {
                    case(&mut rng, 2, tq, tk, 6, 2, d, causal, false, None);
                }
                case(&mut rng, 1, tq, tk, 3, 3, d, false, true, None);
            }
            case(&mut rng, 2, tq, tk, 9, 3, 64, true, false, Some(tk + 13));
        }
    }

    /// Long caches with few heads: the split-KV kernel cuts the keys into several chunks and
    /// combines them (causal rows ending in different chunks, masked keys, fully masked rows).
    #[test]
    fn split_kv_chunks_match_reference() {
        let mut rng = Rng::new(103);
        for &(tq, tk, nh, nkv, d) in &[
            (1, 1000, 3, 1, 64),
            (1, 1031, 9, 3, 64),
            (4, 777, 2, 2, 72),
            (7, 513, 3, 1, 33),
        ] {
            for (causal, masked) in [(false, false), (true, false), (false, true)] {
                case(&mut rng, 1, tq, tk, nh, nkv, d, causal, masked, None);
            }
            case(&mut rng, 1, tq, tk, nh, nkv, d, true, false, Some(tk + 5));
        }
    }
}
