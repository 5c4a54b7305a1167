//! The CUDA backend's kernels, one op at a time, against the CPU reference
//! (`iris_kernels::cpu::reference`) on fresh random data with odd sizes, by NMSE with
//! DESIGN.md's thresholds, plus the backend's weights, state, and op and device errors. Every
//! output is poisoned with NaN before the op runs, so a kernel that skips an element fails.
//! The op harness, cached attention and whole models through the graph executor are in
//! `cuda_executor.rs`.
//!
//! Without a CUDA device (no driver, no GPU) each test prints `skipping: <reason>` and
//! passes; only `new_without_a_device_is_an_error_not_a_panic` checks something everywhere.
//! On a GPU machine: `bash scripts/gpu/run_cuda_tests.sh` (binaries from scripts/gpu/build.sh).
#![cfg(feature = "cuda")]

#[path = "common/cuda.rs"]
mod cuda_common;

use std::panic::catch_unwind;

use cuda_common::{backend, bf16_tensor, f32_tensor, operand, place, run, time_op};
use half::bf16;
use iris_kernels::cpu::reference;
use iris_kernels::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE, NMSE_F32_REDUCTION};
use iris_kernels::WeightSlice;
use iris_runtime::backend::cuda::{driver_present, CudaBackend, CudaSlot};
use iris_runtime::backend::{Backend, Operand};
use iris_runtime::graph::Op;
use iris_runtime::{DType, Error, Shape, Tensor};

/// Prints a rough timing line for the kernel notes (host clock: includes launch overhead).
fn print_timing(
    be: &mut CudaBackend,
    what: &str,
    flops: f64,
    bytes: f64,
    op: &Op,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) {
    let t = time_op(be, op, inputs, output);
    println!(
        "timing {what}: {:.1} us, {:.2} TFLOP/s, {:.1} GB/s (median of 20, host clock)",
        t * 1e6,
        flops / t / 1e12,
        bytes / t / 1e9
    );
}

/// A bf16 tensor of `data` rounded to bf16.
fn bf16_tensor_of(data: &[f32], dims: &[usize]) -> Tensor {
    let halves: Vec<bf16> = data.iter().map(|&v| bf16::from_f32(v)).collect();
    bf16_tensor(&halves, dims)
}

#[test]
fn new_without_a_device_is_an_error_not_a_panic() {
    let result = catch_unwind(|| CudaBackend::new(0)).expect("CudaBackend::new(0) panicked");
    if !driver_present() {
        let err = result.expect_err("no driver, yet CudaBackend::new succeeded");
        assert!(
            matches!(&err, Error::Cuda(m) if m.contains("libcuda")),
            "unexpected error: {err}"
        );
        println!("without a driver: {err}");
    }
    // A device that cannot exist: an error with or without a driver, never a panic.
    let result =
        catch_unwind(|| CudaBackend::new(1 << 20)).expect("CudaBackend::new(2^20) panicked");
    let err = result.expect_err("device 2^20 exists?");
    assert!(matches!(err, Error::Cuda(_)), "unexpected error: {err}");
}

#[test]
fn add_matches_reference() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0xadd);
    let cases: &[(&[usize], &[usize])] = &[
        (&[1], &[1]),
        (&[7, 13], &[13]),
        (&[7, 13], &[1, 13]),
        (&[7, 13], &[7, 13]),
        (&[3, 5, 7], &[5, 7]),
        (&[1_000_003], &[1_000_003]),
        (&[1_000_003], &[1]),
        (&[2, 999, 577], &[577]),
    ];
    for &(a_dims, b_dims) in cases {
        let (n, b_len) = (
            a_dims.iter().product::<usize>(),
            b_dims.iter().product::<usize>(),
        );
        let a = rng.vec(n, -2.0, 2.0);
        let b = rng.vec(b_len, -2.0, 2.0);
        let mut expected = vec![0.0; n];
        reference::add(&a, &b, &mut expected);

        let slots = place(&mut be, &[4 * n, 4 * b_len, 4 * n]);
        be.write(&slots[0], &f32_tensor(&a, a_dims)).unwrap();
        be.write(&slots[1], &f32_tensor(&b, b_dims)).unwrap();
        let inputs = [
            operand(&slots[0], DType::F32, a_dims),
            operand(&slots[1], DType::F32, b_dims),
        ];
        let output = operand(&slots[2], DType::F32, a_dims);
        let actual = run(&mut be, &Op::Add, &inputs, &output);
        assert_nmse(
            &format!("add {a_dims:?} + {b_dims:?}"),
            &actual,
            &expected,
            NMSE_F32_ELEMENTWISE,
        );
        if n > 1_000_000 {
            let bytes = 4.0 * (2 * n + b_len) as f64;
            print_timing(
                &mut be,
                &format!("add {a_dims:?} + {b_dims:?}"),
                n as f64,
                bytes,
                &Op::Add,
                &inputs,
                &output,
            );
        }
    }
}

