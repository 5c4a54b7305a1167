//! Decoding one metadata value (scalars, strings, bools and nested arrays) at the parser's
//! cursor.

use super::error::GgufError;
use super::reader::MAX_ARRAY_NESTING;
use super::reader_parser::Parser;
use super::types::{MetadataArray, MetadataValue, ValueType};

impl<'a> Parser<'a> {
    pub(super) fn value(
        &mut self,
        type_id: u32,
        key: &str,
        depth: usize,
    ) -> Result<MetadataValue, GgufError> {
        let what = || format!("value of `{key}`");
        let value_type =
            ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value_type: type_id,
            })?;
        Ok(match value_type {
            ValueType::U8 => MetadataValue::U8(u8::from_le_bytes(self.array(&what)?)),
            ValueType::I8 => MetadataValue::I8(i8::from_le_bytes(self.array(&what)?)),
            ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(self.array(&what)?)),
            ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(self.array(&what)?)),
            ValueType::U32 => MetadataValue::U32(u32::from_le_bytes(self.array(&what)?)),
            ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(self.array(&what)?)),
            ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(self.array(&what)?)),
            ValueType::U64 => MetadataValue::U64(u64::from_le_bytes(self.array(&what)?)),
            ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(self.array(&what)?)),
            ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(self.array(&what)?)),
            ValueType::Bool => {
                let [b] = self.array(&what)?;
                MetadataValue::Bool(self.bool(b, key)?)
            }
            ValueType::String => MetadataValue::String(self.string(&what)?),
            ValueType::Array => MetadataValue::Array(self.array_value(key, depth)?),
        })
    }

    pub(super) fn bool(&self, byte: u8, key: &str) -> Result<bool, GgufError> {
        match byte {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value,
            }),
        }
    }

    /// An array's element type, count and elements; `depth` counts the enclosing arrays.
    pub(super) fn array_value(
        &mut self,
        key: &str,
        depth: usize,
    ) -> Result<MetadataArray, GgufError> {
        if depth >= MAX_ARRAY_NESTING {
            return Err(GgufError::NestingTooDeep {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                limit: MAX_ARRAY_NESTING,
            });
        }
        let type_id = self.u32(&|| format!("array element type of `{key}`"))?;
        let element_type =
            ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value_type: type_id,
            })?;
        let count = self.u64(&|| format!("array length of `{key}`"))?;
        let n = self.check_count(count, element_type.min_size(), &|| {
            format!("array length of `{key}`")
        })?;
        let what = || format!("elements of `{key}`");

        /// Fixed-size elements: one checked read of the whole run, then decode.
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                let bytes = self.take((n * SIZE) as u64, &what)?;
                MetadataArray::$variant(
                    bytes
                        .chunks_exact(SIZE)
                        .map(|c| {
                            let mut raw = [0u8; SIZE];
                            raw.copy_from_slice(c);
                            <$t>::from_le_bytes(raw)
                        })
                        .collect(),
                )
            }};
        }
        Ok(match element_type {
            ValueType::U8 => MetadataArray::U8(self.take(n as u64, &what)?.to_vec()),
            ValueType::I8 => fixed!(I8, i8),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => {
                let bytes = self.take(n as u64, &what)?;
                let values = bytes
                    .iter()
                    .map(|&b| self.bool(b, key))
                    .collect::<Result<_, _>>()?;
                MetadataArray::Bool(values)
            }
            ValueType::String => {
                let mut values = Vec::with_capacity(n);
                for j in 0..n {
                    values.push(self.string(&|| format!("element {j} of `{key}`"))?);
                }
                MetadataArray::String(values)
            }
            ValueType::Array => {
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(self.array_value(key, depth + 1)?);
                }
                MetadataArray::Array(values)
            }
        })
    }
}
