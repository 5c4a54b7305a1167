//! Reference scaled dot-product attention (two-pass softmax, f64 math) and KV-cache writes.
//!
//! Layout:
//!   q, out: `[batch, q_len, n_heads, head_dim]`, contiguous.
//!   k, v:   key/value `j` of batch `b`, kv head `h` is
//!           `k[b * kv.batch + h * kv.head + j * kv.pos ..][..head_dim]` (same for v), which
//!           covers both a contiguous `[B, T, H, D]` projection (`KvStrides::bthd`) and the
//!           preallocated cache `[B, H, max_seq, D]` (`KvStrides::bhsd`).
//!   mask:   optional additive `[batch, q_len, kv_len]` (0 / large negative / -inf).
//! GQA: query head `qh` reads kv head `qh / (n_heads / n_kv_heads)`.
//! Causal: query `i` sees keys `j <= i + (kv_len - q_len)` (queries are the last `q_len`
//! positions of the `kv_len` keys), applied on top of the mask.
//! Per query: s_j = scale * (q . k_j) + mask_j in f64; pass 1 takes the max over visible keys,
//! pass 2 sums exp(s_j - max) and the weighted values; one rounding at the end. A query
//! that sees no key (all masked with -inf, or none visible) gets a zero output row.

use crate::cpu::kv_element::KvElement;

/// Sizes and options of one attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionParams {
    pub batch: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies q.k, usually `1 / sqrt(head_dim)`.
    pub scale: f32,
    pub causal: bool,
}

impl AttentionParams {
    /// Keys query `i` may see: all `kv_len`, or (causal) those up to its own position, the
    /// queries being the last `q_len` of the `kv_len` positions.
    pub fn visible_keys(&self, i: usize) -> usize {
        if self.causal {
            (i + self.kv_len + 1)
                .saturating_sub(self.q_len)
                .min(self.kv_len)
        } else {
            self.kv_len
        }
    }
}

/// Element strides of `k` and `v` between batches, kv heads and positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvStrides {
    pub batch: usize,
    pub head: usize,
    pub pos: usize,
}

impl KvStrides {
    /// Contiguous `[B, T, H, D]` keys/values (e.g. straight from the k/v projections).
    pub fn bthd(kv_len: usize, n_kv_heads: usize, head_dim: usize) -> Self {
        KvStrides {
            batch: kv_len * n_kv_heads * head_dim,
            head: head_dim,
            pos: n_kv_heads * head_dim,
        }
    }

    /// The KV cache `[B, H, max_seq, D]`; only the first `kv_len` positions are read.
    pub fn bhsd(max_seq: usize, n_kv_heads: usize, head_dim: usize) -> Self {
        KvStrides {
            batch: n_kv_heads * max_seq * head_dim,
            head: max_seq * head_dim,
            pos: head_dim,
        }
    }
}

/// Checks the operand sizes of an attention call (panicking with a message on a programming
/// error) and returns whether there is any work (false for an empty q). Shared by every
/// attention kernel so they accept exactly the same inputs.
pub fn check_operands<T>(
    q: &[f32],
    k: &[T],
    v: &[T],
    kv: KvStrides,
    mask: Option<&[f32]>,
    p: &AttentionParams,
    out: &[f32],
) -> bool {
    let AttentionParams {
        batch,
        q_len,
        kv_len,
        n_heads,
        n_kv_heads,
        head_dim,
        ..
    } = *p;
    let q_size = batch * q_len * n_heads * head_dim;
    assert_eq!(
        q.len(),
        q_size,
        "attention: q must be [B, q_len, n_heads, head_dim]"
    );
    assert_eq!(
        out.len(),
        q_size,
        "attention: out must be [B, q_len, n_heads, head_dim]"
    );
    if let Some(m) = mask {
        assert_eq!(
            m.len(),
            batch * q_len * kv_len,
            "attention: mask must be [B, q_len, kv_len]"
        );
    }
    if q_size == 0 {
        return false;
    }
    assert!(
        n_heads.checked_rem(n_kv_heads) == Some(0),
        "attention: n_heads = {n_heads} is not a multiple of n_kv_heads = {n_kv_heads}"
    );
    if kv_len > 0 {
        // The last element read: batch B-1, kv head H-1, position kv_len-1, dim D-1.
        let last = (batch - 1) * kv.batch + (n_kv_heads - 1) * kv.head + (kv_len - 1) * kv.pos;
        assert!(
            last + head_dim <= k.len(),
            "attention: k is too short for its strides"
        );
        assert!(
            last + head_dim <= v.len(),
            "attention: v is too short for its strides"
        );
    }
    true
}

