//! Criterion benchmarks of the CPU kernels at model shapes. The reference kernels are the
//! baseline every faster variant is measured against.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use iris_kernels::cpu::reference as kernel;
use iris_kernels::testing::Rng;
use iris_kernels::WeightSlice;

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("reference/matmul");
    group.sample_size(10);
    // SmolLM2-135M decode (GEMV) and a small prefill tile.
    for &(m, n, k) in &[(1usize, 1536usize, 576usize), (16, 576, 576)] {
        let mut rng = Rng::new(1);
        let a = rng.vec(m * k, -1.0, 1.0);
        let w = rng.vec(n * k, -1.0, 1.0);
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{m}x{n}x{k}")),
            &(),
            |b, _| b.iter(|| kernel::matmul(&a, WeightSlice::F32(&w), None, m, n, k, &mut out)),
        );
    }
    group.finish();
}

fn rms_norm(c: &mut Criterion) {
    let mut group = c.benchmark_group("reference/rms_norm");
    let (rows, dim) = (64usize, 576usize);
    let mut rng = Rng::new(2);
    let x = rng.vec(rows * dim, -2.0, 2.0);
    let w = rng.vec(dim, 0.5, 1.5);
    let mut out = vec![0.0; rows * dim];
    group.throughput(Throughput::Bytes((rows * dim * 4 * 2) as u64));
    group.bench_function(format!("{rows}x{dim}"), |b| {
        b.iter(|| kernel::rms_norm(&x, WeightSlice::F32(&w), 1e-5, dim, &mut out))
    });
    group.finish();
}

criterion_group!(benches, matmul, rms_norm);
criterion_main!(benches);
