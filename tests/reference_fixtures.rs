//! The CPU reference kernels (`iris_kernels::cpu::reference`) against PyTorch.
//!
//! The fixtures in `fixtures/ops/*.safetensors` are written by `scripts/make_op_fixtures.py`
//! (deterministic; expected outputs computed in float64 from the stored f32/bf16/f16 inputs,
//! rounded once to f32). Each file holds tensors named `<case>/<role>` and, in its
//! `__metadata__`, one key `cases`: a JSON object `{case: {param: value}}`.
//!
//! One `#[test]` per case, so a failure names the op and the case. A missing fixture file
//! or tensor is a failure, never a skip. `every_fixture_case_has_a_test` keeps this file and
//! the script in step.

use std::collections::BTreeSet;
use std::path::PathBuf;

use half::{bf16, f16};
use iris_kernels::cpu::reference::{self as r, AttentionParams, Conv2dParams, KvStrides};
use iris_kernels::testing::{
    max_abs_diff, nmse, NMSE_F32_ELEMENTWISE as ELEMENTWISE, NMSE_F32_REDUCTION as REDUCTION,
};
use iris_kernels::WeightSlice;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Fixture loading (the `safetensors` crate directly; no runtime loader).
// ---------------------------------------------------------------------------------------

fn fixture_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("ops")
        .join(format!("{file}.safetensors"))
}

struct Fixture {
    file: String,
    bytes: Vec<u8>,
    cases: serde_json::Map<String, Value>,
}

/// Weights in whatever dtype the fixture stores them, owned, viewable as a `WeightSlice`.
enum Weights {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl Weights {
    fn slice(&self) -> WeightSlice<'_> {
        match self {
            Weights::F32(w) => WeightSlice::F32(w),
            Weights::F16(w) => WeightSlice::F16(w),
            Weights::BF16(w) => WeightSlice::BF16(w),
        }
    }
}

impl Fixture {
    fn load(file: &str) -> Fixture {
        let path = fixture_path(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "fixture {} is missing or unreadable ({e}); regenerate it with \
                 `python3 scripts/make_op_fixtures.py`",
                path.display()
            )
        });
        let (_, metadata) = SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("{}: not a safetensors file: {e:?}", path.display()));
        let cases_json = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("cases"))
            .unwrap_or_else(|| panic!("{}: no `cases` in __metadata__", path.display()))
            .clone();
        let cases = match serde_json::from_str::<Value>(&cases_json) {
            Ok(Value::Object(map)) => map,
            other => panic!(
                "{}: `cases` is not a JSON object: {other:?}",
                path.display()
            ),
        };
        Fixture {
            file: file.to_string(),
            bytes,
            cases,
        }
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("header parsed once already")
    }

    fn has(&self, case: &str, role: &str) -> bool {
        self.st().tensor(&format!("{case}/{role}")).is_ok()
    }

    fn raw(&self, case: &str, role: &str) -> (Dtype, Vec<usize>, Vec<u8>) {
        let name = format!("{case}/{role}");
        let st = self.st();
        let view = st
            .tensor(&name)
            .unwrap_or_else(|e| panic!("{}: tensor `{name}` missing: {e:?}", self.file));
        (view.dtype(), view.shape().to_vec(), view.data().to_vec())
    }

    fn shape(&self, case: &str, role: &str) -> Vec<usize> {
        self.raw(case, role).1
    }

    fn f32(&self, case: &str, role: &str) -> Vec<f32> {
        let (dtype, _, data) = self.raw(case, role);
        assert_eq!(dtype, Dtype::F32, "{}: {case}/{role} dtype", self.file);
        bytemuck::pod_collect_to_vec(&data)
    }

    fn i64(&self, case: &str, role: &str) -> Vec<i64> {
        let (dtype, _, data) = self.raw(case, role);
        assert_eq!(dtype, Dtype::I64, "{}: {case}/{role} dtype", self.file);
        bytemuck::pod_collect_to_vec(&data)
    }

    fn weights(&self, case: &str, role: &str) -> Weights {
        let (dtype, _, data) = self.raw(case, role);
        match dtype {
            Dtype::F32 => Weights::F32(bytemuck::pod_collect_to_vec(&data)),
            Dtype::F16 => Weights::F16(bytemuck::pod_collect_to_vec(&data)),
            Dtype::BF16 => Weights::BF16(bytemuck::pod_collect_to_vec(&data)),
            other => panic!("{}: {case}/{role}: unexpected dtype {other:?}", self.file),
        }
    }

    fn opt_weights(&self, case: &str, role: &str) -> Option<Weights> {
        self.has(case, role).then(|| self.weights(case, role))
    }

    fn param(&self, case: &str, key: &str) -> &Value {
        self.cases
            .get(case)
            .unwrap_or_else(|| panic!("{}: no case `{case}` in metadata", self.file))
            .get(key)
            .unwrap_or_else(|| panic!("{}: case `{case}` has no param `{key}`", self.file))
    }

    fn usize(&self, case: &str, key: &str) -> usize {
        self.param(case, key)
            .as_u64()
            .unwrap_or_else(|| panic!("{}: {case}.{key} is not an integer", self.file))
            as usize
    }

    fn f32_param(&self, case: &str, key: &str) -> f32 {
        self.param(case, key)
            .as_f64()
            .unwrap_or_else(|| panic!("{}: {case}.{key} is not a number", self.file)) as f32
    }

    fn bool(&self, case: &str, key: &str) -> bool {
        self.param(case, key)
            .as_bool()
            .unwrap_or_else(|| panic!("{}: {case}.{key} is not a bool", self.file))
    }

    fn pair(&self, case: &str, key: &str) -> [usize; 2] {
        let v = self.param(case, key).as_array().expect("a [h, w] pair");
        assert_eq!(v.len(), 2, "{case}.{key}");
        [
            v[0].as_u64().unwrap() as usize,
            v[1].as_u64().unwrap() as usize,
        ]
    }

    fn what(&self, case: &str) -> String {
        format!("{}/{case}", self.file)
    }
}

