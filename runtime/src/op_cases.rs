//! The op-level differential harness: one small graph per op and dtype, on random data of
//! odd sizes (never zeros), run on a candidate backend and on the CPU reference backend and
//! compared by NMSE with the thresholds of DESIGN.md. Every faster CPU kernel set and every
//! GPU backend plugs in here (`compare_backend`), as ggml's test-backend-ops does.

use half::{bf16, f16};
use iris_kernels::testing::{nmse, Rng, NMSE_F32_ELEMENTWISE, NMSE_F32_REDUCTION, NMSE_HALF};

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::{Executor, ExecutorOptions, GeluKind, Graph, GraphBuilder, Op};
use crate::tensor::Tensor;

/// One case: a graph with a single op (plus its weights), its inputs, and the NMSE bound.
pub struct OpCase {
    pub name: String,
    pub graph: Graph,
    pub inputs: Vec<(String, Tensor)>,
    pub threshold: f64,
}

pub enum CaseOutcome {
    Passed {
        nmse: f64,
    },
    Failed {
        nmse: f64,
        max_abs: f32,
    },
    /// The candidate does not implement this op/dtype (Error::Unsupported).
    Skipped(String),
}

pub struct CaseReport {
    pub name: String,
    pub threshold: f64,
    pub outcome: CaseOutcome,
}

fn random(rng: &mut Rng, dims: &[usize], lo: f32, hi: f32) -> Tensor {
    let n: usize = dims.iter().product();
    Tensor::from_slice(&rng.vec(n, lo, hi), dims.to_vec()).expect("sizes agree")
}

fn random_weight(rng: &mut Rng, dims: &[usize], dtype: DType) -> Tensor {
    let t = random(rng, dims, -1.0, 1.0);
    match dtype {
        DType::F32 => t,
        DType::F16 => {
            let v: Vec<f16> = t.to_vec_f32().iter().map(|&x| f16::from_f32(x)).collect();
            Tensor::from_slice(&v, dims.to_vec()).expect("sizes agree")
        }
        DType::BF16 => {
            let v: Vec<bf16> = t.to_vec_f32().iter().map(|&x| bf16::from_f32(x)).collect();
            Tensor::from_slice(&v, dims.to_vec()).expect("sizes agree")
        }
        other => panic!("no random weights of {other}"),
    }
}

struct CaseBuilder {
    g: GraphBuilder,
    inputs: Vec<(String, Tensor)>,
    rng: Rng,
}

impl CaseBuilder {
    fn new(seed: u64) -> Self {
        CaseBuilder {
            g: GraphBuilder::new(),
            inputs: Vec::new(),
            rng: Rng::new(seed),
        }
    }
    fn input(&mut self, name: &str, t: Tensor) -> crate::graph::ValueId {
        let id = self
            .g
            .input(name, t.dtype(), t.shape().clone())
            .expect("fresh name");
        self.inputs.push((name.to_string(), t));
        id
    }
    fn x(&mut self, name: &str, dims: &[usize]) -> crate::graph::ValueId {
        let t = random(&mut self.rng, dims, -2.0, 2.0);
        self.input(name, t)
    }
    fn w(&mut self, name: &str, dims: &[usize], dtype: DType) -> crate::graph::ValueId {
        let t = random_weight(&mut self.rng, dims, dtype);
        self.g.weight(name, t).expect("fresh name")
    }
    fn finish(mut self, name: String, out: crate::graph::ValueId, threshold: f64) -> OpCase {
        self.g.output("out", out).expect("one output");
        OpCase {
            name,
            graph: self.g.build(),
            inputs: self.inputs,
            threshold,
        }
    }
}

fn half_threshold(dtype: DType, f32_threshold: f64) -> f64 {
    // The candidate may compute in the weight's precision; the reference widens it exactly.
    if dtype == DType::F32 {
        f32_threshold
    } else {
        NMSE_HALF
    }
}

