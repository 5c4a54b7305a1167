//! `iris run --image` end to end on the tiny random LLaVA (fixtures/tiny-llava), given, in a
//! temporary copy, a word-level tokenizer over its 700-token vocabulary, a chat template
//! that places `<image>` markers, and a CLIP preprocessor config: images are loaded,
//! preprocessed, expanded into 25 image tokens each, encoded and generated from. Bad images
//! and marker/image count mismatches are errors naming the file or the counts.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{iris_bin, tiny_llava_with_tokenizer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn iris(model: &Path, extra: &[&str]) -> Output {
    Command::new(iris_bin())
        .arg("run")
        .arg("--model")
        .arg(model)
        .args(extra)
        .current_dir(root())
        .output()
        .expect("run iris")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn generates_from_images_and_a_prompt() {
    let model = tiny_llava_with_tokenizer();
    let out = iris(
        model.path(),
        &[
            "--image",
            "fixtures/images/photo_640x480.png",
            "--image",
            "fixtures/images/wide_1024x256.webp",
            "--prompt",
            "w5 w17 w300",
            "--max-tokens",
            "6",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Two images of 25 tokens, 3 words and the generation-prompt word.
    assert_eq!(doc["prompt_tokens"], 2 * 25 + 4);
    assert_eq!(doc["tokens"].as_array().unwrap().len(), 6);
    assert!(doc["timings"]["vision_ms"].as_f64().unwrap() > 0.0);

    // The same through --raw with the markers written by hand gives the same tokens.
    let raw = iris(
        model.path(),
        &[
            "--image",
            "fixtures/images/photo_640x480.png",
            "--image",
            "fixtures/images/wide_1024x256.webp",
            "--prompt",
            "<image> <image> w5 w17 w300 w1",
            "--raw",
            "--max-tokens",
            "6",
            "--json",
        ],
    );
    assert!(raw.status.success(), "{}", stderr(&raw));
    let raw_doc: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(raw_doc["tokens"], doc["tokens"]);
}

#[test]
fn bad_images_and_marker_counts_are_clear_errors() {
    let model = tiny_llava_with_tokenizer();
    let corrupt = model.path().join("corrupt.png");
    fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let corrupt = corrupt.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--image", &corrupt, "--prompt", "w5"], "corrupt.png"),
        (
            vec!["--image", "fixtures/images/missing.png", "--prompt", "w5"],
            "missing.png",
        ),
        (
            vec![
                "--image",
                "fixtures/images/photo_640x480.png",
                "--prompt",
                "<image> <image> w5",
                "--raw",
            ],
            "2 `<image>` marker(s) but 1 image(s)",
        ),
        (
            vec!["--prompt", "<image> w5", "--raw"],
            "1 `<image>` marker(s) but 0 image(s)",
        ),
    ];
    for (args, needle) in cases {
        let out = iris(model.path(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}
