//! Parsing and validating a safetensors header from the bytes of a whole file.
//!
//! Layout: `u64` little-endian header length `N`, `N` bytes of UTF-8 JSON, then the data
//! section. The JSON is an object mapping tensor names to
//! `{"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [start, end]}` (offsets relative
//! to the data section, `end` exclusive), plus an optional `"__metadata__"` object of strings.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::dtype::FileDType;
use super::error::LoadError;
use super::json::{describe, describe_text, first_duplicate, Pairs};
use super::TensorInfo;

/// Largest header accepted (the limit of the reference implementation): a bound on the JSON
/// parse of untrusted input, far above any real checkpoint's header.
pub const MAX_HEADER_LEN: usize = 100_000_000;

const METADATA_KEY: &str = "__metadata__";

/// What a valid header describes.
#[derive(Debug)]
pub(crate) struct Header {
    /// Byte offset of the data section in the file (`8 + N`).
    pub data_start: usize,
    /// Tensors in header order.
    pub tensors: Vec<TensorInfo>,
    pub metadata: BTreeMap<String, String>,
}

/// Validates `bytes`, the whole file named `file`. See the module docs of
/// [`crate::safetensors`] for the rules.
pub(crate) fn parse(file: &Arc<Path>, bytes: &[u8]) -> Result<Header, LoadError> {
    let path = || file.to_path_buf();
    let file_len = bytes.len() as u64;
    let Some(len_bytes) = bytes.first_chunk::<8>() else {
        return Err(LoadError::TooShort {
            file: path(),
            len: file_len,
        });
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    if header_len > file_len - 8 {
        return Err(LoadError::HeaderPastEnd {
            file: path(),
            header_len,
            file_len,
        });
    }
    if header_len > MAX_HEADER_LEN as u64 {
        return Err(LoadError::HeaderTooLarge {
            file: path(),
            header_len,
            limit: MAX_HEADER_LEN,
        });
    }
    // Both fit in usize: bounded by the length of `bytes`.
    let data_start = 8 + header_len as usize;
    let text = &bytes[8..data_start];
    let data_len = (bytes.len() - data_start) as u64;

    std::str::from_utf8(text).map_err(|error| LoadError::HeaderUtf8 {
        file: path(),
        error,
    })?;
    let pairs = match serde_json::from_slice::<Pairs<Value>>(text) {
        Ok(pairs) => pairs.0,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(LoadError::HeaderNotObject {
                file: path(),
                found: describe_text(text),
            });
        }
        Err(error) => {
            return Err(LoadError::HeaderJson {
                file: path(),
                error,
            })
        }
    };
    if let Some(name) = first_duplicate(&pairs) {
        return Err(LoadError::DuplicateTensor {
            file: path(),
            tensor: name.to_string(),
        });
    }

    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if name == METADATA_KEY {
            metadata = parse_metadata(file, value)?;
        } else {
            tensors.push(parse_entry(file, name, &value, data_len)?);
        }
    }
    check_overlaps(file, &tensors)?;
    Ok(Header {
        data_start,
        tensors,
        metadata,
    })
}

fn parse_metadata(file: &Path, value: Value) -> Result<BTreeMap<String, String>, LoadError> {
    let problem = |problem: String| LoadError::InvalidMetadata {
        file: file.to_path_buf(),
        problem,
    };
    let Value::Object(map) = value else {
        return Err(problem(format!(
            "is {}, expected an object of strings",
            describe(&value)
        )));
    };
    map.into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, s)),
            other => Err(problem(format!(
                "key `{key}` is {}, expected a string",
                describe(&other)
            ))),
        })
        .collect()
}