// ---------------------------------------------------------------------------------------
// Per-op checks.
// ---------------------------------------------------------------------------------------

/// `testing::assert_nmse`, printing the NMSE and max abs diff first when
/// `IRIS_FIXTURE_VERBOSE` is set (`IRIS_FIXTURE_VERBOSE=1 cargo test --test
/// reference_fixtures -- --nocapture` lists how close every case is).
fn assert_nmse(what: &str, actual: &[f32], expected: &[f32], threshold: f64) {
    if std::env::var_os("IRIS_FIXTURE_VERBOSE").is_some() {
        eprintln!(
            "{what}: NMSE {:.3e} (threshold {threshold:e}), max abs diff {:.3e}",
            nmse(actual, expected),
            max_abs_diff(actual, expected)
        );
    }
    iris_kernels::testing::assert_nmse(what, actual, expected, threshold);
}

fn check_activation(case: &str, f: fn(&[f32], &mut [f32])) {
    let fx = Fixture::load("activations");
    let x = fx.f32(case, "x");
    let expected = fx.f32(case, "expected");
    let mut out = vec![f32::NAN; x.len()];
    f(&x, &mut out);
    assert_nmse(&fx.what(case), &out, &expected, ELEMENTWISE);
}

fn check_rms_norm(case: &str) {
    let fx = Fixture::load("norms");
    let x = fx.f32(case, "x");
    let w = fx.weights(case, "weight");
    let expected = fx.f32(case, "expected");
    let eps = fx.f32_param(case, "eps");
    let dim = fx.usize(case, "dim");
    let mut out = vec![f32::NAN; x.len()];
    r::rms_norm(&x, w.slice(), eps, dim, &mut out);
    assert_nmse(&fx.what(case), &out, &expected, REDUCTION);
}

fn check_layer_norm(case: &str) {
    let fx = Fixture::load("norms");
    let x = fx.f32(case, "x");
    let w = fx.weights(case, "weight");
    let b = fx.opt_weights(case, "bias");
    let expected = fx.f32(case, "expected");
    let eps = fx.f32_param(case, "eps");
    let dim = fx.usize(case, "dim");
    let mut out = vec![f32::NAN; x.len()];
    r::layer_norm(
        &x,
        w.slice(),
        b.as_ref().map(Weights::slice),
        eps,
        dim,
        &mut out,
    );
    assert_nmse(&fx.what(case), &out, &expected, REDUCTION);
}

fn check_softmax(case: &str) {
    let fx = Fixture::load("softmax");
    let x = fx.f32(case, "x");
    let expected = fx.f32(case, "expected");
    let cols = fx.usize(case, "cols");
    let mut out = vec![f32::NAN; x.len()];
    r::softmax(&x, cols, &mut out);
    assert_nmse(&fx.what(case), &out, &expected, REDUCTION);
}

