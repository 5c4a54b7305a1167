//! GGUF (llama.cpp's model format): reading, dequantization, and conversion of a
//! llama-architecture file to a Hugging Face folder.
//!
//! - [`reader`]: [`GgufFile`] memory-maps and validates a file (header, metadata, tensor
//!   infos, data ranges); every malformed input is a typed [`GgufError`], never a panic.
//! - [`dequant`]: F32, F16, BF16, Q8_0, Q4_0, Q4_1 to f32, bit-exact with the `gguf` Python
//!   package (and so with transformers' GGUF loader).
//! - [`convert`]: [`convert_gguf`] writes `model.safetensors` (f32 or bf16), `config.json`,
//!   `generation_config.json`, `tokenizer.json` and `tokenizer_config.json`, undoing
//!   llama.cpp's Q/K row permutation as transformers does.
//! - [`tokenizer`]: the `tokenizer.json` transformers builds from a GGUF vocabulary.

pub mod convert;
mod convert_config;
mod convert_tensors;
pub mod dequant;
pub mod error;
pub mod reader;
mod reader_parser;
mod reader_tensor_info;
mod reader_values;
pub mod tokenizer;
pub mod types;
mod writer;

pub use convert::{
    convert_file, convert_gguf, ConvertError, ConvertOptions, ConvertSummary, OutDType,
};
pub use dequant::{dequantize, dequantize_into, DequantError, SUPPORTED};
pub use error::GgufError;
pub use reader::{GgufFile, TensorInfo};
pub use types::{GgmlType, MetadataArray, MetadataValue, ValueType};
