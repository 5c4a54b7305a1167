//! The differential harness must catch a wrong kernel and report unsupported ops as skipped:
//! a candidate backend that perturbs silu's output and refuses argmax.

use iris_runtime::backend::cpu::{CpuBackend, CpuSlot};
use iris_runtime::backend::{Backend, Operand};
use iris_runtime::graph::Op;
use iris_runtime::op_cases::{all_cases, compare_backend, CaseOutcome};
use iris_runtime::{Error, Result, Tensor};

#[derive(Default)]
struct FaultyBackend {
    inner: CpuBackend,
}

impl Backend for FaultyBackend {
    type Slot = CpuSlot;
    fn name(&self) -> &'static str {
        "faulty"
    }
    iris_runtime::forward_backend_storage!(inner);
    fn execute(
        &mut self,
        op: &Op,
        inputs: &[Operand<CpuSlot>],
        output: &Operand<CpuSlot>,
    ) -> Result<()> {
        if matches!(op, Op::Argmax) {
            return Err(Error::Unsupported {
                backend: "faulty",
                what: "argmax".into(),
            });
        }
        self.inner.execute(op, inputs, output)?;
        if matches!(op, Op::Silu) {
            let out = self.inner.read(&output.slot, output.dtype, &output.shape)?;
            let nudged: Vec<f32> = out.to_vec_f32().iter().map(|v| v * 1.001).collect();
            self.inner.write(
                &output.slot,
                &Tensor::from_slice(&nudged, output.shape.clone())?,
            )?;
        }
        Ok(())
    }
}

#[test]
fn harness_flags_a_wrong_kernel_and_skips_unsupported_ops() {
    let reports = compare_backend(&mut FaultyBackend::default(), 42).unwrap();
    assert_eq!(reports.len(), all_cases(42).len());
    for report in &reports {
        let expect_fail = report.name.starts_with("silu ");
        match &report.outcome {
            CaseOutcome::Failed { nmse, .. } => {
                assert!(expect_fail, "{} failed with nmse {nmse}", report.name)
            }
            CaseOutcome::Passed { .. } => assert!(
                !expect_fail && !report.name.starts_with("argmax"),
                "{} passed",
                report.name
            ),
            CaseOutcome::Skipped(_) => {
                assert!(report.name.starts_with("argmax"), "{} skipped", report.name)
            }
        }
    }
    assert!(reports
        .iter()
        .any(|r| matches!(r.outcome, CaseOutcome::Failed { .. })));
}