fn parse_entry(
    file: &Arc<Path>,
    name: String,
    value: &Value,
    data_len: u64,
) -> Result<TensorInfo, LoadError> {
    let path = || file.to_path_buf();
    let Some(entry) = value.as_object() else {
        return Err(LoadError::EntryNotObject {
            file: path(),
            tensor: name,
            found: describe(value),
        });
    };
    let field = |key: &'static str| {
        entry.get(key).ok_or_else(|| LoadError::MissingField {
            file: path(),
            tensor: name.clone(),
            field: key,
        })
    };
    let invalid = |key: &'static str, problem: String| LoadError::InvalidField {
        file: path(),
        tensor: name.clone(),
        field: key,
        problem,
    };

    let dtype = match field("dtype")? {
        Value::String(s) => FileDType::from_name(s).ok_or_else(|| LoadError::UnknownDType {
            file: path(),
            tensor: name.clone(),
            dtype: s.clone(),
        })?,
        other => {
            return Err(invalid(
                "dtype",
                format!("is {}, expected a string", describe(other)),
            ))
        }
    };

    let shape_value = field("shape")?;
    let Value::Array(dims) = shape_value else {
        return Err(invalid(
            "shape",
            format!(
                "is {}, expected an array of dimensions",
                describe(shape_value)
            ),
        ));
    };
    let mut shape = Vec::with_capacity(dims.len());
    for dim in dims {
        let d = dim
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| {
                invalid(
                    "shape",
                    format!("holds {}, expected non-negative integers", describe(dim)),
                )
            })?;
        shape.push(d);
    }

    let offsets_value = field("data_offsets")?;
    let offsets = match offsets_value {
        Value::Array(o) if o.len() == 2 => o[0].as_u64().zip(o[1].as_u64()),
        _ => None,
    };
    let Some((start, end)) = offsets else {
        return Err(invalid(
            "data_offsets",
            format!(
                "is {}, expected [start, end] as non-negative integers",
                describe(offsets_value)
            ),
        ));
    };
    if start > end {
        return Err(LoadError::ReversedOffsets {
            file: path(),
            tensor: name,
            start,
            end,
        });
    }
    if end > data_len {
        return Err(LoadError::OffsetsOutOfRange {
            file: path(),
            tensor: name,
            start,
            end,
            data_len,
        });
    }

    let expected = byte_size(dtype, &shape).map_err(|e| match e {
        SizeError::Overflow => LoadError::SizeOverflow {
            file: path(),
            tensor: name.clone(),
            dtype,
            shape: shape.clone(),
        },
        SizeError::PartialByte => LoadError::PartialByte {
            file: path(),
            tensor: name.clone(),
            dtype,
            shape: shape.clone(),
        },
    })?;
    if expected != end - start {
        return Err(LoadError::SizeMismatch {
            file: path(),
            tensor: name,
            dtype,
            shape,
            expected,
            actual: end - start,
        });
    }

    // Both offsets are at most `data_len`, which fits in usize.
    Ok(TensorInfo {
        name,
        dtype,
        shape,
        data_offsets: (start as usize, end as usize),
        file: file.clone(),
    })
}

enum SizeError {
    Overflow,
    PartialByte,
}

/// Bytes of `dtype x shape`. The product of the non-zero dims must fit even when a zero dim
/// makes the tensor empty: then every partial product (strides, element counts) fits in usize
/// and no later shape arithmetic can overflow.
fn byte_size(dtype: FileDType, shape: &[usize]) -> Result<u64, SizeError> {
    let mut nonzero: u64 = 1;
    for &d in shape.iter().filter(|&&d| d != 0) {
        nonzero = nonzero.checked_mul(d as u64).ok_or(SizeError::Overflow)?;
    }
    let bits = nonzero
        .checked_mul(dtype.bits())
        .ok_or(SizeError::Overflow)?;
    if bits / 8 > isize::MAX as u64 {
        return Err(SizeError::Overflow);
    }
    if shape.contains(&0) {
        return Ok(0);
    }
    if bits % 8 != 0 {
        return Err(SizeError::PartialByte);
    }
    Ok(bits / 8)
}

/// Rejects two tensors whose (non-empty) byte ranges intersect. Gaps between tensors and
/// bytes after the last one are accepted.
fn check_overlaps(file: &Path, tensors: &[TensorInfo]) -> Result<(), LoadError> {
    let mut ranges: Vec<(usize, usize, usize)> = tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.data_offsets.0 < t.data_offsets.1)
        .map(|(i, t)| (t.data_offsets.0, t.data_offsets.1, i))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((a_start, a_end, a), (b_start, b_end, b)) = (pair[0], pair[1]);
        if b_start < a_end {
            return Err(LoadError::Overlap {
                file: file.to_path_buf(),
                tensor: tensors[b].name.clone(),
                start: b_start as u64,
                end: b_end as u64,
                other: tensors[a].name.clone(),
                other_start: a_start as u64,
                other_end: a_end as u64,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_size_checks_overflow_even_with_a_zero_dim() {
        assert_eq!(byte_size(FileDType::F32, &[3, 5]).ok(), Some(60));
        assert_eq!(byte_size(FileDType::F32, &[]).ok(), Some(4));
        assert_eq!(byte_size(FileDType::F32, &[7, 0]).ok(), Some(0));
        assert_eq!(byte_size(FileDType::F4, &[3]).ok(), None);
        assert_eq!(byte_size(FileDType::F4, &[4]).ok(), Some(2));
        let big = 1usize << 40;
        assert!(matches!(
            byte_size(FileDType::U8, &[big, big, 0]),
            Err(SizeError::Overflow)
        ));
        assert!(matches!(
            byte_size(FileDType::U8, &[usize::MAX, 2]),
            Err(SizeError::Overflow)
        ));
    }
}
