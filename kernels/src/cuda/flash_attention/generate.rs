//! The PTX text of `flash_attention_d{D}` (see the module header and each file's header).

use super::header::header;
use super::mma::{pv, scores, softmax};
use super::writer::{widen_kv_halves, PtxWriter};
use super::{flash_warps, FLASH_KEYS};
use crate::cuda::KvType;

/// Sizes that follow from the head dim and the warps per CTA.
pub(super) struct Dims {
    pub(super) d: usize,
    /// Warps per CTA, 16 query rows each.
    pub(super) warps: usize,
    /// The element type of K and V in global memory (Q and out are f32 either way).
    pub(super) kv: KvType,
    /// Query rows per CTA (16 per warp).
    pub(super) rows: usize,
    pub(super) threads: usize,
    /// head_dim rounded up to 16: the k-dim of QK^T.
    pub(super) dp: usize,
    /// k-steps of 16 for QK^T.
    pub(super) ks: usize,
    /// n-tiles of 8 columns of O.
    pub(super) nt_o: usize,
    /// Bytes per shared-memory tile row: (dp + 8) bf16, the 16-byte skew keeps the eight
    /// rows one ldmatrix phase reads in distinct bank groups.
    pub(super) row_bytes: usize,
    /// float4 chunks per head_dim row.
    pub(super) q4: usize,
    /// float4 chunks each thread moves per 64-row K or V tile.
    pub(super) per_thread: usize,
    /// float4 chunks each thread moves when staging the CTA's Q rows.
    pub(super) q_per_thread: usize,
}

impl Dims {
    pub(super) fn new(d: usize, warps: usize, kv: KvType) -> Self {
        let dp = d.div_ceil(16) * 16;
        let q4 = d / 4;
        let threads = 32 * warps;
        Dims {
            d,
            warps,
            kv,
            rows: 16 * warps,
            threads,
            dp,
            ks: dp / 16,
            nt_o: d / 8,
            row_bytes: 2 * (dp + 8),
            q4,
            per_thread: FLASH_KEYS as usize * q4 / threads,
            q_per_thread: 16 * warps * q4 / threads,
        }
    }

    /// The entry name: `flash_attention_d{D}` for 4 warps, `flash_attention_d{D}_w{W}` else,
    /// then [`KvType::suffix`] (`_kvf16` for f16 K/V).
    pub(super) fn kernel(&self) -> String {
        let kv = self.kv.suffix();
        if self.warps == 4 {
            format!("flash_attention_d{}{kv}", self.d)
        } else {
            format!("flash_attention_d{}_w{}{kv}", self.d, self.warps)
        }
    }
}

/// The PTX module text of `flash_attention_d{head_dim}`: one entry per warp count of
/// [`flash_warps`] reading f32 K/V, then one per warp count reading f16 K/V (suffix `_kvf16`).
/// `head_dim` must be one of [`super::FLASH_HEAD_DIMS`] (a multiple of 8 whose float4 chunks
/// split evenly over the threads).
pub fn flash_attention_ptx(head_dim: usize) -> String {
    let variants: Vec<Dims> = [KvType::F32, KvType::F16]
        .into_iter()
        .flat_map(|kv| {
            flash_warps(head_dim)
                .iter()
                .map(move |&warps| Dims::new(head_dim, warps, kv))
        })
        .collect();
    let mut w = PtxWriter::new();
    header(&mut w, &variants);
    w.raw(".version 7.0");
    w.raw(".target sm_80");
    w.raw(".address_size 64");
    for dims in &variants {
        w.raw("");
        entry(&mut w, dims);
    }
    w.finish()
}

