//! `MatMul` on the CUDA backend: `x [.., K] @ w [N, K]^T (+ bias [N]) -> [.., N]`, f32
//! activations and output. M is the product of x's leading dims.
//!
//! | weight | M     | kernels                                   | activations        |
//! |--------|-------|-------------------------------------------|--------------------|
//! | f32    | any   | `matmul_f32` (f32 FMA, exact; for checks) | f32                |
//! | bf16   | <= 8  | `gemv_bf16` (decode, memory bandwidth)    | rounded to bf16    |
//! | bf16   | > 8   | `cast_f32_bf16` + `gemm_bf16_mma_*`       | rounded to bf16    |
//! | f16    | <= 8  | `gemv_f16`                                | rounded to f16     |
//! | f16    | > 8   | `cast_f32_f16` + `gemm_f16_mma_*`         | rounded to f16     |
//!
//! With a bf16 (f16) weight the activations are rounded to bf16 (f16, nearest even) before the
//! multiply and the products accumulate in f32 on the tensor cores, as PyTorch's `Linear` does:
//! against an f32-activation reference that costs about 1e-6 NMSE; against a reference fed
//! the same bf16-rounded activations only the summation order differs. The bias (f32 or bf16
//! with a bf16 weight) is added in f32. The GEMM's tile shape follows the output's size
//! (`gemm_mma::gemm_tile_for`; `IRIS_GEMM_TILE` forces one, to time them against each other).
//!
//! Scratch: the GEMM reads bf16 activations from a buffer the backend owns (`Scratch`), and a
//! bf16 weight whose rows are not 16-byte aligned (K % 8 != 0, or a view at an odd offset;
//! real checkpoints never have one) is copied into it with zero-padded rows (`pad_bf16`) on
//! every call. The buffer is allocated at the first matmul that needs it and replaced by a
//! larger one only when a larger size is first needed (at least doubling); replaced buffers
//! are kept until the backend is dropped, so a recorded CUDA graph never refers to freed
//! memory. Executors run a graph op by op before recording it, so the buffer exists before
//! any capture.

use iris_kernels::cuda::{self as kernels, gemm_mma};

use super::ops::{
    check_slot, dtypes, expect_inputs, expect_shape, invalid, kernel_u32, unsupported,
};
use super::ops_more::{launch, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::Shape;

const OP: &str = "matmul";

/// The backend-owned bf16 buffer of the tensor-core matmul (see the module notes).
#[derive(Default)]
pub(super) struct Scratch {
    current: Option<CudaSlot>,
    /// Earlier, smaller buffers: kept alive for CUDA graphs recorded while they were current.
    retired: Vec<CudaSlot>,
}

impl Scratch {
    /// Bytes of the current buffer (0 before the first use).
    fn capacity(&self) -> usize {
        self.current.as_ref().map_or(0, CudaSlot::len)
    }
}

/// The 16-bit weight type of a tensor-core matmul: which twin of each kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Half {
    Bf16,
    F16,
}

impl Half {
    fn cast_kernel(self) -> &'static str {
        match self {
            Half::Bf16 => "cast_f32_bf16",
            Half::F16 => "cast_f32_f16",
        }
    }

    fn gemv_kernel(self) -> &'static str {
        match self {
            Half::Bf16 => "gemv_bf16",
            Half::F16 => "gemv_f16",
        }
    }

    fn gemm_kernel(self, tile: &gemm_mma::GemmTile) -> &'static str {
        match self {
            Half::Bf16 => tile.kernel,
            Half::F16 => tile.f16_kernel,
        }
    }
}

/// Sizes of one matmul, each checked to fit the kernels' u32 arithmetic.
#[derive(Clone, Copy, Debug)]
struct Dims {
    m: u32,
    n: u32,
    k: u32,
}

