//! 2-D convolution (NCHW input, [OC, C, KH, KW] f32, bf16 or f16 weight, optional bias of
//! the weight's dtype).

use iris_kernels::cuda as kernels;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid, unsupported};
use super::ops_more::{elements, expect_f32, launch, ptr, weight_kernel, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::error::Result;
use crate::layout::Shape;

pub(super) fn conv2d(
    backend: &CudaBackend,
    stride: [usize; 2],
    padding: [usize; 2],
    has_bias: bool,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "conv2d";
    expect_inputs(OP, inputs, 2 + has_bias as usize)?;
    let (x, w, bias) = (&inputs[0], &inputs[1], inputs.get(2));
    expect_f32(OP, &[x, output])?;
    let mut weights = vec![w];
    weights.extend(bias);
    let kernel = weight_kernel(
        OP,
        "conv2d_f32",
        "conv2d_f32_wbf16",
        "conv2d_f32_wf16",
        &weights,
    )?;
    let (xd, wd) = (x.shape.dims(), w.shape.dims());
    if xd.len() != 4 || wd.len() != 4 || wd[1] != xd[1] || stride.contains(&0) {
        return Err(invalid(
            OP,
            format!(
                "x {} / w {} / stride {stride:?} do not fit",
                x.shape, w.shape
            ),
        ));
    }
    let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (oc, kh, kw) = (wd[0], wd[2], wd[3]);
    let out_size = |size: usize, pad: usize, k: usize, s: usize| {
        (size + 2 * pad).checked_sub(k).map_or(0, |v| v / s + 1)
    };
    let (oh, ow) = (
        out_size(h, padding[0], kh, stride[0]),
        out_size(wi, padding[1], kw, stride[1]),
    );
    expect_shape("conv2d output", &Shape::new([n, oc, oh, ow]), &output.shape)?;
    if let Some(bias) = bias {
        expect_shape("conv2d bias", &Shape::new([oc]), &bias.shape)?;
        check_slot(OP, "bias", bias)?;
    }
    for (what, operand) in [("x", x), ("weight", w), ("output", output)] {
        check_slot(OP, what, operand)?;
        elements(OP, &operand.shape)?;
    }
    let total = elements(OP, &output.shape)?;
    if total == 0 {
        return Ok(());
    }
    if c == 0 || kh == 0 || kw == 0 {
        return Err(unsupported(format!(
            "conv2d with an empty input or kernel ({} * {})",
            x.shape, w.shape
        )));
    }
    let bias_ptr = bias.map_or(Arg::Ptr(0), |b| ptr(backend, b));
    let u = |v: usize| Arg::U32(v as u32);
    // SAFETY: conv2d_f32*(x, w, bias, out: u64; n, C, H, W, OC, KH, KW, OH, OW, sh, sw, ph,
    // pw: u32): taps outside the image are skipped, every other index lies in the checked
    // x [N, C, H, W], w [OC, C, KH, KW], bias [OC] and out [N, OC, OH, OW].
    unsafe {
        launch(
            backend,
            kernel,
            kernels::elementwise_dims(total),
            &[
                ptr(backend, x),
                ptr(backend, w),
                bias_ptr,
                ptr(backend, output),
                Arg::U32(total),
                u(c),
                u(h),
                u(wi),
                u(oc),
                u(kh),
                u(kw),
                u(oh),
                u(ow),
                u(stride[0]),
                u(stride[1]),
                u(padding[0]),
                u(padding[1]),
            ],
        )
    }
}
