//! Every malformed safetensors file is its own typed `LoadError` whose message names the file
//! and the tensor: header, entry and data-offset errors of one file. Folder, shard-index and
//! lookup errors are in `safetensors_store_errors.rs`. Each case writes bad bytes by hand
//! into a temp folder.

mod safetensors_support;

use std::fs;

use iris_runtime::safetensors::{LoadError, SafetensorsFile, WeightStore};
use safetensors_support::{open_err, st_bytes, GOOD_ENTRY};

#[test]
fn file_shorter_than_eight_bytes() {
    let err = open_err("too_short", &[1, 0, 0], &[]);
    assert!(matches!(err, LoadError::TooShort { len: 3, .. }), "{err:?}");
    let err = open_err("empty", &[], &[]);
    assert!(matches!(err, LoadError::TooShort { len: 0, .. }), "{err:?}");
}

#[test]
fn header_length_past_end_of_file() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let err = open_err("past_end", &bytes, &["1000"]);
    assert!(
        matches!(
            err,
            LoadError::HeaderPastEnd {
                header_len: 1000,
                file_len: 10,
                ..
            }
        ),
        "{err:?}"
    );
    // A length so large that `8 + len` would overflow.
    let err = open_err("huge_len", &u64::MAX.to_le_bytes(), &[]);
    assert!(matches!(err, LoadError::HeaderPastEnd { .. }), "{err:?}");
}

#[test]
fn header_length_above_limit() {
    // A sparse file just over the limit: the header length fits in the file but is refused
    // before any of it is read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("too_large.safetensors");
    let limit = iris_runtime::safetensors::MAX_HEADER_LEN as u64;
    let file = fs::File::create(&path).unwrap();
    file.set_len(limit + 16).unwrap();
    drop(file);
    let mut head = fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Write::write_all(&mut head, &(limit + 1).to_le_bytes()).unwrap();
    drop(head);
    let err = WeightStore::open(&path).unwrap_err();
    assert!(matches!(err, LoadError::HeaderTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("too_large.safetensors"), "{err}");
}

#[test]
fn header_not_utf8() {
    let mut bytes = 4u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[b'{', 0xff, 0xfe, b'}']);
    let err = open_err("not_utf8", &bytes, &["UTF-8"]);
    assert!(matches!(err, LoadError::HeaderUtf8 { .. }), "{err:?}");
}