pub(super) fn matmul(
    backend: &mut CudaBackend,
    has_bias: bool,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    expect_inputs(OP, inputs, 2 + has_bias as usize)?;
    let (x, w, bias) = (&inputs[0], &inputs[1], inputs.get(2));
    let bias_dtype = bias.map(|b| b.dtype);
    let half = match (x.dtype, w.dtype, bias_dtype, output.dtype) {
        (DType::F32, DType::F32, None | Some(DType::F32), DType::F32) => None,
        (DType::F32, DType::BF16, None | Some(DType::F32 | DType::BF16), DType::F32) => {
            Some(Half::Bf16)
        }
        (DType::F32, DType::F16, None | Some(DType::F32 | DType::F16), DType::F32) => {
            Some(Half::F16)
        }
        _ => {
            let mut operands = vec![x, w];
            operands.extend(bias);
            operands.push(output);
            return Err(unsupported(format!(
                "matmul of {} (x and output f32; weight f32 with an f32 bias, or bf16 / f16 \
                 with an f32 bias or one of the weight's type)",
                dtypes(&operands)
            )));
        }
    };
    let Some(dims) = check_operands(x, w, bias, output)? else {
        return Ok(()); // nothing to compute
    };
    let Some(half) = half else {
        return matmul_f32(backend, dims, x, w, bias, output);
    };
    if dims.m as usize <= gemm_mma::GEMV_MAX_M {
        gemv(backend, half, dims, x, w, bias, output)
    } else {
        gemm(backend, half, dims, x, w, bias, output)
    }
}

/// Shapes, slots and size limits; `None` when the output is empty.
fn check_operands(
    x: &Operand<CudaSlot>,
    w: &Operand<CudaSlot>,
    bias: Option<&Operand<CudaSlot>>,
    output: &Operand<CudaSlot>,
) -> Result<Option<Dims>> {
    let x_dims = x.shape.dims();
    let Some((&k, batch)) = x_dims.split_last() else {
        return Err(invalid(
            OP,
            "x must have at least one dimension".to_string(),
        ));
    };
    let w_dims = w.shape.dims();
    if w_dims.len() != 2 || w_dims[1] != k {
        return Err(invalid(
            OP,
            format!("weight {} is not [N, {k}] for x {}", w.shape, x.shape),
        ));
    }
    let n = w_dims[0];
    if let Some(bias) = bias {
        expect_shape("matmul bias", &Shape::new([n]), &bias.shape)?;
    }
    let mut out_dims = batch.to_vec();
    out_dims.push(n);
    expect_shape("matmul output", &Shape::new(out_dims), &output.shape)?;
    check_slot(OP, "x", x)?;
    check_slot(OP, "weight", w)?;
    if let Some(bias) = bias {
        check_slot(OP, "bias", bias)?;
    }
    check_slot(OP, "output", output)?;
    let m: usize = batch.iter().product();
    if m == 0 || n == 0 {
        return Ok(None);
    }
    Ok(Some(Dims {
        m: kernel_u32(OP, "M (rows of x)", m, kernels::MAX_DIM)?,
        n: kernel_u32(OP, "N", n, kernels::MAX_DIM)?,
        k: kernel_u32(OP, "K", k, kernels::MAX_DIM)?,
    }))
}

/// `K` rounded up to whole 16-byte bf16 chunks: the row length of padded operands.
fn padded_k(k: u32) -> usize {
    (k as usize).div_ceil(gemm_mma::BF16_ROW_ALIGN) * gemm_mma::BF16_ROW_ALIGN
}

/// True when the weight can be read in place: rows start 16-byte aligned (or K = 0: nothing
/// is read).
fn weight_aligned(w: &Operand<CudaSlot>, k: u32) -> bool {
    k == 0
        || (k as usize).is_multiple_of(gemm_mma::BF16_ROW_ALIGN)
            && w.slot.offset().is_multiple_of(16)
}

/// Bytes rounded up to 256, so every region of the scratch buffer starts aligned.
fn region(bytes: usize) -> usize {
    bytes.div_ceil(256) * 256
}

fn too_large(what: &str) -> Error {
    unsupported(format!(
        "matmul with {what} (past the kernels' 32-bit index range)"
    ))
}

