//! The tensor-core part of the flash tile loop: S = Q K^T, the online softmax over S, and
//! O += P V, each written for the fragment layouts stated in the kernel header.

use super::generate::{ld4, zero4, Dims};
use super::writer::PtxWriter;
use super::FLASH_KEYS;

pub(super) fn scores(w: &mut PtxWriter, x: &Dims) {
    w.comment("---- S = Q K^T: 8 key n-tiles x k-steps of 16 ----");
    for n in 0..FLASH_KEYS as usize / 8 {
        zero4(w, "s", n);
    }
    for np in 0..FLASH_KEYS as usize / 16 {
        for ks in 0..x.ks {
            let off = np * 16 * x.row_bytes + ks * 32;
            w.op(
                "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
                &format!("{{%kb0, %kb1, %kb2, %kb3}}, [%k_ld+{off}]"),
            );
            for (half, (b0, b1)) in [("kb0", "kb1"), ("kb2", "kb3")].into_iter().enumerate() {
                let n = 2 * np + half;
                w.op(
                    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
                    &format!(
                        "{s}, {{%qf{ks}_0, %qf{ks}_1, %qf{ks}_2, %qf{ks}_3}}, {{%{b0}, %{b1}}}, {s}",
                        s = ld4("s", n)
                    ),
                );
            }
        }
    }
}

pub(super) fn softmax(w: &mut PtxWriter, x: &Dims) {
    let n_tiles = FLASH_KEYS as usize / 8;
    w.comment("---- scale into the log2 domain ----");
    for n in 0..n_tiles {
        for i in 0..4 {
            w.op("mul.f32", &format!("%s{n}_{i}, %s{n}_{i}, %scale_log2"));
        }
    }
    w.comment("---- mask keys >= a row's visible count, only on tiles that reach vis_lo ----");
    w.op("add.u32", "%tmp, %start, 64");
    w.op("setp.le.u32", "%p_full, %tmp, %vis_lo");
    w.op("@%p_full bra", "MASKED");
    w.comment("lim = vis - start - 2 tig: element (n, e) is masked when 8 n + e >= lim");
    w.op("shl.b32", "%tmp, %tig, 1");
    w.op("add.u32", "%tmp, %tmp, %start");
    w.op("sub.s32", "%lim_a, %vis_a, %tmp");
    w.op("sub.s32", "%lim_b, %vis_b, %tmp");
    for n in 0..n_tiles {
        for i in 0..4 {
            let lim = if i < 2 { "%lim_a" } else { "%lim_b" };
            w.op("setp.le.s32", &format!("%p_m, {lim}, {}", 8 * n + (i & 1)));
            w.op("@%p_m mov.f32", &format!("%s{n}_{i}, 0fFF800000"));
        }
    }
    w.label("MASKED");
    w.comment("---- row max over the quad; m_new, correction ex2(m_old - m_use) ----");
    for (r, (i0, i1)) in [("a", (0, 1)), ("b", (2, 3))] {
        w.op("mov.f32", &format!("%mx_{r}, %s0_{i0}"));
        w.op("max.f32", &format!("%mx_{r}, %mx_{r}, %s0_{i1}"));
        for n in 1..n_tiles {
            w.op("max.f32", &format!("%mx_{r}, %mx_{r}, %s{n}_{i0}"));
            w.op("max.f32", &format!("%mx_{r}, %mx_{r}, %s{n}_{i1}"));
        }
        for lane_mask in [1, 2] {
            w.op(
                "shfl.sync.bfly.b32",
                &format!("%f, %mx_{r}, {lane_mask}, 31, 0xffffffff"),
            );
            w.op("max.f32", &format!("%mx_{r}, %mx_{r}, %f"));
        }
        w.op("max.f32", &format!("%mx_{r}, %m_{r}, %mx_{r}"));
        w.op("setp.eq.f32", &format!("%p_inf_{r}, %mx_{r}, 0fFF800000"));
        w.op(
            "selp.f32",
            &format!("%mu_{r}, 0f00000000, %mx_{r}, %p_inf_{r}"),
        );
        w.op("sub.f32", &format!("%f, %m_{r}, %mu_{r}"));
        w.op("ex2.approx.ftz.f32", &format!("%corr_{r}, %f"));
        w.op("mov.f32", &format!("%m_{r}, %mx_{r}"));
        w.op("mul.f32", &format!("%l_{r}, %l_{r}, %corr_{r}"));
    }
    w.comment("---- p = ex2(s2 - m_use), partial row sums, O rescaled ----");
    for n in 0..n_tiles {
        for i in 0..4 {
            let r = if i < 2 { "a" } else { "b" };
            w.op("sub.f32", &format!("%s{n}_{i}, %s{n}_{i}, %mu_{r}"));
            w.op("ex2.approx.ftz.f32", &format!("%s{n}_{i}, %s{n}_{i}"));
            w.op("add.f32", &format!("%l_{r}, %l_{r}, %s{n}_{i}"));
        }
    }
    for n in 0..x.nt_o {
        for i in 0..4 {
            let r = if i < 2 { "a" } else { "b" };
            w.op("mul.f32", &format!("%o{n}_{i}, %o{n}_{i}, %corr_{r}"));
        }
    }
    w.comment("---- P to bf16 A-fragments (lower key in the low half) ----");
    for kk in 0..FLASH_KEYS as usize / 16 {
        let (n0, n1) = (2 * kk, 2 * kk + 1);
        let pairs = [(n0, 1, 0), (n0, 3, 2), (n1, 1, 0), (n1, 3, 2)];
        for (i, (n, hi, lo)) in pairs.into_iter().enumerate() {
            w.op(
                "cvt.rn.bf16x2.f32",
                &format!("%pa{kk}_{i}, %s{n}_{hi}, %s{n}_{lo}"),
            );
        }
    }
}

pub(super) fn pv(w: &mut PtxWriter, x: &Dims) {
    w.comment("---- O += P V: key k-steps of 16 x dim n-tile pairs (ldmatrix.trans) ----");
    for kk in 0..FLASH_KEYS as usize / 16 {
        let a = format!("{{%pa{kk}_0, %pa{kk}_1, %pa{kk}_2, %pa{kk}_3}}");
        for dp in 0..x.nt_o / 2 {
            let off = kk * 16 * x.row_bytes + dp * 32;
            w.op(
                "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
                &format!("{{%vb0, %vb1, %vb2, %vb3}}, [%v_ld+{off}]"),
            );
            for (half, (b0, b1)) in [("vb0", "vb1"), ("vb2", "vb3")].into_iter().enumerate() {
                let o = ld4("o", 2 * dp + half);
                w.op(
                    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
                    &format!("{o}, {a}, {{%{b0}, %{b1}}}, {o}"),
                );
            }
        }
        if x.nt_o % 2 == 1 {
            // Lanes 0..15 supply the addresses of an .x2 (v_ld has lane >> 4 = 0 there).
            let n = x.nt_o - 1;
            let off = kk * 16 * x.row_bytes + n * 16;
            w.op(
                "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16",
                &format!("{{%vb0, %vb1}}, [%v_ld+{off}]"),
            );
            let o = ld4("o", n);
            w.op(
                "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
                &format!("{o}, {a}, {{%vb0, %vb1}}, {o}"),
            );
        }
    }
}
