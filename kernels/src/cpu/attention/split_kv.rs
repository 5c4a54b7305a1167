//! Split-KV attention for decode and short query batches (AVX-512, `q_len < MIN_Q_LEN`):
//! the contract of `cpu::reference::attention`, f32 math.
//!
//! The per-row kernel in `mod.rs` computes one scalar `exp` per score and gives a decode step
//! one task per query head, so a long cache runs on few threads: attention was 5% of a
//! SmolLM2 decode step at 80 cached tokens and grew to a fifth at 600. Here:
//! - the visible keys of each (batch, kv head) are cut into chunks, so a step has enough
//!   tasks for every thread even with 3 kv heads;
//! - a task runs every query row of the kv head's GQA group over its chunk, so each key and
//!   value is read from memory once per step, not once per query head;
//! - the online softmax goes in blocks of `BLOCK` keys: the block's scores for all rows at
//!   once (`split_kv_scores.rs`), its probabilities from the vector `exp`, and `P V`
//!   accumulated in registers (`split_kv_avx512.rs`); it leaves an unnormalised partial per
//!   row: its max, its sum of `exp` and `sum p v`;
//! - the partials of a row are combined by their log-sum-exp: `out = sum_c e^(m_c - m)
//!   acc_c / sum_c e^(m_c - m) l_c`.
//!
//! K/V may be an f16 cache: each element is widened as it is loaded, so a step reads half
//! the bytes.
//!
//! Partials live in the calling thread's scratch, so a decode step allocates nothing. With
//! one chunk per row (a short cache) the task normalises its row in place.

use super::split_kv_avx512 as simd;
use crate::cpu::kv_element::KvElement;
use crate::cpu::reference::{AttentionParams, KvStrides};
use crate::cpu::rowops::scratch;
use crate::cpu::simd::SendPtr;
use crate::cpu::team;

/// Keys per online-softmax block (the probabilities of one block stay on the stack).
pub(super) const BLOCK: usize = 64;
/// Query rows run over a chunk's keys together (the GQA group times the call's query rows,
/// in passes of at most this many).
pub(super) const MAX_ROWS: usize = 8;
/// Fewest keys per chunk: shorter chunks cost more in the combine than they save.
const MIN_CHUNK: usize = 128;
/// Tasks per thread to aim for, so uneven chunks (causal rows see different key counts)
/// still balance.
const TASKS_PER_THREAD: usize = 4;
/// Score multiply-adds (`q_len kv_len head_dim`, all heads) below which a call stays on the
/// calling thread: waking the pool costs more than the work.
const PAR_MIN_MACS: usize = 1 << 16;