fn entry(w: &mut PtxWriter, dims: &Dims) {
    let name = dims.kernel();
    let params = [
        ("u64", "q"),
        ("u64", "k"),
        ("u64", "v"),
        ("u64", "out"),
        ("u64", "past"),
        ("u32", "q_len"),
        ("u32", "kv_len"),
        ("u32", "heads"),
        ("u32", "group"),
        ("u32", "kv_batch"),
        ("u32", "kv_head"),
        ("u32", "kv_pos"),
        ("u32", "max_kv"),
        ("f32", "scale_log2"),
        ("u32", "causal"),
    ];
    w.raw(&format!(".visible .entry {name}("));
    for (i, (ty, p)) in params.iter().enumerate() {
        let comma = if i + 1 < params.len() { "," } else { "" };
        w.raw(&format!("    .param .{ty} {name}_param_{p}{comma}"));
    }
    w.raw(")");
    w.raw(&format!(".maxntid {}, 1, 1", dims.threads));
    w.raw("{");
    declare(w, dims);
    prologue(w, &name, dims);
    stage_q(w, dims);
    w.label("TILE_LOOP");
    load_kv_tile(w, dims);
    scores(w, dims);
    softmax(w, dims);
    pv(w, dims);
    w.op("add.u32", "%start, %start, 64");
    w.op("add.u32", "%tile, %tile, 1");
    w.op("setp.lt.u32", "%p_more, %tile, %n_tiles");
    w.op("@%p_more bra", "TILE_LOOP");
    epilogue(w, dims);
    w.label("DONE");
    w.raw("    ret;");
    w.raw("}");
}

fn names(prefix: &str, outer: usize, inner: usize) -> Vec<String> {
    (0..outer)
        .flat_map(|o| (0..inner).map(move |i| format!("%{prefix}{o}_{i}")))
        .collect()
}

fn declare(w: &mut PtxWriter, x: &Dims) {
    let tile_bytes = FLASH_KEYS as usize * x.row_bytes;
    w.raw(&format!(
        "    .shared .align 16 .b8 kv_tile[{}];    // K then V tile, 64 rows x {} bytes each, bf16 (Q rows while staging)",
        2 * tile_bytes,
        x.row_bytes
    ));
    let list = |s: &str| -> Vec<String> { s.split_whitespace().map(|n| format!("%{n}")).collect() };
    w.regs(
        "pred",
        &list("p_cached p_causal p_bad p_tmp p_ld p_full p_m p_inf_a p_inf_b p_more p_row_a p_row_b p_empty_a p_empty_b"),
    );
    w.regs(
        "u32",
        &list("q_len kv_len heads group kv_batch kv_head kv_pos max_kv causal"),
    );
    w.regs(
        "u32",
        &list("thread warp lane grp tig qt h b kvh r0 row_a row_b last vis_lo vis_hi vis_a vis_b"),
    );
    w.regs(
        "u32",
        &list("n_tiles tile start kv_base row col4 c j e tmp tmp2 k_base v_base q_ld k_ld v_ld st"),
    );
    w.regs("u32", &list("row0 col0 e0 pos_step st0 st1 st2 st3"));
    w.regs("b32", &list("lo hi"));
    w.regs("s32", &list("lim_a lim_b"));
    w.regs("s64", &list("past64 end64"));
    w.regs(
        "u64",
        &list("q_ptr k_ptr v_ptr out_ptr past_ptr max64 off addr addr_v out_a out_b"),
    );
    w.regs(
        "f32",
        &list("scale_log2 m_a m_b l_a l_b mx_a mx_b mu_a mu_b corr_a corr_b f inv_a inv_b"),
    );
    // Four float4 loads of K and V in flight per batch.
    w.regs("f32", &names("kx", 4, 4));
    w.regs("f32", &names("vx", 4, 4));
    w.regs("b32", &list("kb0 kb1 kb2 kb3 vb0 vb1 vb2 vb3"));
    if x.kv == KvType::F16 {
        // The f16 halves of those loads, widened into kx / vx.
        w.regs("b16", &names("kh", 4, 4));
        w.regs("b16", &names("vh", 4, 4));
    }
    w.regs("b32", &names("qf", x.ks, 4));
    w.regs("b32", &names("pa", FLASH_KEYS as usize / 16, 4));
    w.regs("f32", &names("s", FLASH_KEYS as usize / 8, 4));
    w.regs("f32", &names("o", x.nt_o, 4));
    w.raw("");
}

