"""Self-test: kernels broken on purpose, each of which the checker must reject. If one of
these passes, the interpreter has stopped seeing what it claims to see (or a kernel changed
so that the edit no longer breaks it: then pick a new edit)."""

from . import cases_attention as attn
from . import cases_gemm as mm
from . import cases_rows as rows


class StaleMutation(Exception):
    """The text a self-test edits is no longer in the kernel."""


class Mutation:
    """Replaces the `nth` (1-based; 0: every) occurrence of `old` in `module` with `new`;
    `case` is a cheap case that must then fail."""

    def __init__(self, what, module, old, new, nth, case):
        self.what, self.module, self.old, self.new = what, module, old, new
        self.nth, self.case = nth, case

    def apply(self, text):
        if self.nth == 0:
            if self.old not in text:
                raise StaleMutation(f"`{self.old}` is not in {self.module}: update this self-test")
            return text.replace(self.old, self.new)
        at = -1
        for _ in range(self.nth):
            at = text.find(self.old, at + 1)
            if at < 0:
                raise StaleMutation(f"`{self.old}` occurs fewer than {self.nth} times in "
                                    f"{self.module}: the kernel changed, update this self-test")
        return text[:at] + self.new + text[at + len(self.old):]


BAR = "bar.sync        0;"


def mutations():
    gemm = mm.gemm(33, 20, 72, "none")  # 3 K tiles: every pipeline stage is used
    flash = attn.flash(64, 1, 70, 70, 2, 1, True)
    decode = attn.decode(64, 1, 1, 4, 2, 37, 80)
    return [
        Mutation("drop the pipeline bar.sync", "gemm_bf16_mma", BAR, "", 1, gemm),
        Mutation("cp.async.wait_group 1 -> 2", "gemm_bf16_mma",
                 "cp.async.wait_group 1;", "cp.async.wait_group 2;", 1, gemm),
        Mutation("A swizzle: k16 step 1 reads chunk + 1", "gemm_bf16_mma",
                 "%a_lane1, %a_lane0, 32;", "%a_lane1, %a_lane0, 16;", 1, gemm),
        Mutation("swizzle line mask 7 -> 3 in the cp.async store offset", "gemm_bf16_mma",
                 "and.b32         %tmp, %tmp, 7;", "and.b32         %tmp, %tmp, 3;", 1, gemm),
        Mutation("a rows 32..63 loaded even past M", "gemm_bf16_mma",
                 "%p, %p_arow1, %p_k;", "%p, %p_k, %p_k;", 1, gemm),
        Mutation("drop the bar.sync before the cross-warp sum", "gemv_bf16", BAR, "", 1,
                 mm.gemv(3, 20, 13, "bf16", skew=4, ldw=24)),
        Mutation("drop the bar.sync after the K/V tile stores", "flash_attention_d64",
                 BAR, "", 3, flash),
        Mutation("drop the bar.sync before the K/V tile is overwritten", "flash_attention_d64",
                 BAR, "", 2, flash),
        Mutation("causal mask hides one key from the one row whose last visible key it is "
                 "(only the tight bound sees it)", "flash_attention_d64",
                 "%p_m, %lim_a, 49;", "%p_m, %lim_a, 50;", 1, flash),
        Mutation("V fragments without .trans", "flash_attention_d64",
                 "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
                 "ldmatrix.sync.aligned.m8n8.x4.shared.b16", 1, flash),
        Mutation("butterfly over 16 lanes starts at 16", "attention_decode_d64",
                 "%f, %dot, 8, 31", "%f, %dot, 16, 31", 0, decode),
        Mutation("drop the bar.warp.sync before the lanes read each other's weights",
                 "attention_decode_combine_f32", "bar.warp.sync   0xffffffff;", "", 1, decode),
        Mutation("f16 operands multiplied as bf16", "gemm_f16_mma",
                 "row.col.f32.f16.f16.f32", "row.col.f32.bf16.bf16.f32", 0,
                 mm.gemm(33, 20, 72, "none", ty="f16")),
        Mutation("f16 activations rounded as bf16", "gemv_f16", "cvt.rn.f16x2.f32",
                 "cvt.rn.bf16x2.f32", 0, mm.gemv(3, 20, 13, "f16", skew=4, ldw=24, ty="f16")),
        Mutation("bf16 pair packed high/low swapped", "cast_f32_bf16",
                 "%word0, %x1, %x0;", "%word0, %x0, %x1;", 1, mm.cast(5, 24, skew=0)),
        Mutation("bf16 halves packed in the wrong order", "pad_bf16",
                 "{%h0, %h1}", "{%h1, %h0}", 1, mm.pad(3, 13, skew=2)),
        Mutation("drop the bar.sync before warp 0 adds the warp sums", "rms_norm_f32_wbf16",
                 BAR, "", 1, rows.rms_norm(3, 4096, "bf16")),
        Mutation("vector pass 1: the streamed chunks start at the last register chunk (summed "
                 "twice)", "rms_norm_f32_wbf16", "add.u32         %col, %c4_3, %block_size;",
                 "mov.u32         %col, %c4_3;", 1, rows.rms_norm(2, 1000, "bf16", block=32)),
        Mutation("the last register chunk stored under the third chunk's predicate",
                 "rms_norm_f32", "@%p_c3 st.global.v4.f32", "@%p_c2 st.global.v4.f32", 1,
                 rows.rms_norm(3, 1000, "f32", in_place=True)),
        Mutation("vector rotation: x_p * s added, not subtracted, for the low quad", "rope_f32",
                 "    neg.f64         %tmp, %tmp;\n", "", 1, rows.rope(5, 3, 64, 32)),
        Mutation("pass-through quads read from the rotated dims", "rope_f32",
                 "add.u32         %col, %col, %rot_dim;", "", 1, rows.rope(7, 2, 24, 8)),
        Mutation("bf16 pair widened high/low swapped", "embedding_f32_wbf16",
                 "shl.b32         %e0, %a0, 16;", "and.b32         %e0, %a0, 0xffff0000;", 1,
                 rows.embedding(100, 576, 7, "bf16")),
        Mutation("a trip's second unit stored without its predicate", "embedding_f32",
                 "@%p_ok1 st.global.v4.f32", "st.global.v4.f32", 1,
                 rows.embedding(40, 4, 9, "f32", blocks=1)),
        Mutation("a bad id of the vector path raises no error", "embedding_f32",
                 "atom.global.cas.b32 %flag_old, [%err_ptr], 0, 1;", "", 2,
                 rows.embedding(51, 24, 13, "f32", bad=((3, 51), (7, -1)))),
        Mutation("an f16 pair's low half widened as if bf16 (bits << 16)", "embedding_f32_wf16",
                 "cvt.f32.f16     %e0, %h0;", "cvt.f32.bf16    %e0, %h0;", 1,
                 rows.embedding(100, 576, 7, "f16")),
        Mutation("f16 pair halves swapped in the register chunks", "rms_norm_f32_wf16",
                 "mov.b32         {%h0, %h1}, %wp0;", "mov.b32         {%h1, %h0}, %wp0;", 1,
                 rows.rms_norm(5, 576, "f16")),
        Mutation("the f16 bias widened as if bf16", "layer_norm_f32_wf16",
                 "cvt.f32.f16     %b_val, %w_f16;", "cvt.f32.bf16    %b_val, %w_f16;", 1,
                 rows.layer_norm(3, 33, "f16", skew=(4, 2, 6, 12))),
        Mutation("the f16 weights widened as if bf16", "conv2d_f32_wf16",
                 "cvt.f32.f16     %w_val, %w_f16;", "cvt.f32.bf16    %w_val, %w_f16;", 1,
                 rows.conv2d(2, 5, 9, 11, 7, (3, 3), (2, 2), (1, 1), "f16")),
        Mutation("drop the bar.sync before warp 0 adds the warp sums of the mean", "layer_norm_f32",
                 BAR, "", 1, rows.layer_norm(3, 1000, "f32")),
        Mutation("taps in the padding columns not skipped", "conv2d_f32",
                 "@%p_col_out bra KX_NEXT;", "", 1,
                 rows.conv2d(2, 5, 9, 11, 7, (3, 3), (2, 2), (1, 1), "f32")),
    ]
