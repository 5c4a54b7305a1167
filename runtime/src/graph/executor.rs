//! Compiling a graph for a backend (weights bound, arena allocated, every operand resolved)
//! and replaying it. A run writes the inputs and launches one kernel per node: no
//! allocation, no shape work. On a backend that records (CUDA graphs), `execute_replayed`
//! records the launches once and replays them as one. An input can also be copied from
//! another executor's output where the backend holds both (`operand`, `write_input_from`),
//! so one graph feeds the next without a trip through host memory.

use crate::backend::{Backend, Operand, Recording};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::builder::{Graph, ValueId, ValueSource};
use crate::graph::op::Op;
use crate::graph::planner::{plan, Placement, Plan};
use crate::graph::profile::{self, OpProfile};
use crate::graph::shape_infer::reads_half_weight;
use crate::layout::Shape;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, Default)]
pub struct ExecutorOptions {
    /// Keep every named intermediate alive to the end of a run so it can be read back
    /// (costs arena space; for checks and dumps).
    pub keep_named: bool,
}

/// How `Executor::execute_replayed` runs the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayState {
    /// Not recorded yet: the next call runs op by op if the graph never ran (so what a
    /// backend makes on first use, a table or a scratch buffer, exists before recording),
    /// else records.
    NotRecorded,
    /// Every call replays the recording.
    Recorded,
    /// The backend does not record (the CPU, or recording turned off): op by op.
    Unavailable,
    /// Recording failed with this message: op by op from then on.
    Failed(String),
}

struct Step<S> {
    node: usize,
    inputs: Vec<Operand<S>>,
    output: Operand<S>,
}

