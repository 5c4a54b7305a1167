//! Helpers shared by the CLI tests.
//!
//! Finding the binary: `CARGO_BIN_EXE_iris` exists only inside the iris-cli package, so the
//! first test that needs it runs `cargo build -p iris-cli --bin iris --message-format=json`
//! (the same cargo, profile and target dir as this test run) and takes the `executable` path
//! that cargo reports. Set `IRIS_BIN` to use a prebuilt binary instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn iris_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("IRIS_BIN") {
            return PathBuf::from(bin);
        }
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "-q",
            "-p",
            "iris-cli",
            "--bin",
            "iris",
            "--message-format=json",
        ]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build -p iris-cli failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "iris")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no executable for the iris binary")
    })
}

/// The repository root (tests run with the root package's manifest dir).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary copy of the tiny random LLaVA (fixtures/tiny-llava) made runnable by
/// `iris run`: a word-level tokenizer over its 700-token vocabulary (`w0`..`w698`, and
/// `<image>` = 699, the config's image_token_index), a chat template that writes one
/// `<image>` marker per image part, and a 30-pixel CLIP preprocessor config.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn tiny_llava_with_tokenizer() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = repo_root().join("fixtures/tiny-llava");
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    // Ids 0..699 are words `w0`..`w698`, 699 is `<image>` (the config's image_token_index).
    let mut vocab = serde_json::Map::new();
    for i in 0..699 {
        vocab.insert(format!("w{i}"), i.into());
    }
    vocab.insert("<unk>".into(), 0.into());
    vocab.insert("<image>".into(), 699.into());
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "added_tokens": [{"id": 699, "content": "<image>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let template = "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}\
        {% for p in m.content %}{% if p.type == 'image' %}<image> {% else %}{{ p.text }}{% endif %}{% endfor %}\
        {% endif %} {% endfor %}{% if add_generation_prompt %}w1{% endif %}";
    let config = serde_json::json!({"chat_template": template, "unk_token": "<unk>"});
    fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let mut processor: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(
            repo_root().join("fixtures/images/configs/clip_small/preprocessor_config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    processor["size"] = serde_json::json!({"shortest_edge": 30});
    processor["crop_size"] = 30.into();
    fs::write(
        dir.path().join("preprocessor_config.json"),
        processor.to_string(),
    )
    .unwrap();
    dir
}
