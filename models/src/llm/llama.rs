//! The Llama-family decoder (Llama 2/3, Mistral-style, SmolLM2) and Qwen2 (q/k/v biases), as
//! HF's `LlamaForCausalLM` / `Qwen2ForCausalLM` compute it, recorded as an iris graph.
//!
//! One graph per phase: prefill (T prompt tokens) and decode (1 token) share the KV cache,
//! which lives in backend state (`kv.{layer}.k` / `.v`, [1, Hkv, S, D], f32). Positions and
//! the cache length are inputs, so the decode graph is built once and replayed.

use iris_runtime::graph::{Graph, GraphBuilder, ValueId};
use iris_runtime::{DType, Tensor};

use super::config::LlmConfig;
use super::rope::inv_freq;
use crate::error::ModelError;
use crate::weights::Weights;

struct Linear {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn load(
        w: &Weights,
        name: &str,
        out_dim: usize,
        in_dim: usize,
        bias: bool,
    ) -> Result<Self, ModelError> {
        let scoped = w.pp(name);
        let weight = scoped.get("weight", &[out_dim, in_dim])?;
        let bias = if bias {
            Some(scoped.get("bias", &[out_dim])?)
        } else {
            None
        };
        Ok(Linear {
            name: w.full_name(name),
            weight,
            bias,
        })
    }

    fn record(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId, ModelError> {
        let w = g.weight(&format!("{}.weight", self.name), self.weight.clone())?;
        let b = match &self.bias {
            Some(bias) => Some(g.weight(&format!("{}.bias", self.name), bias.clone())?),
            None => None,
        };
        Ok(g.matmul(x, w, b)?)
    }
}

struct Norm {
    name: String,
    weight: Tensor,
}

impl Norm {
    fn load(w: &Weights, name: &str, dim: usize) -> Result<Self, ModelError> {
        Ok(Norm {
            name: w.full_name(&format!("{name}.weight")),
            weight: w.pp(name).get("weight", &[dim])?,
        })
    }

    fn record(&self, g: &mut GraphBuilder, x: ValueId, eps: f32) -> Result<ValueId, ModelError> {
        let w = g.weight(&self.name, self.weight.clone())?;
        Ok(g.rms_norm(x, w, eps)?)
    }
}

struct Layer {
    input_layernorm: Norm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: Norm,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

/// Which positions get logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsMode {
    /// Only the last position (generation).
    Last,
    /// Every position (`iris check`).
    All,
}

/// The element type of the KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvCacheDtype {
    /// Exact: what the model computed (the default, for checks against PyTorch).
    #[default]
    F32,
    /// Rounded to f16 as written: half the memory, and half the cache bytes a decode step
    /// reads (the CPU backend; llama.cpp's default).
    F16,
}

impl KvCacheDtype {
    pub fn dtype(self) -> DType {
        match self {
            KvCacheDtype::F32 => DType::F32,
            KvCacheDtype::F16 => DType::F16,
        }
    }
}

/// Shapes of one graph.
#[derive(Clone, Copy, Debug)]
pub struct PhaseShape {
    /// Tokens processed by one run (prompt length for prefill, 1 for decode).
    pub seq_len: usize,
    /// Rows of the KV cache (the longest sequence the session can hold).
    pub max_context: usize,
    /// Element type of the KV cache (every graph of a session must agree).
    pub kv_cache: KvCacheDtype,
    pub logits: LogitsMode,
}

pub struct LlamaModel {
    pub config: LlmConfig,
    embed_name: String,
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: Norm,
    lm_head: Linear,
    inv_freq: Vec<f32>,
}

