//! GGUF -> Hugging Face conversion of a small synthetic llama (2 layers, hidden 64, 4 heads,
//! 2 KV heads, every supported tensor type, a byte-level BPE vocabulary of 22 tokens),
//! checked against an independent element-by-element dequantization and Q/K un-permutation
//! written here, and for the tokenizer, with the `tokenizers` crate.

mod gguf_writer;

use std::collections::BTreeMap;
use std::path::Path;

use gguf_writer::*;
use iris_models::gguf::{
    convert_file, ConvertError, ConvertOptions, ConvertSummary, GgmlType, GgufFile, OutDType,
};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// Element `i` of a stored tensor, by the block layouts of the GGUF spec.
fn reference_value(type_id: u32, data: &[u8], i: usize) -> f32 {
    let f16 =
        |at: usize| half::f16::from_bits(u16::from_le_bytes([data[at], data[at + 1]])).to_f32();
    let (block, j) = (i / 32, i % 32);
    match type_id {
        F32 => f32::from_le_bytes(data[4 * i..4 * i + 4].try_into().unwrap()),
        F16 => f16(2 * i),
        BF16 => f32::from_bits(u32::from(u16::from_le_bytes([data[2 * i], data[2 * i + 1]])) << 16),
        Q8_0 => {
            let base = block * 34;
            f32::from(data[base + 2 + j] as i8) * f16(base)
        }
        Q4_0 => {
            let base = block * 18;
            let byte = data[base + 2 + j % 16];
            let q = if j < 16 { byte & 0x0f } else { byte >> 4 };
            f16(base) * (f32::from(q) - 8.0)
        }
        Q4_1 => {
            let base = block * 20;
            let byte = data[base + 4 + j % 16];
            let q = if j < 16 { byte & 0x0f } else { byte >> 4 };
            f16(base) * f32::from(q) + f16(base + 2)
        }
        other => panic!("type {other}"),
    }
}

/// For HF row `r` of a Q/K matrix with `n_head` heads of `head_dim` rows, the GGUF row it
/// came from: llama.cpp stores head `h`'s rows interleaved (pair `i` = rows `i` and
/// `i + head_dim/2` of the HF head, at `2i` and `2i + 1`).
fn gguf_row(r: usize, head_dim: usize) -> usize {
    let (h, j) = (r / head_dim, r % head_dim);
    let half = head_dim / 2;
    let (which, i) = (j / half, j % half);
    h * head_dim + 2 * i + which
}

fn hf_name(gguf: &str) -> Option<String> {
    let map = [
        ("attn_norm", "input_layernorm"),
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("ffn_norm", "post_attention_layernorm"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"),
    ];
    Some(match gguf {
        "token_embd.weight" => "model.embed_tokens.weight".to_string(),
        "output_norm.weight" => "model.norm.weight".to_string(),
        "output.weight" => "lm_head.weight".to_string(),
        _ => {
            let rest = gguf.strip_prefix("blk.")?;
            let (layer, leaf) = rest.split_once('.')?;
            let (stem, kind) = leaf.rsplit_once('.')?;
            let hf = map.iter().find(|(g, _)| *g == stem)?.1;
            format!("model.layers.{layer}.{hf}.{kind}")
        }
    })
}

/// The expected f32 values of every HF tensor of `g`.
fn expected_tensors(g: &Gguf) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut out = BTreeMap::new();
    for t in &g.tensors {
        let shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
        let cols = if shape.len() > 1 { shape[1] } else { 1 };
        let rows = shape[0];
        let heads = if t.name.contains(".attn_q.") {
            Some(HEADS as usize)
        } else if t.name.contains(".attn_k.") {
            Some(KV_HEADS as usize)
        } else {
            None
        };
        let mut values = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let src = match heads {
                Some(h) => gguf_row(r, rows / h),
                None => r,
            };
            for c in 0..cols {
                values.push(reference_value(t.type_id, &t.data, src * cols + c));
            }
        }
        out.insert(hf_name(&t.name).unwrap(), (shape, values));
    }
    out
}

fn convert(g: &Gguf, out: &Path, dtype: OutDType) -> ConvertSummary {
    let file = GgufFile::from_bytes("tiny.gguf", &g.build()).unwrap();
    let options = ConvertOptions {
        dtype,
        force: false,
    };
    convert_file(&file, out, &options).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Torch's f32 -> bf16 (round to nearest even), written out independently.
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let lsb = (b >> 16) & 1;
    ((b + 0x7fff + lsb) >> 16) as u16
}

