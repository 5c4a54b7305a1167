//! `--device cuda` where CUDA cannot run is an error naming the cause (exit 1), never a
//! panic: an iris built without CUDA says so, and one built with it on a machine without the
//! NVIDIA driver says libcuda was not found. Checked for `bench e2e`, `check` and `run`.
//!
//! The binary is the one `common::iris_bin` builds (no CUDA feature) unless `IRIS_BIN` names
//! another. With this test built `--features cuda` and no driver here, a CUDA build of iris
//! is also made and checked for the libcuda message; on a machine with a driver that part
//! prints why it is skipped.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{iris_bin, repo_root, tiny_llava_with_tokenizer};

fn iris(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run iris")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs each CUDA command line with `bin` and returns their stderr, after checking each
/// failed with exit 1, an `error:` line and no panic.
fn cuda_errors(bin: &Path) -> Vec<String> {
    let llava = tiny_llava_with_tokenizer();
    let llava = llava
        .path()
        .to_str()
        .expect("a UTF-8 temp path")
        .to_string();
    let commands: [Vec<&str>; 3] = [
        vec![
            "bench",
            "e2e",
            "--model",
            "fixtures/tiny-llama",
            "--device",
            "cuda",
            "--prompt-tokens",
            "4",
            "--gen-tokens",
            "2",
        ],
        vec![
            "check",
            "--model",
            "fixtures/tiny-llama",
            "--reference",
            "fixtures/tiny-llama/reference.safetensors",
            "--device",
            "cuda",
        ],
        vec![
            "run",
            "--model",
            &llava,
            "--image",
            "fixtures/images/small_97x113.png",
            "--prompt",
            "w5 w6",
            "--device",
            "cuda",
        ],
    ];
    commands
        .iter()
        .map(|args| {
            let out = iris(bin, args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(err.starts_with("error:"), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            err
        })
        .collect()
}

/// The default binary says it was built without CUDA, or (a CUDA build named by `IRIS_BIN`,
/// no driver here) that libcuda is missing. Built `--features cuda`, this test then builds a
/// CUDA iris and requires the libcuda message. One test, so the two builds, which share the
/// binary's path in the target dir, never run at once.
#[test]
fn cuda_device_errors_name_the_cause() {
    for err in cuda_errors(iris_bin()) {
        assert!(
            err.contains("built without CUDA support")
                || err.contains("CUDA driver library (libcuda) not found"),
            "{err}"
        );
    }
    #[cfg(feature = "cuda")]
    {
        if iris_runtime::backend::cuda::driver_present() {
            println!("skipping the CUDA build's check: this machine has a CUDA driver");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = cuda_iris_bin(dir.path());
        for err in cuda_errors(&bin) {
            assert!(
                err.contains("CUDA driver library (libcuda) not found"),
                "{err}"
            );
        }
    }
}

/// A copy in `dir` of `iris` built with `--features cuda` (same profile and target dir as
/// this test); a copy, because a later build of the default binary replaces the original.
#[cfg(feature = "cuda")]
fn cuda_iris_bin(dir: &Path) -> std::path::PathBuf {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(repo_root()).args([
        "build",
        "-q",
        "-p",
        "iris-cli",
        "--features",
        "cuda",
        "--bin",
        "iris",
        "--message-format=json",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let built = text(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "iris")
        .find_map(|msg| msg["executable"].as_str().map(std::path::PathBuf::from))
        .expect("cargo reported no executable for the iris binary");
    let copy = dir.join("iris-cuda");
    std::fs::copy(&built, &copy).unwrap();
    copy
}
