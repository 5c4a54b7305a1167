//! `iris inspect` end to end: the built binary on a good checkpoint (exit 0, table on stdout)
//! and on malformed ones (exit 1, nothing on stdout, stderr names the file and the problem).
//!
//! Finding the binary: `CARGO_BIN_EXE_iris` exists only inside the iris-cli package, so the
//! first test that needs it runs `cargo build -p iris-cli --bin iris --message-format=json`
//! (the same cargo, profile and target dir as this test run) and takes the `executable` path
//! that cargo reports. This works under `cargo test --workspace` and `cargo test -p iris`:
//! cargo releases its build lock before running tests. Set `IRIS_BIN` to use a prebuilt
//! binary instead.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::iris_bin;
use half::bf16;
use safetensors::tensor::{Dtype, TensorView};

fn inspect(path: &Path) -> Output {
    Command::new(iris_bin())
        .arg("inspect")
        .arg(path)
        .output()
        .expect("run iris")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes a safetensors file with the reference crate: (name, dtype, shape, bytes).
fn write_st(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                *name,
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, &metadata, path).unwrap();
}

fn bf16_bytes(n: usize) -> Vec<u8> {
    let values: Vec<bf16> = (0..n).map(|i| bf16::from_f32(0.25 + i as f32)).collect();
    bytemuck::cast_slice(&values).to_vec()
}

/// A sharded LLaVA-like folder: two shards, an index and a config.json.
fn good_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("tiny-llava");
    fs::create_dir(&folder).unwrap();
    write_st(
        &folder.join("model-00001-of-00002.safetensors"),
        &[
            (
                "language_model.model.embed_tokens.weight",
                Dtype::BF16,
                vec![11, 6],
                bf16_bytes(66),
            ),
            (
                "vision_tower.patch_embedding.weight",
                Dtype::F32,
                vec![6, 3, 2, 2],
                vec![1; 288],
            ),
        ],
    );
    write_st(
        &folder.join("model-00002-of-00002.safetensors"),
        &[
            ("lm_head.weight", Dtype::BF16, vec![11, 6], bf16_bytes(66)),
            ("ids", Dtype::I64, vec![5], vec![3; 40]),
        ],
    );
    let index = serde_json::json!({
        "metadata": {"total_size": 592},
        "weight_map": {
            "language_model.model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "vision_tower.patch_embedding.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors",
            "ids": "model-00002-of-00002.safetensors"
        }
    });
    fs::write(
        folder.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let config = serde_json::json!({
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "text_config": {"model_type": "llama", "hidden_size": 6, "vocab_size": 11, "num_hidden_layers": 2},
        "vision_config": {"model_type": "clip_vision_model", "image_size": 28, "patch_size": 2},
        "torch_dtype": "bfloat16"
    });
    fs::write(folder.join("config.json"), config.to_string()).unwrap();
    folder
}

#[test]
fn inspects_a_sharded_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = good_folder(dir.path());
    let out = inspect(&folder);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status,
        stderr(&out)
    );
    for needle in [
        "language_model.model.embed_tokens.weight",
        "vision_tower.patch_embedding.weight",
        "lm_head.weight",
        "[11, 6]",
        "[6, 3, 2, 2]",
        "BF16",
        "F32",
        "I64",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "total: 4 tensors, 592 bytes",
        "LlavaForConditionalGeneration",
        "vision_config:",
        "image_size: 28",
    ] {
        assert!(text.contains(needle), "stdout lacks `{needle}`:\n{text}");
    }
    // One row per tensor: name, dtype, shape, bytes.
    let row = text
        .lines()
        .find(|l| l.starts_with("lm_head.weight"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["lm_head.weight", "BF16", "[11,", "6]", "132"]);
}

#[test]
fn inspects_a_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    write_st(
        &path,
        &[
            ("w", Dtype::F16, vec![3, 1, 5], vec![9; 30]),
            ("mask", Dtype::BOOL, vec![4], vec![1; 4]),
        ],
    );
    let out = inspect(&path);
    let text = stdout(&out);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        text.contains("[3, 1, 5]") && text.contains("F16") && text.contains("BOOL"),
        "{text}"
    );
    assert!(text.contains("not loadable by iris"), "{text}");
    assert!(
        !text.contains("config:"),
        "a file has no config summary:\n{text}"
    );
}

/// Runs inspect on `path` and checks exit 1, empty stdout, and stderr naming every needle.
fn assert_fails(path: &Path, needles: &[&str]) {
    let out = inspect(path);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(&out)
    );
    assert!(out.stdout.is_empty(), "stdout not empty: {}", stdout(&out));
    assert!(err.starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    }
}

fn raw_st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn malformed_files_fail_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &[&str]); 7] = [
        ("short.safetensors", vec![1, 2, 3], &["too short"]),
        (
            "past_end.safetensors",
            500u64.to_le_bytes().to_vec(),
            &["past the end"],
        ),
        (
            "not_json.safetensors",
            raw_st("{\"w\": {", &[]),
            &["not valid JSON", "line 1"],
        ),
        (
            "overlap.safetensors",
            raw_st(
                r#"{"a.w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b.w": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}"#,
                &[0; 6],
            ),
            &["a.w", "b.w", "overlaps"],
        ),
        (
            "bad_dtype.safetensors",
            raw_st(
                r#"{"q.w": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 2]}}"#,
                &[0; 2],
            ),
            &["q.w", "unknown dtype `Q4_K`"],
        ),
        (
            "dup.safetensors",
            raw_st(
                r#"{"d.w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "d.w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}"#,
                &[0; 2],
            ),
            &["d.w", "more than once"],
        ),
        (
            "size.safetensors",
            raw_st(
                r#"{"s.w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#,
                &[0; 8],
            ),
            &["s.w", "needs 12 bytes"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let mut all = needles.to_vec();
        all.push(name);
        assert_fails(&path, &all);
    }
    assert_fails(
        &dir.path().join("absent.safetensors"),
        &["absent.safetensors", "No such file"],
    );
}

#[test]
fn malformed_folders_fail_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();

    let folder = good_folder(dir.path());
    fs::remove_file(folder.join("model-00002-of-00002.safetensors")).unwrap();
    assert_fails(
        &folder,
        &[
            "model.safetensors.index.json",
            "model-00002-of-00002.safetensors",
            "missing",
        ],
    );

    fs::write(
        folder.join("model.safetensors.index.json"),
        "{\"weight_map\": {\"a\": ",
    )
    .unwrap();
    assert_fails(&folder, &["model.safetensors.index.json", "not valid JSON"]);

    let folder = dir.path().join("ghost");
    fs::create_dir(&folder).unwrap();
    write_st(
        &folder.join("shard.safetensors"),
        &[("real", Dtype::U8, vec![2], vec![1, 2])],
    );
    let index =
        r#"{"weight_map": {"real": "shard.safetensors", "ghost.weight": "shard.safetensors"}}"#;
    fs::write(folder.join("model.safetensors.index.json"), index).unwrap();
    assert_fails(
        &folder,
        &["ghost.weight", "shard.safetensors", "does not contain"],
    );

    let parent = dir.path().join("bad_config");
    fs::create_dir(&parent).unwrap();
    let folder = good_folder(&parent);
    fs::write(folder.join("config.json"), "{\n  \"hidden_size\": 6,\n}").unwrap();
    assert_fails(&folder, &["config.json", "line 3 column 1"]);

    let empty = dir.path().join("no_weights");
    fs::create_dir(&empty).unwrap();
    assert_fails(&empty, &["no_weights", "no weights found"]);
}
