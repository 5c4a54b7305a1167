//! The `gemm_bf16_mma` generator's main loop (cp.async issue, ldmatrix + mma per k16 step,
//! the pipeline) and epilogue (bias, paired f32 stores); `gemm_ptx.rs` writes the rest of
//! each entry and the header that documents the design.

use std::fmt::Write;

use super::gemm_ptx::{line, log2, Shape};

/// cp.async of one K tile (a and w) into the stage at `%stage_ld`.
fn issue_tile(s: &mut String, sh: &Shape) {
    let t = &sh.t;
    line(
        s,
        "// ---- issue: one chunk per pass of the a and w tiles, 16 bytes each ----",
    );
    line(s, "setp.lt.u32     %p_k, %k_ld, %k;");
    line(s, "add.u32         %dst, %stage_ld, %st_off;");
    let w_tile = t.bm * t.row_bytes();
    for (src, pred, base, passes) in [
        ("a", "%p_arow", 0, sh.passes_a),
        ("w", "%p_wrow", w_tile, sh.passes_w),
    ] {
        for i in 0..passes {
            line(s, &format!("and.pred        %p, {pred}{i}, %p_k;"));
            line(s, "selp.u32        %size, 16, 0, %p;");
            line(
                s,
                &format!("selp.b64        %src, %{src}_src{i}, %{src}_ptr, %p;"),
            );
            line(
                s,
                &format!(
                    "cp.async.cg.shared.global [%dst+{}], [%src], 16, %size;",
                    base + sh.pass_bytes * i as u32
                ),
            );
        }
    }
    for (src, passes) in [("a", sh.passes_a), ("w", sh.passes_w)] {
        for i in 0..passes {
            line(
                s,
                &format!(
                    "add.u64         %{src}_src{i}, %{src}_src{i}, {};          // next {} k",
                    t.row_bytes(),
                    t.bk
                ),
            );
        }
    }
    line(s, &format!("add.u32         %k_ld, %k_ld, {};", t.bk));
}

/// ldmatrix of all fragments for k16 step `ks` of the stage at `%stage_mma`, then the mmas.
fn k16_step(s: &mut String, sh: &Shape, ks: usize) {
    line(
        s,
        &format!(
            "// ---- k16 step {ks}: chunks {}, {} of the tile ----",
            2 * ks,
            2 * ks + 1
        ),
    );
    line(
        s,
        &format!("add.u32         %ld_a, %stage_mma, %a_lane{ks};"),
    );
    line(
        s,
        &format!("add.u32         %ld_b, %stage_mma, %b_lane{ks};"),
    );
    let step = 16 * sh.t.row_bytes(); // 16 rows
    for (frag, addr, count) in [("fa", "%ld_a", sh.mi), ("fb", "%ld_b", sh.nj / 2)] {
        for i in 0..count {
            let regs: Vec<String> = (0..4).map(|r| format!("%{frag}{}", 4 * i + r)).collect();
            let off = if i == 0 {
                String::new()
            } else {
                format!("+{}", step * i as u32)
            };
            line(
                s,
                &format!(
                    "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{}}}, [{addr}{off}];",
                    regs.join(", ")
                ),
            );
        }
    }
    for i in 0..sh.mi {
        for j in 0..sh.nj {
            let d: Vec<String> = (0..4).map(|c| sh.acc(i, j, c)).collect();
            let a: Vec<String> = (0..4).map(|r| format!("%fa{}", 4 * i + r)).collect();
            let b0 = 4 * (j / 2) + 2 * (j % 2);
            let d = d.join(", ");
            line(
                s,
                &format!(
                    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {{{d}}}, {{{}}}, {{%fb{b0}, %fb{}}}, {{{d}}};",
                    a.join(", "),
                    b0 + 1
                ),
            );
        }
    }
}

