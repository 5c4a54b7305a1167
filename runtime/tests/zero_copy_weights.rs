//! A bf16 weight memory-mapped from a safetensors file is read by the CPU matmul where it
//! lies in the mapping: no copy on load, none when the graph is compiled.

use std::collections::HashMap;

use half::bf16;
use iris_kernels::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::backend::Backend;
use iris_runtime::graph::{Executor, ExecutorOptions, GraphBuilder};
use iris_runtime::safetensors::WeightStore;
use iris_runtime::{DType, Tensor};
use safetensors::tensor::TensorView;

#[test]
fn mapped_bf16_weight_is_read_in_place_by_the_cpu_matmul() {
    let (m, n, k) = (3usize, 17usize, 45usize);
    let mut rng = Rng::new(5);
    let w: Vec<bf16> = rng
        .vec(n * k, -1.0, 1.0)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let view = TensorView::new(
        safetensors::Dtype::BF16,
        vec![n, k],
        bytemuck::cast_slice(&w),
    )
    .unwrap();
    let data: HashMap<String, TensorView> = [("proj.weight".to_string(), view)].into();
    safetensors::serialize_to_file(data, &None, &path).unwrap();

    let store = WeightStore::open(&path).unwrap();
    let weight = store.get("proj.weight").unwrap();
    assert!(weight.is_mapped());
    let map = store.files()[0].mmap();
    let range = map.as_ptr() as usize..map.as_ptr() as usize + map.len();
    assert!(
        range.contains(&(weight.data_ptr() as usize)),
        "tensor data lies in the mapping"
    );

    let mut backend = CpuBackend::new();
    let slot = backend.weight(&weight).unwrap();
    assert!(slot.is_weight_in_place());
    assert_eq!(
        slot.data_ptr(),
        weight.data_ptr(),
        "the kernel reads the mapped bytes"
    );

    let x = Tensor::from_slice(&rng.vec(m * k, -1.0, 1.0), [m, k]).unwrap();
    let mut g = GraphBuilder::new();
    let xi = g.input("x", DType::F32, [m, k]).unwrap();
    let wi = g.weight("proj.weight", weight.clone()).unwrap();
    let y = g.matmul(xi, wi, None).unwrap();
    g.output("y", y).unwrap();
    let mut exec = Executor::new(&mut backend, g.build(), ExecutorOptions::default()).unwrap();
    exec.run(&mut backend, &[("x", &x)]).unwrap();
    let got = exec.read(&mut backend, "y").unwrap().to_vec_f32();

    let (xv, wv) = (x.to_vec_f32(), weight.to_vec_f32());
    let expected: Vec<f32> = (0..m * n)
        .map(|i| {
            let (r, c) = (i / n, i % n);
            (0..k)
                .map(|p| xv[r * k + p] as f64 * wv[c * k + p] as f64)
                .sum::<f64>() as f32
        })
        .collect();
    assert_nmse("mapped bf16 matmul", &got, &expected, NMSE_F32_REDUCTION);
}