fn check_weights(g: &Gguf, dir: &Path, dtype: OutDType) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let expected = expected_tensors(g);
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    assert_eq!(names, expected.keys().cloned().collect::<Vec<_>>());
    for (name, (shape, values)) in &expected {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.shape(), &shape[..], "{name}");
        match dtype {
            OutDType::F32 => {
                assert_eq!(view.dtype(), Dtype::F32);
                for (i, (chunk, want)) in view.data().chunks_exact(4).zip(values).enumerate() {
                    let got = u32::from_le_bytes(chunk.try_into().unwrap());
                    assert_eq!(
                        got,
                        want.to_bits(),
                        "{name}[{i}]: {} vs {want}",
                        f32::from_bits(got)
                    );
                }
            }
            OutDType::Bf16 => {
                assert_eq!(view.dtype(), Dtype::BF16);
                for (i, (chunk, want)) in view.data().chunks_exact(2).zip(values).enumerate() {
                    let got = u16::from_le_bytes(chunk.try_into().unwrap());
                    assert_eq!(got, bf16_bits(*want), "{name}[{i}]");
                }
            }
        }
    }
}

#[test]
fn converts_every_tensor_type_f32_tied() {
    let g = tiny_llama(42, false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let summary = convert(&g, &out, OutDType::F32);
    check_weights(&g, &out, OutDType::F32);

    // 1 embedding + 2 x 9 layer tensors + final norm; tied, so no head.
    assert_eq!(summary.tensors, 20);
    assert!(summary.tie_word_embeddings);
    let types: Vec<(GgmlType, usize)> = summary.source_types.into_iter().collect();
    assert_eq!(
        types,
        [
            (GgmlType::F32, 6),
            (GgmlType::F16, 2),
            (GgmlType::Q4_0, 4),
            (GgmlType::Q4_1, 2),
            (GgmlType::Q8_0, 4),
            (GgmlType::BF16, 2),
        ]
    );
    let mut files: Vec<&str> = summary.files.iter().map(|f| f.0.as_str()).collect();
    files.sort();
    assert_eq!(
        files,
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    // Nothing temporary left behind.
    let mut listed: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, files);

    let config = read_json(&out.join("config.json"));
    let expect = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "attention_bias": false,
        "mlp_bias": false,
        "vocab_size": 22,
        "tie_word_embeddings": true,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        "torch_dtype": "float32",
    });
    assert_eq!(config, expect);
    assert_eq!(
        read_json(&out.join("generation_config.json")),
        serde_json::json!({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2})
    );

    let tc = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(tc["chat_template"], CHAT_TEMPLATE);
    assert_eq!(tc["bos_token"], "<|im_start|>");
    assert_eq!(tc["eos_token"], "<|im_end|>");
    assert_eq!(tc["pad_token"], "<|im_end|>");
    assert_eq!(tc["unk_token"], Value::Null);
    assert_eq!(tc["add_bos_token"], true);
    assert_eq!(tc["model_max_length"], 256);
}