fn check_matmul(case: &str) {
    let fx = Fixture::load("matmul");
    let a = fx.f32(case, "a");
    let w = fx.weights(case, "weight");
    let b = fx.opt_weights(case, "bias");
    let expected = fx.f32(case, "expected");
    let (m, n, k) = (
        fx.usize(case, "m"),
        fx.usize(case, "n"),
        fx.usize(case, "k"),
    );
    assert_eq!(fx.shape(case, "weight"), vec![n, k]);
    let mut out = vec![f32::NAN; m * n];
    r::matmul(
        &a,
        w.slice(),
        b.as_ref().map(Weights::slice),
        m,
        n,
        k,
        &mut out,
    );
    assert_nmse(&fx.what(case), &out, &expected, REDUCTION);
}

fn check_rope(case: &str) {
    let fx = Fixture::load("rope");
    let x = fx.f32(case, "x");
    let positions = fx.i64(case, "positions");
    let hf_inv_freq = fx.f32(case, "inv_freq");
    let expected = fx.f32(case, "expected");
    let n_heads = fx.usize(case, "n_heads");
    let head_dim = fx.usize(case, "head_dim");
    let rotary_dim = fx.usize(case, "rotary_dim");
    let theta = fx.f32_param(case, "theta");

    // The rotation itself, fed HF's own inv_freq.
    let mut out = vec![f32::NAN; x.len()];
    r::rope(&x, &positions, n_heads, head_dim, &hf_inv_freq, &mut out);
    assert_nmse(
        &format!("{} (rope with HF inv_freq)", fx.what(case)),
        &out,
        &expected,
        ELEMENTWISE,
    );

    // The inverse frequencies, against transformers' float32 computation.
    let inv_freq = r::rope_inv_freq(rotary_dim, theta);
    assert_eq!(
        inv_freq.len(),
        rotary_dim / 2,
        "{}: inv_freq length",
        fx.what(case)
    );
    assert_nmse(
        &format!("{} (rope_inv_freq)", fx.what(case)),
        &inv_freq,
        &hf_inv_freq,
        ELEMENTWISE,
    );

    // And the two together, as the model uses them.
    let mut out = vec![f32::NAN; x.len()];
    r::rope(&x, &positions, n_heads, head_dim, &inv_freq, &mut out);
    assert_nmse(
        &format!("{} (rope with rope_inv_freq)", fx.what(case)),
        &out,
        &expected,
        ELEMENTWISE,
    );
}

/// Runs each attention case twice: K/V as stored ([B, Tk, Hkv, D], `KvStrides::bthd`) and
/// copied into a KV-cache layout [B, Hkv, max_seq, D] (`KvStrides::bhsd`) whose unused tail
/// positions hold NaN, so reading past kv_len fails.
fn check_attention(case: &str) {
    let fx = Fixture::load("attention");
    let q = fx.f32(case, "q");
    let k = fx.f32(case, "k");
    let v = fx.f32(case, "v");
    let mask = fx.has(case, "mask").then(|| fx.f32(case, "mask"));
    let expected = fx.f32(case, "expected");
    let p = AttentionParams {
        batch: fx.usize(case, "batch"),
        q_len: fx.usize(case, "q_len"),
        kv_len: fx.usize(case, "kv_len"),
        n_heads: fx.usize(case, "n_heads"),
        n_kv_heads: fx.usize(case, "n_kv_heads"),
        head_dim: fx.usize(case, "head_dim"),
        scale: fx.f32_param(case, "scale"),
        causal: fx.bool(case, "causal"),
    };
    let (b, tk, hkv, d) = (p.batch, p.kv_len, p.n_kv_heads, p.head_dim);

    let mut out = vec![f32::NAN; q.len()];
    r::attention(
        &q,
        &k,
        &v,
        KvStrides::bthd(tk, hkv, d),
        mask.as_deref(),
        &p,
        &mut out,
    );
    assert_nmse(
        &format!("{} (kv bthd)", fx.what(case)),
        &out,
        &expected,
        REDUCTION,
    );

    let max_seq = tk + 5;
    let to_cache = |src: &[f32]| {
        let mut cache = vec![f32::NAN; b * hkv * max_seq * d];
        for bi in 0..b {
            for t in 0..tk {
                for h in 0..hkv {
                    let s = ((bi * tk + t) * hkv + h) * d;
                    let c = ((bi * hkv + h) * max_seq + t) * d;
                    cache[c..c + d].copy_from_slice(&src[s..s + d]);
                }
            }
        }
        cache
    };
    let (kc, vc) = (to_cache(&k), to_cache(&v));
    let mut out = vec![f32::NAN; q.len()];
    r::attention(
        &q,
        &kc,
        &vc,
        KvStrides::bhsd(max_seq, hkv, d),
        mask.as_deref(),
        &p,
        &mut out,
    );
    assert_nmse(
        &format!("{} (kv bhsd cache, max_seq {max_seq})", fx.what(case)),
        &out,
        &expected,
        REDUCTION,
    );
}

