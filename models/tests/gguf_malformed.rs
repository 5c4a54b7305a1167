//! Malformed GGUF input: one test per way a file can be broken. Each must be refused with its
//! typed error naming the file and the key or tensor — never a panic, never a huge allocation.
//! Files are built by hand with the test-side writer in `gguf_writer.rs`.

mod gguf_writer;

use gguf_writer::*;
use iris_models::gguf::{
    convert_file, ConvertError, ConvertOptions, DequantError, GgmlType, GgufError, GgufFile,
    MetadataArray, MetadataValue,
};

const NAME: &str = "test.gguf";

/// A valid file with metadata of several types and three tensors.
fn base() -> Gguf {
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

fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(NAME, bytes)
}

fn parse_err(g: &Gguf) -> GgufError {
    let err = parse(&g.build()).expect_err("malformed file parsed");
    assert!(err.to_string().starts_with(NAME), "{err}");
    err
}

/// Offset of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn valid_file_reads_back() {
    let g = base();
    let f = parse(&g.build()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.metadata().len(), g.kv.len());
    assert_eq!(f.get("a.u8"), Some(&MetadataValue::U8(200)));
    assert_eq!(f.get("a.i64"), Some(&MetadataValue::I64(-(1 << 40))));
    assert_eq!(f.get("a.f64"), Some(&MetadataValue::F64(-2.25)));
    assert_eq!(f.get_u64("a.u32").unwrap(), Some(4_000_000_000));
    assert_eq!(f.get_bool("a.bool").unwrap(), Some(true));
    assert_eq!(
        f.get_string_array("a.strings").unwrap().unwrap(),
        ["x", "yz", ""]
    );
    assert_eq!(
        f.get("a.nested").and_then(MetadataValue::as_array),
        Some(&MetadataArray::Array(vec![
            MetadataArray::U32(vec![1, 2]),
            MetadataArray::U32(vec![])
        ]))
    );
    let t = f.tensor("t.f32").unwrap();
    assert_eq!(t.dims, [3, 2]);
    assert_eq!(t.shape(), [2, 3]);
    assert_eq!(t.ggml_type, GgmlType::F32);
    assert_eq!(f.tensor("t.q8").unwrap().n_bytes, 68);
    for t in f.tensors() {
        assert_eq!(f.dequantize(&t.name).unwrap().len() as u64, t.n_elements);
    }
    // Negative for an unsigned getter.
    assert!(matches!(
        f.get_u64("a.i8"),
        Err(GgufError::WrongValueType { ref key, .. }) if key == "a.i8"
    ));
}

#[test]
fn truncated_anywhere() {
    let bytes = base().build();
    // Every proper prefix that cuts the header, metadata, tensor infos or any tensor's data is
    // an error (the final padding after the last tensor is not needed).
    let f = parse(&bytes).unwrap();
    let data_end = f
        .tensors()
        .iter()
        .map(|t| f.data_start() + t.offset + t.n_bytes)
        .max()
        .unwrap() as usize;
    for len in 0..data_end {
        let err = parse(&bytes[..len]).expect_err("prefix parsed");
        assert!(err.to_string().starts_with(NAME));
    }
    // A cut inside a fixed-size field names what was being read.
    let cut = 4 + 4 + 3; // inside the tensor count
    match parse(&bytes[..cut]).unwrap_err() {
        GgufError::Truncated { what, file_len, .. } => {
            assert_eq!(what, "tensor count");
            assert_eq!(file_len, cut as u64);
        }
        other => panic!("{other}"),
    }
    // A cut inside a tensor's data.
    assert!(matches!(
        parse(&bytes[..data_end - 1]).unwrap_err(),
        GgufError::TensorOutOfRange { .. }
    ));
}

#[test]
fn bad_magic() {
    let mut bytes = base().build();
    bytes[..4].copy_from_slice(b"GGML");
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::BadMagic { found, .. } if found == b"GGML"
    ));
    assert!(matches!(
        parse(b"GG").unwrap_err(),
        GgufError::BadMagic { .. }
    ));
}

#[test]
fn unsupported_version() {
    for version in [1u32, 4, 0] {
        let g = Gguf { version, ..base() };
        assert!(matches!(
            parse_err(&g),
            GgufError::UnsupportedVersion { version: v, hint: "", .. } if v == version
        ));
    }
    let g = Gguf {
        version: 3u32.swap_bytes(),
        ..base()
    };
    let err = parse_err(&g);
    assert!(err.to_string().contains("big-endian"), "{err}");
}

