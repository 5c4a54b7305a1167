//! Embedding gather with vector widening, the contract of `reference::embedding`:
//! `out[t] = table[ids[t]]` for a `[vocab, dim]` table of f32 (copied), bf16 or f16
//! (widened exactly with the loads of `simd`). Every id is checked before anything is
//! written (`IdOutOfRange` names the first bad position). Rows are split over rayon when
//! the output is large (a prompt), never for one decode token. Criterion
//! `rowops/*/embedding_bf16/512x576` (2-core AMD EPYC VM, load ~4): scalar (the
//! reference) 653 us, avx2 74 us, avx512 47 us.

use rayon::prelude::*;

use super::PAR_MIN;
use crate::cpu::isa::Isa;
use crate::cpu::reference::{self, IdOutOfRange};
use crate::cpu::simd::widen_into;
use crate::WeightSlice;

/// Gathers one `dim`-wide table row per id at `isa`; the scalar level is the reference.
pub fn embedding(
    isa: Isa,
    ids: &[i64],
    table: WeightSlice,
    dim: usize,
    out: &mut [f32],
) -> Result<(), IdOutOfRange> {
    isa.assert_supported();
    if isa == Isa::Scalar {
        return reference::embedding(ids, table, dim, out);
    }
    assert_eq!(
        out.len(),
        ids.len() * dim,
        "embedding: out must be [ids.len(), dim]"
    );
    assert!(
        table.len().checked_rem(dim) == Some(0) || table.is_empty(),
        "embedding: table.len() = {} is not a multiple of dim = {dim}",
        table.len()
    );
    let vocab = table.len().checked_div(dim).unwrap_or(0);
    if let Some(position) = ids
        .iter()
        .position(|&id| id < 0 || id as u64 >= vocab as u64)
    {
        return Err(IdOutOfRange {
            position,
            id: ids[position],
            vocab,
        });
    }
    if dim == 0 {
        return Ok(());
    }
    let row = |(o, &id): (&mut [f32], &i64)| widen_into(isa, table, id as usize * dim, o);
    if out.len() < PAR_MIN {
        out.chunks_mut(dim).zip(ids).for_each(row);
    } else {
        out.par_chunks_mut(dim).zip(ids.par_iter()).for_each(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE};
    use half::{bf16, f16};

    #[test]
    fn matches_the_reference_exactly_for_every_table_type_and_isa() {
        let mut rng = Rng::new(84);
        for (vocab, dim, tokens) in [(5, 1, 3), (13, 7, 9), (101, 33, 17), (1003, 577, 64)] {
            let t = rng.vec(vocab * dim, -2.0, 2.0);
            let tb: Vec<bf16> = t.iter().map(|&v| bf16::from_f32(v)).collect();
            let th: Vec<f16> = t.iter().map(|&v| f16::from_f32(v)).collect();
            let ids: Vec<i64> = (0..tokens).map(|i| (i * 37 % vocab) as i64).collect();
            for (table, name) in [
                (WeightSlice::F32(&t), "f32"),
                (WeightSlice::BF16(&tb), "bf16"),
                (WeightSlice::F16(&th), "f16"),
            ] {
                let mut want = vec![0.0; tokens * dim];
                reference::embedding(&ids, table, dim, &mut want).unwrap();
                for isa in Isa::available() {
                    let mut got = vec![f32::NAN; tokens * dim];
                    embedding(isa, &ids, table, dim, &mut got).unwrap();
                    let what = format!("{isa} embedding {vocab}x{dim} {name}");
                    assert_nmse(&what, &got, &want, NMSE_F32_ELEMENTWISE);
                    assert_eq!(got, want, "{what}");
                }
            }
        }
    }

    #[test]
    fn bad_ids_are_errors_and_nothing_is_written() {
        let table = [0.5f32; 12]; // vocab 4, dim 3
        for isa in Isa::available() {
            let mut out = [7.0f32; 9];
            let err = embedding(isa, &[1, 4, -1], WeightSlice::F32(&table), 3, &mut out);
            let want = IdOutOfRange {
                position: 1,
                id: 4,
                vocab: 4,
            };
            assert_eq!(err, Err(want), "{isa}");
            assert_eq!(out, [7.0; 9], "{isa}");
            let err = embedding(isa, &[0, 1, -1], WeightSlice::F32(&table), 3, &mut out);
            assert_eq!(err.unwrap_err().position, 2, "{isa}");
            embedding(isa, &[], WeightSlice::F32(&table), 3, &mut []).unwrap();
        }
    }
}
