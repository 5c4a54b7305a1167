//! Fuzzes the GGUF reader: any byte string must parse or fail with a `GgufError`; every
//! tensor of a file that parses must give exactly its bytes and dequantize (or be refused as
//! an unsupported type); the metadata getters and the tokenizer builder must never panic.

#![no_main]

use iris_models::gguf::{dequant, tokenizer, GgufFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes("fuzz.gguf", data) else {
        return;
    };
    assert!(file.data_start().is_multiple_of(file.alignment()));
    for (key, value) in file.metadata() {
        let _ = value.brief();
        let _ = file.get_u64(key);
        let _ = file.get_f64(key);
        let _ = file.get_str(key);
        let _ = file.get_bool(key);
        let _ = file.get_string_array(key);
        let _ = file.get_int_array(key);
    }
    for t in file.tensors() {
        let bytes = file.tensor_data(&t.name).expect("listed tensor has data");
        assert_eq!(bytes.len() as u64, t.n_bytes);
        assert!(t.offset.is_multiple_of(file.alignment()));
        let elements = t
            .shape()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        assert_eq!(elements, Some(t.n_elements));
        match file.dequantize(&t.name) {
            Ok(values) => assert_eq!(values.len() as u64, t.n_elements),
            Err(_) => assert!(
                !dequant::is_supported(t.ggml_type),
                "supported type refused"
            ),
        }
    }
    let _ = tokenizer::build_tokenizer(&file, Some(1024));
});