pub(super) fn main_loop(s: &mut String, sh: &Shape) {
    let t = &sh.t;
    let depth = t.stages - 1;
    let stage = t.stage_bytes();
    let all = t.shared_bytes();
    let _ = write!(
        s,
        r#"
    // ---- main loop: it = 0 .. k_tiles + {last} (see the header) ----
    add.u32         %k_tiles, %k, {bk_1};
    shr.u32         %k_tiles, %k_tiles, {lbk};
    add.u32         %it_end, %k_tiles, {depth};
    mov.u32         %it, 0;
    mov.u32         %stage_ld, 0;                   // stage offset of tile it
PIPELINE:
    setp.lt.u32     %p, %it, {depth};
    @%p bra         ISSUE;
    cp.async.wait_group {pending};
    bar.sync        0;
ISSUE:
    setp.ge.u32     %p, %it, %k_tiles;
    @%p bra         COMMIT;
"#,
        last = depth - 1,
        bk_1 = t.bk - 1,
        lbk = log2(t.bk),
        pending = depth - 1,
    );
    issue_tile(s, sh);
    let _ = write!(
        s,
        r#"COMMIT:
    cp.async.commit_group;
    setp.lt.u32     %p, %it, {depth};
    @%p bra         NEXT;
    // stage of tile it - {depth} = stage of tile it + 1
    add.u32         %stage_mma, %stage_ld, {stage};
    setp.ge.u32     %p, %stage_mma, {all};
    @%p sub.u32     %stage_mma, %stage_mma, {all};
"#
    );
    for ks in 0..sh.k16_steps {
        k16_step(s, sh, ks);
    }
    let _ = write!(
        s,
        r#"NEXT:
    add.u32         %stage_ld, %stage_ld, {stage};
    setp.ge.u32     %p, %stage_ld, {all};
    @%p sub.u32     %stage_ld, %stage_ld, {all};
    add.u32         %it, %it, 1;
    setp.lt.u32     %p_loop, %it, %it_end;
    @%p_loop bra    PIPELINE;
"#
    );
}

