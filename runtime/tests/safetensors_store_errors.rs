//! Safetensors errors beyond one file's bytes, each a typed `LoadError` naming the file or
//! folder and the tensor: dtypes iris does not hold, missing paths and folders, malformed
//! shard indexes, and lookups that miss or disagree with what the caller expects.

mod safetensors_support;

use std::fs;
use std::path::PathBuf;

use iris_runtime::safetensors::{FileDType, LoadError, SafetensorsFile, WeightStore};
use iris_runtime::DType;
use safetensors_support::{st_bytes, write};

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
