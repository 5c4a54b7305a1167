//! Real-size vision towers (CLIP ViT-L/14-336, SigLIP base 512) against transformers: run by
//! scripts/check_real_size_towers.py, which writes the folders and points IRIS_REAL_TOWERS
//! at them. Ignored by default (gigabytes of random weights, minutes of CPU).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use iris_kernels::testing::nmse;
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::safetensors::WeightStore;

#[test]
#[ignore = "needs scripts/check_real_size_towers.py"]
fn real_size_towers_match_transformers() {
    let root =
        std::env::var("IRIS_REAL_TOWERS").expect("IRIS_REAL_TOWERS: folder written by the script");
    for name in ["clip-vit-l-14-336", "siglip-base-512"] {
        let dir = Path::new(&root).join(name);
        let store = WeightStore::open(dir.join("reference.safetensors")).unwrap();
        let pixels = store.get("pixel_values").unwrap();
        let expected = store.get("image_features").unwrap();
        let model = Arc::new(MultimodalModel::load(&dir, None).unwrap());
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
            "{name}: iris nmse {error:.3e}, {:.1} ms (median of 3)",
            times[1]
        );
        assert!(error <= 1e-6, "{name}: nmse {error:.3e}");
    }
}
