//! GGUF conversion errors: the file parses, but is not a llama model we can convert. Each must
//! be refused with its typed error naming the file and the key or tensor, and nothing may be
//! written for any of them. Files are built by hand with the test-side writer in
//! `gguf_writer.rs`.

mod gguf_support;
mod gguf_writer;

use gguf_support::{parse, NAME};
use gguf_writer::*;
use iris_models::gguf::{
    convert_file, ConvertError, ConvertOptions, DequantError, GgmlType, GgufError,
};

fn convert_err(g: &Gguf) -> ConvertError {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let file = parse(&g.build()).unwrap();
    let err = convert_file(&file, &out, &ConvertOptions::default()).expect_err("converted");
    assert!(
        !out.exists(),
        "output written for a failed conversion: {err}"
    );
    assert!(err.to_string().starts_with(NAME), "{err}");
    err
}

#[test]
fn missing_required_key() {
    for key in [
        "llama.embedding_length",
        "llama.block_count",
        "llama.attention.head_count",
        "llama.context_length",
        "llama.attention.layer_norm_rms_epsilon",
        "general.architecture",
        "tokenizer.ggml.model",
    ] {
        let g = tiny_llama(1, false).remove(key);
        match convert_err(&g) {
            ConvertError::Gguf(GgufError::MissingKey { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other}"),
        }
    }
}

#[test]
fn wrong_metadata_type() {
    let g = tiny_llama(1, false).set("llama.block_count", s("two"));
    match convert_err(&g) {
        ConvertError::Gguf(GgufError::WrongValueType { key, found, .. }) => {
            assert_eq!(key, "llama.block_count");
            assert_eq!(found, "string \"two\"");
        }
        other => panic!("{other}"),
    }
    let g = tiny_llama(1, false).set("llama.attention.head_count_kv", V::U32(3));
    assert!(matches!(
        convert_err(&g),
        ConvertError::InvalidMetadata { key, .. } if key == "llama.attention.head_count_kv"
    ));
}

#[test]
fn unsupported_architecture() {
    let g = tiny_llama(1, false).set("general.architecture", s("qwen2"));
    let err = convert_err(&g);
    assert!(matches!(
        &err,
        ConvertError::UnsupportedArchitecture { architecture, .. } if architecture == "qwen2"
    ));
    assert_eq!(
        err.to_string(),
        "test.gguf: architecture `qwen2` is not supported; supported: llama"
    );
}

#[test]
fn unsupported_tokenizer_model() {
    let g = tiny_llama(1, false).set("tokenizer.ggml.model", s("llama"));
    let err = convert_err(&g);
    assert!(matches!(
        &err,
        ConvertError::UnsupportedTokenizer { model, .. } if model == "llama"
    ));
    assert!(err.to_string().contains("supported: gpt2"), "{err}");
}

#[test]
fn unsupported_tensor_type_named_before_writing() {
    // A 256-wide, zero-layer llama whose embedding is Q4_K.
    let vocab = TOKENS.len() as u64;
    let g = Gguf {
        tensors: Vec::new(),
        ..tiny_llama(1, false)
    }
    .set("llama.embedding_length", V::U32(256))
    .set("llama.attention.head_count", V::U32(4))
    .set("llama.attention.head_count_kv", V::U32(4))
    .remove("llama.rope.dimension_count")
    .tensor(
        "token_embd.weight",
        &[256, vocab],
        Q4_K,
        vec![0; 144 * vocab as usize],
    )
    .tensor("output_norm.weight", &[256], F32, vec![0; 1024]);
    // The embedding is checked (shape, then type) before the missing layers are noticed.
    let err = convert_err(&g);
    assert!(
        matches!(&err, ConvertError::Gguf(GgufError::Dequant { tensor, error: DequantError::Unsupported { ggml_type: GgmlType::Q4_K }, .. }) if tensor == "token_embd.weight"),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("Q4_K not supported; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"));
}

#[test]
fn missing_tensor() {
    let g = tiny_llama(1, false).remove_tensor("blk.1.attn_k.weight");
    assert!(matches!(
        convert_err(&g),
        ConvertError::MissingTensor { tensor, .. } if tensor == "blk.1.attn_k.weight"
    ));
}

#[test]
fn unknown_tensor() {
    let g = tiny_llama(1, false).tensor("blk.0.mystery.weight", &[4], F32, vec![0; 16]);
    assert!(matches!(
        convert_err(&g),
        ConvertError::UnexpectedTensor { tensor, .. } if tensor == "blk.0.mystery.weight"
    ));
    let g = tiny_llama(1, false).tensor("blk.7.attn_q.weight", &[4], F32, vec![0; 16]);
    let err = convert_err(&g);
    assert!(
        err.to_string()
            .contains("layer 7, but `llama.block_count` is 2"),
        "{err}"
    );
}

#[test]
fn tensor_shape_disagrees_with_metadata() {
    let g = tiny_llama(1, false).set("llama.feed_forward_length", V::U32(128));
    match convert_err(&g) {
        ConvertError::TensorShape {
            tensor,
            found,
            expected,
            ..
        } => {
            assert_eq!(tensor, "blk.0.ffn_gate.weight");
            assert_eq!(found, [96, 64]);
            assert_eq!(expected, [128, 64]);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_token_ids() {
    let g = tiny_llama(1, false).set("tokenizer.ggml.eos_token_id", V::U32(999));
    let err = convert_err(&g);
    assert!(
        matches!(err, ConvertError::InvalidTokenizer { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("tokenizer.ggml.eos_token_id"),
        "{err}"
    );
    let g = tiny_llama(1, false).set("tokenizer.ggml.merges", strings(&["h e", "nospace"]));
    let err = convert_err(&g);
    assert!(err.to_string().contains("merge 1"), "{err}");
}