/// Every op at odd sizes. `seed` varies the data between calls.
pub fn all_cases(seed: u64) -> Vec<OpCase> {
    let mut cases = Vec::new();
    let mut next = seed;
    let mut case = || {
        next += 1;
        CaseBuilder::new(next)
    };

    for &(m, n, k) in &[(1, 1, 1), (1, 67, 129), (17, 33, 65), (129, 257, 511)] {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for bias in [false, true] {
                let mut c = case();
                let x = c.x("x", &[m, k]);
                let w = c.w("w", &[n, k], dtype);
                let b = bias.then(|| c.w("b", &[n], dtype));
                let out = c.g.matmul(x, w, b).unwrap();
                let name = format!("matmul {m}x{n}x{k} w={dtype} bias={bias}");
                cases.push(c.finish(name, out, half_threshold(dtype, NMSE_F32_REDUCTION)));
            }
        }
    }
    for dims in [vec![1usize], vec![7, 13], vec![3, 5, 1031]] {
        for broadcast in [false, true] {
            for mul in [false, true] {
                let mut c = case();
                let a = c.x("a", &dims);
                let b_dims = if broadcast {
                    vec![*dims.last().unwrap()]
                } else {
                    dims.clone()
                };
                let b = c.x("b", &b_dims);
                let out = if mul { c.g.mul(a, b) } else { c.g.add(a, b) }.unwrap();
                let name = format!("{} {dims:?} b={b_dims:?}", if mul { "mul" } else { "add" });
                cases.push(c.finish(name, out, NMSE_F32_ELEMENTWISE));
            }
        }
    }
    let unary: [(&str, Op); 6] = [
        ("scale", Op::Scale { factor: 0.37 }),
        ("gelu", Op::Gelu(GeluKind::Erf)),
        ("gelu_tanh", Op::Gelu(GeluKind::Tanh)),
        ("quick_gelu", Op::QuickGelu),
        ("silu", Op::Silu),
        ("softmax", Op::Softmax),
    ];
    for (name, op) in unary {
        for dims in [vec![1usize, 1], vec![5, 77], vec![3, 1001]] {
            let mut c = case();
            let x = c.x("x", &dims);
            let out = c.g.op(op.clone(), &[x]).unwrap();
            let threshold = if name == "softmax" {
                NMSE_F32_REDUCTION
            } else {
                NMSE_F32_ELEMENTWISE
            };
            cases.push(c.finish(format!("{name} {dims:?}"), out, threshold));
        }
    }
    {
        let mut c = case();
        let gate = c.x("gate", &[7, 97]);
        let up = c.x("up", &[7, 97]);
        let out = c.g.silu_mul(gate, up).unwrap();
        cases.push(c.finish("silu_mul [7, 97]".into(), out, NMSE_F32_ELEMENTWISE));
    }
    for &(rows, dim) in &[(1usize, 1usize), (5, 576), (3, 1000)] {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let mut c = case();
            let x = c.x("x", &[rows, dim]);
            let w = c.w("w", &[dim], dtype);
            let out = c.g.rms_norm(x, w, 1e-5).unwrap();
            cases.push(c.finish(
                format!("rms_norm {rows}x{dim} w={dtype}"),
                out,
                half_threshold(dtype, NMSE_F32_REDUCTION),
            ));
            let mut c = case();
            let x = c.x("x", &[rows, dim]);
            let w = c.w("w", &[dim], dtype);
            let b = c.w("b", &[dim], dtype);
            let out = c.g.layer_norm(x, w, Some(b), 1e-6).unwrap();
            cases.push(c.finish(
                format!("layer_norm {rows}x{dim} w={dtype}"),
                out,
                half_threshold(dtype, NMSE_F32_REDUCTION),
            ));
        }
    }
    for &(t, heads, head_dim, rotary) in &[(5usize, 3usize, 64usize, 64usize), (7, 2, 24, 16)] {
        let mut c = case();
        let x = c.x("x", &[1, t, heads, head_dim]);
        let pos: Vec<i64> = (0..t as i64).map(|i| 3 * i + 11).collect();
        let p = c.input("positions", Tensor::from_slice(&pos, vec![1, t]).unwrap());
        let inv_freq = iris_kernels::cpu::reference::rope_inv_freq(rotary, 10000.0);
        let out = c.g.rope(x, p, inv_freq).unwrap();
        cases.push(c.finish(
            format!("rope t={t} h={heads} d={head_dim} rot={rotary}"),
            out,
            NMSE_F32_ELEMENTWISE,
        ));
    }
    for &(b, tq, tk, hq, hkv, d, causal, mask) in &[
        (1usize, 7usize, 7usize, 6usize, 2usize, 24usize, true, false),
        (2, 5, 9, 4, 4, 64, false, true),
        (1, 3, 11, 9, 3, 80, true, false),
    ] {
        let mut c = case();
        let q = c.x("q", &[b, tq, hq, d]);
        let k = c.x("k", &[b, tk, hkv, d]);
        let v = c.x("v", &[b, tk, hkv, d]);
        let m = mask.then(|| c.x("mask", &[b, tq, tk]));
        let out =
            c.g.attention(q, k, v, m, causal, 1.0 / (d as f32).sqrt())
                .unwrap();
        let name = format!(
            "attention b={b} tq={tq} tk={tk} hq={hq} hkv={hkv} d={d} causal={causal} mask={mask}"
        );
        cases.push(c.finish(name, out, NMSE_F32_REDUCTION));
    }
    for &(vocab, dim, dtype) in &[
        (51usize, 24usize, DType::F32),
        (1000, 77, DType::BF16),
        (1000, 77, DType::F16),
        (257, 40, DType::F16),
    ] {
        let mut c = case();
        let ids: Vec<i64> = (0..13).map(|i| (i * 37 % vocab) as i64).collect();
        let idv = c.input("ids", Tensor::from_slice(&ids, vec![1, 13]).unwrap());
        let table = c.w("table", &[vocab, dim], dtype);
        let out = c.g.embedding(idv, table).unwrap();
        cases.push(c.finish(
            format!("embedding v={vocab} d={dim} w={dtype}"),
            out,
            NMSE_F32_ELEMENTWISE,
        ));
    }
    {
        let mut c = case();
        let x = c.x("x", &[2, 3, 5, 7]);
        let out = c.g.permute(x, &[0, 2, 1, 3]).unwrap();
        cases.push(c.finish(
            "permute [2,3,5,7] (0,2,1,3)".into(),
            out,
            NMSE_F32_ELEMENTWISE,
        ));
        let mut c = case();
        let x = c.x("x", &[3, 11, 5]);
        let out = c.g.slice(x, 1, 2, 9).unwrap();
        cases.push(c.finish(
            "slice [3,11,5] axis1 2..9".into(),
            out,
            NMSE_F32_ELEMENTWISE,
        ));
        let mut c = case();
        let a = c.x("a", &[2, 1, 7]);
        let b = c.x("b", &[2, 5, 7]);
        let out = c.g.concat(&[a, b], 1).unwrap();
        cases.push(c.finish(
            "concat [2,1,7]+[2,5,7] axis1".into(),
            out,
            NMSE_F32_ELEMENTWISE,
        ));
    }
    for &(n, ch, h, w, oc, kh, stride, pad) in &[
        (
            1usize, 3usize, 42usize, 70usize, 40usize, 14usize, 14usize, 0usize,
        ),
        (2, 5, 9, 11, 7, 3, 2, 1),
    ] {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let mut c = case();
            let x = c.x("x", &[n, ch, h, w]);
            let wt = c.w("w", &[oc, ch, kh, kh], dtype);
            let bias = c.w("b", &[oc], dtype);
            let out =
                c.g.conv2d(x, wt, Some(bias), [stride, stride], [pad, pad])
                    .unwrap();
            let name =
                format!("conv2d {n}x{ch}x{h}x{w} oc={oc} k={kh} s={stride} p={pad} w={dtype}");
            cases.push(c.finish(name, out, half_threshold(dtype, NMSE_F32_REDUCTION)));
        }
    }
    for &(seq, embed, scale) in &[(36usize, 10usize, 2usize), (81, 7, 3)] {
        let mut c = case();
        let x = c.x("x", &[2, seq, embed]);
        let out = c.g.pixel_shuffle(x, scale).unwrap();
        cases.push(c.finish(
            format!("pixel_shuffle s={seq} e={embed} scale={scale}"),
            out,
            NMSE_F32_ELEMENTWISE,
        ));
    }
    {
        let mut c = case();
        let x = c.x("x", &[5, 1003]);
        let out = c.g.argmax(x).unwrap();
        cases.push(c.finish("argmax [5, 1003]".into(), out, 0.0));
    }
    cases
}

