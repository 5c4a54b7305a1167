//! Recording a graph: inputs, weights, state buffers and typed ops with static shapes.
//! Every op is shape-checked as it is recorded; any value may be given a name (HF-style,
//! e.g. `image_features`) so it can be read back and compared.

use std::collections::HashMap;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::op::{GeluKind, Op};
use crate::graph::shape_infer::{infer, OperandInfo};
use crate::layout::Shape;
use crate::tensor::Tensor;

/// Index of a value in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Where a value comes from.
#[derive(Clone, Debug)]
pub enum ValueSource {
    /// Given by the caller at every run.
    Input,
    /// A constant tensor (model weight), bound when the graph is built.
    Weight(Tensor),
    /// A buffer owned by the backend that outlives runs and is shared by graphs (KV cache).
    State,
    /// The output of node `index`.
    Node(usize),
}

#[derive(Clone, Debug)]
pub struct Value {
    pub shape: Shape,
    pub dtype: DType,
    pub source: ValueSource,
    /// Name of an input, weight or state, or of a named intermediate.
    pub name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

/// A recorded graph: values, nodes in topological (recording) order, named outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub outputs: Vec<(String, ValueId)>,
    names: HashMap<String, ValueId>,
}

impl Graph {
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0]
    }

    /// Looks a value up by its name (input, weight, state, named intermediate or output).
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.names.get(name).copied()
    }

    pub fn inputs(&self) -> impl Iterator<Item = (ValueId, &Value)> {
        self.values
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v.source, ValueSource::Input))
            .map(|(i, v)| (ValueId(i), v))
    }

    /// Recomputes every node's output shape and dtype from its operands (after weights
    /// were re-typed, for example).
    pub(crate) fn reinfer(&mut self) -> Result<()> {
        for node in &self.nodes {
            let infos: Vec<OperandInfo> = node
                .inputs
                .iter()
                .map(|&id| OperandInfo {
                    shape: self.values[id.0].shape.clone(),
                    dtype: self.values[id.0].dtype,
                })
                .collect();
            let info = infer(&node.op, &infos)?;
            let out = &mut self.values[node.output.0];
            out.shape = info.shape;
            out.dtype = info.dtype;
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn add_value(&mut self, value: Value) -> Result<ValueId> {
        let id = ValueId(self.graph.values.len());
        if let Some(name) = &value.name {
            if self.graph.names.contains_key(name) {
                return Err(Error::InvalidShape(format!(
                    "graph value name `{name}` used twice"
                )));
            }
            self.graph.names.insert(name.clone(), id);
        }
        self.graph.values.push(value);
        Ok(id)
    }

    /// A caller-provided tensor, given by name at every run.
    pub fn input(&mut self, name: &str, dtype: DType, shape: impl Into<Shape>) -> Result<ValueId> {
        self.add_value(Value {
            shape: shape.into(),
            dtype,
            source: ValueSource::Input,
            name: Some(name.into()),
        })
    }

    /// A constant tensor, read in place by the backend where it can be.
    pub fn weight(&mut self, name: &str, tensor: Tensor) -> Result<ValueId> {
        let value = Value {
            shape: tensor.shape().clone(),
            dtype: tensor.dtype(),
            source: ValueSource::Weight(tensor),
            name: Some(name.into()),
        };
        self.add_value(value)
    }

    /// A backend-owned buffer shared across runs and graphs by name (a KV cache).
    pub fn state(&mut self, name: &str, dtype: DType, shape: impl Into<Shape>) -> Result<ValueId> {
        self.add_value(Value {
            shape: shape.into(),
            dtype,
            source: ValueSource::State,
            name: Some(name.into()),
        })
    }

    /// Looks a value up by name in the graph recorded so far.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.graph.find(name)
    }

    pub fn shape(&self, id: ValueId) -> &Shape {
        &self.graph.values[id.0].shape
    }

    pub fn dtype(&self, id: ValueId) -> DType {
        self.graph.values[id.0].dtype
    }

    /// Records `op` over `inputs`; fails with a message naming the op when shapes disagree.
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let infos: Vec<OperandInfo> = inputs
            .iter()
            .map(|&id| {
                let v = &self.graph.values[id.0];
                OperandInfo {
                    shape: v.shape.clone(),
                    dtype: v.dtype,
                }
            })
            .collect();
        let info = infer(&op, &infos)?;
        let output = self.add_value(Value {
            shape: info.shape,
            dtype: info.dtype,
            source: ValueSource::Node(self.graph.nodes.len()),
            name: None,
        })?;
        self.graph.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            output,
        });
        Ok(output)
    }

    /// Names an intermediate so it can be read back after a run (when kept alive, see
    /// `ExecutorOptions::keep_named`).
    pub fn name(&mut self, id: ValueId, name: &str) -> Result<()> {
        if self.graph.values[id.0].name.is_some() {
            return Err(Error::InvalidShape(format!(
                "value {id:?} is already named"
            )));
        }
        if self.graph.names.contains_key(name) {
            return Err(Error::InvalidShape(format!(
                "graph value name `{name}` used twice"
            )));
        }
        self.graph.names.insert(name.to_string(), id);
        self.graph.values[id.0].name = Some(name.to_string());
        Ok(())
    }

    /// Marks `id` as a graph output called `name`.
    pub fn output(&mut self, name: &str, id: ValueId) -> Result<()> {
        match &self.graph.values[id.0].name {
            Some(existing) if existing == name => {}
            Some(_) => {}
            None => self.name(id, name)?,
        }
        if self.graph.outputs.iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidShape(format!(
                "graph output `{name}` declared twice"
            )));
        }
        self.graph.outputs.push((name.to_string(), id));
        Ok(())
    }

    pub fn build(self) -> Graph {
        self.graph
    }

    // Typed shorthands, one per op, so model code reads like the HF forward.

    pub fn matmul(&mut self, x: ValueId, w: ValueId, bias: Option<ValueId>) -> Result<ValueId> {
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        self.op(
            Op::MatMul {
                has_bias: bias.is_some(),
            },
            &inputs,
        )
    }
    pub fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op(Op::Add, &[a, b])
    }
    pub fn mul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op(Op::Mul, &[a, b])
    }
    pub fn scale(&mut self, x: ValueId, factor: f32) -> Result<ValueId> {
        self.op(Op::Scale { factor }, &[x])
    }
    pub fn rms_norm(&mut self, x: ValueId, weight: ValueId, eps: f32) -> Result<ValueId> {
        self.op(Op::RmsNorm { eps }, &[x, weight])
    }
    pub fn layer_norm(
        &mut self,
        x: ValueId,
        weight: ValueId,
        bias: Option<ValueId>,
        eps: f32,
    ) -> Result<ValueId> {
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        self.op(
            Op::LayerNorm {
                eps,
                has_bias: bias.is_some(),
            },
            &inputs,
        )
    }
    pub fn softmax(&mut self, x: ValueId) -> Result<ValueId> {
        self.op(Op::Softmax, &[x])
    }
    pub fn rope(&mut self, x: ValueId, positions: ValueId, inv_freq: Vec<f32>) -> Result<ValueId> {
        self.op(Op::Rope { inv_freq }, &[x, positions])
    }
    pub fn attention(
        &mut self,
        q: ValueId,
        k: ValueId,
        v: ValueId,
        mask: Option<ValueId>,
        causal: bool,
        scale: f32,
    ) -> Result<ValueId> {
        let mut inputs = vec![q, k, v];
        inputs.extend(mask);
        self.op(
            Op::Attention {
                causal,
                scale,
                has_mask: mask.is_some(),
            },
            &inputs,
        )
    }
    #[allow(clippy::too_many_arguments)]
    pub fn cached_attention(
        &mut self,
        q: ValueId,
        k_new: ValueId,
        v_new: ValueId,
        k_cache: ValueId,
        v_cache: ValueId,
        past_len: ValueId,
        scale: f32,
    ) -> Result<ValueId> {
        self.op(
            Op::CachedAttention { scale },
            &[q, k_new, v_new, k_cache, v_cache, past_len],
        )
    }
    pub fn gelu(&mut self, x: ValueId, kind: GeluKind) -> Result<ValueId> {
        self.op(Op::Gelu(kind), &[x])
    }
    pub fn quick_gelu(&mut self, x: ValueId) -> Result<ValueId> {
        self.op(Op::QuickGelu, &[x])
    }
    pub fn silu(&mut self, x: ValueId) -> Result<ValueId> {
        self.op(Op::Silu, &[x])
    }
    pub fn silu_mul(&mut self, gate: ValueId, up: ValueId) -> Result<ValueId> {
        self.op(Op::SiluMul, &[gate, up])
    }
    pub fn embedding(&mut self, ids: ValueId, table: ValueId) -> Result<ValueId> {
        self.op(Op::Embedding, &[ids, table])
    }
    pub fn reshape(&mut self, x: ValueId, shape: impl Into<Shape>) -> Result<ValueId> {
        self.op(
            Op::Reshape {
                shape: shape.into().0,
            },
            &[x],
        )
    }
    pub fn permute(&mut self, x: ValueId, perm: &[usize]) -> Result<ValueId> {
        self.op(
            Op::Permute {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }
    /// Swaps two axes (a permute).
    pub fn transpose(&mut self, x: ValueId, a: usize, b: usize) -> Result<ValueId> {
        let rank = self.shape(x).rank();
        if a >= rank || b >= rank {
            return Err(Error::InvalidOp {
                op: "transpose",
                message: format!("axes {a}, {b} out of range for rank {rank}"),
            });
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        self.permute(x, &perm)
    }
    pub fn slice(&mut self, x: ValueId, axis: usize, start: usize, end: usize) -> Result<ValueId> {
        self.op(Op::Slice { axis, start, end }, &[x])
    }
    pub fn concat(&mut self, xs: &[ValueId], axis: usize) -> Result<ValueId> {
        self.op(Op::Concat { axis }, xs)
    }
    pub fn conv2d(
        &mut self,
        x: ValueId,
        w: ValueId,
        bias: Option<ValueId>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<ValueId> {
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        self.op(
            Op::Conv2d {
                stride,
                padding,
                has_bias: bias.is_some(),
            },
            &inputs,
        )
    }
    pub fn pixel_shuffle(&mut self, x: ValueId, scale: usize) -> Result<ValueId> {
        self.op(Op::PixelShuffle { scale }, &[x])
    }
    pub fn argmax(&mut self, x: ValueId) -> Result<ValueId> {
        self.op(Op::Argmax, &[x])
    }
}
