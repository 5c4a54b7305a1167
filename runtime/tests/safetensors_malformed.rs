//! Every malformed safetensors input is its own typed `LoadError` whose message names the file
//! and the tensor. Each case writes bad bytes by hand into a temp folder.

use std::fs;
use std::path::{Path, PathBuf};

use iris_runtime::safetensors::{FileDType, LoadError, SafetensorsFile, WeightStore};
use iris_runtime::DType;

/// A safetensors file from a header string and data bytes.
fn st_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Opens `bytes` written as `<case>.safetensors`, expects an error, and checks that its message
/// names the file and every string in `names`. The in-memory path must fail the same way.
fn open_err(case: &str, bytes: &[u8], names: &[&str]) -> LoadError {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("{case}.safetensors");
    let path = write(dir.path(), &file, bytes);
    let err = WeightStore::open(&path).expect_err("malformed file opened");
    let msg = err.to_string();
    assert!(msg.contains(&file), "message does not name the file: {msg}");
    for name in names {
        assert!(msg.contains(name), "message does not name `{name}`: {msg}");
    }
    let mem = SafetensorsFile::from_bytes(&file, bytes).expect_err("malformed bytes parsed");
    assert_eq!(
        mem.to_string(),
        msg.replace(&path.display().to_string(), &file)
    );
    // The runtime's umbrella error shows the same message.
    assert_eq!(
        iris_runtime::Error::from(mem).to_string(),
        msg.replace(&path.display().to_string(), &file)
    );
    err
}

const GOOD_ENTRY: &str = r#""good.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}"#;

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
fn valid_dtypes_iris_does_not_hold_are_listed_but_not_loaded() {
    let header = r#"{
        "f64": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},
        "i8": {"dtype": "I8", "shape": [2], "data_offsets": [16, 18]},
        "mask": {"dtype": "BOOL", "shape": [2], "data_offsets": [18, 20]},
        "fp8": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [20, 22]},
        "ok": {"dtype": "U8", "shape": [2], "data_offsets": [22, 24]}
    }"#;
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "exotic.safetensors",
        &st_bytes(header, &[7; 24]),
    );
    let store = WeightStore::open(&path).unwrap();
    assert_eq!(
        store.names().collect::<Vec<_>>(),
        ["f64", "i8", "mask", "fp8", "ok"]
    );
    for (name, dtype) in [
        ("f64", FileDType::F64),
        ("i8", FileDType::I8),
        ("mask", FileDType::BOOL),
        ("fp8", FileDType::F8_E4M3),
    ] {
        assert_eq!(store.info(name).unwrap().dtype, dtype);
        assert_eq!(
            store.bytes(name).unwrap().len(),
            store.info(name).unwrap().byte_len()
        );
        let err = store.get(name).unwrap_err();
        assert!(
            matches!(err, LoadError::UnsupportedDType { dtype: d, .. } if d == dtype),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("exotic.safetensors") && msg.contains(&format!("`{name}`")),
            "{msg}"
        );
        assert!(msg.contains(dtype.name()), "{msg}");
    }
    assert_eq!(store.get("ok").unwrap().to_vec_f32(), [7.0, 7.0]);
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

