//! Copies by runs instead of elements: the strided copy behind permute / slice / concat, the
//! KV-cache write and Idefics3's pixel shuffle (both strided copies with fixed strides),
//! with the contracts of the reference functions of the same names.
//!
//! A copy is first simplified: dims of size 1 are dropped and a dim is merged into its
//! outer neighbour when the two are contiguous on both sides, so a permute of `[B, T, H, D]`
//! or a cache write moves whole `D`-long (or longer) runs with `memcpy`. The outer dims
//! are walked with an odometer on the stack (rank <= `MAX_RANK` after simplifying, else the
//! reference runs); large copies split the outer index range over rayon when no two
//! destination elements alias. No allocation. Criterion `rowops/*/kv_write/512x3x64`
//! (2-core AMD EPYC VM, load ~4): the reference 17 us, this 16 us (both `memcpy` a row;
//! permutes / slices / concats, which the reference copies element by element, are not
//! benchmarked).

use rayon::prelude::*;

use crate::cpu::kv_element::KvElement;
use crate::cpu::reference;
use crate::cpu::reference::copy::check_copy_operands;

/// Highest rank (after dropping size-1 dims and merging) copied here.
pub const MAX_RANK: usize = 8;
/// Elements below which a copy stays on one thread: a copy is bound by memory bandwidth,
/// which a second thread barely adds to until the data leaves the caches (a 512-token KV
/// write of 98k floats ran 2.5x slower split in two).
const PAR_MIN: usize = 1 << 20;

/// A simplified copy: `dims` with their source and destination strides.
#[derive(Clone, Copy)]
struct Plan {
    rank: usize,
    dims: [usize; MAX_RANK],
    src: [usize; MAX_RANK],
    dst: [usize; MAX_RANK],
}

impl Plan {
    /// `None` when more than `MAX_RANK` dims remain.
    fn new(dims: &[usize], src: &[usize], dst: &[usize]) -> Option<Plan> {
        let mut p = Plan {
            rank: 0,
            dims: [0; MAX_RANK],
            src: [0; MAX_RANK],
            dst: [0; MAX_RANK],
        };
        for i in 0..dims.len() {
            if dims[i] == 1 {
                continue;
            }
            if let Some(j) = p.rank.checked_sub(1) {
                if p.src[j] == dims[i] * src[i] && p.dst[j] == dims[i] * dst[i] {
                    p.dims[j] *= dims[i];
                    (p.src[j], p.dst[j]) = (src[i], dst[i]);
                    continue;
                }
            }
            if p.rank == MAX_RANK {
                return None;
            }
            (p.dims[p.rank], p.src[p.rank], p.dst[p.rank]) = (dims[i], src[i], dst[i]);
            p.rank += 1;
        }
        Some(p)
    }

    /// Whether every destination element is written once (then tasks may split the
    /// copy): sorted by stride, each dim must step over the whole extent of the previous.
    fn dst_is_injective(&self) -> bool {
        let mut order = [(0usize, 0usize); MAX_RANK];
        for (o, (&s, &d)) in order.iter_mut().zip(self.dst.iter().zip(&self.dims)) {
            *o = (s, d);
        }
        let order = &mut order[..self.rank];
        order.sort_unstable();
        let mut extent = 1;
        for &(stride, dim) in order.iter() {
            if stride < extent {
                return false;
            }
            extent = stride * dim;
        }
        true
    }
}

/// The destination pointer, shared by the tasks of one copy.
struct Dst<T>(*mut T);
impl<T> Clone for Dst<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Dst<T> {}
impl<T> Dst<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: tasks write disjoint elements (`dst_is_injective`) of a buffer that outlives them.
unsafe impl<T: Send> Send for Dst<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Dst<T> {}

/// Copies the `dims`-shaped view of `src` into the `dims`-shaped view of `dst`; the
/// contract of `reference::copy_strided` (row-major order, last write wins on overlap).
pub fn copy_strided<T: Copy + Send + Sync>(
    src: &[T],
    dims: &[usize],
    src_strides: &[usize],
    src_offset: usize,
    dst: &mut [T],
    dst_strides: &[usize],
    dst_offset: usize,
) {
    if !check_copy_operands(
        src.len(),
        dims,
        src_strides,
        src_offset,
        dst.len(),
        dst_strides,
        dst_offset,
    ) {
        return;
    }
    let Some(plan) = Plan::new(dims, src_strides, dst_strides) else {
        return reference::copy_strided(
            src,
            dims,
            src_strides,
            src_offset,
            dst,
            dst_strides,
            dst_offset,
        );
    };
    if plan.rank == 0 {
        dst[dst_offset] = src[src_offset];
        return;
    }
    let inner = plan.dims[plan.rank - 1];
    let outer: usize = plan.dims[..plan.rank - 1].iter().product();
    let out = Dst(dst.as_mut_ptr());
    // SAFETY (both calls): every index the plan reaches lies in the ranges checked above
    // (the plan visits the same elements as `dims`); src and dst are distinct slices.
    let run = |lo: usize, hi: usize| unsafe {
        copy_range(&plan, src, src_offset, out.get(), dst_offset, lo, hi)
    };
    if outer < 2 || outer * inner < PAR_MIN || !plan.dst_is_injective() {
        return run(0, outer);
    }
    let tasks = outer.min(4 * rayon::current_num_threads());
    let per = outer.div_ceil(tasks);
    (0..outer.div_ceil(per))
        .into_par_iter()
        .for_each(|t| run(t * per, ((t + 1) * per).min(outer)));
}