fn check_conv2d(case: &str) {
    let fx = Fixture::load("conv2d");
    let x = fx.f32(case, "x");
    let w = fx.weights(case, "weight");
    let b = fx.opt_weights(case, "bias");
    let expected = fx.f32(case, "expected");
    let p = Conv2dParams {
        batch: fx.usize(case, "batch"),
        in_channels: fx.usize(case, "in_channels"),
        height: fx.usize(case, "height"),
        width: fx.usize(case, "width"),
        out_channels: fx.usize(case, "out_channels"),
        kernel_h: fx.usize(case, "kernel_h"),
        kernel_w: fx.usize(case, "kernel_w"),
        stride: fx.pair(case, "stride"),
        padding: fx.pair(case, "padding"),
    };
    assert_eq!(
        p.out_height(),
        fx.usize(case, "out_height"),
        "{case}: out_height"
    );
    assert_eq!(
        p.out_width(),
        fx.usize(case, "out_width"),
        "{case}: out_width"
    );
    let mut out = vec![f32::NAN; expected.len()];
    r::conv2d(&x, w.slice(), b.as_ref().map(Weights::slice), &p, &mut out);
    assert_nmse(&fx.what(case), &out, &expected, REDUCTION);
}

fn check_pixel_shuffle(case: &str) {
    let fx = Fixture::load("pixel_shuffle");
    let x = fx.f32(case, "x");
    let expected = fx.f32(case, "expected");
    let (batch, seq, embed, scale) = (
        fx.usize(case, "batch"),
        fx.usize(case, "seq"),
        fx.usize(case, "embed"),
        fx.usize(case, "scale"),
    );
    let mut out = vec![f32::NAN; x.len()];
    r::pixel_shuffle(&x, batch, seq, embed, scale, &mut out);
    assert_nmse(&fx.what(case), &out, &expected, ELEMENTWISE);
}

fn check_embedding(case: &str) {
    let fx = Fixture::load("embedding");
    let ids = fx.i64(case, "ids");
    let table = fx.weights(case, "table");
    let expected = fx.f32(case, "expected");
    let dim = fx.usize(case, "dim");
    let mut out = vec![f32::NAN; ids.len() * dim];
    r::embedding(&ids, table.slice(), dim, &mut out)
        .unwrap_or_else(|e| panic!("{}: unexpected error {e:?}", fx.what(case)));
    assert_nmse(&fx.what(case), &out, &expected, ELEMENTWISE);

    // Ids outside [0, vocab) are an error, not a wrap-around or a panic.
    let vocab = fx.usize(case, "vocab");
    for bad in [vocab as i64, -1] {
        let mut out = vec![0.0; dim];
        assert!(
            r::embedding(&[bad], table.slice(), dim, &mut out).is_err(),
            "{}: id {bad} with vocab {vocab} must be IdOutOfRange",
            fx.what(case)
        );
    }
}

fn check_argmax(case: &str) {
    let fx = Fixture::load("argmax");
    let x = fx.f32(case, "x");
    let expected = fx.i64(case, "expected");
    let cols = fx.usize(case, "cols");
    let mut out = vec![-1i64; x.len() / cols];
    r::argmax(&x, cols, &mut out);
    assert_eq!(
        out,
        expected,
        "{}: argmax differs from torch.argmax (first maximal index)",
        fx.what(case)
    );
}

// ---------------------------------------------------------------------------------------
// One test per case. The list below is also what `every_fixture_case_has_a_test` checks.
// ---------------------------------------------------------------------------------------

macro_rules! fixture_tests {
    ($($file:literal => { $($test:ident: $check:expr, $case:literal;)* })*) => {
        $($(
            #[test]
            fn $test() {
                ($check)($case);
            }
        )*)*

        const TESTED_CASES: &[(&str, &str)] = &[$($(($file, $case),)*)*];
    };
}

