//! A small GGUF writer for the tests (`mod gguf_writer;` in `gguf_*.rs`): metadata of every
//! value type, tensors laid out at aligned offsets (or at offsets the test chooses), and raw
//! access to the bytes so a test can break exactly one thing.

#![allow(dead_code)]

/// A metadata value, written with its type tag.
#[derive(Clone, Debug)]
pub enum V {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    /// Element type id, elements (all of that type).
    Arr(u32, Vec<V>),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Any type id followed by raw bytes (for malformed values).
    Raw(u32, Vec<u8>),
}

pub fn s(text: &str) -> V {
    V::Str(text.to_string())
}

pub fn strings(items: &[&str]) -> V {
    V::Arr(8, items.iter().map(|t| s(t)).collect())
}

pub fn i32s(items: &[i32]) -> V {
    V::Arr(5, items.iter().map(|&x| V::I32(x)).collect())
}

impl V {
    pub fn type_id(&self) -> u32 {
        match self {
            V::U8(_) => 0,
            V::I8(_) => 1,
            V::U16(_) => 2,
            V::I16(_) => 3,
            V::U32(_) => 4,
            V::I32(_) => 5,
            V::F32(_) => 6,
            V::Bool(_) => 7,
            V::Str(_) => 8,
            V::Arr(..) => 9,
            V::U64(_) => 10,
            V::I64(_) => 11,
            V::F64(_) => 12,
            V::Raw(t, _) => *t,
        }
    }

    /// The value's bytes, without its type tag.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            V::U8(x) => out.push(*x),
            V::I8(x) => out.extend(x.to_le_bytes()),
            V::U16(x) => out.extend(x.to_le_bytes()),
            V::I16(x) => out.extend(x.to_le_bytes()),
            V::U32(x) => out.extend(x.to_le_bytes()),
            V::I32(x) => out.extend(x.to_le_bytes()),
            V::F32(x) => out.extend(x.to_le_bytes()),
            V::Bool(x) => out.push(u8::from(*x)),
            V::Str(x) => put_str(out, x),
            V::Arr(ty, items) => {
                out.extend(ty.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    item.encode(out);
                }
            }
            V::U64(x) => out.extend(x.to_le_bytes()),
            V::I64(x) => out.extend(x.to_le_bytes()),
            V::F64(x) => out.extend(x.to_le_bytes()),
            V::Raw(_, bytes) => out.extend(bytes),
        }
    }
}

pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes_str(out, text.as_bytes());
}

pub fn put_bytes_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u64).to_le_bytes());
    out.extend(bytes);
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    /// ggml order (innermost first).
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
}

/// A GGUF file under construction.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub kv: Vec<(String, V)>,
    pub tensors: Vec<Tensor>,
    /// Alignment used to lay out the data (set `general.alignment` separately).
    pub alignment: u64,
    /// Offsets to write instead of the computed ones.
    pub offsets: Option<Vec<u64>>,
}

impl Default for Gguf {
    fn default() -> Self {
        Gguf {
            version: 3,
            kv: Vec::new(),
            tensors: Vec::new(),
            alignment: 32,
            offsets: None,
        }
    }
}

impl Gguf {
    pub fn kv(mut self, key: &str, value: V) -> Self {
        self.kv.push((key.to_string(), value));
        self
    }

    /// Replaces `key`'s value (or adds it).
    pub fn set(mut self, key: &str, value: V) -> Self {
        self.kv.retain(|(k, _)| k != key);
        self.kv(key, value)
    }

