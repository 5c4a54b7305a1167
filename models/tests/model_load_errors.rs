//! Malformed model folders: every problem is an error naming the file, field or tensor.

use std::fs;
use std::path::Path;

use iris_models::text_model::TextModel;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// A copy of the tiny Llama with `config.json` replaced by `edit(config)`.
fn with_config(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("tiny-llama");
    fs::copy(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    match TextModel::load(dir, None) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// An edit of config.json and the word its error must contain.
type ConfigCase = (Box<dyn FnOnce(&mut serde_json::Value)>, &'static str);

#[test]
fn config_problems_name_the_field() {
    let cases: Vec<ConfigCase> = vec![
        (Box::new(|c| c["model_type"] = "gpt2".into()), "model_type"),
        (Box::new(|c| c["hidden_act"] = "relu".into()), "hidden_act"),
        (
            Box::new(|c| c["num_key_value_heads"] = 2.into()),
            "num_key_value_heads",
        ),
        (
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("hidden_size");
            }),
            "hidden_size",
        ),
        (
            Box::new(|c| {
                c["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 2.0})
            }),
            "yarn",
        ),
        (
            Box::new(|c| {
                c["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0})
            }),
            "low_freq_factor",
        ),
    ];
    for (edit, needle) in cases {
        let dir = with_config(edit);
        let err = load_error(dir.path());
        assert!(
            err.contains(needle) && err.contains("config.json"),
            "expected `{needle}` in: {err}"
        );
    }
}

#[test]
fn invalid_json_names_the_file_and_position() {
    let dir = with_config(|_| {});
    fs::write(dir.path().join("config.json"), "{\"hidden_size\": 80,,}").unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("config.json") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn weight_problems_name_the_tensor() {
    // A hidden size that disagrees with the stored weights.
    let dir = with_config(|c| {
        c["hidden_size"] = 96.into();
        c["head_dim"] = 16.into();
        c["num_attention_heads"] = 6.into();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("model.embed_tokens.weight") && err.contains("expected shape"),
        "{err}"
    );
    // An untied model without lm_head.weight.
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("tiny-llama");
    fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let store =
        iris_runtime::safetensors::WeightStore::open(src.join("model.safetensors")).unwrap();
    let tensors: Vec<(String, iris_runtime::Tensor)> = store
        .names()
        .filter(|n| *n != "lm_head.weight")
        .map(|n| (n.to_string(), store.get(n).unwrap()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    t.dims().to_vec(),
                    t.contiguous_bytes().unwrap(),
                )
                .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.path().join("model.safetensors")).unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("lm_head.weight") && err.contains("tie_word_embeddings"),
        "{err}"
    );
}

#[test]
fn missing_weights_file_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        fixture("tiny-llama").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}
