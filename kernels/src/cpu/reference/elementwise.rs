//! Reference elementwise binary ops and scaling, f32 math (one rounding per element, so the
//! results are exact IEEE f32 sums / products).
//!
//! Layout: `a` and `out` are contiguous with the same length; `b` is a contiguous suffix
//! shape broadcast over `a`'s leading dimensions, i.e. `b.len()` divides `a.len()` and
//! `out[i] = a[i] op b[i % b.len()]` (b.len() == a.len() is the plain, no-broadcast case;
//! b.len() == 1 is a scalar).

/// `out = a + b`, with `b` repeated over `a`'s leading elements.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    binary(a, b, out, "add", |x, y| x + y);
}

/// `out = a * b`, with `b` repeated over `a`'s leading elements.
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    binary(a, b, out, "mul", |x, y| x * y);
}

/// `out = x * factor`.
pub fn scale(x: &[f32], factor: f32, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "scale: x and out lengths differ");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * factor;
    }
}

fn binary(a: &[f32], b: &[f32], out: &mut [f32], op: &str, f: impl Fn(f32, f32) -> f32) {
    assert_eq!(a.len(), out.len(), "{op}: a and out lengths differ");
    if a.is_empty() {
        return;
    }
    assert!(
        a.len().checked_rem(b.len()) == Some(0),
        "{op}: b.len() = {} must divide a.len() = {}",
        b.len(),
        a.len()
    );
    for (out_row, a_row) in out.chunks_exact_mut(b.len()).zip(a.chunks_exact(b.len())) {
        for ((o, &x), &y) in out_row.iter_mut().zip(a_row).zip(b) {
            *o = f(x, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    /// `b` materialized to `a`'s full shape, the way a broadcast is usually explained.
    fn broadcast(b: &[f32], len: usize) -> Vec<f32> {
        b.iter().copied().cycle().take(len).collect()
    }

    #[test]
    fn add_and_mul_broadcast_a_suffix() {
        let mut rng = Rng::new(11);
        let (rows, cols) = (7, 13);
        let a = rng.vec(rows * cols, -3.0, 3.0);
        for b_len in [cols, rows * cols, 1] {
            let b = rng.vec(b_len, -2.0, 2.0);
            let full = broadcast(&b, a.len());
            let mut out = vec![0.0; a.len()];
            add(&a, &b, &mut out);
            for i in 0..a.len() {
                assert_eq!(out[i], a[i] + full[i], "add at {i}, b_len {b_len}");
            }
            mul(&a, &b, &mut out);
            for i in 0..a.len() {
                assert_eq!(out[i], a[i] * full[i], "mul at {i}, b_len {b_len}");
            }
        }
    }

    #[test]
    fn add_broadcast_row_by_row_example() {
        let a = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        let b = [0.5, 0.25, 0.125];
        let mut out = [0.0; 6];
        add(&a, &b, &mut out);
        assert_eq!(out, [1.5, 2.25, 3.125, 10.5, 20.25, 30.125]);
        mul(&a, &b, &mut out);
        assert_eq!(out, [0.5, 0.5, 0.375, 5.0, 5.0, 3.75]);
    }

    #[test]
    fn scale_multiplies_every_element() {
        let mut rng = Rng::new(12);
        let x = rng.vec(31, -5.0, 5.0);
        let mut out = vec![0.0; 31];
        scale(&x, -0.375, &mut out);
        for (o, v) in out.iter().zip(&x) {
            assert_eq!(*o, v * -0.375);
        }
    }

    #[test]
    fn empty_inputs_are_fine() {
        let mut out: [f32; 0] = [];
        add(&[], &[], &mut out);
        mul(&[], &[1.0], &mut out);
        scale(&[], 2.0, &mut out);
    }

    #[test]
    #[should_panic(expected = "must divide")]
    fn non_dividing_broadcast_panics() {
        let mut out = [0.0; 5];
        add(&[1.0; 5], &[1.0; 2], &mut out);
    }
}
