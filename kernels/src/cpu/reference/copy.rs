//! Reference strided copy, generic over the element type: the one primitive behind permute
//! (transpose), slice, concat and "make contiguous".
//!
//! For every multi-index `i` over `dims` (row-major order; `dims` empty = one scalar, any
//! zero dim = nothing):
//!   dst[dst_offset + sum_d i[d] * dst_strides[d]] = src[src_offset + sum_d i[d] * src_strides[d]]
//! Strides are in elements and non-negative. Both ranges are bounds-checked up front.
//! Overlapping destination elements (a zero dst stride) are written in row-major order, so
//! the last write wins.

/// The operand checks of [`copy_strided`], shared with the fast copy: panics if the ranks
/// disagree or a view reaches past its slice; returns false when there is nothing to copy.
pub(crate) fn check_copy_operands(
    src_len: usize,
    dims: &[usize],
    src_strides: &[usize],
    src_offset: usize,
    dst_len: usize,
    dst_strides: &[usize],
    dst_offset: usize,
) -> bool {
    assert_eq!(
        dims.len(),
        src_strides.len(),
        "copy_strided: dims and src_strides differ in rank"
    );
    assert_eq!(
        dims.len(),
        dst_strides.len(),
        "copy_strided: dims and dst_strides differ in rank"
    );
    if dims.contains(&0) {
        return false;
    }
    let last = |strides: &[usize], offset: usize| -> usize {
        offset
            + dims
                .iter()
                .zip(strides)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
    };
    assert!(
        last(src_strides, src_offset) < src_len,
        "copy_strided: the source view reaches past src (len {src_len})"
    );
    assert!(
        last(dst_strides, dst_offset) < dst_len,
        "copy_strided: the destination view reaches past dst (len {dst_len})"
    );
    true
}

/// Copies the `dims`-shaped view of `src` into the `dims`-shaped view of `dst`.
pub fn copy_strided<T: Copy>(
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
    // Odometer over all indices but the innermost; the innermost dim is a simple loop.
    let rank = dims.len();
    if rank == 0 {
        dst[dst_offset] = src[src_offset];
        return;
    }
    let (inner, inner_src, inner_dst) =
        (dims[rank - 1], src_strides[rank - 1], dst_strides[rank - 1]);
    let mut index = vec![0usize; rank - 1];
    loop {
        let mut s = src_offset;
        let mut d = dst_offset;
        for (k, &i) in index.iter().enumerate() {
            s += i * src_strides[k];
            d += i * dst_strides[k];
        }
        for t in 0..inner {
            dst[d + t * inner_dst] = src[s + t * inner_src];
        }
        // Advance the outer index; done when it wraps around completely.
        let mut k = rank - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            index[k] += 1;
            if index[k] < dims[k] {
                break;
            }
            index[k] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    #[test]
    fn transposes_a_matrix() {
        let (r, c) = (3, 5);
        let a: Vec<i32> = (0..(r * c) as i32).collect();
        let mut t = vec![0i32; r * c];
        // Walk a in its transposed shape [c, r]: element (j, i) is a[i * c + j].
        copy_strided(&a, &[c, r], &[1, c], 0, &mut t, &[r, 1], 0);
        for i in 0..r {
            for j in 0..c {
                assert_eq!(t[j * r + i], a[i * c + j]);
            }
        }
    }

    #[test]
    fn permutes_4d_like_torch() {
        let mut rng = Rng::new(121);
        let d = [2, 3, 4, 5];
        let x = rng.vec(d.iter().product(), -1.0, 1.0);
        let strides = [60, 20, 5, 1];
        // permute(0, 2, 1, 3) -> [2, 4, 3, 5]
        let pd = [d[0], d[2], d[1], d[3]];
        let mut out = vec![0.0f32; x.len()];
        copy_strided(
            &x,
            &pd,
            &[strides[0], strides[2], strides[1], strides[3]],
            0,
            &mut out,
            &[60, 15, 5, 1],
            0,
        );
        for a in 0..d[0] {
            for b in 0..d[1] {
                for c in 0..d[2] {
                    for e in 0..d[3] {
                        assert_eq!(
                            out[((a * 4 + c) * 3 + b) * 5 + e],
                            x[((a * 3 + b) * 4 + c) * 5 + e]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn slices_and_concatenates_with_offsets() {
        // Slice columns 1..3 of a [3, 4] matrix into a contiguous [3, 2].
        let a: Vec<u8> = (0..12).collect();
        let mut s = [0u8; 6];
        copy_strided(&a, &[3, 2], &[4, 1], 1, &mut s, &[2, 1], 0);
        assert_eq!(s, [1, 2, 5, 6, 9, 10]);
        // Concat [2, 2] and [2, 3] along the last axis into [2, 5].
        let (l, r) = ([1, 2, 3, 4], [5, 6, 7, 8, 9, 10]);
        let mut cat = [0; 10];
        copy_strided(&l, &[2, 2], &[2, 1], 0, &mut cat, &[5, 1], 0);
        copy_strided(&r, &[2, 3], &[3, 1], 0, &mut cat, &[5, 1], 2);
        assert_eq!(cat, [1, 2, 5, 6, 7, 3, 4, 8, 9, 10]);
    }

    #[test]
    fn scalar_broadcast_and_empty() {
        let mut dst = [0.0f32; 3];
        copy_strided(&[1.0, 2.0], &[], &[], 1, &mut dst, &[], 2);
        assert_eq!(dst, [0.0, 0.0, 2.0]);
        // A zero source stride broadcasts.
        copy_strided(&[7.0], &[3], &[0], 0, &mut dst, &[1], 0);
        assert_eq!(dst, [7.0; 3]);
        // A zero-size dim copies nothing (and checks no bounds).
        copy_strided::<f32>(&[], &[4, 0], &[1, 1], 0, &mut dst, &[1, 1], 99);
        assert_eq!(dst, [7.0; 3]);
    }

    #[test]
    #[should_panic(expected = "reaches past src")]
    fn out_of_bounds_source_panics() {
        let mut dst = [0; 4];
        copy_strided(&[1, 2, 3], &[2, 2], &[2, 1], 0, &mut dst, &[2, 1], 0);
    }
}
