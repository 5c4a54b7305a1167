//! `--threads` / `IRIS_THREADS`: a bad count is a clear error naming where it came from; a
//! good one runs the command.

mod common;

use std::process::Command;

use common::{iris_bin, repo_root};

fn inspect(args: &[&str], env: Option<(&str, &str)>) -> std::process::Output {
    let mut cmd = Command::new(iris_bin());
    cmd.args(args)
        .arg("inspect")
        .arg(repo_root().join("fixtures/tiny-llama/model.safetensors"));
    cmd.env_remove("IRIS_THREADS");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.output().expect("run iris")
}

#[test]
fn bad_thread_counts_are_named_errors() {
    let out = inspect(&["--threads", "0"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--threads") && err.contains("`0`"), "{err}");

    let out = inspect(&[], Some(("IRIS_THREADS", "two")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("IRIS_THREADS") && err.contains("`two`"),
        "{err}"
    );
}

#[test]
fn a_good_count_runs_the_command() {
    for (args, env) in [
        (&["--threads", "1"][..], None),
        (&[][..], Some(("IRIS_THREADS", "2"))),
    ] {
        let out = inspect(args, env);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("model.embed_tokens.weight"), "{text}");
    }
}
