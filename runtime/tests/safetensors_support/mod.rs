//! Shared by the malformed-safetensors tests: files from a header string and data bytes, and
//! opening that checks every error names the file. Each test crate uses part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use iris_runtime::safetensors::{LoadError, SafetensorsFile, WeightStore};

/// A safetensors file from a header string and data bytes.
pub fn st_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Opens `bytes` written as `<case>.safetensors`, expects an error, and checks that its message
/// names the file and every string in `names`. The in-memory path must fail the same way.
pub fn open_err(case: &str, bytes: &[u8], names: &[&str]) -> LoadError {
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

pub const GOOD_ENTRY: &str =
    r#""good.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}"#;
