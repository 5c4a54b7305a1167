//! The suite of `iris bench kernels --device cuda`: each case is one op at one model shape,
//! with the operands to allocate, the nominal flops and the bytes the op must move. The
//! list and the `kernel` + `shape` keys match scripts/gpu/bench_kernels.py.

use iris_runtime::graph::Op;
use iris_runtime::{DType, Shape};

/// How a buffer is filled before timing.
#[derive(Clone, Copy)]
pub(super) enum Fill {
    /// Uniform in [-1, 1) in the buffer's float dtype (never zeros).
    Uniform,
    /// i64 token ids uniform in 0..vocab.
    Ids(usize),
    /// i64 positions 0..T repeated per batch row.
    Positions(usize),
    /// Every i64 element set to this value.
    Value(i64),
}

pub(super) struct Buffer {
    pub dtype: DType,
    pub shape: Shape,
    pub fill: Fill,
    /// One copy per set (false: one copy shared by every set, e.g. a table read sparsely).
    pub rotate: bool,
}

impl Buffer {
    fn new(dtype: DType, dims: impl Into<Vec<usize>>, fill: Fill) -> Self {
        Buffer {
            dtype,
            shape: Shape::new(dims),
            fill,
            rotate: true,
        }
    }

    fn shared(self) -> Self {
        Buffer {
            rotate: false,
            ..self
        }
    }

    pub fn bytes(&self) -> usize {
        self.shape.numel() * self.dtype.size_in_bytes()
    }
}

/// One op at one dtype mix: its operands, nominal flops and the bytes it must move.
pub(super) struct Variant {
    pub op: Op,
    pub inputs: Vec<Buffer>,
    pub output: Buffer,
    pub flops: f64,
    pub bytes: f64,
    pub dtypes: String,
}

pub(super) struct Case {
    pub kernel: &'static str,
    pub shape: String,
    /// Tried in order; the first the backend supports is timed.
    pub variants: Vec<Variant>,
}

/// The activation dtypes each case is tried with, in order.
const ACTIVATIONS: [DType; 2] = [DType::BF16, DType::F32];

fn dtypes_label(act: DType, weight: Option<DType>) -> String {
    match weight {
        Some(w) if w != act => format!("{act} ({w} w)"),
        _ => act.to_string(),
    }
}

fn case(kernel: &'static str, shape: String, variant: impl Fn(DType) -> Variant) -> Case {
    Case {
        kernel,
        shape,
        variants: ACTIVATIONS.into_iter().map(variant).collect(),
    }
}

/// `x [m, k] @ w [n, k]^T`, bf16 weights.
fn matmul(m: usize, n: usize, k: usize) -> Case {
    case("matmul", format!("{m}x{n}x{k}"), move |act| {
        let a = act.size_in_bytes();
        Variant {
            op: Op::MatMul { has_bias: false },
            inputs: vec![
                Buffer::new(act, [m, k], Fill::Uniform),
                Buffer::new(DType::BF16, [n, k], Fill::Uniform),
            ],
            output: Buffer::new(act, [m, n], Fill::Uniform),
            flops: (2 * m * n * k) as f64,
            bytes: ((m * k + m * n) * a + n * k * 2) as f64,
            dtypes: dtypes_label(act, Some(DType::BF16)),
        }
    })
}

/// Self-attention over `t` tokens, q/k/v/out `[b, t, h, d]`.
fn attention(b: usize, h: usize, t: usize, d: usize, causal: bool) -> Case {
    let shape = format!("b{b} h{h} t{t} d{d}{}", if causal { " causal" } else { "" });
    case("attention", shape, move |act| {
        let pairs = if causal { t * (t + 1) / 2 } else { t * t };
        let qkv = || Buffer::new(act, [b, t, h, d], Fill::Uniform);
        Variant {
            op: Op::Attention {
                causal,
                scale: 1.0 / (d as f32).sqrt(),
                has_mask: false,
            },
            inputs: vec![qkv(), qkv(), qkv()],
            output: qkv(),
            flops: (4 * b * h * pairs * d) as f64,
            bytes: (4 * b * t * h * d * act.size_in_bytes()) as f64,
            dtypes: dtypes_label(act, None),
        }
    })
}

