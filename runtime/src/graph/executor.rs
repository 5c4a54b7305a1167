//! Compiling a graph for a backend (weights bound, arena allocated, every operand resolved)
//! and replaying it. A run writes the inputs and launches one kernel per node: no
//! allocation, no shape work.

use crate::backend::{Backend, Operand};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::builder::{Graph, ValueId, ValueSource};
use crate::graph::op::Op;
use crate::graph::planner::{plan, Placement, Plan};
use crate::graph::shape_infer::reads_half_weight;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, Default)]
pub struct ExecutorOptions {
    /// Keep every named intermediate alive to the end of a run so it can be read back
    /// (costs arena space; for checks and dumps).
    pub keep_named: bool,
}

struct Step<S> {
    node: usize,
    inputs: Vec<Operand<S>>,
    output: Operand<S>,
}

pub struct Executor<B: Backend> {
    graph: Graph,
    plan: Plan,
    slots: Vec<B::Slot>,
    steps: Vec<Step<B::Slot>>,
    kept: Vec<bool>,
    written: Vec<bool>,
}

impl<B: Backend> Executor<B> {
    pub fn new(backend: &mut B, mut graph: Graph, options: ExecutorOptions) -> Result<Self> {
        widen_weights_kernels_cannot_read(&mut graph)?;
        let mut keep: Vec<ValueId> = graph.outputs.iter().map(|(_, id)| *id).collect();
        if options.keep_named {
            keep.extend(
                graph
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.name.is_some() && matches!(v.source, ValueSource::Node(_)))
                    .map(|(i, _)| ValueId(i)),
            );
        }
        let plan = plan(&graph, &keep);
        let mut kept = vec![false; graph.values.len()];
        for id in &keep {
            kept[id.0] = true;
        }

        let arena = backend.alloc(plan.arena_bytes.max(1))?;
        let mut slots: Vec<B::Slot> = Vec::with_capacity(graph.values.len());
        for (i, value) in graph.values.iter().enumerate() {
            let bytes = value.shape.numel() * value.dtype.size_in_bytes();
            let slot = match plan.placements[i] {
                Placement::Arena { offset, .. } => backend.sub_slot(&arena, offset, bytes),
                Placement::Weight => match &value.source {
                    ValueSource::Weight(tensor) => backend.weight(tensor)?,
                    _ => unreachable!("weight placement for a non-weight"),
                },
                Placement::State => {
                    let name = value.name.as_deref().unwrap_or_default();
                    backend.state(name, value.dtype, &value.shape)?
                }
                // Aliases come after their target in recording order.
                Placement::Alias(target) => backend.sub_slot(&slots[target.0], 0, bytes),
            };
            slots.push(slot);
        }