#[test]
fn rms_norm_matches_reference() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0x7e5);
    let cases: &[(&[usize], f32)] = &[
        (&[5, 576], 1e-5),
        (&[3, 1000], 1e-6),
        (&[1, 1], 1e-5),
        (&[2, 3, 4099], 1e-6),
    ];
    for &(dims, eps) in cases {
        let dim = *dims.last().unwrap();
        let n: usize = dims.iter().product();
        let x = rng.vec(n, -3.0, 3.0);
        let w = rng.vec(dim, -1.5, 1.5);
        let w_bf16: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        for weight_dtype in [DType::F32, DType::BF16] {
            let mut expected = vec![0.0; n];
            let (w_tensor, w_ref) = match weight_dtype {
                DType::F32 => (f32_tensor(&w, &[dim]), WeightSlice::F32(&w)),
                _ => (bf16_tensor_of(&w, &[dim]), WeightSlice::BF16(&w_bf16)),
            };
            reference::rms_norm(&x, w_ref, eps, dim, &mut expected);

            let w_slot = be.weight(&w_tensor).unwrap();
            let slots = place(&mut be, &[4 * n, 4 * n]);
            be.write(&slots[0], &f32_tensor(&x, dims)).unwrap();
            let inputs = [
                operand(&slots[0], DType::F32, dims),
                operand(&w_slot, weight_dtype, &[dim]),
            ];
            let output = operand(&slots[1], DType::F32, dims);
            let actual = run(&mut be, &Op::RmsNorm { eps }, &inputs, &output);
            let what = format!("rms_norm {dims:?} weight {weight_dtype}");
            assert_nmse(&what, &actual, &expected, NMSE_F32_REDUCTION);
            if n > 20_000 {
                print_timing(
                    &mut be,
                    &what,
                    3.0 * n as f64,
                    8.0 * n as f64,
                    &Op::RmsNorm { eps },
                    &inputs,
                    &output,
                );
            }
        }
    }
}

/// One matmul case: x [batch.., k] @ w [n, k]^T (+ bias [n]) with weight (and bias) dtype.
fn check_matmul(
    be: &mut CudaBackend,
    rng: &mut Rng,
    x_dims: &[usize],
    n: usize,
    bias: bool,
    weight_dtype: DType,
) {
    let k = *x_dims.last().unwrap();
    let m: usize = x_dims[..x_dims.len() - 1].iter().product();
    let x = rng.vec(m * k, -1.0, 1.0);
    let w = rng.vec(n * k, -1.0, 1.0);
    let b = rng.vec(n, -1.0, 1.0);
    let (w_tensor, b_tensor) = match weight_dtype {
        DType::F32 => (f32_tensor(&w, &[n, k]), f32_tensor(&b, &[n])),
        _ => (bf16_tensor_of(&w, &[n, k]), bf16_tensor_of(&b, &[n])),
    };
    let w_bf16: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
    let b_bf16: Vec<bf16> = b.iter().map(|&v| bf16::from_f32(v)).collect();
    let (w_ref, b_ref) = match weight_dtype {
        DType::F32 => (WeightSlice::F32(&w), WeightSlice::F32(&b)),
        _ => (WeightSlice::BF16(&w_bf16), WeightSlice::BF16(&b_bf16)),
    };
    // bf16 weights run in bf16 compute on the GPU (activations rounded to bf16, as PyTorch's
    // bf16 matmul): the reference gets the same rounded activations, so only the summation
    // order differs.
    let x_ref: Vec<f32> = match weight_dtype {
        DType::F32 => x.clone(),
        _ => x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
    };
    let mut expected = vec![0.0; m * n];
    reference::matmul(&x_ref, w_ref, bias.then_some(b_ref), m, n, k, &mut expected);

    let mut out_dims = x_dims[..x_dims.len() - 1].to_vec();
    out_dims.push(n);
    let slots = place(be, &[4 * m * k, 4 * m * n]);
    be.write(&slots[0], &f32_tensor(&x, x_dims)).unwrap();
    let mut inputs = vec![
        operand(&slots[0], DType::F32, x_dims),
        operand(&be.weight(&w_tensor).unwrap(), weight_dtype, &[n, k]),
    ];
    if bias {
        inputs.push(operand(&be.weight(&b_tensor).unwrap(), weight_dtype, &[n]));
    }
    let output = operand(&slots[1], DType::F32, &out_dims);
    let actual = run(be, &Op::MatMul { has_bias: bias }, &inputs, &output);
    let what = format!("matmul x {x_dims:?} w [{n}, {k}] {weight_dtype} bias {bias}");
    assert_nmse(&what, &actual, &expected, NMSE_F32_REDUCTION);
    println!(
        "{what}: nmse {:e}",
        iris_kernels::testing::nmse(&actual, &expected)
    );
    if m * n * k >= 100_000_000 {
        let bytes = (4 * m * k + weight_dtype.size_in_bytes() * n * k + 4 * m * n) as f64;
        let flops = 2.0 * (m * n * k) as f64;
        print_timing(
            be,
            &what,
            flops,
            bytes,
            &Op::MatMul { has_bias: bias },
            &inputs,
            &output,
        );
    }
}