/// One decode step over a full KV cache of `kv` rows: `CachedAttention` writes the new K/V
/// row at `kv - 1` and attends over all `kv` rows.
fn decode(h: usize, kv: usize, d: usize) -> Case {
    case(
        "attention_decode",
        format!("h{h} kv{kv} d{d}"),
        move |act| {
            let a = act.size_in_bytes();
            let row = || Buffer::new(act, [1, 1, h, d], Fill::Uniform);
            let cache = || Buffer::new(act, [1, h, kv, d], Fill::Uniform);
            Variant {
                op: Op::CachedAttention {
                    scale: 1.0 / (d as f32).sqrt(),
                },
                inputs: vec![
                    row(),
                    row(),
                    row(),
                    cache(),
                    cache(),
                    Buffer::new(DType::I64, [1], Fill::Value(kv as i64 - 1)).shared(),
                ],
                output: row(),
                flops: (4 * h * kv * d) as f64,
                bytes: ((2 * h * kv * d + 4 * h * d) * a) as f64,
                dtypes: dtypes_label(act, None),
            }
        },
    )
}

/// Elementwise ops over `[rows, dim]`: `inputs` same-shape operands, `flops` per element.
fn elementwise(kernel: &'static str, op: Op, rows: usize, dim: usize, inputs: usize) -> Case {
    let flops_per = match op {
        Op::SiluMul => 5,
        _ => 1,
    };
    case(kernel, format!("{rows}x{dim}"), move |act| Variant {
        op: op.clone(),
        inputs: (0..inputs)
            .map(|_| Buffer::new(act, [rows, dim], Fill::Uniform))
            .collect(),
        output: Buffer::new(act, [rows, dim], Fill::Uniform),
        flops: (flops_per * rows * dim) as f64,
        bytes: ((inputs + 1) * rows * dim * act.size_in_bytes()) as f64,
        dtypes: dtypes_label(act, None),
    })
}

fn rms_norm(rows: usize, dim: usize) -> Case {
    case("rms_norm", format!("{rows}x{dim}"), move |act| Variant {
        op: Op::RmsNorm { eps: 1e-5 },
        inputs: vec![
            Buffer::new(act, [rows, dim], Fill::Uniform),
            Buffer::new(DType::BF16, [dim], Fill::Uniform),
        ],
        output: Buffer::new(act, [rows, dim], Fill::Uniform),
        flops: (4 * rows * dim) as f64,
        bytes: (2 * rows * dim * act.size_in_bytes() + 2 * dim) as f64,
        dtypes: dtypes_label(act, Some(DType::BF16)),
    })
}

/// RoPE (theta 10000, full rotary dim) over `[1, t, h, d]`.
fn rope(t: usize, h: usize, d: usize) -> Case {
    let inv_freq: Vec<f32> = (0..d / 2)
        .map(|i| 10000f32.powf(-2.0 * i as f32 / d as f32))
        .collect();
    case("rope", format!("{t}x{h}x{d}"), move |act| Variant {
        op: Op::Rope {
            inv_freq: inv_freq.clone(),
        },
        inputs: vec![
            Buffer::new(act, [1, t, h, d], Fill::Uniform),
            Buffer::new(DType::I64, [1, t], Fill::Positions(t)),
        ],
        output: Buffer::new(act, [1, t, h, d], Fill::Uniform),
        flops: (3 * t * h * d) as f64,
        bytes: (2 * t * h * d * act.size_in_bytes() + 8 * t) as f64,
        dtypes: dtypes_label(act, None),
    })
}

/// `t` rows gathered from a bf16 `[vocab, dim]` table (shared by every set: only the
/// gathered rows count as traffic).
fn embedding(t: usize, vocab: usize, dim: usize) -> Case {
    case("embedding", format!("{t} of {vocab}x{dim}"), move |act| {
        Variant {
            op: Op::Embedding,
            inputs: vec![
                Buffer::new(DType::I64, [t], Fill::Ids(vocab)),
                Buffer::new(DType::BF16, [vocab, dim], Fill::Uniform).shared(),
            ],
            output: Buffer::new(act, [t, dim], Fill::Uniform),
            flops: 0.0,
            bytes: (8 * t + t * dim * (2 + act.size_in_bytes())) as f64,
            dtypes: dtypes_label(act, Some(DType::BF16)),
        }
    })
}

