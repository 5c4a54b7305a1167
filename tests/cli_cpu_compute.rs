//! `--cpu-compute f32|bf16`: bf16 compute changes the results of bf16 weights at the bf16
//! level and still passes the check against transformers; on a CPU without AVX512-BF16,
//! asking for it is a clear error; an unknown value is refused by the parser.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::iris_bin;

fn check(compute: &str) -> Output {
    Command::new(iris_bin())
        .args(["--cpu-compute", compute, "check", "--model"])
        .arg("fixtures/tiny-qwen2-bf16")
        .args([
            "--reference",
            "fixtures/tiny-qwen2-bf16/reference.safetensors",
        ])
        .arg("--json")
        .env_remove("IRIS_BF16_DOT")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .output()
        .expect("run iris")
}

fn nmse(out: &Output) -> f64 {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["passed"], true, "{doc}");
    doc["outputs"][0]["nmse"].as_f64().expect("nmse")
}

#[test]
fn bf16_compute_changes_bf16_results_within_the_bf16_bound() {
    let exact = nmse(&check("f32"));
    let out = check("bf16");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) && err.contains("lacks") {
        assert!(err.contains("--cpu-compute"), "{err}");
        eprintln!("skipped: this CPU has no AVX512-BF16 ({err})");
        return;
    }
    let rounded = nmse(&out);
    assert!(rounded <= 1e-3, "bf16 compute NMSE {rounded}");
    assert_ne!(exact, rounded, "--cpu-compute bf16 changed nothing");
}

#[test]
fn an_unknown_compute_is_refused() {
    let out = check("f16");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("f32") && err.contains("bf16"), "{err}");
}
