//! Malformed GGUF tensor infos and tensor data: one test per way a tensor's entry or bytes can
//! be broken. Each must be refused with its typed error naming the file and the tensor — never
//! a panic, never a huge allocation. Files are built by hand with the test-side writer in
//! `gguf_writer.rs`.

mod gguf_support;
mod gguf_writer;

use gguf_support::{base, find, parse, parse_err};
use gguf_writer::*;
use iris_models::gguf::{DequantError, GgmlType, GgufError};

#[test]
fn duplicate_tensor() {
    let g = base().tensor("t.f16", &[4], F32, vec![0; 16]);
    assert!(matches!(
        parse_err(&g),
        GgufError::DuplicateTensor { tensor, .. } if tensor == "t.f16"
    ));
}

#[test]
fn invalid_dimension_count() {
    for n_dims in [0usize, 5] {
        let g = base().tensor("t.dims", &vec![1; n_dims], F32, vec![0; 4]);
        assert!(matches!(
            parse_err(&g),
            GgufError::InvalidDims { tensor, n_dims: n, .. } if tensor == "t.dims" && n as usize == n_dims
        ));
    }
}

#[test]
fn dims_product_overflow() {
    let g = base().tensor("t.huge", &[1 << 32, 1 << 32], F32, vec![]);
    assert!(matches!(
        parse_err(&g),
        GgufError::ShapeOverflow { tensor, .. } if tensor == "t.huge"
    ));
    // Overflow of the non-zero dims is refused even when a zero dim makes the tensor empty.
    let g = base().tensor("t.zero", &[1 << 40, 0, 1 << 40], F32, vec![]);
    assert!(matches!(parse_err(&g), GgufError::ShapeOverflow { .. }));
    // Elements fit, bytes do not.
    let g = base().tensor("t.bytes", &[1 << 62], F32, vec![]);
    assert!(matches!(parse_err(&g), GgufError::ShapeOverflow { .. }));
}

#[test]
fn unknown_tensor_type() {
    for id in [4u32, 31, 1000] {
        let g = base().tensor("t.unknown", &[32], id, vec![0; 32]);
        assert!(matches!(
            parse_err(&g),
            GgufError::UnknownTensorType { tensor, type_id, .. } if tensor == "t.unknown" && type_id == id
        ));
    }
}

#[test]
fn unsupported_tensor_type() {
    // A known type parses (its size is checked) but does not dequantize.
    let g = base().tensor("t.q4k", &[256], Q4_K, vec![0; 144]);
    let f = parse(&g.build()).unwrap();
    assert_eq!(f.tensor("t.q4k").unwrap().n_bytes, 144);
    let err = f.dequantize("t.q4k").unwrap_err();
    assert!(matches!(
        &err,
        GgufError::Dequant { tensor, error: DequantError::Unsupported { ggml_type: GgmlType::Q4_K }, .. }
            if tensor == "t.q4k"
    ));
    assert_eq!(
        err.to_string(),
        "test.gguf: tensor `t.q4k`: Q4_K not supported; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"
    );
}

#[test]
fn block_size_mismatch() {
    let g = base().tensor("t.q8odd", &[48, 2], Q8_0, vec![0; 102]);
    assert!(matches!(
        parse_err(&g),
        GgufError::BlockMismatch { tensor, row: 48, block: 32, ggml_type: GgmlType::Q8_0, .. }
            if tensor == "t.q8odd"
    ));
}

#[test]
fn misaligned_tensor() {
    let mut g = base();
    let mut offsets = g.layout();
    offsets[1] += 4;
    g.offsets = Some(offsets);
    assert!(matches!(
        parse_err(&g),
        GgufError::MisalignedTensor { tensor, alignment: 32, .. } if tensor == "t.q8"
    ));
}

#[test]
fn tensor_out_of_range() {
    // The offset field of `t.f16`: after its name (5), n_dims (4), one dim (8), type (4).
    let offset_field = |bytes: &[u8]| find(bytes, b"t.f16") + 5 + 4 + 8 + 4;
    let mut bytes = base().build();
    let at = offset_field(&bytes);
    bytes[at..at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::TensorOutOfRange { tensor, offset, .. } if tensor == "t.f16" && offset == 1 << 20
    ));
    // An offset whose end overflows.
    let mut bytes = base().build();
    let at = offset_field(&bytes);
    bytes[at..at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        GgufError::TensorOutOfRange { tensor, .. } if tensor == "t.f16"
    ));
}

#[test]
fn overlapping_tensors() {
    let mut g = base();
    let mut offsets = g.layout();
    offsets[1] = offsets[0]; // t.q8 on top of t.f32
    g.offsets = Some(offsets);
    assert!(matches!(
        parse_err(&g),
        GgufError::OverlappingTensors { .. }
    ));
}

#[test]
fn missing_tensor_by_name() {
    let f = parse(&base().build()).unwrap();
    assert!(matches!(
        f.dequantize("nope").unwrap_err(),
        GgufError::MissingTensor { tensor, .. } if tensor == "nope"
    ));
}

#[test]
fn empty_tensor_at_the_end_of_the_file() {
    // A tensor with a zero dimension needs no data, even when the data section would start
    // past the end of the file (no padding after the tensor infos).
    let g = Gguf::default().tensor("t.empty", &[0, 3], F32, vec![]);
    let mut bytes = g.build();
    let f = parse(&bytes).unwrap();
    bytes.truncate(f.data_start() as usize - 1);
    let f = parse(&bytes).unwrap();
    assert_eq!(f.tensor_data("t.empty").unwrap(), &[] as &[u8]);
    assert_eq!(f.dequantize("t.empty").unwrap(), Vec::<f32>::new());
    assert_eq!(f.tensor("t.empty").unwrap().shape(), [3, 0]);
}
