//! `LoadError`: every way a safetensors file or a sharded checkpoint can be unreadable.
//!
//! Each variant names the file (`file`, or `index` for the shard index) and, where the problem
//! belongs to one tensor, the tensor. Messages are self-contained: an inner I/O or JSON error
//! is part of the message (not a `source()`), so printing the error alone says everything.

use std::path::PathBuf;

use super::dtype::FileDType;
use crate::dtype::DType;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Opening, reading or mapping a file failed.
    #[error("{}: cannot {action}: {error}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },

    /// The file is shorter than the 8-byte header length that starts every safetensors file.
    #[error("{}: file is {len} bytes, too short for the 8-byte header length", .file.display())]
    TooShort { file: PathBuf, len: u64 },

    /// The header length points past the end of the file.
    #[error(
        "{}: header length {header_len} runs past the end of the file ({file_len} bytes)",
        .file.display()
    )]
    HeaderPastEnd {
        file: PathBuf,
        header_len: u64,
        file_len: u64,
    },

    /// The header is larger than [`super::MAX_HEADER_LEN`].
    #[error("{}: header length {header_len} exceeds the limit of {limit} bytes", .file.display())]
    HeaderTooLarge {
        file: PathBuf,
        header_len: u64,
        limit: usize,
    },

    #[error("{}: header is not valid UTF-8: {error}", .file.display())]
    HeaderUtf8 {
        file: PathBuf,
        error: std::str::Utf8Error,
    },

    /// The header is not JSON; the message carries serde_json's line and column.
    #[error("{}: header is not valid JSON: {error}", .file.display())]
    HeaderJson {
        file: PathBuf,
        error: serde_json::Error,
    },

    #[error("{}: header is {found}, expected a JSON object of tensors", .file.display())]
    HeaderNotObject { file: PathBuf, found: String },

    #[error(
        "{}: tensor `{tensor}`: entry is {found}, expected an object with dtype, shape and data_offsets",
        .file.display()
    )]
    EntryNotObject {
        file: PathBuf,
        tensor: String,
        found: String,
    },

    #[error("{}: tensor `{tensor}`: missing field `{field}`", .file.display())]
    MissingField {
        file: PathBuf,
        tensor: String,
        field: &'static str,
    },

    /// A field is present but of the wrong form (e.g. a negative dimension).
    #[error("{}: tensor `{tensor}`: field `{field}` {problem}", .file.display())]
    InvalidField {
        file: PathBuf,
        tensor: String,
        field: &'static str,
        problem: String,
    },

    /// `__metadata__` is not an object of strings.
    #[error("{}: `__metadata__` {problem}", .file.display())]
    InvalidMetadata { file: PathBuf, problem: String },

    /// The same key appears twice in the raw JSON (header or index `weight_map`).
    #[error("{}: tensor `{tensor}` is listed more than once", .file.display())]
    DuplicateTensor { file: PathBuf, tensor: String },

    /// A dtype string that is not a safetensors dtype at all.
    #[error("{}: tensor `{tensor}`: unknown dtype `{dtype}`", .file.display())]
    UnknownDType {
        file: PathBuf,
        tensor: String,
        dtype: String,
    },

    #[error(
        "{}: tensor `{tensor}`: data_offsets [{start}, {end}] are reversed (start > end)",
        .file.display()
    )]
    ReversedOffsets {
        file: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
    },

    #[error(
        "{}: tensor `{tensor}`: data_offsets [{start}, {end}] run past the end of the data section ({data_len} bytes)",
        .file.display()
    )]
    OffsetsOutOfRange {
        file: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        data_len: u64,
    },

    /// Two tensors share bytes.
    #[error(
        "{}: tensor `{tensor}` (bytes {start}..{end}) overlaps tensor `{other}` (bytes {other_start}..{other_end})",
        .file.display()
    )]
    Overlap {
        file: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
    },

    /// `dtype x shape` needs a different number of bytes than `data_offsets` span.
    #[error(
        "{}: tensor `{tensor}`: {dtype} x {shape:?} needs {expected} bytes, but data_offsets span {actual}",
        .file.display()
    )]
    SizeMismatch {
        file: PathBuf,
        tensor: String,
        dtype: FileDType,
        shape: Vec<usize>,
        expected: u64,
        actual: u64,
    },

    /// The element count (of the non-zero dims) or the byte size does not fit in 64 bits.
    #[error("{}: tensor `{tensor}`: the size of {dtype} x {shape:?} overflows", .file.display())]
    SizeOverflow {
        file: PathBuf,
        tensor: String,
        dtype: FileDType,
        shape: Vec<usize>,
    },

    /// A sub-byte dtype (F4, F6) whose elements do not fill whole bytes.
    #[error(
        "{}: tensor `{tensor}`: {dtype} x {shape:?} is not a whole number of bytes",
        .file.display()
    )]
    PartialByte {
        file: PathBuf,
        tensor: String,
        dtype: FileDType,
        shape: Vec<usize>,
    },

    /// A valid safetensors dtype that iris tensors cannot hold (F64, I8, BOOL, F8_*, ...):
    /// listed by `info`, refused by `get`.
    #[error(
        "{}: tensor `{tensor}` has dtype {dtype}, which iris cannot load (supported: F32, F16, BF16, I32, I64, U8)",
        .file.display()
    )]
    UnsupportedDType {
        file: PathBuf,
        tensor: String,
        dtype: FileDType,
    },

    #[error("{}: no tensor named `{tensor}`", .file.display())]
    TensorNotFound { file: PathBuf, tensor: String },

    /// `get_expect` found another dtype.
    #[error("{}: tensor `{tensor}`: expected dtype {expected}, found {found}", .file.display())]
    DTypeMismatch {
        file: PathBuf,
        tensor: String,
        expected: DType,
        found: FileDType,
    },

    /// `get_expect` found another shape.
    #[error(
        "{}: tensor `{tensor}`: expected shape {expected:?}, found {found:?}",
        .file.display()
    )]
    ShapeMismatch {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// A folder with neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error(
        "{}: no weights found (looked for model.safetensors and model.safetensors.index.json)",
        .dir.display()
    )]
    NoWeights { dir: PathBuf },

    /// The shard index is not JSON; the message carries serde_json's line and column.
    #[error("{}: index is not valid JSON: {error}", .index.display())]
    IndexJson {
        index: PathBuf,
        error: serde_json::Error,
    },

    /// The shard index is JSON of the wrong form (no `weight_map`, a non-string shard, ...).
    #[error("{}: {problem}", .index.display())]
    InvalidIndex { index: PathBuf, problem: String },

    /// A shard named by the index does not exist.
    #[error(
        "{}: shard `{shard}` (holding tensor `{tensor}`) is missing: {error}",
        .index.display()
    )]
    MissingShard {
        index: PathBuf,
        shard: String,
        tensor: String,
        error: std::io::Error,
    },

    /// The index maps a tensor to a shard that does not contain it.
    #[error(
        "{}: tensor `{tensor}` is mapped to shard `{shard}`, which does not contain it",
        .index.display()
    )]
    IndexTensorMissing {
        index: PathBuf,
        shard: String,
        tensor: String,
    },
}
