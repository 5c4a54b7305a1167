//! One executor's output copied into another's input where the backend holds both
//! (`Executor::operand`, `write_input_from`, `write_input_part_from`, `Backend::copy_slot`):
//! the copy gives what the host round trip gives, parts land in order, and a wrong dtype,
//! size, name or slot is an error naming it, never a panic.

use iris_kernels::testing::Rng;
use iris_runtime::backend::cpu::{CpuBackend, CpuSlot};
use iris_runtime::backend::{Backend, Operand};
use iris_runtime::graph::{Executor, ExecutorOptions, Graph, GraphBuilder, Op};
use iris_runtime::{DType, Error, Result, Tensor};

/// `y = x @ w^T` (x f32 [2, 3, 4], w [5, 4]): y is f32 [2, 3, 5], 30 elements.
fn producer(w: &Tensor) -> Graph {
    let mut g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 4]).unwrap();
    let w = g.weight("w", w.clone()).unwrap();
    let h = g.matmul(x, w, None).unwrap();
    g.name(h, "hidden").unwrap();
    let y = g.scale(h, 0.5).unwrap();
    g.output("y", y).unwrap();
    g.build()
}

/// `z = 2 * feats` for an input `feats` of `dtype` x `dims`.
fn consumer(dtype: DType, dims: &[usize]) -> Graph {
    let mut g = GraphBuilder::new();
    let feats = g.input("feats", dtype, dims.to_vec()).unwrap();
    let z = g.scale(feats, 2.0).unwrap();
    g.output("z", z).unwrap();
    g.build()
}

fn setup(be: &mut CpuBackend, seed: u64) -> (Executor<CpuBackend>, Tensor, Rng) {
    let mut rng = Rng::new(seed);
    let w = Tensor::from_slice(&rng.vec(20, -1.0, 1.0), [5, 4]).unwrap();
    let exec = Executor::new(be, producer(&w), ExecutorOptions::default()).unwrap();
    (exec, w, rng)
}

fn run_producer(be: &mut CpuBackend, exec: &mut Executor<CpuBackend>, rng: &mut Rng) -> Vec<f32> {
    let x = Tensor::from_slice(&rng.vec(24, -1.0, 1.0), [2, 3, 4]).unwrap();
    exec.run(be, &[("x", &x)]).unwrap();
    exec.read(be, "y").unwrap().to_vec_f32()
}

fn doubled(values: &[f32]) -> Vec<f32> {
    values.iter().map(|v| 2.0 * v).collect()
}

#[test]
fn an_output_copied_into_an_input_equals_the_host_round_trip() {
    let mut be = CpuBackend::new();
    let (mut producer, _, mut rng) = setup(&mut be, 21);
    let y = run_producer(&mut be, &mut producer, &mut rng);
    // Same bytes, another shape: [2, 3, 5] into [1, 6, 5].
    let mut consumer = Executor::new(
        &mut be,
        consumer(DType::F32, &[1, 6, 5]),
        ExecutorOptions::default(),
    )
    .unwrap();
    let src = producer.operand("y").unwrap();
    assert_eq!((src.dtype, src.shape.dims()), (DType::F32, &[2, 3, 5][..]));
    consumer.write_input_from(&mut be, "feats", &src).unwrap();
    consumer.execute(&mut be).unwrap();
    let z = consumer.read(&mut be, "z").unwrap().to_vec_f32();
    assert_eq!(z, doubled(&y));
}

#[test]
fn parts_from_several_runs_land_in_order() {
    let mut be = CpuBackend::new();
    let (mut producer, _, mut rng) = setup(&mut be, 22);
    let mut consumer = Executor::new(
        &mut be,
        consumer(DType::F32, &[1, 12, 5]),
        ExecutorOptions::default(),
    )
    .unwrap();
    let mut expected = Vec::new();
    for part in 0..2 {
        let y = run_producer(&mut be, &mut producer, &mut rng);
        let src = producer.operand("y").unwrap();
        consumer
            .write_input_part_from(&mut be, "feats", part * 30, &src)
            .unwrap();
        expected.extend(y);
    }
    consumer.execute(&mut be).unwrap();
    let z = consumer.read(&mut be, "z").unwrap().to_vec_f32();
    assert_eq!(z, doubled(&expected));
}

#[test]
fn a_mismatched_copy_is_an_error_naming_the_input() {
    let mut be = CpuBackend::new();
    let (mut producer, _, mut rng) = setup(&mut be, 23);
    run_producer(&mut be, &mut producer, &mut rng);
    let src = producer.operand("y").unwrap();

    // Same byte size, other dtype: i32 [30].
    let mut ints = Executor::new(
        &mut be,
        consumer(DType::F32, &[30]),
        ExecutorOptions::default(),
    )
    .unwrap();
    let as_i32 = Operand {
        dtype: DType::I32,
        ..src.clone()
    };
    match ints.write_input_from(&mut be, "feats", &as_i32) {
        Err(Error::DTypeMismatch {
            name,
            expected: DType::F32,
            found: DType::I32,
        }) => assert_eq!(name, "feats"),
        other => panic!("expected a dtype mismatch, got {other:?}"),
    }

    // Same dtype, 25 elements where 30 come.
    let mut small = Executor::new(
        &mut be,
        consumer(DType::F32, &[1, 5, 5]),
        ExecutorOptions::default(),
    )
    .unwrap();
    let err = small
        .write_input_from(&mut be, "feats", &src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`feats`") && err.contains("100 bytes") && err.contains("120 bytes"),
        "{err}"
    );
    // More room than the value: the whole-input copy refuses, the part copy fits.
    let mut large = Executor::new(
        &mut be,
        consumer(DType::F32, &[1, 7, 5]),
        ExecutorOptions::default(),
    )
    .unwrap();
    let err = large
        .write_input_from(&mut be, "feats", &src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`feats`") && err.contains("140 bytes"),
        "{err}"
    );
    let err = large
        .write_input_part_from(&mut be, "feats", 6, &src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`feats`") && err.contains("from element 6 does not fit"),
        "{err}"
    );
    let err = large
        .write_input_part_from(&mut be, "feats", usize::MAX, &src)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
    // Failed copies do not count as written.
    assert!(matches!(
        large.execute(&mut be),
        Err(Error::MissingInput(name)) if name == "feats"
    ));
    large
        .write_input_part_from(&mut be, "feats", 5, &src)
        .unwrap();

    // Not an input, no such value, not readable.
    let err = large
        .write_input_from(&mut be, "z", &src)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`z` is not a graph input"), "{err}");
    assert!(matches!(
        large.write_input_from(&mut be, "nope", &src),
        Err(Error::UnknownValue(name)) if name == "nope"
    ));
    let err = producer.operand("hidden").unwrap_err().to_string();
    assert!(
        err.contains("`hidden`") && err.contains("keep_named"),
        "{err}"
    );
    assert!(matches!(
        producer.operand("nope"),
        Err(Error::UnknownValue(_))
    ));
}