/// `out = softmax(scale * q k^T + mask [+ causal]) v`, per batch and query head.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
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
    if !check_operands(q, k, v, kv, mask, p, out) {
        return;
    }
    let group = n_heads / n_kv_heads;
    let scale = scale as f64;
    let mut scores = vec![0.0f64; kv_len];
    let mut acc = vec![0.0f64; head_dim];

    for b in 0..batch {
        for i in 0..q_len {
            let visible = p.visible_keys(i);
            let mask_row = mask.map(|m| &m[(b * q_len + i) * kv_len..][..kv_len]);
            for qh in 0..n_heads {
                let kvh = qh / group;
                let q_off = ((b * q_len + i) * n_heads + qh) * head_dim;
                let q_vec = &q[q_off..q_off + head_dim];
                let kv_base = b * kv.batch + kvh * kv.head;

                // Pass 1: scores and their max.
                let mut max = f64::NEG_INFINITY;
                for (j, s) in scores.iter_mut().enumerate().take(visible) {
                    let k_vec = &k[kv_base + j * kv.pos..][..head_dim];
                    let dot: f64 = q_vec
                        .iter()
                        .zip(k_vec)
                        .map(|(&x, &y)| x as f64 * y as f64)
                        .sum();
                    *s = scale * dot + mask_row.map_or(0.0, |m| m[j] as f64);
                    max = max.max(*s);
                }

                // Pass 2: exp, sum and the weighted sum of values.
                let o = &mut out[q_off..q_off + head_dim];
                if max == f64::NEG_INFINITY {
                    o.fill(0.0);
                    continue;
                }
                acc.fill(0.0);
                let mut sum = 0.0f64;
                for (j, &s) in scores.iter().enumerate().take(visible) {
                    let weight = (s - max).exp();
                    sum += weight;
                    let v_vec = &v[kv_base + j * kv.pos..][..head_dim];
                    for (a, &y) in acc.iter_mut().zip(v_vec) {
                        *a += weight * y as f64;
                    }
                }
                for (o, &a) in o.iter_mut().zip(&acc) {
                    *o = (a / sum) as f32;
                }
            }
        }
    }
}

/// Panics unless a cache of `cache_len` elements is `[batch, n_kv_heads, max_seq, head_dim]`,
/// `new_elements` are `[batch, new_len, n_kv_heads, head_dim]` and rows `start..start +
/// new_len` fit: the operand checks every `kv_write` shares.
#[allow(clippy::too_many_arguments)] // kv_write's sizes
pub(crate) fn check_kv_write(
    cache_len: usize,
    new_elements: usize,
    batch: usize,
    new_len: usize,
    n_kv_heads: usize,
    head_dim: usize,
    max_seq: usize,
    start: usize,
) {
    assert_eq!(
        new_elements,
        batch * new_len * n_kv_heads * head_dim,
        "kv_write: new must be [B, new_len, H, D]"
    );
    assert_eq!(
        cache_len,
        batch * n_kv_heads * max_seq * head_dim,
        "kv_write: cache must be [B, H, max_seq, D]"
    );
    assert!(
        start + new_len <= max_seq,
        "kv_write: rows {start}..{} exceed max_seq = {max_seq}",
        start + new_len
    );
}