#[test]
fn header_not_json() {
    let err = open_err(
        "not_json",
        &st_bytes(r#"{"w": {"dtype": "F32",,}}"#, &[]),
        &["line 1 column"],
    );
    assert!(matches!(err, LoadError::HeaderJson { .. }), "{err:?}");
    let err = open_err("truncated_json", &st_bytes(r#"{"w": "#, &[]), &["line 1"]);
    assert!(matches!(err, LoadError::HeaderJson { .. }), "{err:?}");
}

#[test]
fn header_not_an_object() {
    let err = open_err("array_header", &st_bytes("[1, 2, 3]", &[]), &["array"]);
    assert!(matches!(err, LoadError::HeaderNotObject { .. }), "{err:?}");
    let err = open_err("string_header", &st_bytes(r#""weights""#, &[]), &["string"]);
    assert!(matches!(err, LoadError::HeaderNotObject { .. }), "{err:?}");
}

#[test]
fn entry_not_an_object() {
    let header = format!(r#"{{{GOOD_ENTRY}, "bad.entry": [1, 2]}}"#);
    let err = open_err("entry_array", &st_bytes(&header, &[0; 8]), &["bad.entry"]);
    assert!(matches!(err, LoadError::EntryNotObject { .. }), "{err:?}");
}

#[test]
fn entry_missing_a_field() {
    let cases = [
        ("dtype", r#"{"shape": [2], "data_offsets": [0, 8]}"#),
        ("shape", r#"{"dtype": "F32", "data_offsets": [0, 8]}"#),
        ("data_offsets", r#"{"dtype": "F32", "shape": [2]}"#),
    ];
    for (field, entry) in cases {
        let header = format!(r#"{{"layer.{field}_less": {entry}}}"#);
        let tensor = format!("layer.{field}_less");
        let err = open_err(
            &format!("missing_{field}"),
            &st_bytes(&header, &[0; 8]),
            &[&tensor, field],
        );
        match err {
            LoadError::MissingField {
                field: f,
                ref tensor,
                ..
            } => {
                assert_eq!(f, field);
                assert_eq!(tensor, &format!("layer.{field}_less"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn entry_field_of_the_wrong_form() {
    let cases = [
        (
            "dtype",
            r#"{"dtype": 32, "shape": [2], "data_offsets": [0, 8]}"#,
        ),
        (
            "shape",
            r#"{"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}"#,
        ),
        (
            "shape",
            r#"{"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}"#,
        ),
        (
            "shape",
            r#"{"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}"#,
        ),
        (
            "data_offsets",
            r#"{"dtype": "F32", "shape": [2], "data_offsets": [8]}"#,
        ),
        (
            "data_offsets",
            r#"{"dtype": "F32", "shape": [2], "data_offsets": [0, -8]}"#,
        ),
        (
            "data_offsets",
            r#"{"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]}"#,
        ),
    ];
    for (i, (field, entry)) in cases.into_iter().enumerate() {
        let header = format!(r#"{{"odd.tensor": {entry}}}"#);
        let err = open_err(
            &format!("wrong_form_{i}"),
            &st_bytes(&header, &[0; 8]),
            &["odd.tensor", field],
        );
        assert!(
            matches!(err, LoadError::InvalidField { field: f, .. } if f == field),
            "{err:?}"
        );
    }
}

#[test]
fn metadata_not_a_string_map() {
    let header = format!(r#"{{"__metadata__": {{"format": "pt", "step": 5}}, {GOOD_ENTRY}}}"#);
    let err = open_err(
        "metadata_number",
        &st_bytes(&header, &[0; 8]),
        &["__metadata__", "step"],
    );
    assert!(matches!(err, LoadError::InvalidMetadata { .. }), "{err:?}");
    let header = format!(r#"{{"__metadata__": ["pt"], {GOOD_ENTRY}}}"#);
    let err = open_err(
        "metadata_array",
        &st_bytes(&header, &[0; 8]),
        &["__metadata__"],
    );
    assert!(matches!(err, LoadError::InvalidMetadata { .. }), "{err:?}");
}

#[test]
fn data_offsets_reversed() {
    let header = r#"{"rev.weight": {"dtype": "U8", "shape": [4], "data_offsets": [8, 4]}}"#;
    let err = open_err("reversed", &st_bytes(header, &[0; 8]), &["rev.weight"]);
    assert!(
        matches!(
            err,
            LoadError::ReversedOffsets {
                start: 8,
                end: 4,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn data_offsets_past_the_data_section() {
    let header = format!(
        r#"{{{GOOD_ENTRY}, "far.weight": {{"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}}}"#
    );
    let err = open_err(
        "out_of_range",
        &st_bytes(&header, &[0; 12]),
        &["far.weight", "12 bytes"],
    );
    assert!(
        matches!(
            err,
            LoadError::OffsetsOutOfRange {
                end: 16,
                data_len: 12,
                ..
            }
        ),
        "{err:?}"
    );
    // Offsets near u64::MAX must not wrap.
    let header = r#"{"wrap.weight": {"dtype": "U8", "shape": [1], "data_offsets": [18446744073709551615, 18446744073709551615]}}"#;
    let err = open_err("offset_wrap", &st_bytes(header, &[0; 4]), &["wrap.weight"]);
    assert!(
        matches!(err, LoadError::OffsetsOutOfRange { .. }),
        "{err:?}"
    );
}

#[test]
fn overlapping_tensors() {
    let header = r#"{
        "a.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b.weight": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}
    }"#;
    let err = open_err(
        "overlap",
        &st_bytes(header, &[0; 20]),
        &["a.weight", "b.weight"],
    );
    assert!(matches!(err, LoadError::Overlap { .. }), "{err:?}");
    // One tensor inside another, listed first.
    let header = r#"{
        "inner": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
        "outer": {"dtype": "U8", "shape": [10], "data_offsets": [0, 10]}
    }"#;
    let err = open_err("nested", &st_bytes(header, &[0; 10]), &["inner", "outer"]);
    assert!(matches!(err, LoadError::Overlap { .. }), "{err:?}");
}

#[test]
fn zero_sized_tensors_do_not_overlap() {
    let header = r#"{
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]}
    }"#;
    let file = SafetensorsFile::from_bytes("zero.safetensors", &st_bytes(header, &[0; 8])).unwrap();
    assert_eq!(file.get("empty").unwrap().numel(), 0);
}

#[test]
fn byte_size_not_matching_dtype_and_shape() {
    let header = r#"{"proj.weight": {"dtype": "BF16", "shape": [3, 5], "data_offsets": [0, 32]}}"#;
    let err = open_err(
        "size_mismatch",
        &st_bytes(header, &[0; 32]),
        &["proj.weight", "30", "32"],
    );
    assert!(
        matches!(
            err,
            LoadError::SizeMismatch {
                expected: 30,
                actual: 32,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn shape_product_overflow() {
    let header = r#"{"huge.weight": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}"#;
    let err = open_err(
        "overflow",
        &st_bytes(header, &[]),
        &["huge.weight", "overflow"],
    );
    assert!(matches!(err, LoadError::SizeOverflow { .. }), "{err:?}");
    // Element count fits, byte count does not.
    let header = r#"{"wide.weight": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 0]}}"#;
    let err = open_err("byte_overflow", &st_bytes(header, &[]), &["wide.weight"]);
    assert!(matches!(err, LoadError::SizeOverflow { .. }), "{err:?}");
    // A zero dim makes it empty, but the other dims still overflow: refused, so no later
    // stride or element-count arithmetic can overflow.
    let header = r#"{"zero.weight": {"dtype": "U8", "shape": [4294967296, 4294967296, 0], "data_offsets": [0, 0]}}"#;
    let err = open_err("zero_overflow", &st_bytes(header, &[]), &["zero.weight"]);
    assert!(matches!(err, LoadError::SizeOverflow { .. }), "{err:?}");
}

#[test]
fn sub_byte_dtype_with_a_partial_byte() {
    let header = r#"{"packed": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}"#;
    let err = open_err(
        "partial_byte",
        &st_bytes(header, &[0; 2]),
        &["packed", "F4"],
    );
    assert!(matches!(err, LoadError::PartialByte { .. }), "{err:?}");
}

#[test]
fn unknown_dtype_string() {
    for (i, dtype) in ["Q4_K", "f32", "F8_E4M3X", ""].into_iter().enumerate() {
        let header = format!(
            r#"{{"quant.weight": {{"dtype": "{dtype}", "shape": [2], "data_offsets": [0, 2]}}}}"#
        );
        let quoted = format!("`{dtype}`");
        let err = open_err(
            &format!("unknown_dtype_{i}"),
            &st_bytes(&header, &[0; 2]),
            &["quant.weight", &quoted],
        );
        assert!(
            matches!(err, LoadError::UnknownDType { dtype: ref d, .. } if d == dtype),
            "{err:?}"
        );
    }
}

#[test]
fn duplicate_tensor_names() {
    let header = r#"{
        "dup.weight": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
        "other": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
        "dup.weight": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}
    }"#;
    let err = open_err("duplicate", &st_bytes(header, &[0; 6]), &["dup.weight"]);
    assert!(
        matches!(err, LoadError::DuplicateTensor { ref tensor, .. } if tensor == "dup.weight"),
        "{err:?}"
    );
}