/// `dst = visible keys of query row `row``: causal min(kv_len, max(0, row + kv_len + 1 -
/// q_len)), else kv_len.
fn visible(w: &mut PtxWriter, dst: &str, row: &str) {
    w.op("add.u32", &format!("{dst}, {row}, %kv_len"));
    w.op("add.u32", &format!("{dst}, {dst}, 1"));
    w.op("setp.gt.u32", &format!("%p_tmp, {dst}, %q_len"));
    w.op("sub.u32", &format!("{dst}, {dst}, %q_len"));
    w.op("@!%p_tmp mov.u32", &format!("{dst}, 0"));
    w.op("min.u32", &format!("{dst}, {dst}, %kv_len"));
    w.op("@!%p_causal mov.u32", &format!("{dst}, %kv_len"));
}

fn prologue(w: &mut PtxWriter, name: &str, x: &Dims) {
    for p in ["q", "k", "v", "out", "past"] {
        w.op("ld.param.u64", &format!("%{p}_ptr, [{name}_param_{p}]"));
    }
    for p in [
        "q_len", "kv_len", "heads", "group", "kv_batch", "kv_head", "kv_pos", "max_kv", "causal",
    ] {
        w.op("ld.param.u32", &format!("%{p}, [{name}_param_{p}]"));
    }
    w.op(
        "ld.param.f32",
        &format!("%scale_log2, [{name}_param_scale_log2]"),
    );
    w.op("setp.ne.u64", "%p_cached, %past_ptr, 0");
    w.op("setp.ne.u32", "%p_causal, %causal, 0");
    for p in ["q", "k", "v", "out", "past"] {
        w.op("cvta.to.global.u64", &format!("%{p}_ptr, %{p}_ptr"));
    }
    w.comment(
        "---- KV cache mode: kv_len = past_len + q_len from device memory (CTA-uniform) ----",
    );
    w.op("@!%p_cached bra", "KV_LEN_READY");
    w.op("ld.global.s64", "%past64, [%past_ptr]");
    w.op("cvt.u64.u32", "%max64, %max_kv");
    w.op("cvt.u64.u32", "%end64, %q_len");
    w.op("add.s64", "%end64, %end64, %past64");
    w.op("setp.lt.s64", "%p_bad, %past64, 0");
    w.op("setp.gt.or.s64", "%p_bad, %end64, %max64, %p_bad");
    w.op("@%p_bad bra", "DONE");
    w.op("cvt.u32.s64", "%kv_len, %end64");
    w.label("KV_LEN_READY");
    w.comment("---- who am I: warp w of query tile qt (reversed), head h, batch b ----");
    w.op("mov.u32", "%thread, %tid.x");
    w.op("shr.u32", "%warp, %thread, 5");
    w.op("and.b32", "%lane, %thread, 31");
    w.op("shr.u32", "%grp, %lane, 2");
    w.op("and.b32", "%tig, %lane, 3");
    w.op("mov.u32", "%tmp, %nctaid.x");
    w.op("mov.u32", "%qt, %ctaid.x");
    w.op("sub.u32", "%qt, %tmp, %qt");
    w.op("sub.u32", "%qt, %qt, 1");
    w.op("mov.u32", "%h, %ctaid.y");
    w.op("mov.u32", "%b, %ctaid.z");
    w.op("div.u32", "%kvh, %h, %group");
    w.op("shl.b32", &format!("%r0, %qt, {}", x.rows.trailing_zeros()));
    w.op("shl.b32", "%row_a, %warp, 4");
    w.op("add.u32", "%row_a, %row_a, %r0");
    w.op("add.u32", "%row_a, %row_a, %grp");
    w.op("add.u32", "%row_b, %row_a, 8");
    w.comment("kv_base = b * kv_batch + kvh * kv_head (elements)");
    w.op("mul.lo.u32", "%kv_base, %b, %kv_batch");
    w.op("mad.lo.u32", "%kv_base, %kvh, %kv_head, %kv_base");
    w.comment(
        "---- visible keys: rows r0 (fewest), the CTA's last row (most), and my two rows ----",
    );
    visible(w, "%vis_lo", "%r0");
    w.op("add.u32", &format!("%last, %r0, {}", x.rows - 1));
    w.op("sub.u32", "%tmp, %q_len, 1");
    w.op("min.u32", "%last, %last, %tmp");
    visible(w, "%vis_hi", "%last");
    visible(w, "%vis_a", "%row_a");
    visible(w, "%vis_b", "%row_b");
    w.op("add.u32", "%n_tiles, %vis_hi, 63");
    w.op("shr.u32", "%n_tiles, %n_tiles, 6");
    w.comment("---- shared addresses: tile bases and this lane's ldmatrix rows ----");
    let rb = x.row_bytes;
    w.op("mov.u32", "%k_base, kv_tile");
    w.op(
        "add.u32",
        &format!("%v_base, %k_base, {}", FLASH_KEYS as usize * rb),
    );
    w.comment("q_ld = k_tile + (16 warp + (lane & 15)) * row_bytes + 16 (lane >> 4)");
    w.op("and.b32", "%tmp, %lane, 15");
    w.op("shl.b32", "%tmp2, %warp, 4");
    w.op("add.u32", "%tmp, %tmp, %tmp2");
    w.op("mad.lo.u32", &format!("%q_ld, %tmp, {rb}, %k_base"));
    w.op("shr.u32", "%tmp, %lane, 4");
    w.op("shl.b32", "%tmp, %tmp, 4");
    w.op("add.u32", "%q_ld, %q_ld, %tmp");
    w.comment("k_ld = k_tile + ((lane & 7) + 8 (lane >> 4)) * row_bytes + 16 ((lane >> 3) & 1)");
    w.op("and.b32", "%tmp, %lane, 7");
    w.op("shr.u32", "%tmp2, %lane, 4");
    w.op("shl.b32", "%tmp2, %tmp2, 3");
    w.op("add.u32", "%tmp, %tmp, %tmp2");
    w.op("mad.lo.u32", &format!("%k_ld, %tmp, {rb}, %k_base"));
    w.op("shr.u32", "%tmp, %lane, 3");
    w.op("and.b32", "%tmp, %tmp, 1");
    w.op("shl.b32", "%tmp, %tmp, 4");
    w.op("add.u32", "%k_ld, %k_ld, %tmp");
    w.comment("v_ld = v_tile + (lane & 15) * row_bytes + 16 (lane >> 4)");
    w.op("and.b32", "%tmp, %lane, 15");
    w.op("mad.lo.u32", &format!("%v_ld, %tmp, {rb}, %v_base"));
    w.op("shr.u32", "%tmp, %lane, 4");
    w.op("shl.b32", "%tmp, %tmp, 4");
    w.op("add.u32", "%v_ld, %v_ld, %tmp");
    if x.q4.is_power_of_two() {
        w.comment(&format!(
            "tile loads: chunk tid + {threads} n is row tid / {q4} + {step} n, column chunk tid % {q4}",
            threads = x.threads,
            q4 = x.q4,
            step = x.threads / x.q4
        ));
        w.op(
            "shr.u32",
            &format!("%row0, %thread, {}", x.q4.trailing_zeros()),
        );
        w.op("and.b32", &format!("%col0, %thread, {}", x.q4 - 1));
        w.op(
            "mul.lo.u32",
            &format!("%pos_step, %kv_pos, {}", x.threads / x.q4),
        );
    }
    if x.dp > x.d {
        w.comment(&format!(
            "zero the k-dim padding (columns {}..{}) of all 128 tile rows once (K rows and every \
             staged Q row): tile stores never touch it",
            x.d, x.dp
        ));
        w.op("setp.lt.u32", "%p_tmp, %thread, 128");
        w.op("mad.lo.u32", &format!("%st, %thread, {rb}, %k_base"));
        w.op("mov.b32", "%lo, 0");
        w.op(
            "@%p_tmp st.shared.v4.b32",
            &format!("[%st+{}], {{%lo, %lo, %lo, %lo}}", 2 * x.d),
        );
    }
}

