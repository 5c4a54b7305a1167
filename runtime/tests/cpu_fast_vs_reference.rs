//! The fast CPU kernels (every ISA level this machine supports) against the plain reference
//! kernels, op by op, through the differential harness.

use iris_runtime::backend::cpu::{CpuBackend, CpuKernels, Isa};
use iris_runtime::op_cases::{compare_backend, CaseOutcome};

#[test]
fn fast_kernels_match_reference_at_every_isa() {
    for isa in Isa::available() {
        for seed in [1, 2] {
            let mut backend = CpuBackend::with_isa(isa).unwrap();
            assert_eq!(backend.kernels(), CpuKernels::Fast(isa));
            let reports = compare_backend(&mut backend, seed).unwrap();
            assert!(!reports.is_empty());
            for r in &reports {
                match &r.outcome {
                    CaseOutcome::Passed { .. } => {}
                    CaseOutcome::Failed { nmse, max_abs } => panic!(
                        "{isa} seed {seed}: case {} NMSE {nmse:e} (max abs {max_abs})",
                        r.name
                    ),
                    CaseOutcome::Skipped(what) => {
                        panic!("{isa} seed {seed}: case {} skipped: {what}", r.name)
                    }
                }
            }
        }
    }
}

#[test]
fn unsupported_isa_is_an_error_and_reference_is_selectable() {
    for isa in Isa::ALL {
        assert_eq!(
            CpuBackend::with_isa(isa).is_ok(),
            isa.is_supported(),
            "{isa}"
        );
    }
    assert_eq!(CpuBackend::reference().kernels(), CpuKernels::Reference);
    assert!(matches!(CpuBackend::new().kernels(), CpuKernels::Fast(_)));
}