/// An operand whose shape claims more bytes than its slot holds (built by hand, not by an
/// executor) is refused by the backend's copy, not read out of bounds.
#[test]
fn a_slot_smaller_than_its_shape_is_refused_by_the_backend() {
    let mut be = CpuBackend::new();
    let (mut producer, _, mut rng) = setup(&mut be, 24);
    run_producer(&mut be, &mut producer, &mut rng);
    let src = producer.operand("y").unwrap();
    let lying = Operand {
        slot: be.sub_slot(&src.slot, 0, 16),
        ..src
    };
    let mut consumer = Executor::new(
        &mut be,
        consumer(DType::F32, &[30]),
        ExecutorOptions::default(),
    )
    .unwrap();
    let err = consumer
        .write_input_from(&mut be, "feats", &lying)
        .unwrap_err()
        .to_string();
    assert!(err.contains("120 bytes from a slot of 16"), "{err}");
}

#[test]
fn cpu_slot_copies_check_sizes_overlap_and_weights() {
    let mut be = CpuBackend::new();
    let arena = be.alloc(64).unwrap();
    let data: Vec<u8> = (1..=16).collect();
    let a = be.sub_slot(&arena, 0, 16);
    be.write_bytes(&a, &data).unwrap();

    let b = be.sub_slot(&arena, 32, 16);
    be.copy_slot(&a, &b, 16).unwrap();
    let mut out = [0u8; 16];
    be.read_into(&b, &mut out).unwrap();
    assert_eq!(out[..], data[..]);

    let err = be.copy_slot(&a, &b, 17).unwrap_err().to_string();
    assert!(err.contains("17 bytes from a slot of 16"), "{err}");
    let overlapping = be.sub_slot(&arena, 8, 16);
    let err = be.copy_slot(&a, &overlapping, 16).unwrap_err().to_string();
    assert!(err.contains("overlap"), "{err}");
    be.copy_slot(&a, &overlapping, 8).unwrap(); // 0..8 onto 8..16: adjacent, not overlapping

    let weight = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], [4]).unwrap();
    let weight = be.weight(&weight).unwrap();
    assert!(weight.is_weight_in_place());
    let err = be.copy_slot(&a, &weight, 16).unwrap_err().to_string();
    assert!(err.contains("weight"), "{err}");
    be.copy_slot(&weight, &b, 16).unwrap(); // reading a weight is fine
    be.read_into(&b, &mut out).unwrap();
    assert_eq!(out[..], f32_bytes(&[1.0, 2.0, 3.0, 4.0])[..]);
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A backend that keeps `Backend::copy_slot`'s default (through host memory).
#[derive(Default)]
struct HostCopies {
    inner: CpuBackend,
}

impl Backend for HostCopies {
    type Slot = CpuSlot;
    fn name(&self) -> &'static str {
        "host-copies"
    }
    iris_runtime::forward_backend_storage!(inner);
    fn execute(
        &mut self,
        op: &Op,
        inputs: &[Operand<CpuSlot>],
        output: &Operand<CpuSlot>,
    ) -> Result<()> {
        self.inner.execute(op, inputs, output)
    }
}

#[test]
fn the_default_copy_goes_through_the_host_and_checks_sizes() {
    let mut be = HostCopies::default();
    let mut rng = Rng::new(25);
    let w = Tensor::from_slice(&rng.vec(20, -1.0, 1.0), [5, 4]).unwrap();
    let mut producer = Executor::new(&mut be, producer(&w), ExecutorOptions::default()).unwrap();
    let x = Tensor::from_slice(&rng.vec(24, -1.0, 1.0), [2, 3, 4]).unwrap();
    producer.run(&mut be, &[("x", &x)]).unwrap();
    let y = producer.read(&mut be, "y").unwrap().to_vec_f32();
    let mut consumer = Executor::new(
        &mut be,
        consumer(DType::F32, &[6, 5]),
        ExecutorOptions::default(),
    )
    .unwrap();
    let src = producer.operand("y").unwrap();
    consumer.write_input_from(&mut be, "feats", &src).unwrap();
    consumer.execute(&mut be).unwrap();
    assert_eq!(
        consumer.read(&mut be, "z").unwrap().to_vec_f32(),
        doubled(&y)
    );
    let small = be.sub_slot(&src.slot, 0, 8);
    assert!(be.copy_slot(&small, &src.slot, 16).is_err());
}
