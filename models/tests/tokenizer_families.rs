//! Tokenizers of other families against transformers (fixtures/tokenizer/, written by
//! scripts/make_tokenizer_fixtures.py):
//! - tiny_llama3: byte-level BPE with Llama 3's split regex, BOS added by the post-processor,
//!   AddedToken-object special tokens, `chat_template` as a list of named templates;
//! - tiny_llama2 / tiny_llama2_legacy: SentencePiece-style BPE with byte fallback and
//!   `tokenizer_class` LlamaTokenizer (transformers 5 rebuilds its pre-tokenizer and decoder),
//!   the Llama 2 chat template (which raises on bad role order).

mod tokenizer_support;

use tokenizer_support::check_all;

#[test]
fn tiny_llama3_matches_transformers() {
    check_all("tiny_llama3");
}

#[test]
fn tiny_llama2_matches_transformers() {
    check_all("tiny_llama2");
}

#[test]
fn tiny_llama2_legacy_matches_transformers() {
    check_all("tiny_llama2_legacy");
}

#[test]
fn smollm2_all_checks() {
    check_all("smollm2");
}

/// transformers 5 reads tokenizer.json as is for model types such as "llava" and "mistral"
/// even when the folder declares LlamaTokenizer; config.json beside the tokenizer decides.
#[test]
fn model_type_decides_whether_llama_tokenizer_applies() {
    #[derive(serde::Deserialize)]
    struct Variant {
        tokenizer_class: String,
        encodings: Vec<Enc>,
    }
    #[derive(serde::Deserialize)]
    struct Enc {
        text: String,
        ids: Vec<u32>,
        decoded: String,
    }
    for name in ["tiny_llama2", "tiny_llama2_legacy"] {
        let src = tokenizer_support::fixtures_dir().join(name);
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(src.with_file_name(format!("{name}_expected.json"))).unwrap(),
        )
        .unwrap();
        let variants: std::collections::BTreeMap<String, Variant> =
            serde_json::from_value(expected["model_type_variants"].clone()).unwrap();
        assert!(variants.len() >= 3);
        let mut f = tokenizer_support::Failures::default();
        for (model_type, variant) in &variants {
            let dir = tempfile::tempdir().unwrap();
            for file in ["tokenizer.json", "tokenizer_config.json"] {
                std::fs::copy(src.join(file), dir.path().join(file)).unwrap();
            }
            let config = serde_json::json!({ "model_type": model_type }).to_string();
            std::fs::write(dir.path().join("config.json"), config).unwrap();
            let tok = iris_models::tokenizer::TextTokenizer::from_dir(dir.path()).unwrap();
            for e in &variant.encodings {
                let what = format!(
                    "{name} model_type={model_type} ({}) {:?}",
                    variant.tokenizer_class, e.text
                );
                f.check(
                    what.clone(),
                    tok.encode(&e.text, true).unwrap(),
                    e.ids.clone(),
                );
                f.check(what, tok.decode(&e.ids, false).unwrap(), e.decoded.clone());
            }
        }
        f.assert_none(name);
    }
}
