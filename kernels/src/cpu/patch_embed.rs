//! Patch embedding (a conv2d whose stride equals its kernel and that has no padding: CLIP and
//! SigLIP's first layer) as patchify + the fast GEMM.
//!
//! Layout: `x` NCHW f32, `w` [OC, C, KH, KW] read as the GEMM weight [OC, C*KH*KW] exactly as
//! stored (f32/bf16/f16, no copy), `out` [N, OC, OH, OW]. Patches are gathered into a
//! [N*OH*OW, C*KH*KW] buffer, multiplied, and the [N*OH*OW, OC] result is transposed into
//! NCHW. The two scratch buffers are allocated per call: this runs in vision graphs, never
//! in the decode loop. Same results as `reference::conv2d` up to f32 summation order.

use crate::cpu::gemm;
use crate::cpu::isa::Isa;
use crate::cpu::reference::Conv2dParams;
use crate::WeightSlice;

/// Whether `p` is a patch embedding this kernel handles.
pub fn applies(p: &Conv2dParams) -> bool {
    p.stride == [p.kernel_h, p.kernel_w] && p.padding == [0, 0] && p.kernel_h > 0 && p.kernel_w > 0
}

/// `out = conv2d(x, w, bias)` for a patch embedding (see [`applies`]).
pub fn patch_embed(
    isa: Isa,
    x: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    p: &Conv2dParams,
    out: &mut [f32],
) {
    assert!(
        applies(p),
        "patch_embed: stride must equal the kernel and padding be 0"
    );
    let (oh, ow) = (p.out_height(), p.out_width());
    let (c, kh, kw) = (p.in_channels, p.kernel_h, p.kernel_w);
    let k = c * kh * kw;
    let rows = p.batch * oh * ow;
    assert_eq!(
        x.len(),
        p.batch * c * p.height * p.width,
        "patch_embed: x must be [N, C, H, W]"
    );
    assert_eq!(
        w.len(),
        p.out_channels * k,
        "patch_embed: w must be [OC, C, KH, KW]"
    );
    assert_eq!(
        out.len(),
        rows * p.out_channels,
        "patch_embed: out must be [N, OC, OH, OW]"
    );

    let mut patches = vec![0.0f32; rows * k];
    for n in 0..p.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut patches[((n * oh + oy) * ow + ox) * k..][..k];
                for ci in 0..c {
                    for ky in 0..kh {
                        let src = ((n * c + ci) * p.height + oy * kh + ky) * p.width + ox * kw;
                        row[(ci * kh + ky) * kw..][..kw].copy_from_slice(&x[src..src + kw]);
                    }
                }
            }
        }
    }
    let mut projected = vec![0.0f32; rows * p.out_channels];
    gemm::matmul(
        isa,
        &patches,
        w,
        bias,
        rows,
        p.out_channels,
        k,
        &mut projected,
    );
    let plane = oh * ow;
    for n in 0..p.batch {
        for pos in 0..plane {
            let src = &projected[(n * plane + pos) * p.out_channels..][..p.out_channels];
            for (oc, &v) in src.iter().enumerate() {
                out[(n * p.out_channels + oc) * plane + pos] = v;
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

    #[test]
    fn matches_reference_conv_at_every_isa() {
        let mut rng = Rng::new(77);
        // (batch, channels, height, width, out_channels, kernel): odd sizes, leftover pixels.
        for &(n, c, h, wd, oc, kern) in &[
            (1, 3, 42, 70, 40, 14),
            (2, 3, 33, 29, 17, 8),
            (1, 5, 7, 9, 3, 3),
        ] {
            let p = Conv2dParams {
                batch: n,
                in_channels: c,
                height: h,
                width: wd,
                out_channels: oc,
                kernel_h: kern,
                kernel_w: kern,
                stride: [kern, kern],
                padding: [0, 0],
            };
            let x = rng.vec(n * c * h * wd, -1.0, 1.0);
            let w32 = rng.vec(oc * c * kern * kern, -0.5, 0.5);
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
                    patch_embed(isa, &x, w, Some(WeightSlice::F32(&b)), &p, &mut got);
                    assert_nmse(
                        &format!("patch_embed {isa:?} {name} {n}x{c}x{h}x{wd} k{kern}"),
                        &got,
                        &expected,
                        NMSE_F32_REDUCTION,
                    );
                }
            }
        }
    }

    #[test]
    fn only_patch_embeddings_apply() {
        let mut p = Conv2dParams {
            batch: 1,
            in_channels: 3,
            height: 9,
            width: 9,
            out_channels: 2,
            kernel_h: 3,
            kernel_w: 3,
            stride: [3, 3],
            padding: [0, 0],
        };
        assert!(applies(&p));
        p.padding = [1, 1];
        assert!(!applies(&p));
        p.padding = [0, 0];
        p.stride = [2, 2];
        assert!(!applies(&p));
    }
}
