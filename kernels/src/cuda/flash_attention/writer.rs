//! A line writer for generated PTX (shared by the flash and decode generators) and the test
//! that keeps checked-in generated files equal to their generator's output.

use std::fmt::Write;

/// Writes PTX one line at a time: instructions in a 15-wide opcode column, as the
/// hand-written files do.
pub(crate) struct PtxWriter {
    text: String,
}

impl PtxWriter {
    pub(crate) fn new() -> Self {
        PtxWriter {
            text: String::with_capacity(64 * 1024),
        }
    }

    /// A line as is.
    pub(crate) fn raw(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    pub(crate) fn comment(&mut self, text: &str) {
        let _ = writeln!(self.text, "    // {text}");
    }

    pub(crate) fn op(&mut self, opcode: &str, operands: &str) {
        let _ = writeln!(self.text, "    {opcode:<15} {operands};");
    }

    pub(crate) fn label(&mut self, name: &str) {
        let _ = writeln!(self.text, "{name}:");
    }

    /// `.reg .TYPE a, b, c;` wrapped at eight names a line.
    pub(crate) fn regs(&mut self, ty: &str, names: &[String]) {
        for chunk in names.chunks(8) {
            let _ = writeln!(self.text, "    .reg .{ty:<5} {};", chunk.join(", "));
        }
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// Writes `text` as a `//` comment block (blank lines as bare `//`), framed by `//` lines.
/// After the f16 loads of `units` K/V chunks of 4 into `%kh{u}_{i}` / `%vh{u}_{i}`: each
/// half widened, exactly, into the f32 registers `%{k}{u}_{i}` / `%{v}{u}_{i}` (the `_kvf16`
/// entries of the flash and decode kernels).
pub(crate) fn widen_kv_halves(w: &mut PtxWriter, (k, v): (&str, &str), units: usize) {
    w.comment("widen the halves to f32 (exact; a zero stays zero)");
    for u in 0..units {
        for i in 0..4 {
            w.op("cvt.f32.f16", &format!("%{k}{u}_{i}, %kh{u}_{i}"));
            w.op("cvt.f32.f16", &format!("%{v}{u}_{i}, %vh{u}_{i}"));
        }
    }
}

pub(crate) fn comment_block(w: &mut PtxWriter, text: &str) {
    w.raw("//");
    for line in text.lines() {
        if line.is_empty() {
            w.raw("//");
        } else {
            w.raw(&format!("// {line}"));
        }
    }
    w.raw("//");
}

/// Asserts that `module`'s checked-in source is `text`; with `IRIS_WRITE_PTX=1` rewrites the
/// file instead (`ptx/{name}.ptx` of this crate).
#[cfg(test)]
pub(crate) fn check_checked_in(module: &super::PtxModule, text: &str) {
    if std::env::var("IRIS_WRITE_PTX").is_ok_and(|v| v == "1") {
        let path = format!(
            "{}/src/cuda/ptx/{}.ptx",
            env!("CARGO_MANIFEST_DIR"),
            module.name
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    } else {
        assert!(
            module.source == text,
            "ptx/{}.ptx is stale: rerun with IRIS_WRITE_PTX=1",
            module.name
        );
    }
}
