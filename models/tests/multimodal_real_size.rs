//! Real-size vision towers (CLIP ViT-L/14-336, SigLIP base 512) against transformers: run by
//! scripts/check_real_size_towers.py, which writes the folders and points IRIS_REAL_TOWERS
//! at them. Ignored by default (gigabytes of random weights, minutes of CPU).
//! `IRIS_REAL_TOWERS_DTYPE=bf16` loads the weights as bf16 (compared with the f32 reference
//! at the half-precision bound; with `IRIS_BF16_DOT=1` the GEMMs also compute in bf16).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use iris_kernels::testing::nmse;
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::safetensors::WeightStore;
use iris_runtime::DType;

#[test]
#[ignore = "needs scripts/check_real_size_towers.py"]
fn real_size_towers_match_transformers() {
    let root =
        std::env::var("IRIS_REAL_TOWERS").expect("IRIS_REAL_TOWERS: folder written by the script");
    let (dtype, bound) = match std::env::var("IRIS_REAL_TOWERS_DTYPE").as_deref() {
        Ok("bf16") => (Some(DType::BF16), 1e-3),
        Ok("f32") | Err(_) => (None, 1e-6),
        Ok(other) => panic!("IRIS_REAL_TOWERS_DTYPE: `{other}` is not f32 or bf16"),
    };
    for name in ["clip-vit-l-14-336", "siglip-base-512"] {
        let dir = Path::new(&root).join(name);
        let store = WeightStore::open(dir.join("reference.safetensors")).unwrap();
        let pixels = store.get("pixel_values").unwrap();
        let expected = store.get("image_features").unwrap();
        let model = Arc::new(MultimodalModel::load(&dir, dtype).unwrap());
        let mut session = MultimodalSession::new(model, CpuBackend::new(), 8).unwrap();
        session.encode_images(&pixels).unwrap(); // compiles the vision graph
        let mut times = Vec::new();
        let mut features = None;
        for _ in 0..3 {
            let start = Instant::now();
            features = Some(session.encode_images(&pixels).unwrap());
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let features = features.unwrap();
        assert_eq!(features.dims(), expected.dims(), "{name}");
        let error = nmse(&features.to_vec_f32(), &expected.to_vec_f32());
        println!(
            "{name}: iris {} nmse {error:.3e}, {:.1} ms (median of 3)",
            dtype.map_or("f32".to_string(), |d| d.to_string()),
            times[1]
        );
        assert!(error <= bound, "{name}: nmse {error:.3e} > {bound:e}");
    }
}
