//! Loading files written by the reference `safetensors` crate: every iris dtype round-trips,
//! tensors are read in place (zero copy), shards are found through the index.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use half::{bf16, f16};
use iris_runtime::safetensors::{FileDType, SafetensorsFile, WeightStore};
use iris_runtime::storage::CpuStorage;
use iris_runtime::{DType, Element, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};

/// One tensor to write: name, dtype, shape, little-endian bytes.
struct Spec {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn spec<T: bytemuck::Pod>(name: &str, dtype: Dtype, shape: &[usize], values: &[T]) -> Spec {
    assert_eq!(values.len(), shape.iter().product::<usize>());
    Spec {
        name: name.to_string(),
        dtype,
        shape: shape.to_vec(),
        bytes: bytemuck::cast_slice(values).to_vec(),
    }
}

fn write_file(path: &Path, specs: &[Spec], metadata: Option<HashMap<String, String>>) {
    let views: Vec<(&str, TensorView)> = specs
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                TensorView::new(s.dtype, s.shape.clone(), &s.bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &metadata, path).unwrap();
}

/// Random non-zero values for each dtype, odd shapes.
fn all_dtypes(rng: &mut StdRng) -> Vec<Spec> {
    let n = |shape: &[usize]| shape.iter().product::<usize>();
    let nonzero_f32 = |rng: &mut StdRng| {
        let v: f32 = rng.gen_range(0.05..4.0);
        if rng.gen() {
            v
        } else {
            -v
        }
    };
    let (s_f32, s_f16, s_bf16, s_i32, s_i64, s_u8) =
        ([3, 5, 7], [13, 3], [1, 17, 5], [11], [2, 3, 5, 7], [9, 31]);
    let f32s: Vec<f32> = (0..n(&s_f32)).map(|_| nonzero_f32(rng)).collect();
    let f16s: Vec<f16> = (0..n(&s_f16))
        .map(|_| f16::from_f32(nonzero_f32(rng)))
        .collect();
    let bf16s: Vec<bf16> = (0..n(&s_bf16))
        .map(|_| bf16::from_f32(nonzero_f32(rng)))
        .collect();
    let i32s: Vec<i32> = (0..n(&s_i32))
        .map(|_| rng.gen_range(1..i32::MAX) * if rng.gen() { 1 } else { -1 })
        .collect();
    let i64s: Vec<i64> = (0..n(&s_i64))
        .map(|_| rng.gen_range(1..i64::MAX) * if rng.gen() { 1 } else { -1 })
        .collect();
    let u8s: Vec<u8> = (0..n(&s_u8)).map(|_| rng.gen_range(1..=255)).collect();
    vec![
        spec("vision.patch_embed.weight", Dtype::F32, &s_f32, &f32s),
        spec(
            "model.layers.0.mlp.up_proj.weight",
            Dtype::F16,
            &s_f16,
            &f16s,
        ),
        spec(
            "model.layers.0.self_attn.q_proj.weight",
            Dtype::BF16,
            &s_bf16,
            &bf16s,
        ),
        spec("token_ids", Dtype::I32, &s_i32, &i32s),
        spec("positions", Dtype::I64, &s_i64, &i64s),
        spec("pixels", Dtype::U8, &s_u8, &u8s),
    ]
}

fn iris_dtype(dtype: Dtype) -> DType {
    match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::U8 => DType::U8,
        other => panic!("{other:?}"),
    }
}

/// `t`'s elements equal the spec's, read as `T` in place.
fn assert_values<T: Element + PartialEq + std::fmt::Debug>(t: &Tensor, s: &Spec) {
    let expected: &[T] = bytemuck::cast_slice(&s.bytes);
    // The reference writer aligns every tensor (header padded to 8 bytes): typed reads work.
    let got = t.as_slice::<T>().unwrap();
    assert_eq!(got, expected, "{}", s.name);
}

fn check_all(store: &WeightStore, specs: &[Spec]) {
    assert_eq!(store.len(), specs.len());
    for s in specs {
        let dtype = iris_dtype(s.dtype);
        let info = store.info(&s.name).unwrap();
        assert_eq!(info.dtype, FileDType::from(dtype));
        assert_eq!(info.shape, s.shape);
        assert_eq!(info.byte_len(), s.bytes.len());
        let t = store.get_expect(&s.name, Some(dtype), &s.shape).unwrap();
        assert_eq!(t.dtype(), dtype);
        assert_eq!(t.dims(), &s.shape[..]);
        assert!(t.is_mapped() && t.is_contiguous());
        assert_eq!(t.contiguous_bytes().unwrap(), &s.bytes[..], "{}", s.name);
        assert!(
            s.bytes.iter().any(|&b| b != 0),
            "test data must not be zeros"
        );
        match dtype {
            DType::F32 => assert_values::<f32>(&t, s),
            DType::F16 => assert_values::<f16>(&t, s),
            DType::BF16 => assert_values::<bf16>(&t, s),
            DType::I32 => assert_values::<i32>(&t, s),
            DType::I64 => assert_values::<i64>(&t, s),
            DType::U8 => assert_values::<u8>(&t, s),
        }
    }
}

