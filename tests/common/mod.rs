//! Helpers shared by the CLI tests.
//!
//! Finding the binary: `CARGO_BIN_EXE_iris` exists only inside the iris-cli package, so the
//! first test that needs it runs `cargo build -p iris-cli --bin iris --message-format=json`
//! (the same cargo, profile and target dir as this test run) and takes the `executable` path
//! that cargo reports. Set `IRIS_BIN` to use a prebuilt binary instead.

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