/// The scratch buffer, grown to at least `bytes` (see the module notes).
fn scratch(backend: &mut CudaBackend, bytes: usize) -> Result<CudaSlot> {
    let have = backend.matmul_scratch.capacity();
    if have < bytes {
        let size = bytes.max(2 * have);
        let slot = backend.zeroed(size, "the matmul's bf16 scratch buffer")?;
        let scratch = &mut backend.matmul_scratch;
        if let Some(old) = scratch.current.replace(slot) {
            scratch.retired.push(old);
        }
    }
    backend
        .matmul_scratch
        .current
        .clone()
        .ok_or_else(|| Error::Cuda("the matmul scratch buffer is missing".into()))
}

/// The weight as the GEMM and GEMV read it: (address, row stride in elements). A weight
/// whose rows are not 16-byte aligned is copied with `pad_bf16` into `scratch` at `offset`.
fn weight_rows(
    backend: &CudaBackend,
    dims: Dims,
    w: &Operand<CudaSlot>,
    scratch: Option<(&CudaSlot, usize)>,
) -> Result<(u64, u32)> {
    if weight_aligned(w, dims.k) {
        return Ok((w.slot.device_ptr(&backend.stream), dims.k));
    }
    let (slot, offset) =
        scratch.ok_or_else(|| Error::Cuda("no scratch for a padded weight".into()))?;
    let ld = padded_k(dims.k);
    let chunks = dims.n as usize * ld / 8;
    if chunks > kernels::MAX_DIM {
        return Err(too_large(&format!("a padded {} x {ld} weight", dims.n)));
    }
    let ld = ld as u32;
    let dst = slot.device_ptr(&backend.stream) + offset as u64;
    let src = w.slot.device_ptr(&backend.stream);
    // SAFETY: pad_bf16 takes (u64 src, dst; u32 rows, k, ld). It reads src[..n * k] bf16
    // (check_slot proved the weight slot holds them, 2-byte aligned) and writes dst[..n * ld]
    // bf16: the caller reserved n * ld * 2 bytes at `offset` of the scratch slot, 256-byte
    // aligned, so every 16-byte store is aligned. n * ld / 8 <= MAX_DIM (checked above).
    unsafe {
        launch(
            backend,
            "pad_bf16",
            kernels::cast_dims(dims.n, ld),
            &[
                Arg::Ptr(src),
                Arg::Ptr(dst),
                Arg::U32(dims.n),
                Arg::U32(dims.k),
                Arg::U32(ld),
            ],
        )?;
    }
    Ok((dst, ld))
}

/// Bias arguments: (address or 0, 1 when 16-bit: the weight's type).
fn bias_args(backend: &CudaBackend, bias: Option<&Operand<CudaSlot>>) -> (u64, u32) {
    match bias {
        Some(b) => (
            b.slot.device_ptr(&backend.stream),
            u32::from(b.dtype != DType::F32),
        ),
        None => (0, 0),
    }
}

/// M <= 8 with a bf16 weight: `gemv_bf16` (activations rounded to bf16 as it loads them).
fn gemv(
    backend: &mut CudaBackend,
    half: Half,
    dims: Dims,
    x: &Operand<CudaSlot>,
    w: &Operand<CudaSlot>,
    bias: Option<&Operand<CudaSlot>>,
    output: &Operand<CudaSlot>,
) -> Result<()> {
    let scratch_slot = if weight_aligned(w, dims.k) {
        None
    } else {
        let bytes = dims.n as usize * padded_k(dims.k) * 2;
        Some(scratch(backend, bytes)?)
    };
    let (w_ptr, ldw) = weight_rows(backend, dims, w, scratch_slot.as_ref().map(|s| (s, 0)))?;
    let (bias_ptr, bias_half) = bias_args(backend, bias);
    let x_ptr = x.slot.device_ptr(&backend.stream);
    let out_ptr = output.slot.device_ptr(&backend.stream);
    // SAFETY: gemv_bf16 and its twin gemv_f16 take (u64 x, w, bias, out; u32 m, n, k, ldw, bias
    // flag). It reads x[..m * k] f32 (check_slot: held, 4-byte aligned; vector loads only on
    // 16-byte aligned rows, which the kernel tests), w rows of ldw 16-bit values for n rows, each
    // read in 16-byte chunks up to roundup(k, 8): in place only when k % 8 == 0 and the slot offset
    // is a multiple of 16 (allocations are 256-byte aligned), else the zero-padded copy weight_rows
    // just queued on the same stream; bias[..n] when non-null (checked, aligned for its dtype); and
    // writes out[..m * n] f32. 1 <= m <= 8 and n, k <= MAX_DIM as the kernel requires.
    unsafe {
        launch(
            backend,
            half.gemv_kernel(),
            kernels::gemv_dims(dims.n),
            &[
                Arg::Ptr(x_ptr),
                Arg::Ptr(w_ptr),
                Arg::Ptr(bias_ptr),
                Arg::Ptr(out_ptr),
                Arg::U32(dims.m),
                Arg::U32(dims.n),
                Arg::U32(dims.k),
                Arg::U32(ldw),
                Arg::U32(bias_half),
            ],
        )
    }
}