#[test]
fn io_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.safetensors");
    let err = WeightStore::open(&path).unwrap_err();
    assert!(
        matches!(err, LoadError::Io { ref error, .. } if error.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(err.to_string().contains("nowhere.safetensors"), "{err}");
    let err = SafetensorsFile::open(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
}

#[test]
fn folder_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("empty_model");
    fs::create_dir(&folder).unwrap();
    let err = WeightStore::open(&folder).unwrap_err();
    assert!(matches!(err, LoadError::NoWeights { .. }), "{err:?}");
    assert!(err.to_string().contains("empty_model"), "{err}");
}

/// A folder with a shard index and the given shards (name, bytes).
fn sharded(index: &str, shards: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("sharded_model");
    fs::create_dir(&folder).unwrap();
    write(&folder, "model.safetensors.index.json", index.as_bytes());
    for (name, bytes) in shards {
        write(&folder, name, bytes);
    }
    (dir, folder)
}

fn shard_a() -> Vec<u8> {
    st_bytes(
        r#"{"a.weight": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}"#,
        &[1, 2],
    )
}

fn index_err(index: &str, shards: &[(&str, Vec<u8>)], names: &[&str]) -> LoadError {
    let (_dir, folder) = sharded(index, shards);
    let err = WeightStore::open(&folder).expect_err("malformed checkpoint opened");
    let msg = err.to_string();
    for name in names {
        assert!(msg.contains(name), "message does not name `{name}`: {msg}");
    }
    err
}

#[test]
fn missing_shard_file() {
    let index =
        r#"{"weight_map": {"a.weight": "shard-a.safetensors", "b.weight": "shard-b.safetensors"}}"#;
    let err = index_err(
        index,
        &[("shard-a.safetensors", shard_a())],
        &[
            "model.safetensors.index.json",
            "shard-b.safetensors",
            "b.weight",
        ],
    );
    assert!(matches!(err, LoadError::MissingShard { .. }), "{err:?}");
}

#[test]
fn index_json_malformed() {
    let err = index_err(
        r#"{"weight_map": {"a.weight": "shard-a.safetensors",}}"#,
        &[],
        &["model.safetensors.index.json", "line 1 column"],
    );
    assert!(matches!(err, LoadError::IndexJson { .. }), "{err:?}");
}

#[test]
fn index_of_the_wrong_form() {
    let cases: [(&str, &[&str]); 4] = [
        (r#"{"metadata": {}}"#, &["weight_map"]),
        (r#"[1, 2]"#, &["not a shard index"]),
        (r#"{"weight_map": ["a.weight"]}"#, &["not a shard index"]),
        (
            r#"{"weight_map": {"a.weight": 3}}"#,
            &["a.weight", "number"],
        ),
    ];
    for (index, names) in cases {
        let err = index_err(index, &[("shard-a.safetensors", shard_a())], names);
        assert!(matches!(err, LoadError::InvalidIndex { .. }), "{err:?}");
        assert!(
            err.to_string().contains("model.safetensors.index.json"),
            "{err}"
        );
    }
    let index = r#"{"weight_map": {"a.weight": "../shard-a.safetensors"}}"#;
    let err = index_err(index, &[], &["a.weight", "../shard-a.safetensors"]);
    assert!(matches!(err, LoadError::InvalidIndex { .. }), "{err:?}");
}

#[test]
fn index_duplicate_tensor() {
    let index =
        r#"{"weight_map": {"a.weight": "shard-a.safetensors", "a.weight": "shard-a.safetensors"}}"#;
    let err = index_err(
        index,
        &[("shard-a.safetensors", shard_a())],
        &["model.safetensors.index.json", "a.weight"],
    );
    assert!(matches!(err, LoadError::DuplicateTensor { .. }), "{err:?}");
}

#[test]
fn index_names_a_tensor_its_shard_lacks() {
    let index = r#"{"weight_map": {"a.weight": "shard-a.safetensors", "ghost.weight": "shard-a.safetensors"}}"#;
    let err = index_err(
        index,
        &[("shard-a.safetensors", shard_a())],
        &[
            "model.safetensors.index.json",
            "ghost.weight",
            "shard-a.safetensors",
        ],
    );
    assert!(
        matches!(err, LoadError::IndexTensorMissing { .. }),
        "{err:?}"
    );
}

#[test]
fn malformed_shard_names_the_shard() {
    let index = r#"{"weight_map": {"a.weight": "shard-a.safetensors"}}"#;
    let err = index_err(
        index,
        &[("shard-a.safetensors", vec![1, 2, 3])],
        &["shard-a.safetensors"],
    );
    assert!(matches!(err, LoadError::TooShort { .. }), "{err:?}");
}

#[test]
fn unknown_tensor_and_expectation_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}"#;
    let path = write(
        dir.path(),
        "expect.safetensors",
        &st_bytes(header, &[1; 12]),
    );
    let store = WeightStore::open(&path).unwrap();

    let err = store.get("missing.weight").unwrap_err();
    assert!(matches!(err, LoadError::TensorNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("missing.weight")
            && err.to_string().contains("expect.safetensors")
    );

    let err = store
        .get_expect("w", Some(DType::F32), &[2, 3])
        .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::DTypeMismatch {
                expected: DType::F32,
                found: FileDType::BF16,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("`w`"), "{err}");

    let err = store.get_expect("w", None, &[3, 2]).unwrap_err();
    assert!(matches!(err, LoadError::ShapeMismatch { .. }), "{err:?}");
    assert!(
        err.to_string().contains("[3, 2]") && err.to_string().contains("[2, 3]"),
        "{err}"
    );

    let t = store.get_expect("w", Some(DType::BF16), &[2, 3]).unwrap();
    assert_eq!(t.dims(), &[2, 3]);
}
