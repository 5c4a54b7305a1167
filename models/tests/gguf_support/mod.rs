//! Shared by the malformed-GGUF tests: a valid base file to break, and parsing that checks
//! every error names the file. Files are built with the test-side writer, which the including
//! test crate declares as `mod gguf_writer;`. Each test crate uses part of it.
#![allow(dead_code)]

use iris_models::gguf::{GgufError, GgufFile};

use crate::gguf_writer::*;

pub const NAME: &str = "test.gguf";

/// A valid file with metadata of several types and three tensors.
pub fn base() -> Gguf {
    let mut rng = Rng(7);
    Gguf::default()
        .kv("general.architecture", s("llama"))
        .kv("a.u8", V::U8(200))
        .kv("a.i8", V::I8(-3))
        .kv("a.u16", V::U16(60000))
        .kv("a.i16", V::I16(-30000))
        .kv("a.u32", V::U32(4_000_000_000))
        .kv("a.i32", V::I32(-2_000_000_000))
        .kv("a.f32", V::F32(0.5))
        .kv("a.bool", V::Bool(true))
        .kv("a.u64", V::U64(1 << 40))
        .kv("a.i64", V::I64(-(1 << 40)))
        .kv("a.f64", V::F64(-2.25))
        .kv("a.strings", strings(&["x", "yz", ""]))
        .kv(
            "a.nested",
            V::Arr(
                9,
                vec![V::Arr(4, vec![V::U32(1), V::U32(2)]), V::Arr(4, vec![])],
            ),
        )
        .tensor("t.f32", &[3, 2], F32, tensor_data(&mut rng, F32, 6))
        .tensor("t.q8", &[64], Q8_0, tensor_data(&mut rng, Q8_0, 64))
        .tensor("t.f16", &[5], F16, tensor_data(&mut rng, F16, 5))
}

pub fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(NAME, bytes)
}

pub fn parse_err(g: &Gguf) -> GgufError {
    let err = parse(&g.build()).expect_err("malformed file parsed");
    assert!(err.to_string().starts_with(NAME), "{err}");
    err
}

/// Offset of the first occurrence of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}
