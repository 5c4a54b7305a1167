//! Device-side timing of work queued on the backend's stream, with CUDA events, for
//! `iris bench kernels --device cuda`. The stream stays private: callers hand in the work as
//! a closure over the backend (usually one `execute`), and get back each call's seconds.
//!
//! One event sits between consecutive calls (n + 1 events for n calls), and all calls are
//! queued before the host waits once, so the host runs ahead of the device and launch
//! overhead is hidden whenever a call's device time exceeds its host-side queueing time
//! (a few microseconds). Shorter calls measure the launch rate instead.

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::CudaEvent;

use super::{cuda_err, CudaBackend};
use crate::backend::Backend;
use crate::error::Result;

impl CudaBackend {
    /// Queues `warmup` untimed calls of `work`, then `runs` timed ones, waits for all of them
    /// (checking CUDA and device-flag errors as `synchronize` does), and returns each timed
    /// call's device seconds in call order. `work` gets the call's index (warm-up calls
    /// first, so `0..warmup + runs`), which lets a caller rotate its buffers.
    pub fn time_on_stream<F>(&mut self, warmup: usize, runs: usize, mut work: F) -> Result<Vec<f64>>
    where
        F: FnMut(&mut Self, usize) -> Result<()>,
    {
        for call in 0..warmup {
            work(self, call)?;
        }
        let events = (0..=runs)
            .map(|_| self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)))
            .collect::<std::result::Result<Vec<CudaEvent>, _>>()
            .map_err(cuda_err("creating timing events"))?;
        events[0]
            .record(&self.stream)
            .map_err(cuda_err("recording a timing event"))?;
        for (run, end) in events[1..].iter().enumerate() {
            work(self, warmup + run)?;
            end.record(&self.stream)
                .map_err(cuda_err("recording a timing event"))?;
        }
        self.synchronize()?;
        events
            .windows(2)
            .map(|pair| {
                pair[0]
                    .elapsed_ms(&pair[1])
                    .map(|ms| f64::from(ms) * 1e-3)
                    .map_err(cuda_err("reading a timing event"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Operand;
    use crate::dtype::DType;
    use crate::graph::Op;
    use crate::layout::Shape;

    /// On a GPU: every call gets a positive, finite time, and four adds per call take longer
    /// than one. Without a device it prints why and checks nothing (IRIS_REQUIRE_CUDA=1
    /// makes that a failure, as in tests/cuda_ops.rs).
    #[test]
    fn event_times_grow_with_the_work() {
        let mut be = match CudaBackend::new(0) {
            Ok(be) => be,
            Err(err) if std::env::var_os("IRIS_REQUIRE_CUDA").is_some_and(|v| v == "1") => {
                panic!("IRIS_REQUIRE_CUDA=1 but the CUDA backend did not start: {err}")
            }
            Err(err) => {
                println!("skipping: {err}");
                return;
            }
        };
        let n = 1 << 24;
        let shape = Shape::new([n]);
        let operand = |be: &mut CudaBackend| -> Operand<_> {
            Operand {
                slot: be.alloc(4 * n).unwrap(),
                dtype: DType::F32,
                shape: shape.clone(),
            }
        };
        let (a, b, out) = (operand(&mut be), operand(&mut be), operand(&mut be));
        let inputs = [a, b];
        let mut median = |adds: usize| -> f64 {
            let mut t = be
                .time_on_stream(2, 9, |be, _| {
                    (0..adds).try_for_each(|_| be.execute(&Op::Add, &inputs, &out))
                })
                .unwrap();
            assert_eq!(t.len(), 9);
            assert!(t.iter().all(|s| s.is_finite() && *s > 0.0), "{t:?}");
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let (one, four) = (median(1), median(4));
        assert!(four > 2.0 * one, "4 adds {four} s vs 1 add {one} s");
    }
}