pub struct Executor<B: Backend> {
    // First: the recording names the slots' buffers, so it goes before them.
    recording: Option<Box<dyn Recording>>,
    replay: ReplayState,
    /// Completed op-by-op runs.
    runs: usize,
    graph: Graph,
    plan: Plan,
    slots: Vec<B::Slot>,
    steps: Vec<Step<B::Slot>>,
    kept: Vec<bool>,
    written: Vec<bool>,
    /// Per-op timing (`IRIS_PROFILE=1`), printed at drop.
    profile: Option<OpProfile>,
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
                    ValueSource::Weight(tensor) => backend
                        .weight(tensor)
                        .map_err(|e| name_weight_error(value.name.as_deref(), e))?,
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
        let steps: Vec<Step<B::Slot>> = graph
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
        for step in &steps {
            backend.prepare(&graph.nodes[step.node].op, &step.inputs)?;
        }
        let written = vec![false; graph.values.len()];
        let profile = profile::requested().then(|| OpProfile::new(step_labels(&graph, &steps)));
        Ok(Executor {
            recording: None,
            replay: ReplayState::NotRecorded,
            runs: 0,
            graph,
            plan,
            slots,
            steps,
            kept,
            written,
            profile,
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

    /// Copies `src` (a value where the backend holds it: another executor's output, from
    /// [`Executor::operand`]) into input `name` on the backend, with no host round trip. The
    /// dtypes must be equal and so must the byte sizes (not the shapes: [N, T, H] fills
    /// [1, N * T, H]).
    pub fn write_input_from(
        &mut self,
        backend: &mut B,
        name: &str,
        src: &Operand<B::Slot>,
    ) -> Result<()> {
        let id = self.input_id(name)?;
        let value = self.graph.value(id);
        let (expected, found) = (
            byte_size(&value.shape, value.dtype),
            byte_size(&src.shape, src.dtype),
        );
        if src.dtype == value.dtype && found != expected {
            return Err(Error::InvalidShape(format!(
                "input `{name}` is {} {} ({expected} bytes); the value copied into it is {} {} \
                 ({found} bytes)",
                value.dtype, value.shape, src.dtype, src.shape
            )));
        }
        self.write_input_part_from(backend, name, 0, src)
    }

    /// Copies `src` into input `name` from its element `at` on, as `write_input_from` does:
    /// for an input assembled from several runs of another graph (the image features of
    /// several vision runs, in order). The dtypes must be equal and `src` must fit; the caller
    /// writes the rest of the input (the input counts as written from here on).
    pub fn write_input_part_from(
        &mut self,
        backend: &mut B,
        name: &str,
        at: usize,
        src: &Operand<B::Slot>,
    ) -> Result<()> {
        let id = self.input_id(name)?;
        let value = self.graph.value(id);
        if src.dtype != value.dtype {
            return Err(Error::DTypeMismatch {
                name: name.to_string(),
                expected: value.dtype,
                found: src.dtype,
            });
        }
        let numel = value.shape.numel();
        let end = at
            .checked_add(src.shape.numel())
            .filter(|&end| end <= numel);
        let Some(end) = end else {
            return Err(Error::InvalidShape(format!(
                "input `{name}` is {} {} ({numel} elements): {} {} from element {at} does not fit",
                value.dtype, value.shape, src.dtype, src.shape
            )));
        };
        let size = value.dtype.size_in_bytes();
        let dst = backend.sub_slot(&self.slots[id.0], at * size, (end - at) * size);
        backend.copy_slot(&src.slot, &dst, (end - at) * size)?;
        self.written[id.0] = true;
        Ok(())
    }

    /// Runs all nodes over the inputs written so far (every input must have been written
    /// at least once; later runs may rewrite only the ones that change).
    pub fn execute(&mut self, backend: &mut B) -> Result<()> {
        self.check_inputs_written()?;
        if self.profile.is_some() {
            self.run_profiled(backend)?;
        } else {
            self.queue_steps(backend)?;
            backend.synchronize()?;
        }
        self.runs += 1;
        Ok(())
    }

    /// `execute`'s steps, each timed to completion.
    fn run_profiled(&mut self, backend: &mut B) -> Result<()> {
        let Some(profile) = self.profile.as_mut() else {
            return Ok(());
        };
        for (i, step) in self.steps.iter().enumerate() {
            let started = std::time::Instant::now();
            backend.execute(&self.graph.nodes[step.node].op, &step.inputs, &step.output)?;
            backend.synchronize()?;
            profile.record(i, started);
        }
        profile.finish_run();
        Ok(())
    }

    /// `execute` as one recorded launch where the backend records (CUDA graphs): a graph
    /// that never ran runs op by op, the next call records and replays, later calls only
    /// replay. Inputs are written before each call as for `execute`; those copies are not
    /// part of the recording. Where the backend does not record, or recording fails, it runs
    /// op by op (`replay_state` says which and why).
    pub fn execute_replayed(&mut self, backend: &mut B) -> Result<()> {
        self.check_inputs_written()?;
        if let Some(recording) = &self.recording {
            recording.replay()?;
            return backend.synchronize();
        }
        if self.replay != ReplayState::NotRecorded || self.runs == 0 || self.profile.is_some() {
            return self.execute(backend);
        }
        if !backend.begin_capture()? {
            self.replay = ReplayState::Unavailable;
            return self.execute(backend);
        }
        let queued = self.queue_steps(backend);
        // Always ended, so a failed op leaves the backend out of recording mode.
        let ended = backend.end_capture();
        let recording = match (queued, ended) {
            (Ok(()), Ok(recording)) => recording,
            (Err(e), _) | (Ok(()), Err(e)) => {
                self.replay = ReplayState::Failed(e.to_string());
                return self.execute(backend);
            }
        };
        if let Err(e) = recording.replay() {
            self.replay = ReplayState::Failed(e.to_string());
            return Err(e);
        }
        self.recording = Some(recording);
        self.replay = ReplayState::Recorded;
        backend.synchronize()
    }

    /// Whether `execute_replayed` replays a recording, and why not.
    pub fn replay_state(&self) -> &ReplayState {
        &self.replay
    }

    fn check_inputs_written(&self) -> Result<()> {
        for (id, value) in self.graph.inputs() {
            if !self.written[id.0] {
                return Err(Error::MissingInput(value.name.clone().unwrap_or_default()));
            }
        }
        Ok(())
    }

    /// Hands every node to the backend, in order, without waiting.
    fn queue_steps(&self, backend: &mut B) -> Result<()> {
        for step in &self.steps {
            let op = &self.graph.nodes[step.node].op;
            backend.execute(op, &step.inputs, &step.output)?;
        }
        Ok(())
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
    pub fn value_info(&self, name: &str) -> Result<(&Shape, DType)> {
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

    /// Where the backend holds a graph output, or a named value kept alive (see `read`): its
    /// slot, dtype and shape, the source of [`Executor::write_input_from`]. The slot's bytes
    /// are the value's until this executor runs again.
    pub fn operand(&self, name: &str) -> Result<Operand<B::Slot>> {
        let id = self.readable(name)?;
        let value = self.graph.value(id);
        Ok(Operand {
            slot: self.slots[id.0].clone(),
            dtype: value.dtype,
            shape: value.shape.clone(),
        })
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

impl<B: Backend> Drop for Executor<B> {
    fn drop(&mut self) {
        if let Some(profile) = &self.profile {
            let outputs: Vec<&str> = self.graph.outputs.iter().map(|(n, _)| n.as_str()).collect();
            let title = format!(
                "the graph of {} ops to {}",
                self.steps.len(),
                outputs.join(", ")
            );
            eprint!("{}", profile.report(&title));
        }
    }
}

fn byte_size(shape: &Shape, dtype: DType) -> usize {
    shape.numel() * dtype.size_in_bytes()
}

/// Each step's profile label: the op, its operands' dtypes and shapes, and its output's.
fn step_labels<S>(graph: &Graph, steps: &[Step<S>]) -> Vec<String> {
    steps
        .iter()
        .map(|step| {
            let node = &graph.nodes[step.node];
            let operands: Vec<String> = node
                .inputs
                .iter()
                .map(|&id| format!("{} {}", graph.values[id.0].dtype, graph.values[id.0].shape))
                .collect();
            let out = &graph.values[node.output.0];
            format!(
                "{} ({}) -> {}",
                node.op.name(),
                operands.join(", "),
                out.shape
            )
        })
        .collect()
}

/// A device error while binding a weight (out of memory, most often), with the weight's
/// graph name put in front; other errors already name what they are about.
fn name_weight_error(name: Option<&str>, error: Error) -> Error {
    match (name, error) {
        (Some(name), Error::Cuda(message)) => Error::Cuda(format!("weight `{name}`: {message}")),
        (_, error) => error,
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
