//! `iris bench kernels --device cuda` through the built binary. Where it cannot run (an iris
//! built without the `cuda` feature, as the tests build it, or no driver or GPU) it is one
//! clear error naming CUDA: exit 1, nothing on stdout, no panic. Given a cuda-built binary
//! on a GPU machine (`IRIS_BIN=.gpu/bin/iris`), the filtered run must time its one kernel.
//! The CPU/CUDA-only flags are refused on the other device.

mod common;

use std::process::{Command, Output};

use common::{iris_bin, repo_root};

fn bench_kernels(args: &[&str]) -> Output {
    Command::new(iris_bin())
        .args(["bench", "kernels"])
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run iris")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cuda_bench_is_a_clear_error_or_a_timed_kernel() {
    let out = bench_kernels(&[
        "--device",
        "cuda",
        "--json",
        "--runs",
        "3",
        "--filter",
        "add 2048x4096",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stderr.contains("panicked"), "{stderr}");
    if out.status.success() {
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
        let kernels = doc["kernels"].as_array().expect("kernels array");
        assert_eq!(kernels.len(), 1, "{doc}");
        assert_eq!(kernels[0]["kernel"], "add", "{doc}");
        let us = kernels[0]["median_us"].as_f64().expect("median_us");
        assert!(us.is_finite() && us > 0.0, "{doc}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("CUDA"),
        "{stderr}"
    );
    println!("as expected here: {stderr}");
}

#[test]
fn device_only_flags_are_refused_on_the_other_device() {
    let cpu = bench_kernels(&["--filter", "matmul"]);
    assert_eq!(cpu.status.code(), Some(1));
    assert!(
        text(&cpu.stderr).contains("--device cuda only"),
        "{}",
        text(&cpu.stderr)
    );

    let cuda = bench_kernels(&["--device", "cuda", "--isa", "avx2"]);
    assert_eq!(cuda.status.code(), Some(1));
    assert!(
        text(&cuda.stderr).contains("--isa"),
        "{}",
        text(&cuda.stderr)
    );
}
