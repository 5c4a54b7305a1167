//! The graph layer end to end on the CPU backend: memory plan, executor, KV-cache state,
//! data-movement ops against the tensor views, and errors instead of panics.

use iris_kernels::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE, NMSE_F32_REDUCTION};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::graph::{Executor, ExecutorOptions, GraphBuilder};
use iris_runtime::{DType, Error, Tensor};

fn random(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_slice(&rng.vec(n, -1.5, 1.5), dims.to_vec()).unwrap()
}

/// Prefill of 5 tokens then 3 single-token decode steps through the KV cache must equal
/// causal attention over all 8 tokens at once.
#[test]
fn cached_attention_prefill_then_decode_equals_full_causal_attention() {
    prefill_then_decode(CpuBackend::new(), DType::F32);
    prefill_then_decode(CpuBackend::reference(), DType::F32);
}

/// The same with f16 caches, fast and reference kernels: equal to full attention over K/V
/// rounded to f16.
#[test]
fn f16_cached_attention_equals_attention_over_rounded_kv() {
    prefill_then_decode(CpuBackend::new(), DType::F16);
    prefill_then_decode(CpuBackend::reference(), DType::F16);
}

fn prefill_then_decode(mut backend: CpuBackend, cache: DType) {
    let (b, total, prefill, hq, hkv, d, max_seq) = (1, 8, 5, 6, 2, 24, 13);
    let scale = 1.0 / (d as f32).sqrt();
    let mut rng = Rng::new(7);
    let q = random(&mut rng, &[b, total, hq, d]);
    let k = random(&mut rng, &[b, total, hkv, d]);
    let v = random(&mut rng, &[b, total, hkv, d]);
    let as_cached = |x: &Tensor| x.to_dtype(cache).unwrap().to_dtype(DType::F32).unwrap();
    let (k_cached, v_cached) = (as_cached(&k), as_cached(&v));
    if cache == DType::F16 {
        assert_ne!(
            k_cached.to_vec_f32(),
            k.to_vec_f32(),
            "the rounding must show"
        );
    }

    let full = {
        let mut g = GraphBuilder::new();
        let (qi, ki, vi) = (
            g.input("q", DType::F32, [b, total, hq, d]).unwrap(),
            g.input("k", DType::F32, [b, total, hkv, d]).unwrap(),
            g.input("v", DType::F32, [b, total, hkv, d]).unwrap(),
        );
        let out = g.attention(qi, ki, vi, None, true, scale).unwrap();
        g.output("out", out).unwrap();
        let mut exec = Executor::new(&mut backend, g.build(), ExecutorOptions::default()).unwrap();
        exec.run(
            &mut backend,
            &[("q", &q), ("k", &k_cached), ("v", &v_cached)],
        )
        .unwrap();
        exec.read(&mut backend, "out").unwrap().to_vec_f32()
    };

    let step_graph = |backend: &mut CpuBackend, t: usize| {
        let mut g = GraphBuilder::new();
        let qi = g.input("q", DType::F32, [b, t, hq, d]).unwrap();
        let ki = g.input("k", DType::F32, [b, t, hkv, d]).unwrap();
        let vi = g.input("v", DType::F32, [b, t, hkv, d]).unwrap();
        let kc = g.state("layer0.k", cache, [b, hkv, max_seq, d]).unwrap();
        let vc = g.state("layer0.v", cache, [b, hkv, max_seq, d]).unwrap();
        let past = g.input("past_len", DType::I64, [1]).unwrap();
        let out = g.cached_attention(qi, ki, vi, kc, vc, past, scale).unwrap();
        g.output("out", out).unwrap();
        Executor::new(backend, g.build(), ExecutorOptions::default()).unwrap()
    };
    let mut prefill_exec = step_graph(&mut backend, prefill);
    let mut decode_exec = step_graph(&mut backend, 1);
    let mut got = Vec::new();
    let past0 = Tensor::from_slice(&[0i64], [1]).unwrap();
    let (qp, kp, vp) = (
        q.narrow(1, 0, prefill).unwrap(),
        k.narrow(1, 0, prefill).unwrap(),
        v.narrow(1, 0, prefill).unwrap(),
    );
    prefill_exec
        .run(
            &mut backend,
            &[("q", &qp), ("k", &kp), ("v", &vp), ("past_len", &past0)],
        )
        .unwrap();
    got.extend(prefill_exec.read(&mut backend, "out").unwrap().to_vec_f32());
    for step in prefill..total {
        let past = Tensor::from_slice(&[step as i64], [1]).unwrap();
        let (qs, ks, vs) = (
            q.narrow(1, step, 1).unwrap(),
            k.narrow(1, step, 1).unwrap(),
            v.narrow(1, step, 1).unwrap(),
        );
        decode_exec
            .run(
                &mut backend,
                &[("q", &qs), ("k", &ks), ("v", &vs), ("past_len", &past)],
            )
            .unwrap();
        got.extend(decode_exec.read(&mut backend, "out").unwrap().to_vec_f32());
    }
    let what = format!("cached attention ({cache} cache) vs full");
    assert_nmse(&what, &got, &full, NMSE_F32_REDUCTION);

    // A step past the end of the cache is an error, not a panic or a silent overwrite.
    let past = Tensor::from_slice(&[max_seq as i64], [1]).unwrap();
    let one = q.narrow(1, 0, 1).unwrap();
    let kv1 = k.narrow(1, 0, 1).unwrap();
    let err = decode_exec
        .run(
            &mut backend,
            &[("q", &one), ("k", &kv1), ("v", &kv1), ("past_len", &past)],
        )
        .unwrap_err();
    assert!(err.to_string().contains("exceeds the KV cache"), "{err}");
}