pub(super) fn epilogue(s: &mut String, sh: &Shape) {
    let t = &sh.t;
    s.push_str(
        r#"
    // ---- epilogue: bias of the tile's columns to shared memory as f32 ----
    cp.async.wait_group 0;
    bar.sync        0;
"#,
    );
    for pass in 0..t.bn.div_ceil(t.threads()) {
        let first = pass * t.threads();
        let _ = write!(
            s,
            r#"    add.u32         %tmp2, %thread, {first};
    add.u32         %col, %n0, %tmp2;
    setp.lt.u32     %p, %col, %n;
    and.pred        %p, %p, %p_bias;
    setp.lt.u32     %p_row, %tmp2, {bn};              // (p_row: scratch predicate here)
    mov.f32         %bias_val, 0f00000000;
    mul.wide.u32    %off, %col, 2;
    add.u64         %addr, %bias_ptr, %off;
    and.pred        %p_even, %p, %p_bf16;           // (p_even: scratch predicate here)
    mov.u16         %half, 0;
    @%p_even ld.global.b16  %half, [%addr];
    @%p_even cvt.u32.u16    %tmp, %half;
    @%p_even shl.b32        %tmp, %tmp, 16;
    @%p_even mov.b32        %bias_val, %tmp;
    and.pred        %p_even, %p, !%p_bf16;
    mul.wide.u32    %off, %col, 4;
    add.u64         %addr, %bias_ptr, %off;
    @%p_even ld.global.f32  %bias_val, [%addr];
    shl.b32         %tmp, %tmp2, 2;
    add.u32         %tmp, %tmp, %smem_base;
    @%p_row st.shared.f32   [%tmp], %bias_val;
"#,
            bn = t.bn,
        );
    }
    let _ = write!(
        s,
        r#"    bar.sync        0;

    // bias<2 j + e> = bias of col {wc} warp_n + 8 j + 2 t + e of the tile
    shl.b32         %tmp, %warp_n, {lwc};
    shl.b32         %tmp2, %t, 1;
    add.u32         %tmp, %tmp, %tmp2;
    shl.b32         %tmp2, %tmp, 2;
    add.u32         %tmp2, %tmp2, %smem_base;
"#,
        wc = t.warp_cols(),
        lwc = log2(t.warp_cols()),
    );
    for j in 0..sh.nj {
        let off = if j == 0 {
            String::new()
        } else {
            format!("+{}", 32 * j)
        };
        line(
            s,
            &format!(
                "ld.shared.v2.f32    {{%bias{}, %bias{}}}, [%tmp2{off}];",
                2 * j,
                2 * j + 1
            ),
        );
    }
    line(
        s,
        &format!(
            "add.u32         %col, %n0, %tmp;                // n0 + {} warp_n + 2 t",
            t.warp_cols()
        ),
    );
    // Paired stores need every row of out 8-byte aligned: N even and out itself 8-byte
    // aligned (an f32 view may start at any multiple of 4).
    line(s, "cvt.u32.u64     %tmp2, %out_ptr;");
    line(s, "shl.b32         %tmp, %n, 2;");
    line(s, "or.b32          %tmp, %tmp, %tmp2;");
    line(s, "and.b32         %tmp, %tmp, 7;");
    line(
        s,
        "setp.eq.u32     %p_even, %tmp, 0;               // rows of out start 8-byte aligned",
    );
    for j in 0..sh.nj {
        line(s, &format!("setp.lt.u32     %p_col{}, %col, %n;", 2 * j));
        line(s, "add.u32         %col, %col, 1;");
        line(
            s,
            &format!("setp.lt.u32     %p_col{}, %col, %n;", 2 * j + 1),
        );
        line(
            s,
            &format!(
                "and.pred        %p_v2_{j}, %p_col{}, %p_even;     // both columns, aligned",
                2 * j + 1
            ),
        );
        line(
            s,
            &format!("and.pred        %p_s0_{j}, %p_col{}, !%p_v2_{j};", 2 * j),
        );
        line(
            s,
            &format!(
                "and.pred        %p_s1_{j}, %p_col{}, !%p_v2_{j};",
                2 * j + 1
            ),
        );
        if j + 1 < sh.nj {
            line(s, "add.u32         %col, %col, 7;");
        }
    }
    let back = 8 * (sh.nj - 1) + 1;
    let _ = write!(
        s,
        r#"    sub.u32         %col, %col, {back};                 // back to n0 + {wc} warp_n + 2 t
    shl.b32         %tmp, %warp_m, {lwr};
    add.u32         %tmp, %tmp, %g;
    add.u32         %row, %m0, %tmp;                // m0 + {wr} warp_m + g

"#,
        wc = t.warp_cols(),
        wr = t.warp_rows(),
        lwr = log2(t.warp_rows()),
    );
    for i in 0..sh.mi {
        for h in 0..2 {
            let r = 16 * i + 8 * h;
            let label = format!("ROW_{i}_{h}_DONE");
            line(
                s,
                &format!(
                    "// out rows m0 + {} warp_m + g + {r}: acc[(NJ {i} + j) * 4 + {}, {}]",
                    t.warp_rows(),
                    2 * h,
                    2 * h + 1
                ),
            );
            line(s, &format!("add.u32         %tmp, %row, {r};"));
            line(s, "setp.ge.u32     %p, %tmp, %m;");
            line(s, &format!("@%p bra         {label};"));
            line(s, "mul.wide.u32    %off, %tmp, %n;");
            line(s, "cvt.u64.u32     %addr, %col;");
            line(s, "add.u64         %off, %off, %addr;");
            line(s, "shl.b64         %off, %off, 2;");
            line(s, "add.u64         %addr, %out_ptr, %off;");
            for j in 0..sh.nj {
                let (c0, c1) = (2 * h, 2 * h + 1);
                line(
                    s,
                    &format!("add.rn.f32      %v, {}, %bias{};", sh.acc(i, j, c0), 2 * j),
                );
                line(
                    s,
                    &format!(
                        "add.rn.f32      %v1, {}, %bias{};",
                        sh.acc(i, j, c1),
                        2 * j + 1
                    ),
                );
                line(
                    s,
                    &format!(
                        "@%p_v2_{j} st.global.v2.f32 [%addr+{}], {{%v, %v1}};",
                        32 * j
                    ),
                );
                line(
                    s,
                    &format!("@%p_s0_{j} st.global.f32 [%addr+{}], %v;", 32 * j),
                );
                line(
                    s,
                    &format!("@%p_s1_{j} st.global.f32 [%addr+{}], %v1;", 32 * j + 4),
                );
            }
            let _ = writeln!(s, "{label}:");
        }
    }
}
