//! Reference embedding gather: `out[t] = table[ids[t]]`.
//!
//! Layout: `table` is `[vocab, dim]` row-major (f32/f16/bf16, widened to f32 exactly),
//! `vocab = table.len() / dim`; `out` is `[ids.len(), dim]`. Every id is checked before
//! anything is written: an id outside `0..vocab` returns `IdOutOfRange` naming the first bad
//! position, and `out` is left untouched.

use crate::WeightSlice;
use std::fmt;

/// A token id that is negative or not below the vocabulary size.
#[derive(Debug, PartialEq)]
pub struct IdOutOfRange {
    /// Index into `ids` of the first bad id.
    pub position: usize,
    pub id: i64,
    pub vocab: usize,
}

impl fmt::Display for IdOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "token id {} at position {} is out of range for a vocabulary of {}",
            self.id, self.position, self.vocab
        )
    }
}

impl std::error::Error for IdOutOfRange {}

/// Gathers one `dim`-wide table row per id.
pub fn embedding(
    ids: &[i64],
    table: WeightSlice,
    dim: usize,
    out: &mut [f32],
) -> Result<(), IdOutOfRange> {
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
    for (position, &id) in ids.iter().enumerate() {
        if id < 0 || id as u64 >= vocab as u64 {
            return Err(IdOutOfRange {
                position,
                id,
                vocab,
            });
        }
    }
    if dim == 0 {
        return Ok(());
    }
    for (&id, row) in ids.iter().zip(out.chunks_exact_mut(dim)) {
        table.widen_into(id as usize * dim, row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    use half::bf16;

    #[test]
    fn gathers_rows() {
        let mut rng = Rng::new(101);
        let (vocab, dim) = (13, 7);
        let table = rng.vec(vocab * dim, -1.0, 1.0);
        let ids = [3i64, 0, 12, 3, 5];
        let mut out = vec![0.0f32; ids.len() * dim];
        embedding(&ids, WeightSlice::F32(&table), dim, &mut out).unwrap();
        for (t, &id) in ids.iter().enumerate() {
            let id = id as usize;
            assert_eq!(
                &out[t * dim..(t + 1) * dim],
                &table[id * dim..(id + 1) * dim]
            );
        }
    }

    #[test]
    fn bf16_table_is_widened_exactly() {
        let table: Vec<bf16> = (0..12)
            .map(|v| bf16::from_f32(v as f32 * 0.5 - 2.0))
            .collect();
        let mut out = [0.0f32; 6];
        embedding(&[2, 0], WeightSlice::BF16(&table), 3, &mut out).unwrap();
        assert_eq!(out, [1.0, 1.5, 2.0, -2.0, -1.5, -1.0]);
    }

    #[test]
    fn errors_on_out_of_range_ids_without_writing() {
        let table = [1.0f32; 12]; // vocab 4, dim 3
        let mut out = [7.0f32; 9];
        let err = embedding(&[1, 4, -1], WeightSlice::F32(&table), 3, &mut out).unwrap_err();
        assert_eq!(
            err,
            IdOutOfRange {
                position: 1,
                id: 4,
                vocab: 4
            }
        );
        assert_eq!(out, [7.0; 9]);
        let err = embedding(&[0, 1, -1], WeightSlice::F32(&table), 3, &mut out).unwrap_err();
        assert_eq!(
            err,
            IdOutOfRange {
                position: 2,
                id: -1,
                vocab: 4
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("-1") && msg.contains("position 2") && msg.contains('4'),
            "{msg}"
        );
        let err = embedding(&[i64::MAX, 0, 0], WeightSlice::F32(&table), 3, &mut out);
        assert_eq!(err.unwrap_err().position, 0);
    }

    #[test]
    fn no_ids_is_fine() {
        embedding(&[], WeightSlice::F32(&[1.0; 6]), 3, &mut []).unwrap();
    }
}