fixture_tests! {
    "activations" => {
        gelu_erf: |c| check_activation(c, r::gelu_erf), "gelu_erf";
        gelu_tanh: |c| check_activation(c, r::gelu_tanh), "gelu_tanh";
        quick_gelu: |c| check_activation(c, r::quick_gelu), "quick_gelu";
        silu: |c| check_activation(c, r::silu), "silu";
    }
    "norms" => {
        rms_norm_eps1e_5: check_rms_norm, "rms_norm_eps1e-5";
        rms_norm_eps1e_6: check_rms_norm, "rms_norm_eps1e-6";
        rms_norm_bf16_weight: check_rms_norm, "rms_norm_bf16_weight";
        layer_norm_bias: check_layer_norm, "layer_norm_bias";
        layer_norm_no_bias: check_layer_norm, "layer_norm_no_bias";
    }
    "softmax" => {
        softmax: check_softmax, "softmax";
        softmax_one_col: check_softmax, "softmax_one_col";
    }
    "matmul" => {
        matmul_f32_bias: check_matmul, "matmul_f32_bias";
        matmul_f32_gemv: check_matmul, "matmul_f32_gemv";
        matmul_bf16_bias: check_matmul, "matmul_bf16_bias";
        matmul_f16: check_matmul, "matmul_f16";
        matmul_f16_bias_gemv: check_matmul, "matmul_f16_bias_gemv";
    }
    "rope" => {
        rope_full_theta1e4: check_rope, "rope_full_theta1e4";
        rope_full_theta1e5: check_rope, "rope_full_theta1e5";
        rope_partial_24_16: check_rope, "rope_partial_24_16";
        rope_partial_80_32: check_rope, "rope_partial_80_32";
    }
    "attention" => {
        attn_noncausal_d24: check_attention, "attn_noncausal_d24";
        attn_noncausal_cross_d80: check_attention, "attn_noncausal_cross_d80";
        attn_causal_square_d80: check_attention, "attn_causal_square_d80";
        attn_causal_offset_d24: check_attention, "attn_causal_offset_d24";
        attn_causal_decode_d80: check_attention, "attn_causal_decode_d80";
        attn_gqa_causal_d24: check_attention, "attn_gqa_causal_d24";
        attn_gqa_decode_d80: check_attention, "attn_gqa_decode_d80";
        attn_gqa_prefill_offset_d80: check_attention, "attn_gqa_prefill_offset_d80";
        attn_mask_d24: check_attention, "attn_mask_d24";
        attn_mask_causal_scale_d24: check_attention, "attn_mask_causal_scale_d24";
    }
    "conv2d" => {
        conv_patch14: check_conv2d, "conv_patch14";
        conv_patch7_nobias_bf16: check_conv2d, "conv_patch7_nobias_bf16";
        conv_3x3_s2_p1: check_conv2d, "conv_3x3_s2_p1";
        conv_asym_k3x2_s2x1_p0x2: check_conv2d, "conv_asym_k3x2_s2x1_p0x2";
    }
    "pixel_shuffle" => {
        pixel_shuffle_s2: check_pixel_shuffle, "pixel_shuffle_s2";
        pixel_shuffle_s3: check_pixel_shuffle, "pixel_shuffle_s3";
        pixel_shuffle_s4: check_pixel_shuffle, "pixel_shuffle_s4";
    }
    "embedding" => {
        embedding_f32: check_embedding, "embedding_f32";
        embedding_bf16: check_embedding, "embedding_bf16";
        embedding_f16: check_embedding, "embedding_f16";
    }
    "argmax" => {
        argmax: check_argmax, "argmax";
        argmax_ties: check_argmax, "argmax_ties";
    }
}

/// Every case the script writes has a test above, and every test's case exists.
#[test]
fn every_fixture_case_has_a_test() {
    let files: BTreeSet<&str> = TESTED_CASES.iter().map(|(f, _)| *f).collect();
    let tested: BTreeSet<(String, String)> = TESTED_CASES
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect();
    let mut in_files = BTreeSet::new();
    for file in &files {
        let fx = Fixture::load(file);
        for case in fx.cases.keys() {
            in_files.insert((file.to_string(), case.clone()));
        }
    }
    let untested: Vec<_> = in_files.difference(&tested).collect();
    let missing: Vec<_> = tested.difference(&in_files).collect();
    assert!(
        untested.is_empty() && missing.is_empty(),
        "fixture cases without a test: {untested:?}; tests without a fixture case: {missing:?}"
    );
    // And no stray fixture file the tests don't know about.
    let dir = fixture_path("x").parent().unwrap().to_path_buf();
    for entry in std::fs::read_dir(&dir).expect("fixtures/ops exists") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".safetensors") {
            assert!(files.contains(stem), "fixtures/ops/{name} has no tests");
        }
    }
}
