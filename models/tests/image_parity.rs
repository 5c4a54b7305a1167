//! Preprocessing parity against the HF processors (transformers 5, torchvision "fast"
//! variants, the default `AutoImageProcessor` picks), on the fixtures written by
//! scripts/make_image_fixtures.py: every fixture image x every config in
//! fixtures/images/configs. Bounds in normalized units: max abs <= 0.05, mean abs <= 0.005.
//! Expected values are stored as f16 (subsampled by the file's `stride` for large outputs).

use std::path::{Path, PathBuf};

use half::f16;
use iris_models::image::{self, PreprocessorConfig, PromptTokens, RgbImage};
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images")
}

fn image_path(stem: &str) -> PathBuf {
    for ext in ["png", "jpg", "webp"] {
        let p = fixtures().join(format!("{stem}.{ext}"));
        if p.exists() {
            return p;
        }
    }
    panic!("no fixture image named {stem}");
}

fn load(stem: &str) -> RgbImage {
    image::load_image(image_path(stem)).unwrap_or_else(|e| panic!("{e}"))
}

fn i64s(st: &SafeTensors, name: &str) -> Vec<i64> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    t.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn f16s(st: &SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let v = t
        .data()
        .chunks_exact(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    (v, t.shape().to_vec())
}

/// ours[..., ::stride, ::stride] for a contiguous [N, 3, H, W] buffer.
fn subsample(data: &[f32], dims: &[usize], stride: usize) -> Vec<f32> {
    let (n, c, h, w) = (dims[0], dims[1], dims[2], dims[3]);
    let mut out = Vec::new();
    for plane in 0..n * c {
        for y in (0..h).step_by(stride) {
            for x in (0..w).step_by(stride) {
                out.push(data[(plane * h + y) * w + x]);
            }
        }
    }
    out
}

#[test]
fn pixel_values_match_hf_fast_processors() {
    let mut configs: Vec<_> = std::fs::read_dir(fixtures().join("configs"))
        .expect("fixtures/images/configs")
        .map(|e| e.unwrap().path())
        .collect();
    configs.sort();
    assert!(
        configs.len() >= 6,
        "expected 6 configs, found {}",
        configs.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for dir in configs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let cfg = PreprocessorConfig::from_file(&dir).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(fixtures().join(format!("expected/{name}.safetensors"))).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap_or_default();
        let stride: usize = meta["stride"].parse().unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for stem in meta["images"].split(',') {
            let out = image::preprocess(&cfg, &[load(stem)]).unwrap_or_else(|e| panic!("{e}"));
            let dims = out.pixel_values.dims().to_vec();
            let full: Vec<usize> = i64s(&st, &format!("{stem}/full_shape"))
                .iter()
                .map(|&v| v as usize)
                .collect();
            // HF Idefics3 is [tiles, 3, H, W] per image here too (batch of one).
            assert_eq!(dims, full, "{name}/{stem}: shape");
            if name.starts_with("idefics3") {
                let rc = i64s(&st, &format!("{stem}/rows_cols"));
                let tiles = i64s(&st, &format!("{stem}/num_tiles"))[0] as usize;
                assert_eq!(
                    out.rows_cols,
                    vec![(rc[0] as usize, rc[1] as usize)],
                    "{name}/{stem}: rows/cols"
                );
                assert_eq!(out.tiles_per_image, vec![tiles], "{name}/{stem}: tiles");
                let mask = out.pixel_attention_mask.as_ref().expect("mask");
                assert_eq!(mask.dims(), &[dims[0], dims[2], dims[3]]);
            }
            let ours = subsample(&out.pixel_values.to_vec_f32(), &dims, stride);
            let (expected, _) = f16s(&st, &format!("{stem}/pixel_values"));
            assert_eq!(ours.len(), expected.len(), "{name}/{stem}: element count");
            let mut max = 0.0f32;
            let mut sum = 0.0f64;
            for (a, b) in ours.iter().zip(&expected) {
                let d = (a - b).abs();
                assert!(d.is_finite(), "{name}/{stem}: NaN");
                max = max.max(d);
                sum += d as f64;
            }
            let mean = sum / ours.len() as f64;
            println!(
                "{name:18} {stem:16} shape {dims:?} stride {stride}: max abs {max:.5} mean abs {mean:.6}"
            );
            if max > 0.05 || mean > 0.005 {
                failures.push(format!("{name}/{stem}: max {max} mean {mean}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 36, "only {checked} cases checked");
    assert!(failures.is_empty(), "parity failures: {failures:#?}");
}

#[test]
fn idefics3_prompts_match_hf() {
    let text = std::fs::read_to_string(fixtures().join("expected/idefics3_prompts.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 2);
    for case in cases {
        let cfg_name = case["config"].as_str().unwrap();
        let cfg = PreprocessorConfig::from_file(fixtures().join("configs").join(cfg_name)).unwrap();
        let images: Vec<RgbImage> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| load(s.as_str().unwrap()))
            .collect();
        let out = image::preprocess(&cfg, &images).unwrap();
        let expected_rc: Vec<(usize, usize)> = case["rows_cols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(out.rows_cols, expected_rc, "{cfg_name}: rows/cols");
        let seq = case["image_seq_len"].as_u64().unwrap() as usize;
        let got = image::expand_prompt(
            case["text"].as_str().unwrap(),
            &out.rows_cols,
            seq,
            &PromptTokens::default(),
        )
        .unwrap();
        let want = case["expanded"].as_str().unwrap();
        assert_eq!(got, want, "{cfg_name}: {} images", images.len());
        println!(
            "{cfg_name}: {} image(s), expanded prompt {} chars: equal",
            images.len(),
            got.len()
        );
    }
}