/// Writes `new` (`[batch, new_len, n_kv_heads, head_dim]`) into positions
/// `start..start + new_len` of `cache` (`[batch, n_kv_heads, max_seq, head_dim]`), f32 or
/// rounded to f16 (nearest even).
#[allow(clippy::too_many_arguments)] // the signature is fixed by the op table
pub fn kv_write<T: KvElement>(
    cache: &mut [T],
    new: &[f32],
    batch: usize,
    new_len: usize,
    n_kv_heads: usize,
    head_dim: usize,
    max_seq: usize,
    start: usize,
) {
    check_kv_write(
        cache.len(),
        new.len(),
        batch,
        new_len,
        n_kv_heads,
        head_dim,
        max_seq,
        start,
    );
    for b in 0..batch {
        for t in 0..new_len {
            for h in 0..n_kv_heads {
                let src = ((b * new_len + t) * n_kv_heads + h) * head_dim;
                let dst = ((b * n_kv_heads + h) * max_seq + start + t) * head_dim;
                for (c, &x) in cache[dst..dst + head_dim]
                    .iter_mut()
                    .zip(&new[src..][..head_dim])
                {
                    *c = T::from_f32(x);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference::{matmul, softmax};
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
    use crate::WeightSlice;

    fn params(
        batch: usize,
        q_len: usize,
        kv_len: usize,
        nh: usize,
        nkv: usize,
        hd: usize,
    ) -> AttentionParams {
        AttentionParams {
            batch,
            q_len,
            kv_len,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            causal: false,
        }
    }

    /// Attention composed from the matmul and softmax references, one (batch, head) at a
    /// time, with k/v in contiguous [B, T, H, D] and an optional additive mask.
    fn composed(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: Option<&[f32]>,
        p: &AttentionParams,
    ) -> Vec<f32> {
        let (tq, tk, d) = (p.q_len, p.kv_len, p.head_dim);
        let mut out = vec![0.0f32; q.len()];
        for b in 0..p.batch {
            for qh in 0..p.n_heads {
                let kvh = qh / (p.n_heads / p.n_kv_heads);
                let gather = |src: &[f32], t: usize, h: usize, heads: usize| -> Vec<f32> {
                    (0..t)
                        .flat_map(|i| {
                            let o = ((b * t + i) * heads + h) * d;
                            src[o..o + d].to_vec()
                        })
                        .collect()
                };
                let qm = gather(q, tq, qh, p.n_heads);
                let km = gather(k, tk, kvh, p.n_kv_heads);
                let vm = gather(v, tk, kvh, p.n_kv_heads);
                let mut s = vec![0.0f32; tq * tk];
                matmul(&qm, WeightSlice::F32(&km), None, tq, tk, d, &mut s);
                for (idx, x) in s.iter_mut().enumerate() {
                    *x *= p.scale;
                    if let Some(m) = mask {
                        *x += m[b * tq * tk + idx];
                    }
                }
                let mut probs = vec![0.0f32; tq * tk];
                softmax(&s, tk, &mut probs);
                // out = probs @ v: v^T is the [d, tk] weight.
                let mut vt = vec![0.0f32; d * tk];
                for j in 0..tk {
                    for c in 0..d {
                        vt[c * tk + j] = vm[j * d + c];
                    }
                }
                let mut o = vec![0.0f32; tq * d];
                matmul(&probs, WeightSlice::F32(&vt), None, tq, d, tk, &mut o);
                for i in 0..tq {
                    let dst = ((b * tq + i) * p.n_heads + qh) * d;
                    out[dst..dst + d].copy_from_slice(&o[i * d..(i + 1) * d]);
                }
            }
        }
        out
    }

    fn run(q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>, p: &AttentionParams) -> Vec<f32> {
        let mut out = vec![0.0f32; q.len()];
        let kv = KvStrides::bthd(p.kv_len, p.n_kv_heads, p.head_dim);
        attention(q, k, v, kv, mask, p, &mut out);
        out
    }

    #[test]
    fn matches_composition_of_matmul_and_softmax() {
        let mut rng = Rng::new(71);
        let p = params(2, 5, 7, 3, 3, 13);
        let q = rng.vec(2 * 5 * 3 * 13, -1.0, 1.0);
        let k = rng.vec(2 * 7 * 3 * 13, -1.0, 1.0);
        let v = rng.vec(2 * 7 * 3 * 13, -1.0, 1.0);
        let mask = rng.vec(2 * 5 * 7, -2.0, 0.5);
        let got = run(&q, &k, &v, None, &p);
        assert_nmse(
            "attention",
            &got,
            &composed(&q, &k, &v, None, &p),
            NMSE_F32_REDUCTION,
        );
        let got = run(&q, &k, &v, Some(&mask), &p);
        let want = composed(&q, &k, &v, Some(&mask), &p);
        assert_nmse("attention masked", &got, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn causal_equals_explicit_mask() {
        let mut rng = Rng::new(72);
        // q_len < kv_len: the queries are the last 4 of 9 positions (prefill after a cache).
        for (q_len, kv_len) in [(4, 9), (6, 6), (1, 11)] {
            let mut p = params(2, q_len, kv_len, 4, 2, 8);
            let q = rng.vec(2 * q_len * 4 * 8, -2.0, 2.0);
            let k = rng.vec(2 * kv_len * 2 * 8, -2.0, 2.0);
            let v = rng.vec(2 * kv_len * 2 * 8, -2.0, 2.0);
            let mut mask = vec![0.0f32; 2 * q_len * kv_len];
            for b in 0..2 {
                for i in 0..q_len {
                    for j in 0..kv_len {
                        if j > i + (kv_len - q_len) {
                            mask[(b * q_len + i) * kv_len + j] = f32::NEG_INFINITY;
                        }
                    }
                }
            }
            let want = run(&q, &k, &v, Some(&mask), &p);
            assert_nmse(
                "masked vs composed",
                &want,
                &composed(&q, &k, &v, Some(&mask), &p),
                NMSE_F32_REDUCTION,
            );
            p.causal = true;
            let got = run(&q, &k, &v, None, &p);
            assert_nmse(
                &format!("causal {q_len}/{kv_len}"),
                &got,
                &want,
                NMSE_F32_REDUCTION,
            );
        }
    }

    #[test]
    fn gqa_equals_repeated_kv_heads() {
        let mut rng = Rng::new(73);
        let (b, tq, tk, nh, nkv, d) = (2, 3, 10, 6, 2, 9);
        let q = rng.vec(b * tq * nh * d, -1.0, 1.0);
        let k = rng.vec(b * tk * nkv * d, -1.0, 1.0);
        let v = rng.vec(b * tk * nkv * d, -1.0, 1.0);
        let group = nh / nkv;
        // Repeat each kv head `group` times: [B, T, nkv, D] -> [B, T, nh, D].
        let repeat = |src: &[f32]| -> Vec<f32> {
            let mut dst = Vec::with_capacity(b * tk * nh * d);
            for row in src.chunks(nkv * d) {
                for h in 0..nh {
                    dst.extend_from_slice(&row[(h / group) * d..(h / group + 1) * d]);
                }
            }
            dst
        };
        let mut p = params(b, tq, tk, nh, nkv, d);
        p.causal = true;
        let got = run(&q, &k, &v, None, &p);
        let mut p_rep = p;
        p_rep.n_kv_heads = nh;
        let want = run(&q, &repeat(&k), &repeat(&v), None, &p_rep);
        assert_nmse("gqa", &got, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn cache_layout_written_by_kv_write_gives_the_same_result() {
        let mut rng = Rng::new(74);
        let (b, tq, tk, nh, nkv, d, max_seq) = (2, 2, 7, 4, 2, 10, 12);
        let q = rng.vec(b * tq * nh * d, -1.0, 1.0);
        let k = rng.vec(b * tk * nkv * d, -1.0, 1.0);
        let v = rng.vec(b * tk * nkv * d, -1.0, 1.0);
        let mut p = params(b, tq, tk, nh, nkv, d);
        p.causal = true;
        let want = run(&q, &k, &v, None, &p);

        // Fill the cache in two chunks (prefill of 4, then 3 more), garbage past kv_len.
        let cache_len = b * nkv * max_seq * d;
        let (mut kc, mut vc) = (
            rng.vec(cache_len, 50.0, 60.0),
            rng.vec(cache_len, 50.0, 60.0),
        );
        let split = |src: &[f32], from: usize, to: usize| -> Vec<f32> {
            let row = nkv * d;
            (0..b)
                .flat_map(|bi| src[(bi * tk + from) * row..(bi * tk + to) * row].to_vec())
                .collect()
        };
        kv_write(&mut kc, &split(&k, 0, 4), b, 4, nkv, d, max_seq, 0);
        kv_write(&mut kc, &split(&k, 4, 7), b, 3, nkv, d, max_seq, 4);
        kv_write(&mut vc, &split(&v, 0, 4), b, 4, nkv, d, max_seq, 0);
        kv_write(&mut vc, &split(&v, 4, 7), b, 3, nkv, d, max_seq, 4);
        let mut got = vec![0.0; q.len()];
        attention(
            &q,
            &kc,
            &vc,
            KvStrides::bhsd(max_seq, nkv, d),
            None,
            &p,
            &mut got,
        );
        assert_nmse("attention on cache", &got, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn kv_write_places_rows() {
        // B=1, H=2, D=2, max_seq=3; write 2 tokens at start 1.
        let mut cache = vec![0.0f32; 2 * 3 * 2];
        let new = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]; // [t0: h0 (1,2) h1 (3,4)], [t1: ...]
        kv_write(&mut cache, &new, 1, 2, 2, 2, 3, 1);
        assert_eq!(
            cache,
            [0.0, 0.0, 1.0, 2.0, 5.0, 6.0, 0.0, 0.0, 3.0, 4.0, 7.0, 8.0]
        );
    }

    #[test]
    fn single_key_and_uniform_scores() {
        let mut rng = Rng::new(75);
        let d = 5;
        // One key: the output is its value, whatever the score.
        let p = params(1, 1, 1, 1, 1, d);
        let (q, k, v) = (
            rng.vec(d, -1.0, 1.0),
            rng.vec(d, -1.0, 1.0),
            rng.vec(d, -1.0, 1.0),
        );
        assert_eq!(run(&q, &k, &v, None, &p), v);
        // Scale 0: every key weighs the same, the output is the mean of the values.
        let mut p = params(1, 1, 4, 1, 1, d);
        p.scale = 0.0;
        let k = rng.vec(4 * d, -1.0, 1.0);
        let v = rng.vec(4 * d, -1.0, 1.0);
        let mean: Vec<f32> = (0..d)
            .map(|c| (0..4).map(|j| v[j * d + c] as f64).sum::<f64>() as f32 / 4.0)
            .collect();
        assert_nmse("uniform", &run(&q, &k, &v, None, &p), &mean, 1e-12);
    }

    #[test]
    fn fully_masked_query_gives_zeros() {
        let mut rng = Rng::new(76);
        let p = params(1, 2, 3, 1, 1, 4);
        let (q, k, v) = (
            rng.vec(8, -1.0, 1.0),
            rng.vec(12, -1.0, 1.0),
            rng.vec(12, -1.0, 1.0),
        );
        let ninf = f32::NEG_INFINITY;
        let mask = [ninf, ninf, ninf, 0.0, ninf, 0.0];
        let out = run(&q, &k, &v, Some(&mask), &p);
        assert_eq!(&out[..4], &[0.0; 4]);
        assert!(out[4..].iter().all(|x| x.is_finite() && *x != 0.0));
    }
}
