//! `iris check` and `iris run` end to end through the built binary: a passing and a failing
//! check, and bad input answered with an error naming the cause (exit 1), never a panic.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::iris_bin;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn iris(args: &[&str]) -> Output {
    Command::new(iris_bin())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run iris")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_passes_on_its_reference_and_fails_on_another() {
    let ok = iris(&[
        "check",
        "--model",
        "fixtures/tiny-qwen2",
        "--reference",
        "fixtures/tiny-qwen2/reference.safetensors",
        "--json",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(doc["passed"], true);
    assert!(doc["outputs"][0]["nmse"].as_f64().unwrap() <= 1e-6);

    // The Llama reference has the Qwen2 vocabulary size, but other logits: a clear failure.
    let bad = iris(&[
        "check",
        "--model",
        "fixtures/tiny-qwen2",
        "--reference",
        "fixtures/tiny-llama/reference.safetensors",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stdout).contains("FAIL"), "{}", text(&bad.stdout));
    assert!(
        text(&bad.stderr).contains("check failed: logits"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn check_and_run_errors_name_the_cause() {
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "check",
                "--model",
                "fixtures/no-such-model",
                "--reference",
                "fixtures/tiny-llama/reference.safetensors",
            ],
            "no-such-model",
        ),
        (
            &[
                "check",
                "--model",
                "fixtures/tiny-llama",
                "--reference",
                "fixtures/tiny-llama/greedy.json",
            ],
            "greedy.json",
        ),
        (
            &[
                "check",
                "--model",
                "fixtures/tiny-llama",
                "--reference",
                "fixtures/ops/matmul.safetensors",
            ],
            "input_ids",
        ),
        (
            &[
                "check",
                "--model",
                "fixtures/tiny-llama",
                "--reference",
                "fixtures/tiny-llama/reference.safetensors",
                "--dtype",
                "i64",
            ],
            "--dtype",
        ),
        // The tiny models have no tokenizer.json: `iris run` says so.
        (
            &["run", "--model", "fixtures/tiny-llama", "--prompt", "hi"],
            "tokenizer.json",
        ),
    ];
    for (args, needle) in cases {
        let out = iris(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr should name `{needle}`: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `iris check --kv-cache f16` runs the check through an f16 cache: it still passes the f32
/// bound on the tiny model, and its NMSE is the rounding's, above the exact cache's.
#[test]
fn check_through_an_f16_kv_cache() {
    let nmse = |kv: &str| {
        let out = iris(&[
            "check",
            "--model",
            "fixtures/tiny-qwen2",
            "--reference",
            "fixtures/tiny-qwen2/reference.safetensors",
            "--kv-cache",
            kv,
            "--json",
        ]);
        assert!(out.status.success(), "{kv}: {}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["passed"], true, "{kv}: {doc}");
        doc["outputs"][0]["nmse"].as_f64().unwrap()
    };
    let (exact, half) = (nmse("f32"), nmse("f16"));
    assert!(
        half > exact * 10.0,
        "f16 cache {half:.3e} vs f32 {exact:.3e}"
    );
}