/// The GEMM variant of this matmul: the forced one, else the one its output size asks for.
fn gemm_tile(backend: &CudaBackend, dims: Dims) -> &'static gemm_mma::GemmTile {
    backend
        .forced_gemm_tile()
        .unwrap_or_else(|| gemm_mma::gemm_tile_for(dims.m, dims.n, backend.max_shared_per_block()))
}

/// M > 8 with a 16-bit weight: `cast_f32_bf16` (or `_f16`) into the scratch buffer, then
/// `gemm_bf16_mma_*` (or `gemm_f16_mma_*`).
fn gemm(
    backend: &mut CudaBackend,
    half: Half,
    dims: Dims,
    x: &Operand<CudaSlot>,
    w: &Operand<CudaSlot>,
    bias: Option<&Operand<CudaSlot>>,
    output: &Operand<CudaSlot>,
) -> Result<()> {
    let lda = padded_k(dims.k);
    let a_chunks = dims.m as usize * lda / 8;
    if a_chunks > kernels::MAX_DIM || lda > kernels::MAX_DIM {
        return Err(too_large(&format!("{} x {lda} 16-bit activations", dims.m)));
    }
    let tile = gemm_tile(backend, dims);
    if tile.tiles(dims.m, dims.n) > gemm_mma::GEMM_MAX_TILES {
        return Err(too_large(&format!("{} x {} output tiles", dims.m, dims.n)));
    }
    let a_bytes = region(dims.m as usize * lda * 2);
    let w_bytes = if weight_aligned(w, dims.k) {
        0
    } else {
        dims.n as usize * lda * 2
    };
    if dims.k == 0 {
        // Nothing to multiply: the kernel reads no a and no w and writes the bias (or 0).
        return gemm_launch(backend, half, tile, dims, (0, 0), (0, 0), bias, output);
    }
    let slot = scratch(backend, a_bytes + w_bytes)?;
    let lda = lda as u32;
    let a_ptr = slot.device_ptr(&backend.stream);
    let x_ptr = x.slot.device_ptr(&backend.stream);
    // SAFETY: cast_f32_bf16 and its twin cast_f32_f16 take (u64 src, dst; u32 rows, k, ld). It
    // reads x[..m * k] f32 (check_slot: held, 4-byte aligned; vector loads only on 16-byte aligned
    // rows, which the kernel tests) and writes m rows of lda 16-bit values at the start of the
    // scratch slot, which holds at least a_bytes >= m * lda * 2 bytes and is 256-byte aligned; lda
    // % 8 == 0 and m * lda / 8 <= MAX_DIM (checked above).
    unsafe {
        launch(
            backend,
            half.cast_kernel(),
            kernels::cast_dims(dims.m, lda),
            &[
                Arg::Ptr(x_ptr),
                Arg::Ptr(a_ptr),
                Arg::U32(dims.m),
                Arg::U32(dims.k),
                Arg::U32(lda),
            ],
        )?;
    }
    let weight = weight_rows(backend, dims, w, Some((&slot, a_bytes)))?;
    gemm_launch(
        backend,
        half,
        tile,
        dims,
        (a_ptr, lda),
        weight,
        bias,
        output,
    )
}