/// Chunk `n`'s row and float4 column for the thread: `%row`, `%col4`.
fn chunk_coords(w: &mut PtxWriter, x: &Dims, n: usize) {
    if x.q4.is_power_of_two() {
        w.op("add.u32", &format!("%row, %row0, {}", n * x.threads / x.q4));
        w.op("mov.u32", "%col4, %col0");
    } else {
        w.op("add.u32", &format!("%c, %thread, {}", n * x.threads));
        w.op("div.u32", &format!("%row, %c, {}", x.q4));
        w.op("mul.lo.u32", &format!("%tmp, %row, {}", x.q4));
        w.op("sub.u32", "%col4, %c, %tmp");
    }
}

/// Rounds `%{src}{slot}_0..3` to bf16 and stores them at tile base `%{tile}` + offset `st`.
fn store_bf16(w: &mut PtxWriter, src: &str, slot: usize, tile: &str, st: &str) {
    w.op(
        "cvt.rn.bf16x2.f32",
        &format!("%lo, %{src}{slot}_1, %{src}{slot}_0"),
    );
    w.op(
        "cvt.rn.bf16x2.f32",
        &format!("%hi, %{src}{slot}_3, %{src}{slot}_2"),
    );
    w.op("add.u32", &format!("%tmp, {st}, %{tile}"));
    w.op("st.shared.v2.b32", "[%tmp], {%lo, %hi}");
}

