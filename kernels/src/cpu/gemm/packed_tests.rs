//! Tests of the packed GEMM (`packed.rs`) against the reference, at every ISA and precision.

use super::*;
use crate::cpu::reference;
use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
use half::bf16;

/// The bf16 dot kernel's activation buffer is reused between calls without clearing:
/// a NaN left by a larger call must not reach the padding of the next (odd `k` pairs
/// its last column with a padding element).
#[test]
fn stale_bf16_activations_do_not_reach_the_padding() {
    if !PackedWeights::supported(Isa::Avx512) || !CpuFeatures::detect().avx512_bf16 {
        eprintln!("skipped: no AVX512-BF16");
        return;
    }
    let mut rng = Rng::new(137);
    let mut bf16_weight = |n: usize, k: usize| -> Vec<bf16> {
        let w = rng.vec(n * k, -1.0, 1.0);
        w.into_iter().map(bf16::from_f32).collect()
    };
    let (m, n, k) = (30, 40, 41);
    let w = bf16_weight(n, k);
    let packed = PackedWeights::pack(WeightSlice::BF16(&w), n, k).expect("pack");
    let mut out = vec![0.0; m * n];
    gemm(
        Isa::Avx512,
        &vec![f32::NAN; m * k],
        &packed,
        &[],
        m,
        Precision::Bf16Dot,
        &mut out,
    );
    let (m, k) = (13, 7);
    let w = bf16_weight(n, k);
    let packed = PackedWeights::pack(WeightSlice::BF16(&w), n, k).expect("pack");
    let a = rng.vec(m * k, -1.0, 1.0);
    let ar: Vec<f32> = a.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
    let mut want = vec![0.0; m * n];
    reference::matmul(&ar, WeightSlice::BF16(&w), None, m, n, k, &mut want);
    let mut got = vec![f32::NAN; m * n];
    gemm(
        Isa::Avx512,
        &a,
        &packed,
        &[],
        m,
        Precision::Bf16Dot,
        &mut got,
    );
    assert_nmse("bf16 dot after a NaN call", &got, &want, NMSE_F32_REDUCTION);
}

/// The levels with packed kernels on this CPU.
fn packed_isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2]
        .into_iter()
        .filter(|&isa| PackedWeights::supported(isa))
        .collect()
}

/// Odd sizes across the tile edges (12-row panels, 32-column groups, 96 x 128 parallel
/// tiles, 256/512-deep k blocks; AVX2's 6 x 16 register tiles), f32, bf16 and f16
/// weights, with and without bias, at every level with packed kernels.
#[test]
fn packed_gemm_matches_reference() {
    let isas = packed_isas();
    if isas.is_empty() {
        eprintln!("skipped: neither AVX-512 nor AVX2");
        return;
    }
    let mut rng = Rng::new(131);
    let dot = CpuFeatures::detect().avx512_bf16;
    for (m, n, k) in [
        (5, 1, 1),
        (7, 17, 3),
        (13, 33, 7),
        (12, 32, 64),
        (67, 130, 577),
        (200, 37, 1031),
        (97, 129, 2),
        (25, 65, 1025),
        // Two blocks of the bf16 dot kernel.
        (14, 35, 4099),
        (500, 70, 300),
        // Row tiles of more than 1 MiB of bf16 `a`: the dot kernel's 6 x 64 tiles, with
        // an odd group count (3) and a last panel of 7 rows (6 + 1).
        (295, 70, 2100),
        // The same over two k blocks.
        (199, 40, 4111),
    ] {
        let a = rng.vec(m * k, -1.0, 1.0);
        let wf = rng.vec(n * k, -1.0, 1.0);
        let wb: Vec<bf16> = wf.iter().map(|&x| bf16::from_f32(x)).collect();
        let wh: Vec<half::f16> = wf.iter().map(|&x| half::f16::from_f32(x)).collect();
        let bias = rng.vec(n, -1.0, 1.0);
        for (w, with_bias) in [
            (WeightSlice::F32(&wf), true),
            (WeightSlice::BF16(&wb), true),
            (WeightSlice::BF16(&wb), false),
            (WeightSlice::F16(&wh), true),
        ] {
            let packed = PackedWeights::pack(w, n, k).expect("pack");
            let b = if with_bias { &bias[..] } else { &[][..] };
            let bs = with_bias.then_some(WeightSlice::F32(&bias));
            let mut want = vec![0.0; m * n];
            reference::matmul(&a, w, bs, m, n, k, &mut want);
            let dtype = match w {
                WeightSlice::F32(_) => "f32",
                WeightSlice::BF16(_) => "bf16",
                WeightSlice::F16(_) => "f16",
            };
            let what = format!("packed {m}x{n}x{k} {dtype} bias={with_bias}");
            for &isa in &isas {
                let mut got = vec![f32::NAN; m * n];
                gemm(isa, &a, &packed, b, m, Precision::F32, &mut got);
                assert_nmse(&format!("{what} {isa}"), &got, &want, NMSE_F32_REDUCTION);
            }
            if dot && packed.allows(Precision::Bf16Dot) {
                // bf16 compute: exact against the reference fed bf16-rounded activations.
                let ar: Vec<f32> = a.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
                reference::matmul(&ar, w, bs, m, n, k, &mut want);
                let mut got = vec![f32::NAN; m * n];
                gemm(Isa::Avx512, &a, &packed, b, m, Precision::Bf16Dot, &mut got);
                assert_nmse(&format!("{what} dot"), &got, &want, NMSE_F32_REDUCTION);
            }
        }
    }
}

#[test]
fn k_zero_gives_bias() {
    for isa in packed_isas() {
        let packed = PackedWeights::pack(WeightSlice::F32(&[]), 3, 0).expect("pack");
        let mut out = vec![f32::NAN; 6];
        gemm(
            isa,
            &[],
            &packed,
            &[1.0, 2.0, 3.0],
            2,
            Precision::F32,
            &mut out,
        );
        assert_eq!(out, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0], "{isa}");
    }
}