/// KV caches of another dtype, or of two dtypes, are refused when the graph is built.
#[test]
fn cached_attention_refuses_other_cache_dtypes() {
    for (kd, vd) in [(DType::BF16, DType::BF16), (DType::F16, DType::F32)] {
        let mut g = GraphBuilder::new();
        let qi = g.input("q", DType::F32, [1, 1, 2, 8]).unwrap();
        let ki = g.input("k", DType::F32, [1, 1, 1, 8]).unwrap();
        let vi = g.input("v", DType::F32, [1, 1, 1, 8]).unwrap();
        let kc = g.state("k_cache", kd, [1, 1, 4, 8]).unwrap();
        let vc = g.state("v_cache", vd, [1, 1, 4, 8]).unwrap();
        let past = g.input("past_len", DType::I64, [1]).unwrap();
        let err = g
            .cached_attention(qi, ki, vi, kc, vc, past, 1.0)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("f32 or f16") && text.contains(&kd.to_string()),
            "{text}"
        );
    }
}

/// Permute, slice and concat through the graph equal the same views taken on a Tensor.
#[test]
fn data_movement_ops_match_tensor_views() {
    let mut rng = Rng::new(3);
    let x = random(&mut rng, &[2, 3, 5, 7]);
    let y = random(&mut rng, &[2, 3, 4, 7]);
    let mut g = GraphBuilder::new();
    let xi = g.input("x", DType::F32, [2, 3, 5, 7]).unwrap();
    let yi = g.input("y", DType::F32, [2, 3, 4, 7]).unwrap();
    let p = g.permute(xi, &[3, 0, 2, 1]).unwrap();
    g.output("permuted", p).unwrap();
    let t = g.transpose(xi, 1, 2).unwrap();
    g.output("transposed", t).unwrap();
    let s = g.slice(xi, 2, 1, 4).unwrap();
    g.output("sliced", s).unwrap();
    let c = g.concat(&[xi, yi], 2).unwrap();
    g.output("concat", c).unwrap();
    let r = g.reshape(c, [6, 63]).unwrap();
    let r = g.scale(r, 2.0).unwrap();
    g.output("reshaped_scaled", r).unwrap();
    let mut backend = CpuBackend::new();
    let mut exec = Executor::new(&mut backend, g.build(), ExecutorOptions::default()).unwrap();
    exec.run(&mut backend, &[("x", &x), ("y", &y)]).unwrap();

    let read = |exec: &Executor<CpuBackend>, backend: &mut CpuBackend, name| {
        exec.read(backend, name).unwrap()
    };
    let permuted = read(&exec, &mut backend, "permuted");
    assert_eq!(permuted.dims(), &[7, 2, 5, 3]);
    assert_eq!(
        permuted.to_vec_f32(),
        x.permute(&[3, 0, 2, 1]).unwrap().to_vec_f32()
    );
    assert_eq!(
        read(&exec, &mut backend, "transposed").to_vec_f32(),
        x.permute(&[0, 2, 1, 3]).unwrap().to_vec_f32()
    );
    assert_eq!(
        read(&exec, &mut backend, "sliced").to_vec_f32(),
        x.narrow(2, 1, 3).unwrap().to_vec_f32()
    );
    // Concat along axis 2 by hand: for each (b, h), x's 5 rows then y's 4 rows.
    let (xv, yv) = (x.to_vec_f32(), y.to_vec_f32());
    let mut expected = Vec::new();
    for bh in 0..6 {
        expected.extend_from_slice(&xv[bh * 35..bh * 35 + 35]);
        expected.extend_from_slice(&yv[bh * 28..bh * 28 + 28]);
    }
    assert_eq!(read(&exec, &mut backend, "concat").to_vec_f32(), expected);
    let doubled: Vec<f32> = expected.iter().map(|v| v * 2.0).collect();
    assert_nmse(
        "reshape+scale",
        &read(&exec, &mut backend, "reshaped_scaled").to_vec_f32(),
        &doubled,
        NMSE_F32_ELEMENTWISE,
    );
}

