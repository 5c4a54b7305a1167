//! The typed operations a graph records. Each variant documents its operands (in order) and
//! its output; shapes are checked when the op is recorded (see `builder.rs`).

/// GELU flavour, named as HF configs name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluKind {
    /// `gelu`: exact, 0.5 x (1 + erf(x / sqrt 2)).
    Erf,
    /// `gelu_pytorch_tanh` / `gelu_new`: tanh approximation.
    Tanh,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `[x [.., K], w [N, K], bias? [N]] -> [.., N]`: x @ w^T (+ bias). `w` may be f32, f16
    /// or bf16 and is read as stored.
    MatMul { has_bias: bool },
    /// `[a, b] -> shape of a`: a + b, with b's shape a suffix of a's (broadcast over the
    /// leading dims of a; covers bias rows and same-shape adds).
    Add,
    /// `[a, b] -> shape of a`: a * b, broadcast as `Add`.
    Mul,
    /// `[x] -> x * factor`.
    Scale { factor: f32 },
    /// `[x [.., D], weight [D]]`: x / sqrt(mean(x^2) + eps) * weight (HF Llama).
    RmsNorm { eps: f32 },
    /// `[x [.., D], weight [D], bias? [D]]`: (x - mean) / sqrt(var + eps) * weight + bias.
    LayerNorm { eps: f32, has_bias: bool },
    /// `[x] -> softmax over the last axis`.
    Softmax,
    /// `[x [B, T, H, D], positions i64 [B, T]]`: rotates the first `2 * inv_freq.len()` dims
    /// of every head in HF's rotate_half layout (the rest pass through). `inv_freq` comes from
    /// rope_theta and any rope_scaling, so partial rotary and Llama 3 scaling need no more.
    Rope { inv_freq: Vec<f32> },
    /// `[q [B, Tq, Hq, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, D], mask? [B, Tq, Tk]]
    /// -> [B, Tq, Hq, D]`. Hq is a multiple of Hkv (GQA). The mask is added to the scores.
    /// Causal: query i sees keys j <= i + (Tk - Tq).
    Attention {
        causal: bool,
        scale: f32,
        has_mask: bool,
    },
    /// `[q [B, T, Hq, D], k_new [B, T, Hkv, D], v_new [B, T, Hkv, D],
    ///   k_cache [B, Hkv, S, D], v_cache [B, Hkv, S, D], past_len i64 [1]] -> [B, T, Hq, D]`.
    /// Writes k_new / v_new into the caches at rows past_len..past_len+T (in place: the
    /// caches are graph state), then attends over the first past_len + T rows; causal with
    /// query i at position past_len + i. past_len is data, so one decode graph serves every
    /// step.
    CachedAttention { scale: f32 },
    /// `[x] -> gelu(x)`.
    Gelu(GeluKind),
    /// `[x] -> x * sigmoid(1.702 x)` (CLIP).
    QuickGelu,
    /// `[x] -> x * sigmoid(x)`.
    Silu,
    /// `[gate, up] -> silu(gate) * up` (Llama MLP).
    SiluMul,
    /// `[ids i64 [..], table [V, D]] -> [.., D]`: rows of table. An id outside 0..V is an error.
    Embedding,
    /// `[x] -> same data, new shape` (a view of contiguous data).
    Reshape { shape: Vec<usize> },
    /// `[x] -> dims reordered`: output dim i is input dim perm[i]. Materialized contiguous.
    Permute { perm: Vec<usize> },
    /// `[x] -> x restricted to start..end on axis`, materialized contiguous.
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    /// `[x0, x1, ..] -> joined along axis`.
    Concat { axis: usize },
    /// `[x [N, C, H, W], w [OC, C, KH, KW], bias? [OC]] -> [N, OC, OH, OW]`.
    Conv2d {
        stride: [usize; 2],
        padding: [usize; 2],
        has_bias: bool,
    },
    /// `[x [B, S, E]] -> [B, S / s^2, E * s^2]`: Idefics3's pixel shuffle, folding s x s
    /// neighbouring patches of the sqrt(S) x sqrt(S) grid into channels.
    PixelShuffle { scale: usize },
    /// `[x [.., N]] -> i64 [..]`: index of the largest value of the last axis (first on ties).
    Argmax,
}

impl Op {
    /// Short name for error messages and benchmark tables.
    pub fn name(&self) -> &'static str {
        match self {
            Op::MatMul { .. } => "matmul",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Scale { .. } => "scale",
            Op::RmsNorm { .. } => "rms_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Softmax => "softmax",
            Op::Rope { .. } => "rope",
            Op::Attention { .. } => "attention",
            Op::CachedAttention { .. } => "cached_attention",
            Op::Gelu(GeluKind::Erf) => "gelu",
            Op::Gelu(GeluKind::Tanh) => "gelu_tanh",
            Op::QuickGelu => "quick_gelu",
            Op::Silu => "silu",
            Op::SiluMul => "silu_mul",
            Op::Embedding => "embedding",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Conv2d { .. } => "conv2d",
            Op::PixelShuffle { .. } => "pixel_shuffle",
            Op::Argmax => "argmax",
        }
    }
}