/// The suite: 7B-class and ViT-L shapes, the 600-token rows of a LLaVA prompt (576 image
/// tokens + text) among them (same list as scripts/gpu/bench_kernels.py).
pub(super) fn cases() -> Vec<Case> {
    vec![
        matmul(8192, 8192, 8192),
        matmul(577, 4096, 1024),
        matmul(2048, 11008, 4096),
        matmul(600, 4096, 4096),
        matmul(600, 11008, 4096),
        matmul(600, 4096, 11008),
        matmul(577, 1024, 1024),
        matmul(577, 1024, 4096),
        matmul(1, 11008, 4096),
        matmul(1, 4096, 4096),
        attention(1, 16, 577, 64, false),
        attention(4, 32, 4096, 128, true),
        attention(1, 32, 600, 128, true),
        decode(32, 4096, 128),
        rms_norm(2048, 4096),
        elementwise("add", Op::Add, 2048, 4096, 2),
        elementwise("silu_mul", Op::SiluMul, 2048, 11008, 2),
        rope(2048, 32, 128),
        embedding(2048, 32000, 4096),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(cases: &'a [Case], key: &str) -> &'a Variant {
        let case = cases
            .iter()
            .find(|c| format!("{} {}", c.kernel, c.shape) == key)
            .unwrap_or_else(|| panic!("no case {key}"));
        assert_eq!(case.variants[0].dtypes, "bf16", "{key}");
        &case.variants[0]
    }

    /// The keys scripts/gpu/bench_kernels.py uses (its `check` mode lists them): a renamed
    /// case here would leave a row unjoined after a device run.
    #[test]
    fn keys_match_the_pytorch_side() {
        let keys: Vec<String> = cases()
            .iter()
            .map(|c| format!("{} {}", c.kernel, c.shape))
            .collect();
        assert_eq!(
            keys,
            [
                "matmul 8192x8192x8192",
                "matmul 577x4096x1024",
                "matmul 2048x11008x4096",
                "matmul 600x4096x4096",
                "matmul 600x11008x4096",
                "matmul 600x4096x11008",
                "matmul 577x1024x1024",
                "matmul 577x1024x4096",
                "matmul 1x11008x4096",
                "matmul 1x4096x4096",
                "attention b1 h16 t577 d64",
                "attention b4 h32 t4096 d128 causal",
                "attention b1 h32 t600 d128 causal",
                "attention_decode h32 kv4096 d128",
                "rms_norm 2048x4096",
                "add 2048x4096",
                "silu_mul 2048x11008",
                "rope 2048x32x128",
                "embedding 2048 of 32000x4096",
            ]
        );
    }

    /// The bf16 flop and byte counts turn the PyTorch times measured on the H100 (median of
    /// 30) into the rates recorded beside them, within rounding.
    #[test]
    fn counts_reproduce_the_recorded_pytorch_rates() {
        let cases = cases();
        let rate = |key: &str, us: f64, tera_flops: bool| {
            let v = find(&cases, key);
            let per_s = if tera_flops { v.flops } else { v.bytes };
            per_s / (us * 1e-6) / 1e12
        };
        let close = |got: f64, want: f64| (got - want).abs() <= 0.01 * want;
        for (key, us, tera_flops, want) in [
            ("matmul 8192x8192x8192", 1466.0, true, 750.0),
            ("matmul 2048x11008x4096", 288.0, true, 640.0),
            ("matmul 1x11008x4096", 48.3, false, 1.87),
            ("attention b1 h16 t577 d64", 50.8, true, 26.8),
            ("attention b4 h32 t4096 d128 causal", 1007.0, true, 546.0),
            ("attention_decode h32 kv4096 d128", 54.9, false, 1.22),
        ] {
            let got = rate(key, us, tera_flops);
            assert!(close(got, want), "{key}: {got} vs {want}");
        }
    }

    /// Operands are non-empty, id/position fills go with i64 buffers and only there, and
    /// each case tries bf16 activations first, then f32.
    #[test]
    fn variants_are_well_formed() {
        for case in cases() {
            let dtypes: Vec<&str> = case.variants.iter().map(|v| v.dtypes.as_str()).collect();
            assert_eq!(dtypes.len(), 2, "{}", case.kernel);
            assert_eq!(dtypes[0], "bf16", "{}", case.kernel);
            assert!(dtypes[1].starts_with("f32"), "{}", case.kernel);
            for v in &case.variants {
                assert!(v.bytes > 0.0, "{}", case.kernel);
                for b in v.inputs.iter().chain([&v.output]) {
                    assert!(b.bytes() > 0, "{} {}", case.kernel, b.shape);
                    let ids = matches!(b.fill, Fill::Ids(_) | Fill::Positions(_) | Fill::Value(_));
                    assert_eq!(ids, b.dtype == DType::I64, "{} {}", case.kernel, b.shape);
                }
            }
        }
    }
}
