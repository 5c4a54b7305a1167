//! Conv2d as tiled im2col + the fast GEMM: the contract of `reference::conv2d` (any stride
//! and zero padding), up to f32 summation order. A patch embedding (CLIP and SigLIP's first
//! layer: stride equal to the kernel, no padding) is the case the models run.
//!
//! Layout: `x` NCHW f32, `w` [OC, C, KH, KW] read as the GEMM weight [OC, C*KH*KW] exactly as
//! stored (f32/bf16/f16, no copy), `out` [N, OC, OH, OW]. Output positions (over the whole
//! batch) go in tiles of at most `TILE_ELEMENTS / (C*KH*KW)`: each tile's patches are
//! gathered into rows (zeros where the window leaves the image), multiplied, and the
//! [positions, OC] result is scattered into NCHW. The scratch is allocated per call: this
//! runs in vision graphs, never in the decode loop.

use rayon::prelude::*;

use crate::cpu::gemm;
use crate::cpu::isa::Isa;
use crate::cpu::reference::{self, Conv2dParams};
use crate::cpu::simd::SendPtr;
use crate::WeightSlice;

/// Most elements of one tile's gathered patches (8 MiB of f32): a patch embedding of a
/// vision tower is one tile; a large conv runs in several instead of one buffer of its
/// whole im2col matrix.
const TILE_ELEMENTS: usize = 1 << 21;

/// `out = conv2d(x, w, bias)` (see `reference::conv2d`). Panics if the slice lengths disagree
/// with `p`.
pub fn conv2d(
    isa: Isa,
    x: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    p: &Conv2dParams,
    out: &mut [f32],
) {
    let (oh, ow) = (p.out_height(), p.out_width());
    let (c, kh, kw, oc) = (p.in_channels, p.kernel_h, p.kernel_w, p.out_channels);
    let k = c * kh * kw;
    let positions = p.batch * oh * ow;
    reference::conv2d::check_operands(x, w, bias, p, out);
    if out.is_empty() {
        return;
    }
    let tile = (TILE_ELEMENTS / k.max(1)).clamp(1, positions);
    let mut patches = vec![0.0f32; tile * k];
    let mut projected = vec![0.0f32; tile * oc];
    let plane = oh * ow;
    for first in (0..positions).step_by(tile) {
        let rows = tile.min(positions - first);
        let patches = &mut patches[..rows * k];
        patches
            .par_chunks_mut(k.max(1))
            .enumerate()
            .for_each(|(i, row)| gather(x, p, first + i, row));
        let projected = &mut projected[..rows * oc];
        gemm::matmul(isa, patches, w, bias, rows, oc, k, projected);
        scatter(projected, first, plane, oc, out);
    }
}

/// Output channels (and positions) per block of the transposing scatter.
const SCATTER_BLOCK: usize = 32;

/// Writes `projected` (`[rows][oc]`, positions `first..` over the batch) into NCHW `out`, in
/// blocks of 32 channels x 32 positions so the reads and the writes both stay in a few cache
/// lines; channel blocks run in parallel (each writes its own channel planes). Element by
/// element, the scatter took half of a 512x512 patch embedding.
fn scatter(projected: &[f32], first: usize, plane: usize, oc: usize, out: &mut [f32]) {
    let rows = projected.len() / oc;
    let out_ptr = SendPtr(out.as_mut_ptr());
    let out_len = out.len();
    (0..oc.div_ceil(SCATTER_BLOCK))
        .into_par_iter()
        .for_each(|cb| {
            let channels = cb * SCATTER_BLOCK..((cb + 1) * SCATTER_BLOCK).min(oc);
            for r0 in (0..rows).step_by(SCATTER_BLOCK) {
                for r in r0..(r0 + SCATTER_BLOCK).min(rows) {
                    let (n, pos) = ((first + r) / plane, (first + r) % plane);
                    for o in channels.clone() {
                        let at = (n * oc + o) * plane + pos;
                        assert!(at < out_len);
                        // SAFETY: `at` is inside `out` (checked); each channel block writes only
                        // its own channels' planes, so no two tasks write the same element, and
                        // `out` outlives the parallel loop.
                        unsafe { *out_ptr.get().add(at) = projected[r * oc + o] };
                    }
                }
            }
        });
}