/// A residual MLP block: the planner reuses memory, and named intermediates can be kept.
#[test]
fn mlp_block_with_named_intermediates_and_bf16_weights() {
    let (t, hidden, inter) = (9, 40, 88);
    let mut rng = Rng::new(11);
    let x = random(&mut rng, &[t, hidden]);
    let to_bf16 = |v: Vec<f32>, dims: Vec<usize>| {
        let h: Vec<half::bf16> = v.iter().map(|&f| half::bf16::from_f32(f)).collect();
        Tensor::from_slice(&h, dims).unwrap()
    };
    let gate_w = to_bf16(rng.vec(inter * hidden, -0.3, 0.3), vec![inter, hidden]);
    let up_w = to_bf16(rng.vec(inter * hidden, -0.3, 0.3), vec![inter, hidden]);
    let down_w = to_bf16(rng.vec(hidden * inter, -0.3, 0.3), vec![hidden, inter]);
    let norm_w = to_bf16(rng.vec(hidden, 0.5, 1.5), vec![hidden]);

    let mut g = GraphBuilder::new();
    let xi = g.input("x", DType::F32, [t, hidden]).unwrap();
    let nw = g.weight("norm.weight", norm_w.clone()).unwrap();
    let gw = g.weight("gate_proj.weight", gate_w.clone()).unwrap();
    let uw = g.weight("up_proj.weight", up_w.clone()).unwrap();
    let dw = g.weight("down_proj.weight", down_w.clone()).unwrap();
    let h = g.rms_norm(xi, nw, 1e-5).unwrap();
    g.name(h, "post_norm").unwrap();
    let gate = g.matmul(h, gw, None).unwrap();
    let up = g.matmul(h, uw, None).unwrap();
    let act = g.silu_mul(gate, up).unwrap();
    let down = g.matmul(act, dw, None).unwrap();
    let out = g.add(xi, down).unwrap();
    g.output("out", out).unwrap();

    let mut backend = CpuBackend::new();
    let mut exec = Executor::new(
        &mut backend,
        g.build(),
        ExecutorOptions { keep_named: true },
    )
    .unwrap();
    exec.run(&mut backend, &[("x", &x)]).unwrap();
    let got = exec.read(&mut backend, "out").unwrap().to_vec_f32();
    let post_norm = exec.read(&mut backend, "post_norm").unwrap().to_vec_f32();

    // Independent f64 computation with the bf16 weights widened.
    let (xv, nv) = (x.to_vec_f32(), norm_w.to_vec_f32());
    let (gv, uv, dv) = (gate_w.to_vec_f32(), up_w.to_vec_f32(), down_w.to_vec_f32());
    let mut expected = vec![0f32; t * hidden];
    let mut expected_norm = vec![0f32; t * hidden];
    for r in 0..t {
        let row = &xv[r * hidden..(r + 1) * hidden];
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / hidden as f64;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        let hn: Vec<f64> = (0..hidden)
            .map(|i| row[i] as f64 * inv * nv[i] as f64)
            .collect();
        for i in 0..hidden {
            expected_norm[r * hidden + i] = hn[i] as f32;
        }
        let act: Vec<f64> = (0..inter)
            .map(|j| {
                let gsum: f64 = (0..hidden).map(|i| hn[i] * gv[j * hidden + i] as f64).sum();
                let usum: f64 = (0..hidden).map(|i| hn[i] * uv[j * hidden + i] as f64).sum();
                gsum / (1.0 + (-gsum).exp()) * usum
            })
            .collect();
        for i in 0..hidden {
            let dsum: f64 = (0..inter).map(|j| act[j] * dv[i * inter + j] as f64).sum();
            expected[r * hidden + i] = (row[i] as f64 + dsum) as f32;
        }
    }
    assert_nmse("mlp block", &got, &expected, NMSE_F32_REDUCTION);
    assert_nmse("post_norm", &post_norm, &expected_norm, NMSE_F32_REDUCTION);
    assert!(exec.plan().arena_bytes < exec.plan().unshared_bytes);
}