        let operand = |id: ValueId, slots: &[B::Slot]| Operand {
            slot: slots[id.0].clone(),
            dtype: graph.values[id.0].dtype,
            shape: graph.values[id.0].shape.clone(),
        };
        let steps = graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| !matches!(node.op, Op::Reshape { .. }))
            .map(|(n, node)| Step {
                node: n,
                inputs: node.inputs.iter().map(|&id| operand(id, &slots)).collect(),
                output: operand(node.output, &slots),
            })
            .collect();
        let written = vec![false; graph.values.len()];
        Ok(Executor {
            graph,
            plan,
            slots,
            steps,
            kept,
            written,
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Writes `inputs` (every graph input, by name) and runs all nodes in order.
    pub fn run(&mut self, backend: &mut B, inputs: &[(&str, &Tensor)]) -> Result<()> {
        for (name, tensor) in inputs {
            self.write_input(backend, name, tensor)?;
        }
        for (_, value) in self.graph.inputs() {
            let name = value.name.as_deref().unwrap_or_default();
            if !inputs.iter().any(|(given, _)| *given == name) {
                return Err(Error::MissingInput(name.to_string()));
            }
        }
        self.execute(backend)
    }

    fn input_id(&self, name: &str) -> Result<ValueId> {
        let id = self
            .graph
            .find(name)
            .ok_or_else(|| Error::UnknownValue(name.to_string()))?;
        if !matches!(self.graph.value(id).source, ValueSource::Input) {
            return Err(Error::InvalidShape(format!(
                "`{name}` is not a graph input"
            )));
        }
        Ok(id)
    }

    /// Writes one input, checking its dtype and shape.
    pub fn write_input(&mut self, backend: &mut B, name: &str, tensor: &Tensor) -> Result<()> {
        let id = self.input_id(name)?;
        let value = self.graph.value(id);
        if tensor.dtype() != value.dtype {
            return Err(Error::DTypeMismatch {
                name: name.to_string(),
                expected: value.dtype,
                found: tensor.dtype(),
            });
        }
        if tensor.shape() != &value.shape {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: value.shape.clone(),
                found: tensor.shape().clone(),
            });
        }
        backend.write(&self.slots[id.0], tensor)?;
        self.written[id.0] = true;
        Ok(())
    }

    /// Writes one input from raw little-endian bytes of its dtype (no allocation: for the
    /// decode loop). The byte count must match the input exactly.
    pub fn write_input_bytes(&mut self, backend: &mut B, name: &str, bytes: &[u8]) -> Result<()> {
        let id = self.input_id(name)?;
        let value = self.graph.value(id);
        let expected = value.shape.numel() * value.dtype.size_in_bytes();
        if bytes.len() != expected {
            return Err(Error::InvalidShape(format!(
                "input `{name}` is {} {} ({expected} bytes), got {} bytes",
                value.dtype,
                value.shape,
                bytes.len()
            )));
        }
        backend.write_bytes(&self.slots[id.0], bytes)?;
        self.written[id.0] = true;
        Ok(())
    }

    /// Runs all nodes over the inputs written so far (every input must have been written
    /// at least once; later runs may rewrite only the ones that change).
    pub fn execute(&mut self, backend: &mut B) -> Result<()> {
        for (id, value) in self.graph.inputs() {
            if !self.written[id.0] {
                return Err(Error::MissingInput(value.name.clone().unwrap_or_default()));
            }
        }
        for step in &self.steps {
            let op = &self.graph.nodes[step.node].op;
            backend.execute(op, &step.inputs, &step.output)?;
        }
        backend.synchronize()
    }

    /// Copies a readable value (see `read`) into `out`, whose length must be the value's
    /// byte size. No allocation.
    pub fn read_into(&self, backend: &mut B, name: &str, out: &mut [u8]) -> Result<()> {
        let id = self.readable(name)?;
        let value = self.graph.value(id);
        let expected = value.shape.numel() * value.dtype.size_in_bytes();
        if out.len() != expected {
            return Err(Error::InvalidShape(format!(
                "`{name}` is {expected} bytes, buffer is {}",
                out.len()
            )));
        }
        backend.read_into(&self.slots[id.0], out)
    }

    /// Shape and dtype of a value.
    pub fn value_info(&self, name: &str) -> Result<(&crate::layout::Shape, DType)> {
        let id = self
            .graph
            .find(name)
            .ok_or_else(|| Error::UnknownValue(name.to_string()))?;
        let value = self.graph.value(id);
        Ok((&value.shape, value.dtype))
    }

    fn readable(&self, name: &str) -> Result<ValueId> {
        let id = self
            .graph
            .find(name)
            .ok_or_else(|| Error::UnknownValue(name.to_string()))?;
        let value = self.graph.value(id);
        if !self.kept[id.0] && matches!(value.source, ValueSource::Node(_)) {
            return Err(Error::InvalidShape(format!(
                "`{name}` is an intermediate that was not kept; compile with keep_named to read it"
            )));
        }
        Ok(id)
    }

    /// Reads a graph output, or a named value kept alive (see `ExecutorOptions`).
    pub fn read(&self, backend: &mut B, name: &str) -> Result<Tensor> {
        let id = self.readable(name)?;
        let value = self.graph.value(id);
        backend.read(&self.slots[id.0], value.dtype, &value.shape)
    }

    /// All graph outputs, in declaration order.
    pub fn outputs(&self, backend: &mut B) -> Result<Vec<(String, Tensor)>> {
        self.graph
            .outputs
            .iter()
            .map(|(name, _)| Ok((name.clone(), self.read(backend, name)?)))
            .collect()
    }
}

/// The CPU kernels read bf16/f16 only as matmul/conv/norm/embedding weights; any other use
/// of a half-precision weight (a class token concatenated, a bias added) gets an f32 copy,
/// made once here and never during a run.
fn widen_weights_kernels_cannot_read(graph: &mut Graph) -> Result<()> {
    let mut needs_f32 = vec![false; graph.values.len()];
    for node in &graph.nodes {
        for (index, &id) in node.inputs.iter().enumerate() {
            let value = &graph.values[id.0];
            let is_half_weight = matches!(value.source, ValueSource::Weight(_))
                && matches!(value.dtype, DType::F16 | DType::BF16);
            if is_half_weight && !reads_half_weight(&node.op, index) {
                needs_f32[id.0] = true;
            }
        }
    }
    if !needs_f32.iter().any(|&b| b) {
        return Ok(());
    }
    for (i, value) in graph.values.iter_mut().enumerate() {
        if needs_f32[i] {
            if let ValueSource::Weight(tensor) = &value.source {
                let widened = tensor.to_dtype(DType::F32)?;
                value.dtype = DType::F32;
                value.source = ValueSource::Weight(widened);
            }
        }
    }
    graph.reinfer()
}
