//! Reference 2-D convolution (cross-correlation, as torch `nn.Conv2d`), direct loops.
//!
//! Layout: `x` is NCHW `[batch, in_channels, height, width]`; `w` is
//! `[out_channels, in_channels, kernel_h, kernel_w]` (f32/f16/bf16, widened on read);
//! `bias` is `[out_channels]`; `out` is `[batch, out_channels, out_h, out_w]`. Zero padding,
//! no dilation, no groups; `stride` and `padding` are `[vertical, horizontal]`.
//!   out[n, oc, oy, ox] = bias[oc] + sum_{c, ky, kx} x[n, c, oy*sh + ky - ph, ox*sw + kx - pw]
//!                                                    * w[oc, c, ky, kx]
//! Each output is accumulated in f64 and rounded once. The ViT patch embedding is the case
//! stride == kernel, padding 0.

use crate::WeightSlice;

/// Shape of one conv2d call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    /// `[vertical, horizontal]`, each >= 1.
    pub stride: [usize; 2],
    /// `[vertical, horizontal]` zeros added on both sides.
    pub padding: [usize; 2],
}

/// `(size + 2 pad - kernel) / stride + 1`, or 0 when the kernel does not fit.
fn out_size(size: usize, pad: usize, kernel: usize, stride: usize) -> usize {
    assert!(stride > 0, "conv2d: stride must be at least 1");
    let padded = size + 2 * pad;
    if padded < kernel {
        0
    } else {
        (padded - kernel) / stride + 1
    }
}

impl Conv2dParams {
    pub fn out_height(&self) -> usize {
        out_size(self.height, self.padding[0], self.kernel_h, self.stride[0])
    }

    pub fn out_width(&self) -> usize {
        out_size(self.width, self.padding[1], self.kernel_w, self.stride[1])
    }
}

/// Panics unless the operand lengths fit `p`: the checks every conv2d kernel shares.
pub(crate) fn check_operands(
    x: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    p: &Conv2dParams,
    out: &[f32],
) {
    let (kh, kw) = (p.kernel_h, p.kernel_w);
    assert_eq!(
        x.len(),
        p.batch * p.in_channels * p.height * p.width,
        "conv2d: x must be [N, C, H, W]"
    );
    assert_eq!(
        w.len(),
        p.out_channels * p.in_channels * kh * kw,
        "conv2d: w must be [OC, C, KH, KW]"
    );
    assert_eq!(
        out.len(),
        p.batch * p.out_channels * p.out_height() * p.out_width(),
        "conv2d: out must be [N, OC, OH, OW]"
    );
    if let Some(b) = &bias {
        assert_eq!(b.len(), p.out_channels, "conv2d: bias must be [OC]");
    }
}