#[test]
fn matmul_f32_matches_reference() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0x3a7);
    let cases: &[(&[usize], usize)] = &[
        (&[1, 1], 1),
        (&[17, 65], 33),
        (&[129, 511], 257),
        (&[1, 577, 768], 1024),
        (&[3, 64], 64),
        (&[1, 4096], 7),
    ];
    for &(x_dims, n) in cases {
        for bias in [false, true] {
            check_matmul(&mut be, &mut rng, x_dims, n, bias, DType::F32);
        }
    }
}

#[test]
fn matmul_bf16_weight_matches_reference() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0xbf16);
    let cases: &[(&[usize], usize)] = &[
        (&[1, 1], 1),
        (&[17, 65], 33),
        (&[129, 511], 257),
        (&[577, 1024], 768),
    ];
    for &(x_dims, n) in cases {
        for bias in [false, true] {
            check_matmul(&mut be, &mut rng, x_dims, n, bias, DType::BF16);
        }
    }
}

#[test]
fn weights_upload_once_and_round_trip() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(11);
    let w = rng.vec(3 * 5, -1.0, 1.0);
    let tensor = bf16_tensor_of(&w, &[3, 5]);
    let first = be.weight(&tensor).unwrap();
    let again = be.weight(&tensor.clone()).unwrap();
    assert!(
        first.same_buffer(&again),
        "the same weight was uploaded twice"
    );
    assert_eq!(be.uploaded_weights(), 1);
    let back = be.read(&first, DType::BF16, &Shape::new([3, 5])).unwrap();
    assert_eq!(
        back.contiguous_bytes().unwrap(),
        tensor.contiguous_bytes().unwrap()
    );
    // A transposed view of the same storage is a different weight (materialized).
    let transposed = tensor.permute(&[1, 0]).unwrap();
    let t_slot = be.weight(&transposed).unwrap();
    assert!(!t_slot.same_buffer(&first));
    let back = be.read(&t_slot, DType::BF16, &Shape::new([5, 3])).unwrap();
    assert_eq!(back.to_vec_f32(), transposed.to_vec_f32());
}

#[test]
fn state_is_zeroed_shared_and_checked() {
    let Some(mut be) = backend() else { return };
    let shape = Shape::new([2, 3, 5]);
    let k_cache = be.state("layer0.k", DType::BF16, &shape).unwrap();
    let zeros = be.read(&k_cache, DType::BF16, &shape).unwrap().to_vec_f32();
    assert!(zeros.iter().all(|&v| v == 0.0));
    let data: Vec<f32> = (0..30).map(|i| i as f32 - 7.5).collect();
    be.write(&k_cache, &bf16_tensor_of(&data, &[2, 3, 5]))
        .unwrap();
    let same = be.state("layer0.k", DType::BF16, &shape).unwrap();
    assert_eq!(
        be.read(&same, DType::BF16, &shape).unwrap().to_vec_f32(),
        data
    );
    assert!(matches!(
        be.state("layer0.k", DType::F32, &shape),
        Err(Error::DTypeMismatch { .. })
    ));
    assert!(matches!(
        be.state("layer0.k", DType::BF16, &Shape::new([30])),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn unsupported_and_invalid_ops_are_errors() {
    let Some(mut be) = backend() else { return };
    let slots = place(&mut be, &[4 * 64, 4 * 64, 4 * 64]);
    let x = operand(&slots[0], DType::F32, &[4, 16]);
    let y = operand(&slots[1], DType::F32, &[4, 16]);
    let out = operand(&slots[2], DType::F32, &[4, 16]);
    // f16 activations (every kernel takes f32 activations) with a bf16 weight.
    let half_x = operand(&slots[0], DType::F16, &[4, 16]);
    let bf16_w = operand(&slots[1], DType::BF16, &[4, 16]);
    let out_44 = operand(&slots[2], DType::F32, &[4, 4]);
    let err = be
        .execute(&Op::MatMul { has_bias: false }, &[half_x, bf16_w], &out_44)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                backend: "cuda",
                ..
            }
        ),
        "{err}"
    );
    let half = operand(&slots[1], DType::BF16, &[4, 16]);
    let err = be.execute(&Op::Add, &[x.clone(), half], &out).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    // b not a suffix of a.
    let bad_b = operand(&slots[1], DType::F32, &[4]);
    assert!(be.execute(&Op::Add, &[x.clone(), bad_b], &out).is_err());
    // Output shape wrong.
    let bad_out = operand(&slots[2], DType::F32, &[4, 8]);
    assert!(matches!(
        be.execute(&Op::Add, &[x.clone(), y.clone()], &bad_out),
        Err(Error::ShapeMismatch { .. })
    ));
    // Slot too small for the operand it claims to hold.
    let small = be.sub_slot(&slots[2], 0, 16);
    let small_out = operand(&small, DType::F32, &[4, 16]);
    assert!(matches!(
        be.execute(&Op::Add, &[x.clone(), y.clone()], &small_out),
        Err(Error::InvalidOp { .. })
    ));
    // MatMul weight whose K disagrees with x.
    let w = operand(&slots[1], DType::F32, &[4, 15]);
    assert!(be
        .execute(&Op::MatMul { has_bias: false }, &[x.clone(), w], &out)
        .is_err());
    // Wrong operand count.
    assert!(be.execute(&Op::RmsNorm { eps: 1e-5 }, &[x], &out).is_err());
    be.synchronize().unwrap();
}