/// The `tile` variant of `gemm_bf16_mma_*` (or `_f16_`) on prepared operands: (address, row
/// stride) of a and of w.
#[allow(clippy::too_many_arguments)] // the launch's operands, each prepared by gemm()
fn gemm_launch(
    backend: &CudaBackend,
    half: Half,
    tile: &gemm_mma::GemmTile,
    dims: Dims,
    (a_ptr, lda): (u64, u32),
    (w_ptr, ldw): (u64, u32),
    bias: Option<&Operand<CudaSlot>>,
    output: &Operand<CudaSlot>,
) -> Result<()> {
    let (bias_ptr, bias_half) = bias_args(backend, bias);
    let out_ptr = output.slot.device_ptr(&backend.stream);
    // SAFETY: the arguments match the gemm_bf16_mma_* / gemm_f16_mma_* parameters (u64 a, w, bias,
    // out; u32 m, n, k, lda, ldw, bias flag). It reads a: m rows of lda 16-bit values (the cast
    // just queued on this stream wrote them, zero beyond k), w: n rows of ldw 16-bit values whose
    // rows start 16-byte aligned (in place when weight_aligned, else the padded copy at a_bytes of
    // the scratch, zero beyond k), each in whole 16-byte chunks that start below k (none when k =
    // 0, where a and w may be null); bias[..n] when non-null; and writes out[..m * n] f32
    // (check_slot: held, aligned). gemm() chose `tile` and checked that its tile count fits the 1-D
    // grid and m, n, k, lda, ldw <= MAX_DIM. The scratch is never freed while the backend lives;
    // other allocations are freed stream-ordered, after the launch. gemm_dims gives the variant its
    // block size and dynamic shared memory, whose limit CudaBackend::new raised.
    unsafe {
        launch(
            backend,
            half.gemm_kernel(tile),
            kernels::gemm_dims(tile, dims.m, dims.n),
            &[
                Arg::Ptr(a_ptr),
                Arg::Ptr(w_ptr),
                Arg::Ptr(bias_ptr),
                Arg::Ptr(out_ptr),
                Arg::U32(dims.m),
                Arg::U32(dims.n),
                Arg::U32(dims.k),
                Arg::U32(lda),
                Arg::U32(ldw),
                Arg::U32(bias_half),
            ],
        )
    }
}

/// f32 weight and bias: `matmul_f32`, exact f32 FMA in k order (the checking path).
fn matmul_f32(
    backend: &mut CudaBackend,
    dims: Dims,
    x: &Operand<CudaSlot>,
    w: &Operand<CudaSlot>,
    bias: Option<&Operand<CudaSlot>>,
    output: &Operand<CudaSlot>,
) -> Result<()> {
    if dims.m as usize > kernels::MATMUL_MAX_M {
        return Err(unsupported(format!(
            "matmul with M = {} (the f32 kernel handles up to {})",
            dims.m,
            kernels::MATMUL_MAX_M
        )));
    }
    let bias_ptr = bias.map_or(0, |b| b.slot.device_ptr(&backend.stream)); // 0: no bias
    let args = [
        Arg::Ptr(x.slot.device_ptr(&backend.stream)),
        Arg::Ptr(w.slot.device_ptr(&backend.stream)),
        Arg::Ptr(bias_ptr),
        Arg::Ptr(output.slot.device_ptr(&backend.stream)),
        Arg::U32(dims.m),
        Arg::U32(dims.n),
        Arg::U32(dims.k),
    ];
    // SAFETY: the arguments match matmul_f32's parameters (u64 a, w, bias, out; u32 m, n, k).
    // It reads a[..m * k], w[..n * k] and bias[..n] (f32; bias only when non-null) and writes
    // out[..m * n] (f32), every access bounds-checked against m, n, k; check_slot proved each
    // slot holds its operand, 4-byte aligned, and the grid fits (m <= MATMUL_MAX_M).
    unsafe {
        launch(
            backend,
            "matmul_f32",
            kernels::matmul_dims(dims.m, dims.n),
            &args,
        )
    }
}
