//! CUDA graphs behind `Executor::execute_replayed` (the decode step): the kernels an executor
//! queues between `begin_capture` and `end_capture` are captured from the backend's stream
//! (stream capture, thread-local mode), instantiated and uploaded once, then replayed with
//! one `cuGraphLaunch` per run instead of one launch per node.
//!
//! - Only kernel launches are captured. The inputs' host-to-device copies (token id,
//!   position, KV length: 8 bytes each) stay outside the graph: `write_bytes` queues them on
//!   the same stream before each launch, so stream order makes the graph read them. Inside
//!   the graph they would need one fixed, pinned host buffer per input, for no gain at that
//!   size.
//! - Kernel arguments are captured by value. Every device address a kernel was given (arena,
//!   weights, KV caches, the error flag, RoPE tables) must stay allocated and in place while
//!   the graph lives, and no kernel may take a host-side value that changes between runs:
//!   the decode kernels read positions and past_len from device memory, and every launch
//!   shape comes from static graph shapes. Anything a backend makes on first use (a table, a
//!   scratch buffer) must exist before capture: the executor runs a graph op by op once
//!   before it records it.
//! - Nothing but launches may happen while capturing: a copy, read, allocation or
//!   synchronize fails the capture (the driver refuses it), and the executor then runs op by
//!   op and says why in its `replay_state`.
//! - `IRIS_CUDA_GRAPH=0` (or `off`, `false`) turns recording off, to debug a kernel in
//!   isolation or to compare the two paths.

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::CudaGraph;

use super::{cuda_err, CudaBackend};
use crate::backend::Recording;
use crate::error::{Error, Result};

/// The environment variable that turns CUDA graph recording off when set to 0.
pub const CUDA_GRAPH_ENV: &str = "IRIS_CUDA_GRAPH";

/// True unless `IRIS_CUDA_GRAPH` turns recording off.
pub fn graphs_enabled() -> bool {
    enabled_by(std::env::var(CUDA_GRAPH_ENV).ok().as_deref())
}

fn enabled_by(value: Option<&str>) -> bool {
    let value = value.map(|v| v.trim().to_ascii_lowercase());
    !matches!(value.as_deref(), Some("0" | "off" | "false" | "no"))
}

/// An instantiated CUDA graph of one executor run.
struct CudaRecording {
    graph: CudaGraph,
}

// SAFETY: CUDA graph objects are not internally synchronized: calls on one graph must not
// overlap. `CudaRecording` is only `Send` (not `Sync`), so a `&CudaRecording` never reaches a
// second thread and its owner's calls are sequential wherever it has moved; the driver ties a
// graph to its context, not to a thread, and `CudaGraph::launch` binds that context to the
// calling thread first.
unsafe impl Send for CudaRecording {}

impl Recording for CudaRecording {
    fn replay(&self) -> Result<()> {
        self.graph
            .launch()
            .map_err(cuda_err("launching a recorded CUDA graph"))
    }
}

impl CudaBackend {
    /// Puts the stream in capture mode (see the module notes); false when turned off.
    pub(super) fn begin_graph_capture(&mut self) -> Result<bool> {
        if !graphs_enabled() {
            return Ok(false);
        }
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(cuda_err("starting a CUDA graph capture"))?;
        Ok(true)
    }

    /// Ends the capture and instantiates the graph. The stream leaves capture mode whether
    /// or not this succeeds.
    pub(super) fn end_graph_capture(&mut self) -> Result<Box<dyn Recording>> {
        let graph = self
            .stream
            .end_capture(CUgraphInstantiate_flags(0))
            .map_err(cuda_err(format_args!(
                "ending a CUDA graph capture (something other than a kernel launch was queued \
                 while capturing; {CUDA_GRAPH_ENV}=0 runs op by op)"
            )))?
            .ok_or_else(|| Error::Cuda("a CUDA graph capture recorded nothing".into()))?;
        // Uploads the executable graph now, so the first replay costs what later ones do.
        graph
            .upload()
            .map_err(cuda_err("uploading a CUDA graph to the device"))?;
        Ok(Box::new(CudaRecording { graph }))
    }
}

#[cfg(test)]
mod tests {
    use super::enabled_by;

    #[test]
    fn only_an_explicit_off_value_turns_graphs_off() {
        for off in ["0", "off", "OFF", " false ", "no"] {
            assert!(!enabled_by(Some(off)), "{off:?}");
        }
        for on in [None, Some("1"), Some("on"), Some(""), Some("yes")] {
            assert!(enabled_by(on), "{on:?}");
        }
    }
}