    pub fn remove(mut self, key: &str) -> Self {
        self.kv.retain(|(k, _)| k != key);
        self
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, data: Vec<u8>) -> Self {
        self.tensors.push(Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id,
            data,
        });
        self
    }

    pub fn remove_tensor(mut self, name: &str) -> Self {
        self.tensors.retain(|t| t.name != name);
        self
    }

    /// The offsets the data will be written at (aligned, in order).
    pub fn layout(&self) -> Vec<u64> {
        let mut offsets = Vec::new();
        let mut at = 0u64;
        for t in &self.tensors {
            offsets.push(at);
            at = (at + t.data.len() as u64).div_ceil(self.alignment) * self.alignment;
        }
        offsets
    }

    /// The header and metadata bytes only (magic .. last metadata entry).
    pub fn head(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kv.len() as u64).to_le_bytes());
        for (key, value) in &self.kv {
            put_str(&mut out, key);
            out.extend(value.type_id().to_le_bytes());
            value.encode(&mut out);
        }
        out
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = self.head();
        let offsets = self.offsets.clone().unwrap_or_else(|| self.layout());
        for (t, offset) in self.tensors.iter().zip(&offsets) {
            put_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            out.extend(offset.to_le_bytes());
        }
        let data_start = (out.len() as u64).div_ceil(self.alignment) * self.alignment;
        out.resize(data_start as usize, 0);
        for (t, &offset) in self.tensors.iter().zip(&offsets) {
            let at = (data_start + offset) as usize;
            if out.len() < at + t.data.len() {
                out.resize(at + t.data.len(), 0);
            }
            out[at..at + t.data.len()].copy_from_slice(&t.data);
        }
        let end = (out.len() as u64).div_ceil(self.alignment) * self.alignment;
        out.resize(end as usize, 0);
        out
    }
}

/// A deterministic generator (64-bit LCG, high bits), for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u32() as u8).collect()
    }
}