#[test]
fn absurd_string_length() {
    let g = base();
    let mut bytes = g.build();
    // The length prefix of the first key, `general.architecture`.
    let at = find(&bytes, b"general.architecture") - 8;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    match parse(&bytes).unwrap_err() {
        GgufError::CountTooLarge { what, count, .. } => {
            assert_eq!(what, "length of key of metadata entry 0");
            assert_eq!(count, 1 << 60);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn absurd_array_length() {
    let g = Gguf::default().kv(
        "big",
        V::Raw(9, {
            let mut v = 4u32.to_le_bytes().to_vec();
            v.extend(u64::MAX.to_le_bytes());
            v
        }),
    );
    match parse_err(&g) {
        GgufError::CountTooLarge { what, count, .. } => {
            assert_eq!(what, "array length of `big`");
            assert_eq!(count, u64::MAX);
        }
        other => panic!("{other}"),
    }
    // An array of strings claiming more strings than 8-byte lengths fit.
    let g = Gguf::default().kv(
        "strs",
        V::Raw(9, {
            let mut v = 8u32.to_le_bytes().to_vec();
            v.extend(1000u64.to_le_bytes());
            v.extend([0u8; 100]);
            v
        }),
    );
    assert!(matches!(parse_err(&g), GgufError::CountTooLarge { .. }));
}

#[test]
fn absurd_counts() {
    let mut bytes = base().build();
    bytes[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::CountTooLarge { what, .. } if what == "tensor count"
    ));
    let mut bytes = base().build();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::CountTooLarge { what, .. } if what == "metadata entry count"
    ));
}

#[test]
fn invalid_utf8() {
    // In a key.
    let mut bytes = base().build();
    let at = find(&bytes, b"a.u8");
    bytes[at] = 0xff;
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::InvalidUtf8 { what, .. } if what == "key of metadata entry 1"
    ));
    // In a string value.
    let g = base().kv(
        "bad",
        V::Raw(8, {
            let mut v = Vec::new();
            put_bytes_str(&mut v, b"ok\xc3(");
            v
        }),
    );
    assert!(matches!(
        parse_err(&g),
        GgufError::InvalidUtf8 { what, .. } if what == "value of `bad`"
    ));
    // In an array element.
    let g = base().kv(
        "arr",
        V::Raw(9, {
            let mut v = 8u32.to_le_bytes().to_vec();
            v.extend(2u64.to_le_bytes());
            put_bytes_str(&mut v, b"fine");
            put_bytes_str(&mut v, b"\x80");
            v
        }),
    );
    assert!(matches!(
        parse_err(&g),
        GgufError::InvalidUtf8 { what, .. } if what == "element 1 of `arr`"
    ));
    // In a tensor name.
    let mut bytes = base().build();
    let at = find(&bytes, b"t.q8");
    bytes[at + 1] = 0xfe;
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::InvalidUtf8 { what, .. } if what == "name of tensor info 1"
    ));
}

#[test]
fn unknown_value_type() {
    let g = base().kv("weird", V::Raw(13, vec![0; 8]));
    assert!(matches!(
        parse_err(&g),
        GgufError::UnknownValueType { key, value_type: 13, .. } if key == "weird"
    ));
    // As an array's element type.
    let g = base().kv(
        "weird.array",
        V::Raw(9, {
            let mut v = 99u32.to_le_bytes().to_vec();
            v.extend(1u64.to_le_bytes());
            v
        }),
    );
    assert!(matches!(
        parse_err(&g),
        GgufError::UnknownValueType { key, value_type: 99, .. } if key == "weird.array"
    ));
}

#[test]
fn invalid_bool() {
    let g = base().kv("flag", V::Raw(7, vec![2]));
    assert!(matches!(
        parse_err(&g),
        GgufError::InvalidBool { key, value: 2, .. } if key == "flag"
    ));
}