/// `dst` = row * row_bytes + col4 * 8 (offset inside a tile).
fn tile_offset(w: &mut PtxWriter, x: &Dims, dst: &str) {
    w.op("shl.b32", "%tmp, %col4, 3");
    w.op("mad.lo.u32", &format!("{dst}, %row, {}, %tmp", x.row_bytes));
}

pub(super) fn zero4(w: &mut PtxWriter, reg: &str, slot: usize) {
    for i in 0..4 {
        w.op("mov.f32", &format!("%{reg}{slot}_{i}, 0f00000000"));
    }
}

pub(super) fn ld4(reg: &str, slot: usize) -> String {
    format!("{{%{reg}{slot}_0, %{reg}{slot}_1, %{reg}{slot}_2, %{reg}{slot}_3}}")
}

fn stage_q(w: &mut PtxWriter, x: &Dims) {
    w.comment(&format!(
        "---- stage the CTA's {} Q rows in kv_tile as bf16 (rows >= q_len as zeros) ----",
        x.rows
    ));
    for n in 0..x.q_per_thread {
        chunk_coords(w, x, n);
        w.op("add.u32", "%j, %r0, %row");
        w.op("setp.lt.u32", "%p_ld, %j, %q_len");
        w.op("mad.lo.u32", "%e, %b, %q_len, %j");
        w.op("mad.lo.u32", "%e, %e, %heads, %h");
        w.op("shl.b32", "%tmp, %col4, 2");
        w.op("mad.lo.u32", &format!("%e, %e, {}, %tmp", x.d));
        w.op("mul.wide.u32", "%off, %e, 4");
        w.op("add.u64", "%addr, %q_ptr, %off");
        zero4(w, "kx", 0);
        w.op(
            "@%p_ld ld.global.v4.f32",
            &format!("{}, [%addr]", ld4("kx", 0)),
        );
        tile_offset(w, x, "%st");
        store_bf16(w, "kx", 0, "k_base", "%st");
    }
    w.op("bar.sync", "0");
    w.comment("Q A-fragments for every k-step, kept for the whole kernel");
    for ks in 0..x.ks {
        w.op(
            "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
            &format!(
                "{{%qf{ks}_0, %qf{ks}_1, %qf{ks}_2, %qf{ks}_3}}, [%q_ld+{}]",
                ks * 32
            ),
        );
    }
    w.comment("---- running state: m = -inf, l = 0, O = 0 ----");
    for r in ["a", "b"] {
        w.op("mov.f32", &format!("%m_{r}, 0fFF800000"));
        w.op("mov.f32", &format!("%l_{r}, 0f00000000"));
    }
    for n in 0..x.nt_o {
        zero4(w, "o", n);
    }
    w.op("mov.u32", "%start, 0");
    w.op("mov.u32", "%tile, 0");
    w.op("setp.eq.u32", "%p_tmp, %n_tiles, 0");
    w.op("@%p_tmp bra", "FINISH");
}