#[test]
fn round_trip_of_every_dtype() {
    let mut rng = StdRng::seed_from_u64(7);
    let specs = all_dtypes(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.safetensors");
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    write_file(&path, &specs, Some(metadata));

    let store = WeightStore::open(&path).unwrap();
    check_all(&store, &specs);
    assert_eq!(store.files().len(), 1);
    assert_eq!(
        store.files()[0]
            .metadata()
            .get("format")
            .map(String::as_str),
        Some("pt")
    );

    // The same bytes through the in-memory path.
    let file = SafetensorsFile::from_bytes("all.safetensors", &fs::read(&path).unwrap()).unwrap();
    check_all(&WeightStore::from_file(file), &specs);
}

#[test]
fn tensors_point_into_the_mapping() {
    let mut rng = StdRng::seed_from_u64(11);
    let specs = all_dtypes(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero_copy.safetensors");
    write_file(&path, &specs, None);

    let file = SafetensorsFile::open(&path).unwrap();
    let map = file.mmap();
    let range = map.as_ptr() as usize..map.as_ptr() as usize + map.len();
    for s in &specs {
        let t = file.get(&s.name).unwrap();
        let ptr = t.data_ptr() as usize;
        assert!(
            range.contains(&ptr),
            "{} at {ptr:#x} is outside the map {range:x?}",
            s.name
        );
        assert!(ptr + s.bytes.len() <= range.end);
        match &**t.storage() {
            CpuStorage::Mapped { map: m, .. } => assert!(std::sync::Arc::ptr_eq(m, map)),
            CpuStorage::Owned(_) => panic!("{} was copied", s.name),
        }
        // Two loads of one tensor share the same bytes.
        assert_eq!(file.get(&s.name).unwrap().data_ptr(), t.data_ptr());
    }
    // A tensor outlives the file handle that produced it.
    let t = file.get("pixels").unwrap();
    drop(file);
    assert_eq!(t.contiguous_bytes().unwrap(), &specs[5].bytes[..]);
}

#[test]
fn sharded_folder_with_index() {
    let mut rng = StdRng::seed_from_u64(23);
    let specs = all_dtypes(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = specs.split_at(4);
    let shard1 = "model-00001-of-00002.safetensors";
    let shard2 = "model-00002-of-00002.safetensors";
    write_file(&dir.path().join(shard1), first, None);
    write_file(&dir.path().join(shard2), second, None);
    let weight_map: serde_json::Map<String, serde_json::Value> = first
        .iter()
        .map(|s| (s.name.clone(), shard1.into()))
        .chain(second.iter().map(|s| (s.name.clone(), shard2.into())))
        .collect();
    let total: usize = specs.iter().map(|s| s.bytes.len()).sum();
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    fs::write(dir.path().join("config.json"), "{}").unwrap();

    let store = WeightStore::open(dir.path()).unwrap();
    check_all(&store, &specs);
    assert_eq!(store.files().len(), 2);
    assert!(store
        .index_path()
        .unwrap()
        .ends_with("model.safetensors.index.json"));
    assert_eq!(store.index_metadata().unwrap()["total_size"], total);
    assert!(store.info(&specs[5].name).unwrap().file.ends_with(shard2));
    assert!(store.info(&specs[0].name).unwrap().file.ends_with(shard1));
    let names: Vec<&str> = store.names().collect();
    let expected: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let mut sorted_names = names.clone();
    sorted_names.sort();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(sorted_names, sorted_expected);

    // Opening the index file directly is the same.
    let direct = WeightStore::open(dir.path().join("model.safetensors.index.json")).unwrap();
    assert_eq!(direct.names().collect::<Vec<_>>(), names);

    // A folder with model.safetensors prefers it over the index.
    write_file(&dir.path().join("model.safetensors"), &specs[..1], None);
    let single = WeightStore::open(dir.path()).unwrap();
    assert_eq!(single.len(), 1);
    assert!(single.index_path().is_none());
}

#[test]
fn tensor_with_a_zero_sized_dim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty_dim.safetensors");
    let values = [1.5f32, -2.25, 3.0];
    let specs = [
        Spec {
            name: "empty".into(),
            dtype: Dtype::F32,
            shape: vec![4, 0, 3],
            bytes: vec![],
        },
        spec("scalar", Dtype::F32, &[], &values[..1]),
        spec("after", Dtype::F32, &[3], &values),
    ];
    write_file(&path, &specs, None);
    let store = WeightStore::open(&path).unwrap();
    let empty = store
        .get_expect("empty", Some(DType::F32), &[4, 0, 3])
        .unwrap();
    assert_eq!(empty.numel(), 0);
    assert_eq!(store.info("empty").unwrap().byte_len(), 0);
    assert!(empty.to_vec_f32().is_empty());
    assert_eq!(store.get("scalar").unwrap().to_vec_f32(), [1.5]);
    assert_eq!(store.get("scalar").unwrap().dims(), &[] as &[usize]);
    assert_eq!(store.get("after").unwrap().to_vec_f32(), values);
}