impl LlamaModel {
    /// Loads the decoder from `model` (the scope holding `embed_tokens`, `layers`, `norm`) and
    /// the LM head from `lm_head_scope` (`lm_head`), or tied to the embeddings.
    pub fn load(
        config: LlmConfig,
        model: &Weights,
        lm_head_scope: &Weights,
    ) -> Result<Self, ModelError> {
        let c = &config;
        let (h, q_dim, kv_dim) = (
            c.hidden_size,
            c.num_attention_heads * c.head_dim,
            c.num_key_value_heads * c.head_dim,
        );
        let embed_tokens = model.pp("embed_tokens").get("weight", &[c.vocab_size, h])?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = model.pp(format!("layers.{i}"));
            let attn = l.pp("self_attn");
            let mlp = l.pp("mlp");
            layers.push(Layer {
                input_layernorm: Norm::load(&l, "input_layernorm", h)?,
                q_proj: Linear::load(&attn, "q_proj", q_dim, h, c.qkv_bias)?,
                k_proj: Linear::load(&attn, "k_proj", kv_dim, h, c.qkv_bias)?,
                v_proj: Linear::load(&attn, "v_proj", kv_dim, h, c.qkv_bias)?,
                o_proj: Linear::load(&attn, "o_proj", h, q_dim, c.o_bias)?,
                post_attention_layernorm: Norm::load(&l, "post_attention_layernorm", h)?,
                gate_proj: Linear::load(&mlp, "gate_proj", c.intermediate_size, h, c.mlp_bias)?,
                up_proj: Linear::load(&mlp, "up_proj", c.intermediate_size, h, c.mlp_bias)?,
                down_proj: Linear::load(&mlp, "down_proj", h, c.intermediate_size, c.mlp_bias)?,
            });
        }
        let norm = Norm::load(model, "norm", h)?;
        let lm_head = if c.tie_word_embeddings {
            Linear {
                name: model.full_name("embed_tokens.weight"),
                weight: embed_tokens.clone(),
                bias: None,
            }
        } else if lm_head_scope.contains("lm_head.weight") {
            Linear::load(lm_head_scope, "lm_head", c.vocab_size, h, false)?
        } else {
            return Err(ModelError::Weight {
                name: lm_head_scope.full_name("lm_head.weight"),
                message: "missing, and tie_word_embeddings is false".into(),
            });
        };
        let inv_freq = inv_freq(&config);
        Ok(LlamaModel {
            embed_name: model.full_name("embed_tokens.weight"),
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq,
        })
    }

    /// Name of the KV-cache state of `layer` (`k` or `v`).
    pub fn cache_name(layer: usize, which: &str) -> String {
        format!("kv.{layer}.{which}")
    }

    /// Records `input_ids [1, T] -> embeddings [1, T, H]`.
    pub fn record_embeddings(
        &self,
        g: &mut GraphBuilder,
        input_ids: ValueId,
    ) -> Result<ValueId, ModelError> {
        let table = match g.find(&self.embed_name) {
            Some(id) => id,
            None => g.weight(&self.embed_name, self.embed_tokens.clone())?,
        };
        Ok(g.embedding(input_ids, table)?)
    }

    /// Records the decoder over `hidden [1, T, H]` with inputs `positions` i64 [1, T] and
    /// `past_len` i64 [1]; returns the logits ([1, T or 1, V]).
    pub fn record_decoder(
        &self,
        g: &mut GraphBuilder,
        hidden: ValueId,
        positions: ValueId,
        past_len: ValueId,
        shape: PhaseShape,
    ) -> Result<ValueId, ModelError> {
        let c = &self.config;
        let t = shape.seq_len;
        let (hq, hkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let scale = 1.0 / (d as f32).sqrt();
        let mut x = hidden;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.input_layernorm.record(g, x, c.rms_norm_eps)?;
            let q = layer.q_proj.record(g, h)?;
            let k = layer.k_proj.record(g, h)?;
            let v = layer.v_proj.record(g, h)?;
            let q = g.reshape(q, [1, t, hq, d])?;
            let k = g.reshape(k, [1, t, hkv, d])?;
            let v = g.reshape(v, [1, t, hkv, d])?;
            let q = g.rope(q, positions, self.inv_freq.clone())?;
            let k = g.rope(k, positions, self.inv_freq.clone())?;
            let k_cache = g.state(
                &Self::cache_name(i, "k"),
                shape.kv_cache.dtype(),
                [1, hkv, shape.max_context, d],
            )?;
            let v_cache = g.state(
                &Self::cache_name(i, "v"),
                shape.kv_cache.dtype(),
                [1, hkv, shape.max_context, d],
            )?;
            let attn = g.cached_attention(q, k, v, k_cache, v_cache, past_len, scale)?;
            let attn = g.reshape(attn, [1, t, hq * d])?;
            let o = layer.o_proj.record(g, attn)?;
            let x_attn = g.add(x, o)?;
            let h = layer
                .post_attention_layernorm
                .record(g, x_attn, c.rms_norm_eps)?;
            let gate = layer.gate_proj.record(g, h)?;
            let up = layer.up_proj.record(g, h)?;
            let act = g.silu_mul(gate, up)?;
            let down = layer.down_proj.record(g, act)?;
            x = g.add(x_attn, down)?;
            g.name(x, &format!("layers.{i}.output"))?;
        }
        let last = match shape.logits {
            LogitsMode::All => x,
            LogitsMode::Last if t == 1 => x,
            LogitsMode::Last => g.slice(x, 1, t - 1, t)?,
        };
        let normed = self.norm.record(g, last, c.rms_norm_eps)?;
        let logits = self.lm_head.record_tied(g, normed)?;
        Ok(logits)
    }

    /// The whole text graph: inputs `input_ids`, `positions`, `past_len`; output `logits`.
    pub fn build_graph(&self, shape: PhaseShape) -> Result<Graph, ModelError> {
        let mut g = GraphBuilder::new();
        let t = shape.seq_len;
        let ids = g.input("input_ids", DType::I64, [1, t])?;
        let positions = g.input("positions", DType::I64, [1, t])?;
        let past_len = g.input("past_len", DType::I64, [1])?;
        let hidden = self.record_embeddings(&mut g, ids)?;
        let logits = self.record_decoder(&mut g, hidden, positions, past_len, shape)?;
        g.output("logits", logits)?;
        Ok(g.build())
    }
}

impl Linear {
    /// Like `record`, but reuses a weight already in the graph under the same name (tied
    /// embeddings are one weight used twice).
    fn record_tied(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId, ModelError> {
        let name = if self.name.ends_with(".weight") {
            self.name.clone()
        } else {
            format!("{}.weight", self.name)
        };
        let w = match g.find(&name) {
            Some(id) => id,
            None => g.weight(&name, self.weight.clone())?,
        };
        let b = match &self.bias {
            Some(bias) => Some(g.weight(&format!("{}.bias", self.name), bias.clone())?),
            None => None,
        };
        Ok(g.matmul(x, w, b)?)
    }
}