/// Copies the outer indices `lo..hi` (row-major over all dims but the innermost) of `plan`.
///
/// # Safety
/// Every element the plan reaches from the offsets lies inside `src` and the buffer at
/// `dst`; `dst` does not overlap `src`; concurrent callers write disjoint elements.
unsafe fn copy_range<T: Copy>(
    plan: &Plan,
    src: &[T],
    src_offset: usize,
    dst: *mut T,
    dst_offset: usize,
    lo: usize,
    hi: usize,
) {
    let outer_rank = plan.rank - 1;
    let (n, si, di) = (
        plan.dims[outer_rank],
        plan.src[outer_rank],
        plan.dst[outer_rank],
    );
    // The multi-index of `lo`.
    let mut index = [0usize; MAX_RANK];
    let mut rest = lo;
    for k in (0..outer_rank).rev() {
        index[k] = rest % plan.dims[k];
        rest /= plan.dims[k];
    }
    let src = src.as_ptr();
    for _ in lo..hi {
        let (mut s, mut d) = (src_offset, dst_offset);
        for ((&i, &ss), &ds) in index.iter().zip(&plan.src).zip(&plan.dst).take(outer_rank) {
            s += i * ss;
            d += i * ds;
        }
        // SAFETY: the caller's contract covers every reached element.
        unsafe {
            if si == 1 && di == 1 {
                std::ptr::copy_nonoverlapping(src.add(s), dst.add(d), n);
            } else {
                for t in 0..n {
                    *dst.add(d + t * di) = *src.add(s + t * si);
                }
            }
        }
        for k in (0..outer_rank).rev() {
            index[k] += 1;
            if index[k] < plan.dims[k] {
                break;
            }
            index[k] = 0;
        }
    }
}

/// Writes `new` (`[batch, new_len, n_kv_heads, head_dim]`) into positions
/// `start..start + new_len` of `cache` (`[batch, n_kv_heads, max_seq, head_dim]`), f32 or
/// f16: the contract of `reference::kv_write`.
#[allow(clippy::too_many_arguments)] // the reference's signature
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
    let (h, d, s) = (n_kv_heads, head_dim, max_seq);
    reference::attention::check_kv_write(cache.len(), new.len(), batch, new_len, h, d, s, start);
    if d == 0 {
        return;
    }
    // One row of `head_dim` per (batch, token, head): a prefill writes a few thousand, a
    // decode step one per kv head.
    for (row, src) in new.chunks_exact(d).enumerate() {
        let (b, t, kvh) = (row / (new_len * h), row / h % new_len, row % h);
        let dst = ((b * h + kvh) * s + start + t) * d;
        T::store_row(src, &mut cache[dst..dst + d]);
    }
}