/// `out = attention(q, k, v)` by split-KV. The caller checked the operands
/// (`check_operands`) and that the CPU has the AVX-512 level.
#[allow(clippy::too_many_arguments)] // the reference's operands
pub(super) fn attention<T: KvElement>(
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
        head_dim: d,
        scale,
        ..
    } = *p;
    let group = n_heads / n_kv_heads;
    // Keys the last (so the farthest-seeing) query row sees.
    let visible = p.visible_keys(q_len.saturating_sub(1)).max(1);
    let kv_heads = batch * n_kv_heads;
    let parallel = batch * n_heads * q_len * kv_len * d >= PAR_MIN_MACS;
    let chunks = if parallel {
        let wanted = (TASKS_PER_THREAD * team::threads()).div_ceil(kv_heads);
        wanted.min(visible.div_ceil(MIN_CHUNK)).max(1)
    } else {
        1
    };
    let chunk_len = visible.div_ceil(chunks).next_multiple_of(BLOCK);
    let chunks = visible.div_ceil(chunk_len);
    let slots = Partials { chunks, q_len, d };
    let partial_len = if chunks > 1 {
        slots.at(batch * n_heads, 0, 0)
    } else {
        0
    };
    // The rows of one task: each query row of each head of the kv head's group.
    let rows_per_task = group * q_len;
    scratch::with_f32(partial_len, |partials| {
        let partial_ptr = SendPtr(partials.as_mut_ptr());
        let out_ptr = SendPtr(out.as_mut_ptr());
        let task = |t: usize| {
            let (bk, c) = (t / chunks, t % chunks);
            let (b, kvh) = (bk / n_kv_heads, bk % n_kv_heads);
            let kv_base = b * kv.batch + kvh * kv.head;
            let keys = simd::Keys {
                k: &k[kv_base..],
                v: &v[kv_base..],
                pos: kv.pos,
                scale,
            };
            let first = c * chunk_len;
            for pass in (0..rows_per_task).step_by(MAX_ROWS) {
                let used = MAX_ROWS.min(rows_per_task - pass);
                let mut rows: [simd::RowPart; MAX_ROWS] = std::array::from_fn(|j| {
                    if j >= used {
                        return simd::RowPart::default();
                    }
                    let r = pass + j;
                    let (qh, i) = (kvh * group + r / q_len, r % q_len);
                    let q_off = ((b * q_len + i) * n_heads + qh) * d;
                    let acc = if chunks == 1 {
                        // SAFETY: q_off + d <= out.len() (out has q's shape); each (b, i, qh)
                        // row belongs to one task; `out` outlives the loop.
                        unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(q_off), d) }
                    } else {
                        let at = slots.at(b * n_heads + qh, c, i) + 2;
                        // SAFETY: `at + d <= partial_len`; each (b, qh, c, i) slot belongs
                        // to one task; the scratch outlives the loop.
                        unsafe { std::slice::from_raw_parts_mut(partial_ptr.get().add(at), d) }
                    };
                    simd::RowPart {
                        q: &q[q_off..q_off + d],
                        mask: mask.map(|m| &m[(b * q_len + i) * kv_len..][..kv_len]),
                        end: p.visible_keys(i).min(first + chunk_len),
                        acc,
                        max: f32::NEG_INFINITY,
                        sum: 0.0,
                    }
                });
                // SAFETY: the caller checked the CPU has the AVX-512 level.
                unsafe { simd::partial_rows(&keys, first, &mut rows[..used]) };
                for (r, row) in (pass..).zip(&mut rows[..used]) {
                    if chunks == 1 {
                        normalise(row.acc, row.sum);
                    } else {
                        let (qh, i) = (kvh * group + r / q_len, r % q_len);
                        let at = slots.at(b * n_heads + qh, c, i);
                        // SAFETY: as for the accumulators: this task's own slot.
                        unsafe {
                            *partial_ptr.get().add(at) = row.max;
                            *partial_ptr.get().add(at + 1) = row.sum;
                        }
                    }
                }
            }
        };
        let tasks = kv_heads * chunks;
        if parallel {
            team::for_each(tasks, &task);
        } else {
            (0..tasks).for_each(task);
        }
        if chunks > 1 {
            combine(partials, &slots, n_heads, out);
        }
    });
}

/// `out = acc / sum`, or zeros where the row saw no key.
fn normalise(out: &mut [f32], sum: f32) {
    if sum > 0.0 {
        let inv = 1.0 / sum;
        out.iter_mut().for_each(|o| *o *= inv);
    } else {
        out.fill(0.0);
    }
}

/// Where the partials of one call live: per (batch x head, chunk, query row), the max, the
/// sum, then `d` accumulators.
struct Partials {
    chunks: usize,
    q_len: usize,
    d: usize,
}

impl Partials {
    /// Start of the slot of (batch x head `bh`, chunk `c`, query row `i`).
    fn at(&self, bh: usize, c: usize, i: usize) -> usize {
        ((bh * self.chunks + c) * self.q_len + i) * (self.d + 2)
    }
}

/// Each row's chunks merged by their log-sum-exp into `out` (`[b][i][qh][d]`).
fn combine(partials: &[f32], slots: &Partials, n_heads: usize, out: &mut [f32]) {
    let Partials { chunks, q_len, d } = *slots;
    let heads = out.len() / (q_len * d);
    for bh in 0..heads {
        let (b, qh) = (bh / n_heads, bh % n_heads);
        for i in 0..q_len {
            let slot = |c: usize| &partials[slots.at(bh, c, i)..][..d + 2];
            let max = (0..chunks)
                .map(|c| slot(c)[0])
                .fold(f32::NEG_INFINITY, f32::max);
            let o = &mut out[((b * q_len + i) * n_heads + qh) * d..][..d];
            o.fill(0.0);
            if max == f32::NEG_INFINITY {
                continue;
            }
            let mut sum = 0.0;
            for c in 0..chunks {
                let s = slot(c);
                if s[0] == f32::NEG_INFINITY {
                    continue;
                }
                let w = (s[0] - max).exp();
                sum += w * s[1];
                for (o, &a) in o.iter_mut().zip(&s[2..]) {
                    *o += w * a;
                }
            }
            normalise(o, sum);
        }
    }
}