/// f32 -> f16 bits (round to nearest even), for scales in quantized blocks.
pub fn f16_bits(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// `n` random blocks of a quantized type (ids 2 = Q4_0, 3 = Q4_1, 8 = Q8_0) with sane scales.
pub fn random_blocks(rng: &mut Rng, type_id: u32, blocks: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..blocks {
        out.extend(f16_bits(rng.uniform(0.001, 0.05)));
        match type_id {
            2 => out.extend(rng.bytes(16)),
            3 => {
                out.extend(f16_bits(rng.uniform(-0.3, 0.1)));
                out.extend(rng.bytes(16));
            }
            8 => out.extend(rng.bytes(32)),
            other => panic!("no random blocks for type {other}"),
        }
    }
    out
}

pub const F32: u32 = 0;
pub const F16: u32 = 1;
pub const Q4_0: u32 = 2;
pub const Q4_1: u32 = 3;
pub const Q8_0: u32 = 8;
pub const Q4_K: u32 = 12;
pub const BF16: u32 = 30;

/// Random stored data for `n` elements of a type.
pub fn tensor_data(rng: &mut Rng, type_id: u32, n: usize) -> Vec<u8> {
    match type_id {
        F32 => (0..n)
            .flat_map(|_| rng.uniform(-1.0, 1.0).to_le_bytes())
            .collect(),
        F16 => (0..n)
            .flat_map(|_| f16_bits(rng.uniform(-1.0, 1.0)))
            .collect(),
        BF16 => (0..n)
            .flat_map(|_| ((rng.uniform(-1.0, 1.0).to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        Q4_0 | Q4_1 | Q8_0 => random_blocks(rng, type_id, n / 32),
        // Q4_K: 256-element blocks of 144 bytes (unsupported by the converter).
        Q4_K => rng.bytes(n / 256 * 144),
        other => panic!("no data for type {other}"),
    }
}

/// The tiny llama model's sizes.
pub const HIDDEN: u64 = 64;
pub const HEADS: u64 = 4;
pub const KV_HEADS: u64 = 2;
pub const HEAD_DIM: u64 = 16;
pub const LAYERS: u64 = 2;
pub const INTERMEDIATE: u64 = 96;
pub const CONTEXT: u64 = 256;

/// The vocabulary: 3 control tokens, one user-defined, then byte-level BPE pieces.
pub const TOKENS: [&str; 22] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "h",
    "e",
    "l",
    "o",
    "Ġ",
    "w",
    "r",
    "d",
    "he",
    "ll",
    "hell",
    "hello",
    "Ġw",
    "or",
    "Ġwor",
    "ld",
    "Ġworld",
    "!",
];
pub const MERGES: [&str; 9] = [
    "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld",
];
pub const CHAT_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";

/// Type of each tensor of the tiny model: every supported type appears.
pub fn tiny_type(name: &str) -> u32 {
    let suffix = name.splitn(3, '.').nth(2).unwrap_or(name);
    let layer1 = name.starts_with("blk.1.");
    match (suffix, layer1) {
        (_, _) if name == "token_embd.weight" => Q8_0,
        (_, _) if name == "output.weight" => F16,
        ("attn_q.weight", false) => Q4_0,
        ("attn_k.weight", false) => Q4_1,
        ("attn_v.weight", false) => F16,
        ("attn_output.weight", false) => BF16,
        ("ffn_gate.weight", false) => Q8_0,
        ("ffn_up.weight", false) => Q4_1,
        ("ffn_down.weight", false) => Q4_0,
        ("attn_q.weight", true) => Q8_0,
        ("attn_k.weight", true) => Q4_0,
        ("attn_v.weight", true) => BF16,
        ("attn_output.weight", true) => F16,
        ("ffn_gate.weight", true) => F32,
        ("ffn_up.weight", true) => Q4_0,
        ("ffn_down.weight", true) => Q8_0,
        _ => F32,
    }
}

/// A complete, valid tiny llama GGUF (tied embeddings unless `untied`), tensors typed by
/// [`tiny_type`].
pub fn tiny_llama(seed: u64, untied: bool) -> Gguf {
    let mut rng = Rng(seed);
    let vocab = TOKENS.len() as u64;
    let mut g = Gguf::default()
        .kv("general.architecture", s("llama"))
        .kv("general.name", s("tiny"))
        .kv("llama.context_length", V::U32(CONTEXT as u32))
        .kv("llama.embedding_length", V::U32(HIDDEN as u32))
        .kv("llama.block_count", V::U32(LAYERS as u32))
        .kv("llama.feed_forward_length", V::U32(INTERMEDIATE as u32))
        .kv("llama.attention.head_count", V::U32(HEADS as u32))
        .kv("llama.attention.head_count_kv", V::U32(KV_HEADS as u32))
        .kv("llama.rope.freq_base", V::F32(10000.0))
        .kv("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5))
        .kv("llama.rope.dimension_count", V::U32(HEAD_DIM as u32))
        .kv("tokenizer.ggml.model", s("gpt2"))
        .kv("tokenizer.ggml.pre", s("smollm"))
        .kv("tokenizer.ggml.tokens", strings(&TOKENS))
        .kv(
            "tokenizer.ggml.token_type",
            i32s(&[
                3, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
            ]),
        )
        .kv("tokenizer.ggml.merges", strings(&MERGES))
        .kv("tokenizer.ggml.bos_token_id", V::U32(1))
        .kv("tokenizer.ggml.eos_token_id", V::U32(2))
        .kv("tokenizer.ggml.padding_token_id", V::U32(2))
        .kv("tokenizer.ggml.add_bos_token", V::Bool(true))
        .kv("tokenizer.chat_template", s(CHAT_TEMPLATE));
    let mut add = |g: Gguf, name: &str, dims: &[u64]| {
        let ty = tiny_type(name);
        let n = dims.iter().product::<u64>() as usize;
        let data = tensor_data(&mut rng, ty, n);
        g.tensor(name, dims, ty, data)
    };
    g = add(g, "token_embd.weight", &[HIDDEN, vocab]);
    for layer in 0..LAYERS {
        let p = |suffix: &str| format!("blk.{layer}.{suffix}");
        g = add(g, &p("attn_norm.weight"), &[HIDDEN]);
        g = add(g, &p("attn_q.weight"), &[HIDDEN, HEADS * HEAD_DIM]);
        g = add(g, &p("attn_k.weight"), &[HIDDEN, KV_HEADS * HEAD_DIM]);
        g = add(g, &p("attn_v.weight"), &[HIDDEN, KV_HEADS * HEAD_DIM]);
        g = add(g, &p("attn_output.weight"), &[HEADS * HEAD_DIM, HIDDEN]);
        g = add(g, &p("ffn_norm.weight"), &[HIDDEN]);
        g = add(g, &p("ffn_gate.weight"), &[HIDDEN, INTERMEDIATE]);
        g = add(g, &p("ffn_up.weight"), &[HIDDEN, INTERMEDIATE]);
        g = add(g, &p("ffn_down.weight"), &[INTERMEDIATE, HIDDEN]);
    }
    g = add(g, "output_norm.weight", &[HIDDEN]);
    if untied {
        g = add(g, "output.weight", &[HIDDEN, vocab]);
    }
    g
}
