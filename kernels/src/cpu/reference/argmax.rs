//! Reference argmax over the last axis (greedy decoding).
//!
//! Layout: `x` is contiguous `[rows, cols]`, `rows = x.len() / cols`; `out` has one i64 index
//! per row. Ties go to the first (lowest) index. NaN entries are ignored; a row that is all
//! NaN gives 0. Infinities compare as usual (a row of all -inf gives 0, its first index).

/// Per row, the index of the first maximum.
pub fn argmax(x: &[f32], cols: usize, out: &mut [i64]) {
    if x.is_empty() && out.is_empty() {
        return;
    }
    assert!(
        x.len().checked_rem(cols) == Some(0),
        "argmax: x.len() = {} is not a multiple of cols = {cols}",
        x.len()
    );
    assert_eq!(
        out.len(),
        x.len() / cols,
        "argmax: out must hold one index per row"
    );
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        let mut best: Option<(usize, f32)> = None;
        for (j, &v) in row.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            match best {
                Some((_, b)) if v <= b => {}
                _ => best = Some((j, v)),
            }
        }
        *o = best.map_or(0, |(j, _)| j as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    #[test]
    fn random_rows_match_a_max_search() {
        let mut rng = Rng::new(111);
        let (rows, cols) = (9, 1001);
        let x = rng.vec(rows * cols, -10.0, 10.0);
        let mut out = vec![-1i64; rows];
        argmax(&x, cols, &mut out);
        for (r, row) in x.chunks(cols).enumerate() {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let first = row.iter().position(|&v| v == max).unwrap();
            assert_eq!(out[r], first as i64);
        }
    }

    #[test]
    fn ties_nan_and_infinities() {
        let nan = f32::NAN;
        let ninf = f32::NEG_INFINITY;
        let x = [
            1.0,
            3.0,
            3.0,
            2.0, // tie -> first
            nan,
            -5.0,
            nan,
            -4.0, // NaN ignored
            nan,
            nan,
            nan,
            nan, // all NaN -> 0
            ninf,
            ninf,
            ninf,
            ninf, // all -inf -> 0
            ninf,
            nan,
            ninf,
            -1e30, // -> 3
            0.0,
            f32::INFINITY,
            nan,
            f32::INFINITY, // -> 1
        ];
        let mut out = [9i64; 6];
        argmax(&x, 4, &mut out);
        assert_eq!(out, [1, 3, 0, 0, 3, 1]);
    }

    #[test]
    fn single_column_and_empty() {
        let mut out = [5i64; 3];
        argmax(&[1.0, 2.0, 3.0], 1, &mut out);
        assert_eq!(out, [0, 0, 0]);
        argmax(&[], 0, &mut []);
        argmax(&[], 7, &mut []);
    }
}