#[test]
fn arrays_nested_too_deep() {
    let mut value = V::Arr(4, vec![V::U32(1)]);
    for _ in 0..7 {
        value = V::Arr(9, vec![value]);
    }
    // 8 levels: accepted.
    parse(&base().kv("deep", value.clone()).build()).unwrap();
    let g = base().kv("deeper", V::Arr(9, vec![value]));
    assert!(matches!(
        parse_err(&g),
        GgufError::NestingTooDeep { key, limit: 8, .. } if key == "deeper"
    ));
    // A long chain of nested array headers with no end: refused by depth, not by the stack.
    let mut raw = Vec::new();
    for _ in 0..100_000 {
        raw.extend(9u32.to_le_bytes());
        raw.extend(1u64.to_le_bytes());
    }
    let g = base().kv("chain", V::Raw(9, raw));
    assert!(matches!(parse_err(&g), GgufError::NestingTooDeep { .. }));
}

#[test]
fn duplicate_key() {
    let g = base().kv("a.u8", V::U8(1));
    assert!(matches!(
        parse_err(&g),
        GgufError::DuplicateKey { key, .. } if key == "a.u8"
    ));
}

#[test]
fn duplicate_tensor() {
    let g = base().tensor("t.f16", &[4], F32, vec![0; 16]);
    assert!(matches!(
        parse_err(&g),
        GgufError::DuplicateTensor { tensor, .. } if tensor == "t.f16"
    ));
}

#[test]
fn invalid_dimension_count() {
    for n_dims in [0usize, 5] {
        let g = base().tensor("t.dims", &vec![1; n_dims], F32, vec![0; 4]);
        assert!(matches!(
            parse_err(&g),
            GgufError::InvalidDims { tensor, n_dims: n, .. } if tensor == "t.dims" && n as usize == n_dims
        ));
    }
}

#[test]
fn dims_product_overflow() {
    let g = base().tensor("t.huge", &[1 << 32, 1 << 32], F32, vec![]);
    assert!(matches!(
        parse_err(&g),
        GgufError::ShapeOverflow { tensor, .. } if tensor == "t.huge"
    ));
    // Overflow of the non-zero dims is refused even when a zero dim makes the tensor empty.
    let g = base().tensor("t.zero", &[1 << 40, 0, 1 << 40], F32, vec![]);
    assert!(matches!(parse_err(&g), GgufError::ShapeOverflow { .. }));
    // Elements fit, bytes do not.
    let g = base().tensor("t.bytes", &[1 << 62], F32, vec![]);
    assert!(matches!(parse_err(&g), GgufError::ShapeOverflow { .. }));
}

#[test]
fn unknown_tensor_type() {
    for id in [4u32, 31, 1000] {
        let g = base().tensor("t.unknown", &[32], id, vec![0; 32]);
        assert!(matches!(
            parse_err(&g),
            GgufError::UnknownTensorType { tensor, type_id, .. } if tensor == "t.unknown" && type_id == id
        ));
    }
}

#[test]
fn unsupported_tensor_type() {
    // A known type parses (its size is checked) but does not dequantize.
    let g = base().tensor("t.q4k", &[256], Q4_K, vec![0; 144]);
    let f = parse(&g.build()).unwrap();
    assert_eq!(f.tensor("t.q4k").unwrap().n_bytes, 144);
    let err = f.dequantize("t.q4k").unwrap_err();
    assert!(matches!(
        &err,
        GgufError::Dequant { tensor, error: DequantError::Unsupported { ggml_type: GgmlType::Q4_K }, .. }
            if tensor == "t.q4k"
    ));
    assert_eq!(
        err.to_string(),
        "test.gguf: tensor `t.q4k`: Q4_K not supported; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"
    );
}

#[test]
fn block_size_mismatch() {
    let g = base().tensor("t.q8odd", &[48, 2], Q8_0, vec![0; 102]);
    assert!(matches!(
        parse_err(&g),
        GgufError::BlockMismatch { tensor, row: 48, block: 32, ggml_type: GgmlType::Q8_0, .. }
            if tensor == "t.q8odd"
    ));
}

#[test]
fn misaligned_tensor() {
    let mut g = base();
    let mut offsets = g.layout();
    offsets[1] += 4;
    g.offsets = Some(offsets);
    assert!(matches!(
        parse_err(&g),
        GgufError::MisalignedTensor { tensor, alignment: 32, .. } if tensor == "t.q8"
    ));
}