/// Idefics3 pixel shuffle: the contract (and layout) of `reference::pixel_shuffle`.
pub fn pixel_shuffle(
    x: &[f32],
    batch: usize,
    seq: usize,
    embed: usize,
    scale: usize,
    out: &mut [f32],
) {
    let side =
        reference::pixel_shuffle::check_operands(x.len(), out.len(), batch, seq, embed, scale);
    // out[b, by, bx, dy, dx, e] = x[b, (by * s + dy) * side + bx * s + dx, e]
    let (s, e, blocks) = (scale, embed, side / scale);
    let dims = [batch, blocks, blocks, s, s, e];
    let src = [seq * e, s * side * e, s * e, side * e, e, 1];
    let dst = [
        blocks * blocks * s * s * e,
        blocks * s * s * e,
        s * s * e,
        s * e,
        e,
        1,
    ];
    copy_strided(x, &dims, &src, 0, out, &dst, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    use half::f16;

    /// Row-major strides of `dims`.
    fn contiguous(dims: &[usize]) -> Vec<usize> {
        let mut s = vec![1; dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * dims[i + 1];
        }
        s
    }

    fn check(
        src: &[f32],
        dims: &[usize],
        ss: &[usize],
        so: usize,
        dst_len: usize,
        ds: &[usize],
        d0: usize,
    ) {
        let mut want = vec![-1.0f32; dst_len];
        reference::copy_strided(src, dims, ss, so, &mut want, ds, d0);
        let mut got = vec![-1.0f32; dst_len];
        copy_strided(src, dims, ss, so, &mut got, ds, d0);
        assert_eq!(got, want, "dims {dims:?} src {ss:?}+{so} dst {ds:?}+{d0}");
    }

    #[test]
    fn permutes_slices_and_concats_match_the_reference() {
        let mut rng = Rng::new(85);
        // Permutes of 4-d tensors, small and large enough to split over rayon.
        for d in [
            [2usize, 3, 5, 7],
            [1, 3, 1, 5],
            [2, 131, 9, 64],
            [1, 1025, 16, 64],
        ] {
            let n: usize = d.iter().product();
            let x = rng.vec(n, -1.0, 1.0);
            let s = contiguous(&d);
            for perm in [[0, 2, 1, 3], [0, 1, 3, 2], [3, 2, 1, 0], [1, 0, 2, 3]] {
                let pd: Vec<usize> = perm.iter().map(|&p| d[p]).collect();
                let ps: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
                check(&x, &pd, &ps, 0, n, &contiguous(&pd), 0);
            }
            // A slice along axis 1 into a contiguous output.
            if d[1] > 2 {
                let mut sd = d;
                sd[1] = d[1] - 2;
                check(&x, &sd, &s, s[1], sd.iter().product(), &contiguous(&sd), 0);
            }
            // Concat: this tensor as the second part along axis 1 of a bigger one.
            let mut cd = d;
            cd[1] = d[1] + 3;
            let cs = contiguous(&cd);
            check(&x, &d, &s, 0, cd.iter().product(), &cs, 3 * cs[1]);
        }
    }

    #[test]
    fn scalars_high_ranks_and_aliasing_destinations_match_the_reference() {
        let mut rng = Rng::new(86);
        let x = rng.vec(64, -1.0, 1.0);
        check(&x, &[], &[], 5, 3, &[], 2);
        check(&x, &[1, 1], &[7, 3], 9, 4, &[0, 0], 1);
        // Rank 9 after simplifying: every dim 2, strides that never merge.
        let dims = [2usize; 9];
        let ss: Vec<usize> = (0..9).map(|i| 1 << (8 - i)).collect();
        let big = rng.vec(512, -1.0, 1.0);
        let ds: Vec<usize> = (0..9).map(|i| 1 << i).collect();
        check(&big, &dims, &ss, 0, 512, &ds, 0);
        // A zero destination stride: the last write wins, in row-major order (also when
        // the copy is large enough to split, which it then must not).
        let many = rng.vec(1 << 20, -1.0, 1.0);
        check(&many, &[40_000, 1], &[1, 1], 0, 5, &[0, 1], 2);
        check(&many, &[1024, 1024], &[1024, 1], 0, 1024, &[0, 1], 0);
    }

    #[test]
    fn kv_write_and_pixel_shuffle_match_the_reference() {
        let mut rng = Rng::new(87);
        for (b, t, h, d, s, start) in [
            (1, 1, 1, 16, 7, 3),
            (2, 5, 3, 33, 13, 8),
            (1, 2048, 8, 64, 2100, 17),
        ] {
            let new = rng.vec(b * t * h * d, -1.0, 1.0);
            let cache = rng.vec(b * h * s * d, -1.0, 1.0);
            let half: Vec<f16> = cache.iter().map(|&x| f16::from_f32(x)).collect();
            let (mut got, mut want) = (cache.clone(), cache);
            kv_write(&mut got, &new, b, t, h, d, s, start);
            reference::kv_write(&mut want, &new, b, t, h, d, s, start);
            assert_eq!(got, want, "kv_write b{b} t{t} h{h} d{d} s{s} start {start}");
            // An f16 cache: the same rows, rounded as the reference rounds them.
            let (mut got, mut want) = (half.clone(), half);
            kv_write(&mut got, &new, b, t, h, d, s, start);
            reference::kv_write(&mut want, &new, b, t, h, d, s, start);
            assert!(
                got == want,
                "f16 kv_write b{b} t{t} h{h} d{d} s{s} start {start}"
            );
        }
        for (b, seq, e, scale) in [
            (1, 4, 3, 2),
            (2, 36, 10, 2),
            (2, 81, 7, 3),
            (1, 4096, 256, 2),
        ] {
            let x = rng.vec(b * seq * e, -1.0, 1.0);
            let (mut got, mut want) = (vec![f32::NAN; x.len()], vec![0.0; x.len()]);
            pixel_shuffle(&x, b, seq, e, scale, &mut got);
            reference::pixel_shuffle(&x, b, seq, e, scale, &mut want);
            assert_eq!(got, want, "pixel_shuffle b{b} seq{seq} e{e} scale{scale}");
        }
    }
}