#[test]
fn bad_inputs_and_bad_graphs_are_errors() {
    let mut g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [3, 8]).unwrap();
    let w = g
        .weight("w", Tensor::from_slice(&[1.0f32; 5 * 7], [5, 7]).unwrap())
        .unwrap();
    let err = g.matmul(x, w, None).unwrap_err();
    assert!(
        matches!(err, Error::InvalidOp { op: "matmul", .. }),
        "{err}"
    );
    assert!(g.reshape(x, [5, 5]).is_err());
    assert!(g.permute(x, &[0, 0]).is_err());
    assert!(g.slice(x, 1, 3, 9).is_err());
    assert!(g.input("x", DType::F32, [1]).is_err(), "duplicate names");

    let ids = g.input("ids", DType::I64, [1, 4]).unwrap();
    let table = g
        .weight(
            "table",
            Tensor::from_slice(&[0.5f32; 10 * 3], [10, 3]).unwrap(),
        )
        .unwrap();
    let e = g.embedding(ids, table).unwrap();
    let y = g.silu(x).unwrap();
    g.output("e", e).unwrap();
    g.output("y", y).unwrap();
    let mut backend = CpuBackend::new();
    let mut exec = Executor::new(&mut backend, g.build(), ExecutorOptions::default()).unwrap();
    let xt = Tensor::from_slice(&[0.25f32; 24], [3, 8]).unwrap();
    let good_ids = Tensor::from_slice(&[0i64, 9, 3, 1], [1, 4]).unwrap();
    let bad_ids = Tensor::from_slice(&[0i64, 10, 3, 1], [1, 4]).unwrap();
    let wrong_shape = Tensor::from_slice(&[0.25f32; 24], [4, 6]).unwrap();

    assert!(
        matches!(exec.run(&mut backend, &[("x", &xt)]), Err(Error::MissingInput(n)) if n == "ids")
    );
    assert!(matches!(
        exec.run(&mut backend, &[("x", &wrong_shape), ("ids", &good_ids)]),
        Err(Error::ShapeMismatch { name, .. }) if name == "x"
    ));
    assert!(matches!(
        exec.run(&mut backend, &[("x", &good_ids), ("ids", &good_ids)]),
        Err(Error::DTypeMismatch { .. })
    ));
    assert!(matches!(
        exec.run(&mut backend, &[("nope", &xt)]),
        Err(Error::UnknownValue(_))
    ));
    let err = exec
        .run(&mut backend, &[("x", &xt), ("ids", &bad_ids)])
        .unwrap_err();
    assert!(err.to_string().contains("10"), "names the bad id: {err}");
    exec.run(&mut backend, &[("x", &xt), ("ids", &good_ids)])
        .unwrap();
    assert_eq!(exec.read(&mut backend, "e").unwrap().dims(), &[1, 4, 3]);
}

/// Compiling a graph packs the weights of its matmuls (on CPUs with the packed kernels), so
/// its first run does not; a second graph over the same weights packs nothing more, and the
/// reference kernels pack nothing.
#[test]
fn compiling_a_graph_packs_its_matmul_weights() {
    let (n, k) = (70, 33);
    let mut rng = Rng::new(12);
    let w: Vec<half::bf16> = rng
        .vec(n * k, -1.0, 1.0)
        .into_iter()
        .map(half::bf16::from_f32)
        .collect();
    let w = Tensor::from_slice(&w, [n, k]).unwrap();
    let graph = |m: usize| {
        let mut g = GraphBuilder::new();
        let x = g.input("x", DType::F32, [m, k]).unwrap();
        let wi = g.weight("proj.weight", w.clone()).unwrap();
        let y = g.matmul(x, wi, None).unwrap();
        g.output("y", y).unwrap();
        g.build()
    };
    let mut backend = CpuBackend::new();
    assert_eq!(backend.packed_weight_bytes(), 0);
    let _prefill = Executor::new(&mut backend, graph(20), ExecutorOptions::default()).unwrap();
    let packed = backend.packed_weight_bytes();
    let isa = backend.kernels_isa();
    if iris_kernels::cpu::gemm::packed::PackedWeights::supported(isa) {
        // 3 groups of 32 columns x 34 (k rounded up to even) bf16.
        assert_eq!(packed, 3 * 32 * 34 * 2);
    } else {
        eprintln!(
            "no packed kernels at {}: nothing packed",
            backend.kernels_isa()
        );
        assert_eq!(packed, 0);
    }
    let _decode = Executor::new(&mut backend, graph(1), ExecutorOptions::default()).unwrap();
    assert_eq!(backend.packed_weight_bytes(), packed);
    let mut reference = CpuBackend::reference();
    let _exec = Executor::new(&mut reference, graph(20), ExecutorOptions::default()).unwrap();
    assert_eq!(reference.packed_weight_bytes(), 0);
}
