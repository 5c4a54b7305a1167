//! `GgufError`: every way a GGUF file can be unreadable, and every way a tensor can fail to
//! dequantize. Each variant names the file and, where the problem belongs to one metadata key
//! or tensor, that key or tensor. Messages are self-contained (an inner I/O error is part of
//! the message), so printing the error alone says everything.

use std::path::PathBuf;

use super::dequant::DequantError;
use super::types::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// Opening, reading or mapping the file failed.
    #[error("{}: cannot {action}: {error}", .file.display())]
    Io {
        file: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },

    #[error("{}: not a GGUF file: starts with {found:?}, expected \"GGUF\"", .file.display())]
    BadMagic { file: PathBuf, found: Vec<u8> },

    #[error("{}: unsupported GGUF version {version}{hint}; supported: 2, 3", .file.display())]
    UnsupportedVersion {
        file: PathBuf,
        version: u32,
        /// A note for versions that look like a big-endian file.
        hint: &'static str,
    },

    /// The file ends inside `what`.
    #[error(
        "{}: truncated: {what} needs {needed} bytes at offset {offset}, but the file is {file_len} bytes",
        .file.display()
    )]
    Truncated {
        file: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },

    /// A count or length that cannot fit in what is left of the file (e.g. a string length of
    /// 2^60): refused before anything is allocated for it.
    #[error(
        "{}: {what} is {count}, more than the {remaining} bytes left in the file can hold",
        .file.display()
    )]
    CountTooLarge {
        file: PathBuf,
        what: String,
        count: u64,
        remaining: u64,
    },

    #[error("{}: {what} is not valid UTF-8: {error}", .file.display())]
    InvalidUtf8 {
        file: PathBuf,
        what: String,
        error: std::str::Utf8Error,
    },

    #[error("{}: metadata key `{key}`: unknown value type {value_type}", .file.display())]
    UnknownValueType {
        file: PathBuf,
        key: String,
        value_type: u32,
    },

    #[error("{}: metadata key `{key}`: bool byte is {value}, expected 0 or 1", .file.display())]
    InvalidBool {
        file: PathBuf,
        key: String,
        value: u8,
    },

    #[error("{}: metadata key `{key}`: arrays nested deeper than {limit} levels", .file.display())]
    NestingTooDeep {
        file: PathBuf,
        key: String,
        limit: usize,
    },

    #[error("{}: metadata key `{key}` appears twice", .file.display())]
    DuplicateKey { file: PathBuf, key: String },

    #[error("{}: tensor `{tensor}` appears twice", .file.display())]
    DuplicateTensor { file: PathBuf, tensor: String },

    #[error("{}: tensor `{tensor}` has {n_dims} dimensions; expected 1 to 4", .file.display())]
    InvalidDims {
        file: PathBuf,
        tensor: String,
        n_dims: u32,
    },

    /// The element count (or byte size) of a tensor overflows 63 bits.
    #[error("{}: tensor `{tensor}`: shape {dims:?} (ggml order) is too large", .file.display())]
    ShapeOverflow {
        file: PathBuf,
        tensor: String,
        dims: Vec<u64>,
    },

    #[error("{}: tensor `{tensor}` has unknown ggml type id {type_id}", .file.display())]
    UnknownTensorType {
        file: PathBuf,
        tensor: String,
        type_id: u32,
    },

    /// Dequantizing a tensor failed (for a file that parsed, only ever an unsupported type).
    #[error("{}: tensor `{tensor}`: {error}", .file.display())]
    Dequant {
        file: PathBuf,
        tensor: String,
        error: DequantError,
    },

    /// A row (the innermost dimension) that is not a whole number of quantization blocks.
    #[error(
        "{}: tensor `{tensor}`: {ggml_type} rows must be a multiple of {block} elements, got {row}",
        .file.display()
    )]
    BlockMismatch {
        file: PathBuf,
        tensor: String,
        ggml_type: GgmlType,
        row: u64,
        block: u64,
    },

    /// `general.alignment` is not a non-zero power of two stored as u32.
    #[error("{}: metadata key `general.alignment`: {problem}", .file.display())]
    BadAlignment { file: PathBuf, problem: String },

    #[error(
        "{}: tensor `{tensor}`: data offset {offset} is not a multiple of the alignment {alignment}",
        .file.display()
    )]
    MisalignedTensor {
        file: PathBuf,
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error(
        "{}: tensor `{tensor}`: data [{offset}, {offset} + {len}) runs past the end of the data section ({data_len} bytes)",
        .file.display()
    )]
    TensorOutOfRange {
        file: PathBuf,
        tensor: String,
        offset: u64,
        len: u64,
        data_len: u64,
    },

    #[error("{}: tensors `{first}` and `{second}` overlap", .file.display())]
    OverlappingTensors {
        file: PathBuf,
        first: String,
        second: String,
    },

    #[error("{}: no tensor named `{tensor}`", .file.display())]
    MissingTensor { file: PathBuf, tensor: String },

    #[error("{}: required metadata key `{key}` is missing", .file.display())]
    MissingKey { file: PathBuf, key: String },

    #[error("{}: metadata key `{key}` is {found}, expected {expected}", .file.display())]
    WrongValueType {
        file: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
}
