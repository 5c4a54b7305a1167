//! Malformed GGUF headers and metadata: one test per way the header, a key or a value can be
//! broken. Each must be refused with its typed error naming the file and the key — never a
//! panic, never a huge allocation. Tensor-info and data errors are in
//! `gguf_malformed_tensors.rs`, conversion errors in `gguf_convert_errors.rs`. Files are built
//! by hand with the test-side writer in `gguf_writer.rs`.

mod gguf_support;
mod gguf_writer;

use gguf_support::{base, find, parse, parse_err, NAME};
use gguf_writer::*;
use iris_models::gguf::{GgmlType, GgufError, GgufFile, MetadataArray, MetadataValue};

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