fn load_kv_tile(w: &mut PtxWriter, x: &Dims) {
    w.comment(match x.kv {
        KvType::F32 => {
            "---- K/V tile: keys start .. start + 63, f32 -> bf16 into shared (zeros past kv_len) ----"
        }
        KvType::F16 => {
            "---- K/V tile: keys start .. start + 63, f16 -> f32 -> bf16 into shared (zeros past kv_len) ----"
        }
    });
    w.op("bar.sync", "0");
    if x.q4.is_power_of_two() {
        w.comment("e0 = kv_base + (start + row0) * kv_pos + 4 col0; chunk n adds n * pos_step");
        w.op("add.u32", "%j, %start, %row0");
        w.op("mad.lo.u32", "%e0, %j, %kv_pos, %kv_base");
        w.op("shl.b32", "%tmp, %col0, 2");
        w.op("add.u32", "%e0, %e0, %tmp");
    }
    for batch in (0..x.per_thread).step_by(4) {
        let count = 4.min(x.per_thread - batch);
        // Issue the batch's loads before any conversion, so they are in flight together.
        for u in 0..count {
            let n = batch + u;
            chunk_coords(w, x, n);
            w.op("add.u32", "%j, %start, %row");
            w.op("setp.lt.u32", "%p_ld, %j, %kv_len");
            if x.q4.is_power_of_two() {
                w.op("mad.lo.u32", &format!("%e, %pos_step, {n}, %e0"));
            } else {
                w.op("mad.lo.u32", "%e, %j, %kv_pos, %kv_base");
                w.op("shl.b32", "%tmp, %col4, 2");
                w.op("add.u32", "%e, %e, %tmp");
            }
            w.op("mul.wide.u32", &format!("%off, %e, {}", x.kv.bytes()));
            w.op("add.u64", "%addr, %k_ptr, %off");
            w.op("add.u64", "%addr_v, %v_ptr, %off");
            tile_offset(w, x, &format!("%st{u}"));
            let (k, v, ld) = match x.kv {
                KvType::F32 => {
                    zero4(w, "kx", u);
                    zero4(w, "vx", u);
                    ("kx", "vx", "@%p_ld ld.global.v4.f32")
                }
                KvType::F16 => {
                    for i in 0..4 {
                        w.op("mov.b16", &format!("%kh{u}_{i}, 0"));
                        w.op("mov.b16", &format!("%vh{u}_{i}, 0"));
                    }
                    ("kh", "vh", "@%p_ld ld.global.v4.b16")
                }
            };
            w.op(ld, &format!("{}, [%addr]", ld4(k, u)));
            w.op(ld, &format!("{}, [%addr_v]", ld4(v, u)));
        }
        if x.kv == KvType::F16 {
            widen_kv_halves(w, ("kx", "vx"), count);
        }
        for u in 0..count {
            let st = format!("%st{u}");
            store_bf16(w, "kx", u, "k_base", &st);
            store_bf16(w, "vx", u, "v_base", &st);
        }
    }
    w.op("bar.sync", "0");
}