/// The patch of output position `at` (over the batch) as one row `[C][KH][KW]`: zeros where
/// the window lies in the padding. Along `kx` the window reads consecutive pixels whatever
/// the stride, so each (channel, kernel row) is one clipped slice copy.
fn gather(x: &[f32], p: &Conv2dParams, at: usize, row: &mut [f32]) {
    let (oh, ow) = (p.out_height(), p.out_width());
    let (n, oy, ox) = (at / (oh * ow), at / ow % oh, at % ow);
    let (kh, kw) = (p.kernel_h, p.kernel_w);
    // Column of the window's first tap, in padded coordinates; taps kx0..kx1 land inside.
    let left = ox * p.stride[1];
    let kx0 = p.padding[1].saturating_sub(left).min(kw);
    let kx1 = (p.width + p.padding[1])
        .saturating_sub(left)
        .min(kw)
        .max(kx0);
    for ci in 0..p.in_channels {
        for ky in 0..kh {
            let dst = &mut row[(ci * kh + ky) * kw..][..kw];
            let y = (oy * p.stride[0] + ky).checked_sub(p.padding[0]);
            match y.filter(|&y| y < p.height) {
                Some(y) if kx1 > kx0 => {
                    let xs = left + kx0 - p.padding[1];
                    let src = ((n * p.in_channels + ci) * p.height + y) * p.width + xs;
                    dst[..kx0].fill(0.0);
                    dst[kx0..kx1].copy_from_slice(&x[src..src + (kx1 - kx0)]);
                    dst[kx1..].fill(0.0);
                }
                _ => dst.fill(0.0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
    use half::bf16;

    /// Patch embeddings and general convs (strides of 1 and 2, padding wider than some
    /// windows, 1x1 and non-square kernels, a kernel larger than the image), f32 and bf16
    /// weights, at every ISA level, against the reference.
    #[test]
    fn matches_reference_conv_at_every_isa() {
        let mut rng = Rng::new(77);
        // (batch, channels, height, width, out channels, kernel, stride, padding)
        for &(n, c, h, wd, oc, kern, stride, pad) in &[
            (1, 3, 42, 70, 40, [14, 14], [14, 14], [0, 0]),
            (2, 3, 33, 29, 17, [8, 8], [8, 8], [0, 0]),
            (1, 5, 7, 9, 3, [3, 3], [3, 3], [0, 0]),
            (2, 3, 13, 11, 5, [3, 3], [1, 1], [1, 1]),
            (1, 4, 17, 15, 7, [3, 5], [2, 1], [2, 3]),
            (1, 6, 9, 8, 4, [1, 1], [2, 2], [0, 0]),
            (1, 2, 4, 5, 3, [7, 7], [1, 2], [3, 3]),
        ] {
            let p = Conv2dParams {
                batch: n,
                in_channels: c,
                height: h,
                width: wd,
                out_channels: oc,
                kernel_h: kern[0],
                kernel_w: kern[1],
                stride,
                padding: pad,
            };
            let x = rng.vec(n * c * h * wd, -1.0, 1.0);
            let w32 = rng.vec(oc * c * kern[0] * kern[1], -0.5, 0.5);
            let w16: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
            let b = rng.vec(oc, -0.2, 0.2);
            let len = n * oc * p.out_height() * p.out_width();
            for (name, w) in [
                ("f32", WeightSlice::F32(&w32)),
                ("bf16", WeightSlice::BF16(&w16)),
            ] {
                let mut expected = vec![0.0; len];
                reference::conv2d(&x, w, Some(WeightSlice::F32(&b)), &p, &mut expected);
                for isa in Isa::available() {
                    let mut got = vec![f32::NAN; len];
                    conv2d(isa, &x, w, Some(WeightSlice::F32(&b)), &p, &mut got);
                    let what = format!(
                        "conv2d {isa:?} {name} {n}x{c}x{h}x{wd} k{kern:?} s{stride:?} p{pad:?}"
                    );
                    assert_nmse(&what, &got, &expected, NMSE_F32_REDUCTION);
                }
            }
        }
    }

    /// A conv whose im2col matrix exceeds one tile runs in several, across an image
    /// boundary of the batch.
    #[test]
    fn large_convs_run_in_tiles() {
        let mut rng = Rng::new(78);
        let p = Conv2dParams {
            batch: 2,
            in_channels: 3,
            height: 230,
            width: 251,
            out_channels: 5,
            kernel_h: 3,
            kernel_w: 3,
            stride: [1, 1],
            padding: [1, 1],
        };
        let positions = p.batch * p.out_height() * p.out_width();
        assert!(positions * 27 > TILE_ELEMENTS, "must take several tiles");
        let x = rng.vec(2 * 3 * 230 * 251, -1.0, 1.0);
        let w = rng.vec(5 * 27, -0.5, 0.5);
        let mut expected = vec![0.0; positions * 5];
        reference::conv2d(&x, WeightSlice::F32(&w), None, &p, &mut expected);
        let mut got = vec![f32::NAN; positions * 5];
        conv2d(Isa::detect(), &x, WeightSlice::F32(&w), None, &p, &mut got);
        assert_nmse("tiled conv2d", &got, &expected, NMSE_F32_REDUCTION);
    }
}