/// Direct convolution, see the file header for the formula.
pub fn conv2d(
    x: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    p: &Conv2dParams,
    out: &mut [f32],
) {
    check_operands(x, w, bias, p, out);
    let (oh, ow) = (p.out_height(), p.out_width());
    let (c_in, h, wd) = (p.in_channels, p.height, p.width);
    let (kh, kw) = (p.kernel_h, p.kernel_w);
    let [sh, sw] = p.stride;
    let [ph, pw] = p.padding;
    let mut out_index = 0;
    for n in 0..p.batch {
        for oc in 0..p.out_channels {
            let b = bias.as_ref().map_or(0.0, |b| b.get(oc) as f64);
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b;
                    for c in 0..c_in {
                        for ky in 0..kh {
                            // Input row, skipped when it falls in the zero padding.
                            let Some(iy) = (oy * sh + ky).checked_sub(ph).filter(|&y| y < h) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = (ox * sw + kx).checked_sub(pw).filter(|&x| x < wd)
                                else {
                                    continue;
                                };
                                let xv = x[((n * c_in + c) * h + iy) * wd + ix];
                                let wv = w.get(((oc * c_in + c) * kh + ky) * kw + kx);
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out[out_index] = acc as f32;
                    out_index += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference::matmul;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
    use half::f16;

    fn params(n: usize, c: usize, h: usize, w: usize, oc: usize, k: [usize; 2]) -> Conv2dParams {
        Conv2dParams {
            batch: n,
            in_channels: c,
            height: h,
            width: w,
            out_channels: oc,
            kernel_h: k[0],
            kernel_w: k[1],
            stride: [1, 1],
            padding: [0, 0],
        }
    }

    #[test]
    fn output_sizes() {
        let mut p = params(1, 3, 224, 224, 8, [14, 14]);
        p.stride = [14, 14];
        assert_eq!((p.out_height(), p.out_width()), (16, 16));
        let mut p = params(1, 1, 7, 5, 1, [3, 3]);
        p.padding = [1, 0];
        p.stride = [2, 2];
        assert_eq!((p.out_height(), p.out_width()), (4, 2));
        let p = params(1, 1, 2, 2, 1, [3, 3]);
        assert_eq!((p.out_height(), p.out_width()), (0, 0));
    }

    #[test]
    fn one_by_one_kernel_is_a_matmul_over_pixels() {
        let mut rng = Rng::new(81);
        let (n, c, h, wd, oc) = (2, 5, 3, 7, 4);
        let p = params(n, c, h, wd, oc, [1, 1]);
        let x = rng.vec(n * c * h * wd, -1.0, 1.0);
        let w = rng.vec(oc * c, -1.0, 1.0);
        let b = rng.vec(oc, -1.0, 1.0);
        let mut got = vec![0.0; n * oc * h * wd];
        conv2d(
            &x,
            WeightSlice::F32(&w),
            Some(WeightSlice::F32(&b)),
            &p,
            &mut got,
        );
        // Pixels as rows: [N*H*W, C] @ w^T -> [N*H*W, OC], then back to NCHW.
        let hw = h * wd;
        let mut pixels = vec![0.0f32; n * hw * c];
        for ni in 0..n {
            for ci in 0..c {
                for s in 0..hw {
                    pixels[(ni * hw + s) * c + ci] = x[(ni * c + ci) * hw + s];
                }
            }
        }
        let mut rows = vec![0.0f32; n * hw * oc];
        let bias = Some(WeightSlice::F32(&b));
        matmul(
            &pixels,
            WeightSlice::F32(&w),
            bias,
            n * hw,
            oc,
            c,
            &mut rows,
        );
        let mut want = vec![0.0f32; got.len()];
        for ni in 0..n {
            for o in 0..oc {
                for s in 0..hw {
                    want[(ni * oc + o) * hw + s] = rows[(ni * hw + s) * oc + o];
                }
            }
        }
        assert_nmse("conv 1x1", &got, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn stride_equal_to_kernel_is_patchify_plus_matmul() {
        let mut rng = Rng::new(82);
        let (n, c, oc, k) = (2, 3, 5, [3, 2]);
        let (h, wd) = (3 * 3 + 2, 2 * 4 + 1); // leftover rows/cols are dropped
        let mut p = params(n, c, h, wd, oc, k);
        p.stride = k;
        let (oh, ow) = (p.out_height(), p.out_width());
        assert_eq!((oh, ow), (3, 4));
        let x = rng.vec(n * c * h * wd, -1.0, 1.0);
        let w = rng.vec(oc * c * k[0] * k[1], -1.0, 1.0);
        let b = rng.vec(oc, -1.0, 1.0);
        let mut got = vec![0.0; n * oc * oh * ow];
        conv2d(
            &x,
            WeightSlice::F32(&w),
            Some(WeightSlice::F32(&b)),
            &p,
            &mut got,
        );

        // Patches [N*OH*OW, C*KH*KW] in the weight's (c, ky, kx) order.
        let patch = c * k[0] * k[1];
        let mut patches = Vec::with_capacity(n * oh * ow * patch);
        for ni in 0..n {
            for py in 0..oh {
                for px in 0..ow {
                    for ci in 0..c {
                        for ky in 0..k[0] {
                            for kx in 0..k[1] {
                                let (y, xx) = (py * k[0] + ky, px * k[1] + kx);
                                patches.push(x[((ni * c + ci) * h + y) * wd + xx]);
                            }
                        }
                    }
                }
            }
        }
        let mut tokens = vec![0.0f32; n * oh * ow * oc];
        let bias = Some(WeightSlice::F32(&b));
        matmul(
            &patches,
            WeightSlice::F32(&w),
            bias,
            n * oh * ow,
            oc,
            patch,
            &mut tokens,
        );
        let mut want = vec![0.0f32; got.len()];
        for ni in 0..n {
            for o in 0..oc {
                for s in 0..oh * ow {
                    want[(ni * oc + o) * oh * ow + s] = tokens[(ni * oh * ow + s) * oc + o];
                }
            }
        }
        assert_nmse("conv patchify", &got, &want, NMSE_F32_REDUCTION);
    }

    #[test]
    fn padding_hand_example() {
        // 3x3 ones, 3x3 kernel of ones, padding 1: each output counts its in-bounds neighbours.
        let mut p = params(1, 1, 3, 3, 1, [3, 3]);
        p.padding = [1, 1];
        let mut out = [0.0f32; 9];
        conv2d(&[1.0; 9], WeightSlice::F32(&[1.0; 9]), None, &p, &mut out);
        assert_eq!(out, [4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
        // Stride 2 with padding picks the corners.
        p.stride = [2, 2];
        let mut out = [0.0f32; 4];
        conv2d(&[1.0; 9], WeightSlice::F32(&[1.0; 9]), None, &p, &mut out);
        assert_eq!(out, [4.0; 4]);
    }

    #[test]
    fn general_case_matches_padded_input_and_half_weights_widen() {
        let mut rng = Rng::new(83);
        let (n, c, h, wd, oc) = (1, 2, 6, 5, 3);
        let mut p = params(n, c, h, wd, oc, [3, 2]);
        p.stride = [2, 1];
        p.padding = [1, 2];
        let x = rng.vec(n * c * h * wd, -1.0, 1.0);
        let w = rng.vec(oc * c * 3 * 2, -1.0, 1.0);
        let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let w16_wide: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
        let len = n * oc * p.out_height() * p.out_width();
        let (mut got, mut want) = (vec![0.0; len], vec![0.0; len]);
        conv2d(&x, WeightSlice::F16(&w16), None, &p, &mut got);
        conv2d(&x, WeightSlice::F32(&w16_wide), None, &p, &mut want);
        assert_eq!(got, want);

        // Same conv on an explicitly zero-padded input with padding 0.
        let (hp, wp) = (h + 2, wd + 4);
        let mut xp = vec![0.0f32; n * c * hp * wp];
        for ci in 0..c {
            for y in 0..h {
                for xx in 0..wd {
                    xp[(ci * hp + y + 1) * wp + xx + 2] = x[(ci * h + y) * wd + xx];
                }
            }
        }
        let mut q = p;
        q.height = hp;
        q.width = wp;
        q.padding = [0, 0];
        assert_eq!(
            (q.out_height(), q.out_width()),
            (p.out_height(), p.out_width())
        );
        conv2d(&x, WeightSlice::F32(&w), None, &p, &mut got);
        conv2d(&xp, WeightSlice::F32(&w), None, &q, &mut want);
        assert_eq!(got, want);
    }
}