fn epilogue(w: &mut PtxWriter, x: &Dims) {
    w.label("FINISH");
    w.comment("---- out = O / l (l summed over the quad; 0 when no key was seen) ----");
    for r in ["a", "b"] {
        for lane_mask in [1, 2] {
            w.op(
                "shfl.sync.bfly.b32",
                &format!("%f, %l_{r}, {lane_mask}, 31, 0xffffffff"),
            );
            w.op("add.f32", &format!("%l_{r}, %l_{r}, %f"));
        }
        w.op("setp.eq.f32", &format!("%p_empty_{r}, %l_{r}, 0f00000000"));
        w.op("div.rn.f32", &format!("%inv_{r}, 0f3F800000, %l_{r}"));
        w.op(
            &format!("@%p_empty_{r} mov.f32"),
            &format!("%inv_{r}, 0f00000000"),
        );
        w.op("setp.lt.u32", &format!("%p_row_{r}, %row_{r}, %q_len"));
        w.comment(&format!(
            "out_{r} = out + (((b q_len + row_{r}) heads + h) {} + 2 tig) * 4",
            x.d
        ));
        w.op("mad.lo.u32", &format!("%e, %b, %q_len, %row_{r}"));
        w.op("mad.lo.u32", "%e, %e, %heads, %h");
        w.op("shl.b32", "%tmp, %tig, 1");
        w.op("mad.lo.u32", &format!("%e, %e, {}, %tmp", x.d));
        w.op("mul.wide.u32", "%off, %e, 4");
        w.op("add.u64", &format!("%out_{r}, %out_ptr, %off"));
    }
    for n in 0..x.nt_o {
        for (r, (i0, i1)) in [("a", (0, 1)), ("b", (2, 3))] {
            w.op("mul.f32", &format!("%o{n}_{i0}, %o{n}_{i0}, %inv_{r}"));
            w.op("mul.f32", &format!("%o{n}_{i1}, %o{n}_{i1}, %inv_{r}"));
            w.op(
                &format!("@%p_row_{r} st.global.v2.f32"),
                &format!("[%out_{r}+{}], {{%o{n}_{i0}, %o{n}_{i1}}}", n * 32),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::flash_attention::FLASH_HEAD_DIMS;

    #[test]
    fn tiles_split_evenly_and_fit_static_shared_memory() {
        for d in FLASH_HEAD_DIMS {
            for &warps in flash_warps(d) {
                let x = Dims::new(d, warps, KvType::F32);
                assert_eq!(x.d % 8, 0);
                assert_eq!(x.per_thread * x.threads, 64 * x.q4, "d {d}");
                assert_eq!(x.q_per_thread * x.threads, x.rows * x.q4, "d {d}");
                // Staged Q rows fit the K and V tiles together.
                assert!(x.rows <= 2 * FLASH_KEYS as usize);
            }
            let x = Dims::new(d, 4, KvType::F32);
            assert_eq!(x.row_bytes % 16, 0, "ldmatrix rows must be 16-byte aligned");
            // The skew: 8 consecutive rows start in 8 distinct 16-byte bank groups.
            let groups: std::collections::HashSet<usize> =
                (0..8).map(|r| (r * x.row_bytes / 16) % 8).collect();
            assert_eq!(groups.len(), 8, "d {d}: ldmatrix bank conflicts");
            assert!(2 * 64 * x.row_bytes <= 48 * 1024);
        }
    }

    /// The text uses only registers it declares (a cheap guard; ptxas checks the rest).
    #[test]
    fn generated_text_declares_its_fragment_registers() {
        for d in FLASH_HEAD_DIMS {
            let text = flash_attention_ptx(d);
            let x = Dims::new(d, 4, KvType::F32);
            assert!(text.contains(&format!("%qf{}_3", x.ks - 1)));
            assert!(text.contains(&format!("%o{}_3", x.nt_o - 1)));
            assert!(!text.contains(&format!("%o{}_0,", x.nt_o)));
            assert_eq!(text.matches(".entry ").count(), 2 * flash_warps(d).len());
            for kv in [KvType::F32, KvType::F16] {
                for &warps in flash_warps(d) {
                    let name = Dims::new(d, warps, kv).kernel();
                    assert!(text.contains(&format!(".entry {name}(")), "{name}");
                }
            }
            // Only the f16 entries load halves; the f32 entries keep their float4 loads.
            for body in text.split(".visible .entry ").skip(1) {
                let f16 = body.split('(').next().unwrap().ends_with("_kvf16");
                assert_eq!(body.contains("ld.global.v4.b16"), f16);
                assert_eq!(body.contains("cvt.f32.f16"), f16);
            }
        }
    }
}