fn run_case<B: Backend>(backend: &mut B, case: &OpCase) -> Result<Tensor> {
    let mut exec = Executor::new(backend, case.graph.clone(), ExecutorOptions::default())?;
    let inputs: Vec<(&str, &Tensor)> = case.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    exec.run(backend, &inputs)?;
    exec.read(backend, "out")
}

/// Runs every case on `candidate` and on the CPU reference backend.
pub fn compare_backend<B: Backend>(candidate: &mut B, seed: u64) -> Result<Vec<CaseReport>> {
    let mut reference = CpuBackend::reference();
    let mut reports = Vec::new();
    for case in all_cases(seed) {
        let expected = run_case(&mut reference, &case)?.to_vec_f32();
        let outcome = match run_case(candidate, &case) {
            Ok(actual) => {
                let actual = actual.to_vec_f32();
                let err = nmse(&actual, &expected);
                let max_abs = iris_kernels::testing::max_abs_diff(&actual, &expected);
                if err <= case.threshold {
                    CaseOutcome::Passed { nmse: err }
                } else {
                    CaseOutcome::Failed { nmse: err, max_abs }
                }
            }
            Err(Error::Unsupported { what, .. }) => CaseOutcome::Skipped(what),
            Err(e) => return Err(e),
        };
        reports.push(CaseReport {
            name: case.name,
            threshold: case.threshold,
            outcome,
        });
    }
    Ok(reports)
}