#[test]
fn tokenizer_json_loads_and_encodes() {
    let g = tiny_llama(3, false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    convert(&g, &out, OutDType::F32);
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(tok.get_vocab_size(false), TOKENS.len());
    // add_bos_token: bos (<|im_start|>, 1) first; then "hello", " world", "!".
    let enc = tok.encode("hello world!", true).unwrap();
    assert_eq!(enc.get_ids(), [1, 15, 20, 21]);
    assert_eq!(enc.get_tokens(), ["<|im_start|>", "hello", "Ġworld", "!"]);
    let enc = tok.encode("hello world!", false).unwrap();
    assert_eq!(enc.get_ids(), [15, 20, 21]);
    // Control tokens are special added tokens, kept whole; <think> (user-defined) too.
    let enc = tok
        .encode("<|im_start|>hello<think><|im_end|>", false)
        .unwrap();
    assert_eq!(enc.get_ids(), [1, 15, 3, 2]);
    assert_eq!(tok.decode(&[15, 20, 21], true).unwrap(), "hello world!");
    assert_eq!(tok.decode(&[1, 15, 2], true).unwrap(), "hello");

    let json = read_json(&out.join("tokenizer.json"));
    let added: Vec<(u64, &str, bool)> = json["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                t["content"].as_str().unwrap(),
                t["special"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        added,
        [
            (0, "<|endoftext|>", true),
            (1, "<|im_start|>", true),
            (2, "<|im_end|>", true),
            (3, "<think>", false)
        ]
    );
    assert_eq!(json["pre_tokenizer"]["type"], "ByteLevel");
    assert_eq!(json["pre_tokenizer"]["use_regex"], true);
}

#[test]
fn pre_tokenizer_regex_and_respelled_tokens() {
    // A llama-bpe file: Split on the Llama 3 regex, then ByteLevel without its own regex.
    // A token outside the byte alphabet ("é x") is respelled from its UTF-8 bytes, and a
    // vocabulary without <|endoftext|> still gets it (as transformers adds it), after the end.
    let mut tokens: Vec<&str> = TOKENS.to_vec();
    tokens[0] = "<s>";
    tokens.push("é x");
    let mut types: Vec<i32> = vec![1; tokens.len()];
    types[0] = 3;
    let g = tiny_llama(5, false)
        .set("tokenizer.ggml.pre", s("llama-bpe"))
        .set("tokenizer.ggml.tokens", strings(&tokens))
        .set("tokenizer.ggml.token_type", i32s(&types))
        .set("llama.vocab_size", V::U32(22))
        .set("tokenizer.ggml.add_bos_token", V::Bool(false))
        .kv("tokenizer.ggml.add_eos_token", V::Bool(true));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    convert(&g, &out, OutDType::F32);
    let json = read_json(&out.join("tokenizer.json"));
    assert_eq!(json["pre_tokenizer"]["type"], "Sequence");
    assert_eq!(json["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
    assert_eq!(json["model"]["vocab"]["Ã©Ġx"], 22);
    let added: Vec<(u64, String)> = json["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                t["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(added.contains(&(0, "<s>".to_string())));
    assert!(
        added.contains(&(23, "<|endoftext|>".to_string())),
        "{added:?}"
    );
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    // add_eos_token: eos appended.
    assert_eq!(
        tok.encode("hello world!", true).unwrap().get_ids(),
        [15, 20, 21, 2]
    );
}

#[test]
fn untied_bf16() {
    let g = tiny_llama(9, true);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let summary = convert(&g, &out, OutDType::Bf16);
    assert_eq!(summary.tensors, 21);
    assert!(!summary.tie_word_embeddings);
    check_weights(&g, &out, OutDType::Bf16);
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!(config["torch_dtype"], "bfloat16");
}

#[test]
fn unpermute_inverts_llama_cpp_permute() {
    // Q and K stored as F32 in llama.cpp's permuted order, made from known HF matrices whose
    // value encodes (row, column): the conversion must give the HF matrices back exactly.
    let hf = |rows: usize, cols: usize| -> Vec<f32> {
        (0..rows * cols)
            .map(|i| ((i / cols) * 1000 + i % cols) as f32)
            .collect()
    };
    // llama.cpp's `permute`: reshape(n_head, 2, dim, cols).swapaxes(1, 2).
    let permute = |w: &[f32], rows: usize, cols: usize, n_head: usize| -> Vec<f32> {
        let dim = rows / n_head / 2;
        let mut out = Vec::with_capacity(w.len());
        for h in 0..n_head {
            for i in 0..dim {
                for which in 0..2 {
                    let src = h * 2 * dim + which * dim + i;
                    out.extend_from_slice(&w[src * cols..(src + 1) * cols]);
                }
            }
        }
        out
    };
    let (hidden, q_rows, kv_rows) = (
        HIDDEN as usize,
        (HEADS * HEAD_DIM) as usize,
        (KV_HEADS * HEAD_DIM) as usize,
    );
    let q = hf(q_rows, hidden);
    let k = hf(kv_rows, hidden);
    let to_bytes = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut g = tiny_llama(11, false);
    for t in &mut g.tensors {
        if t.name.ends_with("attn_q.weight") {
            t.type_id = F32;
            t.data = to_bytes(permute(&q, q_rows, hidden, HEADS as usize));
        } else if t.name.ends_with("attn_k.weight") {
            t.type_id = F32;
            t.data = to_bytes(permute(&k, kv_rows, hidden, KV_HEADS as usize));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    convert(&g, &out, OutDType::F32);
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for layer in 0..LAYERS {
        for (proj, want) in [("q_proj", &q), ("k_proj", &k)] {
            let view = st
                .tensor(&format!("model.layers.{layer}.self_attn.{proj}.weight"))
                .unwrap();
            let got: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(&got, want, "layer {layer} {proj}");
        }
    }
}

#[test]
fn output_folder_rules() {
    let g = tiny_llama(13, false);
    let file = GgufFile::from_bytes("tiny.gguf", &g.build()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An existing empty folder is fine.
    let out = dir.path().join("empty");
    std::fs::create_dir(&out).unwrap();
    convert_file(&file, &out, &ConvertOptions::default()).unwrap();
    // Converting again into it (now full) needs force.
    let err = convert_file(&file, &out, &ConvertOptions::default()).unwrap_err();
    assert!(matches!(err, ConvertError::OutputNotEmpty { .. }), "{err}");
    std::fs::write(out.join("keep.txt"), b"mine").unwrap();
    std::fs::write(out.join("model.safetensors.index.json"), b"{}").unwrap();
    let options = ConvertOptions {
        dtype: OutDType::Bf16,
        force: true,
    };
    convert_file(&file, &out, &options).unwrap();
    assert_eq!(
        read_json(&out.join("config.json"))["torch_dtype"],
        "bfloat16"
    );
    // Other files stay; a stale shard index that would shadow the new weights goes.
    assert!(out.join("keep.txt").exists());
    assert!(!out.join("model.safetensors.index.json").exists());
    check_weights(&g, &out, OutDType::Bf16);
}
