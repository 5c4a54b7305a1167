//! Criterion benchmarks of the CPU kernels at model shapes: the fast kernels (GEMV / GEMM,
//! flash attention) at the detected ISA level (or `IRIS_ISA`), with the plain reference
//! kernels as the baseline on the shapes where they finish in reasonable time.
//! Throughput is reported in elements = flops (matmul, attention) so criterion's
//! "elem/s" reads as FLOP/s. `iris bench kernels` prints the same shapes against the
//! machine's probed peak.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::bf16;
use iris_kernels::cpu::bench::MATMUL_SHAPES;
use iris_kernels::cpu::reference::{self as kernel, AttentionParams, KvStrides};
use iris_kernels::cpu::{attention, gemm, isa, rowops};
use iris_kernels::testing::Rng;
use iris_kernels::WeightSlice;

fn matmul(c: &mut Criterion) {
    let isa = isa::selected();
    let mut group = c.benchmark_group(format!("{isa}/matmul"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    for (m, n, k) in MATMUL_SHAPES {
        let mut rng = Rng::new(1);
        let a = rng.vec(m * k, -1.0, 1.0);
        let w = rng.vec(n * k, -1.0, 1.0);
        let wb: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for (name, ws) in [
            ("f32", WeightSlice::F32(&w)),
            ("bf16", WeightSlice::BF16(&wb)),
        ] {
            group.bench_with_input(
                BenchmarkId::new(name, format!("{m}x{n}x{k}")),
                &(),
                |b, _| b.iter(|| gemm::matmul(isa, &a, ws, None, m, n, k, &mut out)),
            );
        }
    }
    group.finish();
}

fn attention_bench(c: &mut Criterion) {
    let isa = isa::selected();
    let mut group = c.benchmark_group(format!("{isa}/attention"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    // SmolLM2-135M: 9 query heads, 3 kv heads, head_dim 64; K/V in the bhsd cache.
    for (q_len, kv_len) in [(512usize, 512usize), (1, 512)] {
        let (nh, nkv, d) = (9, 3, 64);
        let p = AttentionParams {
            batch: 1,
            q_len,
            kv_len,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: d,
            scale: 0.125,
            causal: true,
        };
        let mut rng = Rng::new(2);
        let q = rng.vec(q_len * nh * d, -1.0, 1.0);
        let k = rng.vec(nkv * kv_len * d, -1.0, 1.0);
        let v = rng.vec(nkv * kv_len * d, -1.0, 1.0);
        let kv = KvStrides::bhsd(kv_len, nkv, d);
        let mut out = vec![0.0; q.len()];
        let pairs: usize = (0..q_len).map(|i| kv_len - q_len + i + 1).sum();
        group.throughput(Throughput::Elements((4 * pairs * d * nh) as u64));
        let id = format!("q{q_len}_kv{kv_len}");
        group.bench_function(BenchmarkId::new("flash", &id), |b| {
            b.iter(|| attention::attention(isa, &q, &k, &v, kv, None, &p, &mut out))
        });
        group.bench_function(BenchmarkId::new("reference", &id), |b| {
            b.iter(|| kernel::attention(&q, &k, &v, kv, None, &p, &mut out))
        });
    }
    group.finish();
}

fn reference_matmul(c: &mut Criterion) {
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

/// The vectorized row ops at SmolLM2 prefill shapes (512 tokens), every level beside the
/// reference (the scalar level).
fn row_ops(c: &mut Criterion) {
    let (rows, dim, hidden) = (512usize, 576usize, 1536usize);
    let mut rng = Rng::new(3);
    let x = rng.vec(rows * dim, -2.0, 2.0);
    let w: Vec<bf16> = rng
        .vec(dim, 0.5, 1.5)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    let gate = rng.vec(rows * hidden, -6.0, 6.0);
    let up = rng.vec(rows * hidden, -2.0, 2.0);
    let mut out = vec![0.0; rows * hidden];
    let mut group = c.benchmark_group("rowops");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(1));
    for level in isa::Isa::available() {
        group.throughput(Throughput::Bytes((rows * dim * 8) as u64));
        group.bench_function(format!("{level}/rms_norm_bf16w/{rows}x{dim}"), |b| {
            b.iter(|| {
                rowops::rms_norm(
                    level,
                    &x,
                    WeightSlice::BF16(&w),
                    1e-5,
                    dim,
                    &mut out[..rows * dim],
                )
            })
        });
        group.throughput(Throughput::Bytes((rows * hidden * 12) as u64));
        group.bench_function(format!("{level}/silu_mul/{rows}x{hidden}"), |b| {
            b.iter(|| rowops::silu_mul(level, &gate, &up, &mut out))
        });
        group.throughput(Throughput::Bytes((rows * dim * 12) as u64));
        group.bench_function(format!("{level}/add/{rows}x{dim}"), |b| {
            b.iter(|| rowops::add(level, &x, &gate[..rows * dim], &mut out[..rows * dim]))
        });
    }
    group.finish();
}

/// The other row ops and copies at model shapes, every level (scalar = the reference):
/// softmax and the embedding gather at SmolLM2 prefill (512 tokens of 576), LayerNorm at
/// CLIP ViT-L (577 x 1024), exact GELU at the LLaVA projector (577 x 4096), the prefill's
/// KV-cache write (512 tokens, 3 heads of 64) and greedy argmax over a 49152 vocabulary.
fn row_ops_more(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    let bf = |v: Vec<f32>| -> Vec<bf16> { v.into_iter().map(bf16::from_f32).collect() };
    let (rows, dim) = (512usize, 576usize);
    let scores = rng.vec(rows * dim, -8.0, 8.0);
    let (vocab, ids) = (
        8192usize,
        (0..rows as i64).map(|i| i * 37 % 8192).collect::<Vec<_>>(),
    );
    let table = bf(rng.vec(vocab * dim, -1.0, 1.0));
    let (tokens, width) = (577usize, 1024usize);
    let vit = rng.vec(tokens * width, -3.0, 3.0);
    let (ln_w, ln_b) = (bf(rng.vec(width, 0.5, 1.5)), bf(rng.vec(width, -0.5, 0.5)));
    let mlp = rng.vec(tokens * 4096, -4.0, 4.0);
    let (kv_heads, head_dim, max_seq) = (3usize, 64usize, 1024usize);
    let new_kv = rng.vec(rows * kv_heads * head_dim, -1.0, 1.0);
    let mut cache = vec![0.0f32; kv_heads * max_seq * head_dim];
    let logits = rng.vec(49152, -10.0, 10.0);
    let mut out = vec![0.0; tokens * 4096];
    let mut next = [0i64; 1];
    let mut group = c.benchmark_group("rowops");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(1));
    for level in isa::Isa::available() {
        group.throughput(Throughput::Bytes((rows * dim * 8) as u64));
        group.bench_function(format!("{level}/softmax/{rows}x{dim}"), |b| {
            b.iter(|| rowops::softmax(level, &scores, dim, &mut out[..rows * dim]))
        });
        group.throughput(Throughput::Bytes((rows * dim * 6) as u64));
        group.bench_function(format!("{level}/embedding_bf16/{rows}x{dim}"), |b| {
            let t = WeightSlice::BF16(&table);
            b.iter(|| rowops::embedding(level, &ids, t, dim, &mut out[..rows * dim]).unwrap())
        });
        group.throughput(Throughput::Bytes((tokens * width * 8) as u64));
        group.bench_function(format!("{level}/layer_norm_bf16w/{tokens}x{width}"), |b| {
            let (w, bias) = (WeightSlice::BF16(&ln_w), Some(WeightSlice::BF16(&ln_b)));
            let o = &mut out[..tokens * width];
            b.iter(|| rowops::layer_norm(level, &vit, w, bias, 1e-5, width, o))
        });
        group.throughput(Throughput::Bytes((tokens * 4096 * 8) as u64));
        group.bench_function(format!("{level}/gelu_erf/{tokens}x4096"), |b| {
            b.iter(|| rowops::gelu_erf(level, &mlp, &mut out))
        });
        group.throughput(Throughput::Bytes((new_kv.len() * 8) as u64));
        group.bench_function(
            format!("{level}/kv_write/{rows}x{kv_heads}x{head_dim}"),
            |b| {
                let (h, d, s) = (kv_heads, head_dim, max_seq);
                b.iter(|| match level {
                    isa::Isa::Scalar => kernel::kv_write(&mut cache, &new_kv, 1, rows, h, d, s, 7),
                    _ => rowops::kv_write(&mut cache, &new_kv, 1, rows, h, d, s, 7),
                })
            },
        );
        group.throughput(Throughput::Bytes((logits.len() * 4) as u64));
        group.bench_function(format!("{level}/argmax/1x{}", logits.len()), |b| {
            b.iter(|| rowops::argmax(level, &logits, logits.len(), &mut next))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    matmul,
    attention_bench,
    reference_matmul,
    rms_norm,
    row_ops,
    row_ops_more
);
criterion_main!(benches);
