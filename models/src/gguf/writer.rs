//! Output files for the converter: a streaming safetensors writer (one tensor in memory at a
//! time) and small files written whole. Everything goes to a hidden `.NAME.partial` first and
//! is renamed into place once complete and synced, so an interrupted conversion never leaves a
//! truncated file under its final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::convert::ConvertError;

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> ConvertError {
    let path = path.to_path_buf();
    move |error| ConvertError::Io {
        path,
        action,
        error,
    }
}

/// `DIR/.NAME.partial`.
fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.partial"))
}

/// Writes `bytes` to `dir/name` through a synced temporary file and a rename.
pub(crate) fn write_file_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<u64, ConvertError> {
    let partial = partial_path(dir, name);
    let mut file = File::create(&partial).map_err(io_error(&partial, "create"))?;
    file.write_all(bytes).map_err(io_error(&partial, "write"))?;
    file.sync_all().map_err(io_error(&partial, "sync"))?;
    drop(file);
    let target = dir.join(name);
    std::fs::rename(&partial, &target).map_err(io_error(&target, "rename into place"))?;
    Ok(bytes.len() as u64)
}

/// One tensor of the file to be written: its header entry.
pub(crate) struct Entry {
    pub name: String,
    /// Safetensors dtype string (`F32`, `BF16`).
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub n_bytes: u64,
}

/// The safetensors header for `entries`, laid out in the given order: the 8-byte length,
/// then the JSON padded with spaces to a multiple of 8 so every tensor stays 8-byte aligned.
pub(crate) fn safetensors_header(entries: &[Entry]) -> Vec<u8> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({ "format": "pt" }));
    let mut offset = 0u64;
    for e in entries {
        header.insert(
            e.name.clone(),
            json!({
                "dtype": e.dtype,
                "shape": e.shape,
                "data_offsets": [offset, offset + e.n_bytes],
            }),
        );
        offset += e.n_bytes;
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out
}

/// Streams a safetensors file: the header up front, then each tensor's bytes in order.
pub(crate) struct SafetensorsWriter {
    dir: PathBuf,
    name: String,
    partial: PathBuf,
    out: BufWriter<File>,
    sizes: Vec<(String, u64)>,
    next: usize,
    written: u64,
}

impl SafetensorsWriter {
    pub fn create(dir: &Path, name: &str, entries: &[Entry]) -> Result<Self, ConvertError> {
        let partial = partial_path(dir, name);
        let file = File::create(&partial).map_err(io_error(&partial, "create"))?;
        let mut out = BufWriter::with_capacity(8 << 20, file);
        let header = safetensors_header(entries);
        out.write_all(&header)
            .map_err(io_error(&partial, "write"))?;
        Ok(SafetensorsWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            partial,
            out,
            sizes: entries
                .iter()
                .map(|e| (e.name.clone(), e.n_bytes))
                .collect(),
            next: 0,
            written: header.len() as u64,
        })
    }

    /// Appends the next tensor's bytes; `name` and the size must match the header's order.
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<(), ConvertError> {
        match self.sizes.get(self.next) {
            Some((expected, len)) if expected == name && *len == bytes.len() as u64 => {}
            _ => {
                return Err(ConvertError::Internal(format!(
                    "tensor `{name}` ({} bytes) written out of the planned order",
                    bytes.len()
                )))
            }
        }
        self.out
            .write_all(bytes)
            .map_err(io_error(&self.partial, "write"))?;
        self.next += 1;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Flushes, syncs and renames the file into place; returns its size.
    pub fn finish(self) -> Result<u64, ConvertError> {
        if self.next != self.sizes.len() {
            return Err(ConvertError::Internal(format!(
                "{} of {} tensors written",
                self.next,
                self.sizes.len()
            )));
        }
        let file = self
            .out
            .into_inner()
            .map_err(|e| io_error(&self.partial, "write")(e.into_error()))?;
        file.sync_all().map_err(io_error(&self.partial, "sync"))?;
        drop(file);
        let target = self.dir.join(&self.name);
        std::fs::rename(&self.partial, &target).map_err(io_error(&target, "rename into place"))?;
        Ok(self.written)
    }
}