/// Data-dependent failures raise the device error flag and come back as errors from the
/// next synchronize/read, and the backend keeps working afterwards.
#[test]
fn device_error_flags_are_errors_not_panics() {
    let Some(mut be) = backend() else { return };
    // Embedding id out of range.
    let table = f32_tensor(&Rng::new(5).vec(7 * 3, -1.0, 1.0), &[7, 3]);
    let t_slot = be.weight(&table).unwrap();
    // i64 operands need 8-byte alignment: fresh allocations (`place` aligns to 4 only).
    let slots = [be.alloc(8 * 2).unwrap(), be.alloc(4 * 6).unwrap()];
    for bad in [7i64, -1] {
        let ids = Tensor::from_slice(&[2i64, bad], [2]).unwrap();
        be.write(&slots[0], &ids).unwrap();
        let inputs = [
            operand(&slots[0], DType::I64, &[2]),
            operand(&t_slot, DType::F32, &[7, 3]),
        ];
        let output = operand(&slots[1], DType::F32, &[2, 3]);
        be.execute(&Op::Embedding, &inputs, &output).unwrap();
        let err = be.synchronize().unwrap_err();
        println!("embedding id {bad}: {err}");
        assert!(
            matches!(
                err,
                Error::InvalidOp {
                    op: "embedding",
                    ..
                }
            ),
            "{err}"
        );
        be.synchronize()
            .expect("the flag is cleared after it is reported");
    }

    // KV cache overflow: past_len + T > S, and a negative past_len.
    let (hkv, d, s) = (1usize, 8usize, 4usize);
    let k_cache = be
        .state("flag.k", DType::F32, &Shape::new([1, hkv, s, d]))
        .unwrap();
    let v_cache = be
        .state("flag.v", DType::F32, &Shape::new([1, hkv, s, d]))
        .unwrap();
    let mut slots = place(&mut be, &[4 * 2 * d, 4 * 2 * d, 4 * 2 * d, 8, 4 * 2 * d]);
    slots[3] = be.alloc(8).unwrap(); // i64: 8-byte aligned
    let data = f32_tensor(&Rng::new(6).vec(2 * d, -1.0, 1.0), &[1, 2, 1, d]);
    for slot in &slots[..3] {
        be.write(slot, &data).unwrap();
    }
    for past in [3i64, -2] {
        be.write(&slots[3], &Tensor::from_slice(&[past], [1]).unwrap())
            .unwrap();
        let inputs = [
            operand(&slots[0], DType::F32, &[1, 2, 1, d]),
            operand(&slots[1], DType::F32, &[1, 2, hkv, d]),
            operand(&slots[2], DType::F32, &[1, 2, hkv, d]),
            operand(&k_cache, DType::F32, &[1, hkv, s, d]),
            operand(&v_cache, DType::F32, &[1, hkv, s, d]),
            operand(&slots[3], DType::I64, &[1]),
        ];
        let output = operand(&slots[4], DType::F32, &[1, 2, 1, d]);
        be.execute(&Op::CachedAttention { scale: 0.3 }, &inputs, &output)
            .unwrap();
        let err = be
            .read(&output.slot, DType::F32, &output.shape)
            .unwrap_err();
        println!("past_len {past}: {err}");
        assert!(
            matches!(
                err,
                Error::InvalidOp {
                    op: "cached_attention",
                    ..
                }
            ),
            "{err}"
        );
        let zeros = be
            .read(&k_cache, DType::F32, &Shape::new([1, hkv, s, d]))
            .unwrap()
            .to_vec_f32();
        assert!(zeros.iter().all(|&v| v == 0.0), "the cache was written");
    }
}
