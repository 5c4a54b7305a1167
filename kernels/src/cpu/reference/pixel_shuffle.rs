//! Reference pixel shuffle of the Idefics3 / SmolVLM connector (transformers
//! `Idefics3Connector.pixel_shuffle`): a space-to-depth that folds each `scale x scale`
//! block of image tokens into one token with `scale^2` times the channels.
//!
//! Layout: `x` is `[batch, seq, embed]` with `seq = side * side` tokens in row-major image
//! order (`side` divisible by `scale`); `out` is `[batch, seq / scale^2, embed * scale^2]`.
//! transformers does: view(b, h, w, E) -> view(b, h, w/s, E*s) -> permute(0, 2, 1, 3)
//! -> reshape(b, w/s, h/s, E*s*s) -> permute(0, 2, 1, 3) -> reshape(b, S/s^2, E*s^2).
//! Following the indices through those steps gives the closed form used here:
//!   out[b, by * (side/s) + bx, (dy * s + dx) * E + e] = x[b, (by*s + dy) * side + bx*s + dx, e]
//! i.e. output token (by, bx) is the block at block-row `by`, block-column `bx`, and its
//! channels are the block's tokens in row-major order, each with its `E` channels. A pure
//! permutation: values are copied exactly.

/// The operand checks of [`pixel_shuffle`], shared with the fast copy: panics unless `x` and
/// `out` hold `[B, S, E]` with `S` a square whose side `scale` divides; returns the side.
pub(crate) fn check_operands(
    x_len: usize,
    out_len: usize,
    batch: usize,
    seq: usize,
    embed: usize,
    scale: usize,
) -> usize {
    assert_eq!(
        x_len,
        batch * seq * embed,
        "pixel_shuffle: x must be [B, S, E]"
    );
    assert_eq!(x_len, out_len, "pixel_shuffle: x and out lengths differ");
    let side = (seq as f64).sqrt().round() as usize;
    assert_eq!(
        side * side,
        seq,
        "pixel_shuffle: seq = {seq} is not a perfect square"
    );
    assert!(
        side.checked_rem(scale) == Some(0),
        "pixel_shuffle: side = {side} is not divisible by scale = {scale}"
    );
    side
}

/// Idefics3 pixel shuffle, see the file header.
pub fn pixel_shuffle(
    x: &[f32],
    batch: usize,
    seq: usize,
    embed: usize,
    scale: usize,
    out: &mut [f32],
) {
    let side = check_operands(x.len(), out.len(), batch, seq, embed, scale);
    let blocks = side / scale; // blocks per row and per column
    let out_embed = embed * scale * scale;
    for b in 0..batch {
        for by in 0..blocks {
            for bx in 0..blocks {
                let out_token = (b * blocks + by) * blocks + bx;
                for dy in 0..scale {
                    for dx in 0..scale {
                        let in_token = b * seq + (by * scale + dy) * side + bx * scale + dx;
                        let src = &x[in_token * embed..(in_token + 1) * embed];
                        let dst = out_token * out_embed + (dy * scale + dx) * embed;
                        out[dst..dst + embed].copy_from_slice(src);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference::copy_strided;
    use crate::testing::Rng;

    #[test]
    fn hand_worked_4x4_example() {
        // 4x4 image of single-channel tokens numbered 0..16, scale 2 -> 2x2 tokens of 4.
        //    0  1 |  2  3
        //    4  5 |  6  7
        //   ------+------
        //    8  9 | 10 11
        //   12 13 | 14 15
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = vec![0.0f32; 16];
        pixel_shuffle(&x, 1, 16, 1, 2, &mut out);
        let want = [
            0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 12.0, 13.0, 10.0, 11.0, 14.0, 15.0,
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn channels_travel_together() {
        // E = 2: token t holds (t, -t) for t = 1..=16.
        let x: Vec<f32> = (1..=16).flat_map(|t| [t as f32, -(t as f32)]).collect();
        let mut out = vec![0.0f32; 32];
        pixel_shuffle(&x, 1, 16, 2, 2, &mut out);
        assert_eq!(&out[..8], &[1.0, -1.0, 2.0, -2.0, 5.0, -5.0, 6.0, -6.0]);
    }

    /// Does exactly what transformers does, with each `permute` as a strided copy and each
    /// `view`/`reshape` of a contiguous buffer as a no-op.
    fn torch_sequence(x: &[f32], b: usize, seq: usize, e: usize, s: usize) -> Vec<f32> {
        let h = (seq as f64).sqrt() as usize;
        let w = h;
        // x.view(b, h, w/s, e*s).permute(0, 2, 1, 3) -> contiguous [b, w/s, h, e*s]
        let dims = [b, w / s, h, e * s];
        let src_strides = [h * (w / s) * e * s, e * s, (w / s) * e * s, 1];
        let dst_strides = [(w / s) * h * e * s, h * e * s, e * s, 1];
        let mut t1 = vec![0.0f32; x.len()];
        copy_strided(x, &dims, &src_strides, 0, &mut t1, &dst_strides, 0);
        // .reshape(b, w/s, h/s, e*s*s).permute(0, 2, 1, 3) -> contiguous [b, h/s, w/s, e*s*s]
        let c = e * s * s;
        let dims = [b, h / s, w / s, c];
        let src_strides = [(w / s) * (h / s) * c, c, (h / s) * c, 1];
        let dst_strides = [(h / s) * (w / s) * c, (w / s) * c, c, 1];
        let mut t2 = vec![0.0f32; x.len()];
        copy_strided(&t1, &dims, &src_strides, 0, &mut t2, &dst_strides, 0);
        t2 // .reshape(b, seq/s^2, e*s^2) is a no-op on contiguous data
    }

    #[test]
    fn matches_the_transformers_view_permute_sequence() {
        let mut rng = Rng::new(91);
        for (b, side, e, s) in [(2, 6, 3, 3), (1, 4, 5, 2), (3, 8, 1, 4), (2, 5, 7, 1)] {
            let seq = side * side;
            let x = rng.vec(b * seq * e, -1.0, 1.0);
            let mut out = vec![0.0f32; x.len()];
            pixel_shuffle(&x, b, seq, e, s, &mut out);
            assert_eq!(
                out,
                torch_sequence(&x, b, seq, e, s),
                "b {b} side {side} e {e} s {s}"
            );
        }
    }

    #[test]
    fn is_a_permutation() {
        let mut rng = Rng::new(92);
        let (b, seq, e, s) = (2, 36, 7, 3);
        let x = rng.vec(b * seq * e, -1.0, 1.0);
        let mut out = vec![0.0f32; x.len()];
        pixel_shuffle(&x, b, seq, e, s, &mut out);
        let (mut xs, mut os) = (x.clone(), out.clone());
        xs.sort_by(f32::total_cmp);
        os.sort_by(f32::total_cmp);
        assert_eq!(xs, os);
        assert_ne!(x, out);
    }
}
