//! Fuzzes the safetensors loader: any byte string must open or fail with a `LoadError`, and
//! every tensor of a file that opens must be readable (or refused with an error), never panic.

#![no_main]

use iris_runtime::safetensors::{SafetensorsFile, WeightStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SafetensorsFile::from_bytes("fuzz.safetensors", data) else {
        return;
    };
    let _ = file.metadata().len();
    let store = WeightStore::from_file(file);
    let names: Vec<String> = store.names().map(str::to_string).collect();
    for name in &names {
        let info = store.info(name).expect("listed tensor has info");
        let bytes = store.bytes(name).expect("listed tensor has bytes");
        assert_eq!(bytes.len(), info.byte_len());
        let _ = info.expect(info.iris_dtype(), &info.shape);
        match store.get(name) {
            Ok(tensor) => {
                assert_eq!(tensor.numel(), info.numel());
                assert_eq!(
                    tensor.contiguous_bytes().expect("contiguous").len(),
                    bytes.len()
                );
                // Read every element (exercises the shape and storage arithmetic).
                let values = tensor.to_vec_f32();
                assert_eq!(values.len(), info.numel());
                let _ = tensor.to_vec_i64();
            }
            Err(_) => assert!(info.iris_dtype().is_none(), "supported dtype refused"),
        }
    }
});
