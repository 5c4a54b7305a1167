//! The f16-weight modules (`gemm_f16_mma`, `gemv_f16`, `cast_f32_f16`) are their bf16 twins
//! with the 16-bit type renamed: the kernels differ only in the `cvt` that rounds the
//! activations (`cvt.rn.f16x2.f32`), the mma's operand type (`.f16`) and how a 16-bit bias
//! widens to f32, so one text serves both and a fix reaches both.

/// The bf16 texts' bias widening (bf16 is the top half of an f32) and its f16 form; each
/// generator writes exactly one of these shapes.
const WIDENINGS: [(&str, &str); 2] = [
    (
        "    @%p_even cvt.u32.u16    %tmp, %half;\n    @%p_even shl.b32        %tmp, %tmp, 16;\n    @%p_even mov.b32        %bias_val, %tmp;\n",
        "    @%p_even cvt.f32.f16    %bias_val, %half;\n",
    ),
    (
        "    cvt.u32.u16     %tmp, %half;\n    shl.b32         %tmp, %tmp, 16;\n    mov.b32         %bias_val, %tmp;\n",
        "    cvt.f32.f16     %bias_val, %half;\n",
    ),
];

/// The line the twin's header gains (the rest of the header is the bf16 one, renamed).
const NOTE: &str = "// (The f16-weight twin of the bf16 module, written from its text by\n\
                    // iris_kernels::cuda::gemm_mma::f16_twin; any timing below is the bf16 one's.)\n";

/// The f16 twin of a bf16 module's text: widenings rewritten, every `bf16` renamed `f16`, and
/// a note after the first header line that the header's timings are the bf16 module's.
pub fn f16_twin(bf16_text: &str) -> String {
    let mut text = bf16_text.to_string();
    for (bf16, f16) in WIDENINGS {
        text = text.replace(bf16, f16);
    }
    let text = text.replace("bf16", "f16").replace("BF16", "F16");
    let note = NOTE;
    match text.find('\n') {
        Some(end) if text.starts_with("//") => {
            let (first, rest) = text.split_at(end + 1);
            format!("{first}{note}{rest}")
        }
        _ => format!("{note}{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::gemm_mma::{gemm_bf16_mma_ptx, gemv_bf16_ptx};

    #[test]
    fn twins_keep_no_bf16_and_widen_the_f16_way() {
        for bf16 in [gemm_bf16_mma_ptx(), gemv_bf16_ptx()] {
            // Every bf16 widening is a known shape, so none survives the rename.
            assert!(WIDENINGS.iter().any(|(w, _)| bf16.contains(w)));
            let twin = f16_twin(&bf16);
            let body = twin.replacen(NOTE, "", 1);
            assert!(body.len() < twin.len(), "the note is in the header");
            assert!(!body.contains("bf16") && !body.contains("BF16"));
            assert!(!body.contains("shl.b32         %tmp, %tmp, 16"));
            assert!(!body.contains("shl.b32        %tmp, %tmp, 16"));
            assert!(twin.contains("cvt.f32.f16"));
            assert!(twin.contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"));
            assert_eq!(
                twin.matches(".entry ").count(),
                bf16.matches(".entry ").count()
            );
        }
        let cast = f16_twin(include_str!("../ptx/cast_f32_bf16.ptx")).replacen(NOTE, "", 1);
        assert!(cast.contains("cvt.rn.f16x2.f32") && !cast.contains("bf16"));
    }
}