#[test]
fn tensor_out_of_range() {
    // The offset field of `t.f16`: after its name (5), n_dims (4), one dim (8), type (4).
    let offset_field = |bytes: &[u8]| find(bytes, b"t.f16") + 5 + 4 + 8 + 4;
    let mut bytes = base().build();
    let at = offset_field(&bytes);
    bytes[at..at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::TensorOutOfRange { tensor, offset, .. } if tensor == "t.f16" && offset == 1 << 20
    ));
    // An offset whose end overflows.
    let mut bytes = base().build();
    let at = offset_field(&bytes);
    bytes[at..at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::TensorOutOfRange { tensor, .. } if tensor == "t.f16"
    ));
}

#[test]
fn overlapping_tensors() {
    let mut g = base();
    let mut offsets = g.layout();
    offsets[1] = offsets[0]; // t.q8 on top of t.f32
    g.offsets = Some(offsets);
    assert!(matches!(
        parse_err(&g),
        GgufError::OverlappingTensors { .. }
    ));
}

#[test]
fn bad_alignment() {
    for (value, needle) in [
        (V::U32(0), "not a power of two"),
        (V::U32(48), "not a power of two"),
        (V::U64(32), "expected u32"),
    ] {
        let g = base().kv("general.alignment", value);
        let err = parse_err(&g);
        assert!(matches!(err, GgufError::BadAlignment { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // A valid non-default alignment is honoured.
    let mut g = base().kv("general.alignment", V::U32(64));
    g.alignment = 64;
    let f = parse(&g.build()).unwrap();
    assert_eq!(f.alignment(), 64);
    assert!(f.data_start().is_multiple_of(64));
    assert!(f.tensors().iter().all(|t| t.offset.is_multiple_of(64)));
}

#[test]
fn missing_tensor_by_name() {
    let f = parse(&base().build()).unwrap();
    assert!(matches!(
        f.dequantize("nope").unwrap_err(),
        GgufError::MissingTensor { tensor, .. } if tensor == "nope"
    ));
}

#[test]
fn open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert!(matches!(err, GgufError::Io { action: "open", .. }));
    assert!(err.to_string().contains("missing.gguf"));
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        GgufFile::open(&empty).unwrap_err(),
        GgufError::BadMagic { .. }
    ));
    let good = dir.path().join("good.gguf");
    std::fs::write(&good, base().build()).unwrap();
    let f = GgufFile::open(&good).unwrap();
    assert_eq!(f.tensors().len(), 3);
}

// Conversion-level problems: the file parses, but is not a llama model we can convert.
// Nothing may be written for any of them.

fn convert_err(g: &Gguf) -> ConvertError {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let file = parse(&g.build()).unwrap();
    let err = convert_file(&file, &out, &ConvertOptions::default()).expect_err("converted");
    assert!(
        !out.exists(),
        "output written for a failed conversion: {err}"
    );
    assert!(err.to_string().starts_with(NAME), "{err}");
    err
}

#[test]
fn missing_required_key() {
    for key in [
        "llama.embedding_length",
        "llama.block_count",
        "llama.attention.head_count",
        "llama.context_length",
        "llama.attention.layer_norm_rms_epsilon",
        "general.architecture",
        "tokenizer.ggml.model",
    ] {
        let g = tiny_llama(1, false).remove(key);
        match convert_err(&g) {
            ConvertError::Gguf(GgufError::MissingKey { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other}"),
        }
    }
}

#[test]
fn wrong_metadata_type() {
    let g = tiny_llama(1, false).set("llama.block_count", s("two"));
    match convert_err(&g) {
        ConvertError::Gguf(GgufError::WrongValueType { key, found, .. }) => {
            assert_eq!(key, "llama.block_count");
            assert_eq!(found, "string \"two\"");
        }
        other => panic!("{other}"),
    }
    let g = tiny_llama(1, false).set("llama.attention.head_count_kv", V::U32(3));
    assert!(matches!(
        convert_err(&g),
        ConvertError::InvalidMetadata { key, .. } if key == "llama.attention.head_count_kv"
    ));
}

#[test]
fn unsupported_architecture() {
    let g = tiny_llama(1, false).set("general.architecture", s("qwen2"));
    let err = convert_err(&g);
    assert!(matches!(
        &err,
        ConvertError::UnsupportedArchitecture { architecture, .. } if architecture == "qwen2"
    ));
    assert_eq!(
        err.to_string(),
        "test.gguf: architecture `qwen2` is not supported; supported: llama"
    );
}

#[test]
fn unsupported_tokenizer_model() {
    let g = tiny_llama(1, false).set("tokenizer.ggml.model", s("llama"));
    let err = convert_err(&g);
    assert!(matches!(
        &err,
        ConvertError::UnsupportedTokenizer { model, .. } if model == "llama"
    ));
    assert!(err.to_string().contains("supported: gpt2"), "{err}");
}

#[test]
fn unsupported_tensor_type_named_before_writing() {
    // A 256-wide, zero-layer llama whose embedding is Q4_K.
    let vocab = TOKENS.len() as u64;
    let g = Gguf {
        tensors: Vec::new(),
        ..tiny_llama(1, false)
    }
    .set("llama.embedding_length", V::U32(256))
    .set("llama.attention.head_count", V::U32(4))
    .set("llama.attention.head_count_kv", V::U32(4))
    .remove("llama.rope.dimension_count")
    .tensor(
        "token_embd.weight",
        &[256, vocab],
        Q4_K,
        vec![0; 144 * vocab as usize],
    )
    .tensor("output_norm.weight", &[256], F32, vec![0; 1024]);
    // The embedding is checked (shape, then type) before the missing layers are noticed.
    let err = convert_err(&g);
    assert!(
        matches!(&err, ConvertError::Gguf(GgufError::Dequant { tensor, error: DequantError::Unsupported { ggml_type: GgmlType::Q4_K }, .. }) if tensor == "token_embd.weight"),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("Q4_K not supported; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"));
}

#[test]
fn missing_tensor() {
    let g = tiny_llama(1, false).remove_tensor("blk.1.attn_k.weight");
    assert!(matches!(
        convert_err(&g),
        ConvertError::MissingTensor { tensor, .. } if tensor == "blk.1.attn_k.weight"
    ));
}

#[test]
fn unknown_tensor() {
    let g = tiny_llama(1, false).tensor("blk.0.mystery.weight", &[4], F32, vec![0; 16]);
    assert!(matches!(
        convert_err(&g),
        ConvertError::UnexpectedTensor { tensor, .. } if tensor == "blk.0.mystery.weight"
    ));
    let g = tiny_llama(1, false).tensor("blk.7.attn_q.weight", &[4], F32, vec![0; 16]);
    let err = convert_err(&g);
    assert!(
        err.to_string()
            .contains("layer 7, but `llama.block_count` is 2"),
        "{err}"
    );
}

#[test]
fn tensor_shape_disagrees_with_metadata() {
    let g = tiny_llama(1, false).set("llama.feed_forward_length", V::U32(128));
    match convert_err(&g) {
        ConvertError::TensorShape {
            tensor,
            found,
            expected,
            ..
        } => {
            assert_eq!(tensor, "blk.0.ffn_gate.weight");
            assert_eq!(found, [96, 64]);
            assert_eq!(expected, [128, 64]);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_token_ids() {
    let g = tiny_llama(1, false).set("tokenizer.ggml.eos_token_id", V::U32(999));
    let err = convert_err(&g);
    assert!(
        matches!(err, ConvertError::InvalidTokenizer { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("tokenizer.ggml.eos_token_id"),
        "{err}"
    );
    let g = tiny_llama(1, false).set("tokenizer.ggml.merges", strings(&["h e", "nospace"]));
    let err = convert_err(&g);
    assert!(err.to_string().contains("merge 1"), "{err}");
}

#[test]
fn empty_tensor_at_the_end_of_the_file() {
    // A tensor with a zero dimension needs no data, even when the data section would start
    // past the end of the file (no padding after the tensor infos).
    let g = Gguf::default().tensor("t.empty", &[0, 3], F32, vec![]);
    let mut bytes = g.build();
    let f = parse(&bytes).unwrap();
    bytes.truncate(f.data_start() as usize - 1);
    let f = parse(&bytes).unwrap();
    assert_eq!(f.tensor_data("t.empty").unwrap(), &[] as &[u8]);
    assert_eq!(f.dequantize("t.empty").unwrap(), Vec::<f32>::new());
    assert_eq!(f.tensor("t.empty").unwrap().shape(), [3, 0]);
}
