//! `FileDType`: every element type a safetensors file may declare. A superset of the
//! [`DType`]s iris tensors hold; the others can be listed but not loaded.

use std::fmt;

use crate::dtype::DType;

/// A safetensors dtype, spelled as in the file (`"F32"`, `"BF16"`, `"F8_E4M3"`, ...).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileDType {
    BOOL,
    F4,
    F6_E2M3,
    F6_E3M2,
    U8,
    I8,
    F8_E5M2,
    F8_E4M3,
    F8_E8M0,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    C64,
    F64,
    I64,
    U64,
}

impl FileDType {
    pub const ALL: [FileDType; 20] = [
        FileDType::BOOL,
        FileDType::F4,
        FileDType::F6_E2M3,
        FileDType::F6_E3M2,
        FileDType::U8,
        FileDType::I8,
        FileDType::F8_E5M2,
        FileDType::F8_E4M3,
        FileDType::F8_E8M0,
        FileDType::I16,
        FileDType::U16,
        FileDType::F16,
        FileDType::BF16,
        FileDType::I32,
        FileDType::U32,
        FileDType::F32,
        FileDType::C64,
        FileDType::F64,
        FileDType::I64,
        FileDType::U64,
    ];

    /// The name as written in a safetensors header.
    pub const fn name(self) -> &'static str {
        match self {
            FileDType::BOOL => "BOOL",
            FileDType::F4 => "F4",
            FileDType::F6_E2M3 => "F6_E2M3",
            FileDType::F6_E3M2 => "F6_E3M2",
            FileDType::U8 => "U8",
            FileDType::I8 => "I8",
            FileDType::F8_E5M2 => "F8_E5M2",
            FileDType::F8_E4M3 => "F8_E4M3",
            FileDType::F8_E8M0 => "F8_E8M0",
            FileDType::I16 => "I16",
            FileDType::U16 => "U16",
            FileDType::F16 => "F16",
            FileDType::BF16 => "BF16",
            FileDType::I32 => "I32",
            FileDType::U32 => "U32",
            FileDType::F32 => "F32",
            FileDType::C64 => "C64",
            FileDType::F64 => "F64",
            FileDType::I64 => "I64",
            FileDType::U64 => "U64",
        }
    }

    /// Parses a header dtype string; `None` for a string that is no safetensors dtype.
    pub fn from_name(name: &str) -> Option<FileDType> {
        FileDType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bits per element (4 and 6 for the packed float formats).
    pub const fn bits(self) -> u64 {
        match self {
            FileDType::F4 => 4,
            FileDType::F6_E2M3 | FileDType::F6_E3M2 => 6,
            FileDType::BOOL
            | FileDType::U8
            | FileDType::I8
            | FileDType::F8_E5M2
            | FileDType::F8_E4M3
            | FileDType::F8_E8M0 => 8,
            FileDType::I16 | FileDType::U16 | FileDType::F16 | FileDType::BF16 => 16,
            FileDType::I32 | FileDType::U32 | FileDType::F32 => 32,
            FileDType::C64 | FileDType::F64 | FileDType::I64 | FileDType::U64 => 64,
        }
    }

    /// The iris dtype of the same name, `None` for a type iris tensors do not hold.
    pub fn to_dtype(self) -> Option<DType> {
        DType::from_safetensors_name(self.name())
    }
}

impl From<DType> for FileDType {
    fn from(dtype: DType) -> Self {
        FileDType::from_name(dtype.as_str()).expect("every iris dtype is a safetensors dtype")
    }
}

impl fmt::Display for FileDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so width and alignment flags work in tables.
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_iris_types_map() {
        for d in FileDType::ALL {
            assert_eq!(FileDType::from_name(d.name()), Some(d));
        }
        for d in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I32,
            DType::I64,
            DType::U8,
        ] {
            let f = FileDType::from(d);
            assert_eq!(f.to_dtype(), Some(d));
            assert_eq!(f.bits(), 8 * d.size_in_bytes() as u64);
        }
        assert_eq!(FileDType::F64.to_dtype(), None);
        assert_eq!(FileDType::from_name("f32"), None);
    }
}
