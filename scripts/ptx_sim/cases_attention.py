"""Cases for the attention kernels: flash_attention_d{64,72,80,128} (prefill, bf16 mma) and
attention_decode_d{64,128}_r{1,2,4,8} + attention_decode_combine_f32 (split-KV decode over
the cache), with the parameters, launch shapes and chunk plan of the CUDA backend
(runtime/src/backend/cuda/ops_attention.rs, kernels/src/cuda/attention_decode/mod.rs).

Flash is held to two references: plain f64 softmax attention of the bf16-rounded Q, K, V
within the project's bf16 bound (the rounding of P remains: NMSE about 1e-6), and an
emulation of the kernel's own rounding (bf16 P from a per-tile running max) within 1e-8, so
that a few wrong elements fail too. Decode is f32 throughout: against f64 only the summation
order differs, bound 1e-10. The `_kvf16` entries read K/V from f16 caches: their references
take the f16-rounded keys and values, with the same bounds. In cache mode the cache rows
beyond kv_len hold large values (50..60), so reading one past the visible keys shows;
past < 0 or kv_len > max_kv must make the kernels return without writing."""

import math

import numpy as np

from .harness import Case, Result
from .machine import launch
from .memory import GlobalMemory
from .numerics import NMSE_HALF, f16_round, f16_to_f32, f32_bits, nmse, round_bf16

NMSE_SAME_ROUNDING = 1e-8  # flash against flash_emulation (seen: 1e-14; one flipped p: ~1e-9)
NMSE_F32_KERNEL = 1e-10    # decode (f32) against f64


def scale_log2(d):
    """As the backend: (scale as f64 * log2(e)) as f32, scale = 1 / sqrt(d) as f32."""
    return np.float32(float(np.float32(1 / math.sqrt(d))) * math.log2(math.e))


def reference(q, k, v, causal):
    """q [B, Tq, Hq, D], k, v [B, Tk, Hkv, D] -> [B, Tq, Hq, D] in f64. Causal: query i sees
    keys j <= i + Tk - Tq; a query that sees no key gets zeros."""
    b_, tq, hq, d = q.shape
    tk, hkv = k.shape[1], k.shape[2]
    scale = float(np.float32(1 / math.sqrt(d)))
    out = np.zeros(q.shape)
    visible = np.arange(tk)[None, :] <= np.arange(tq)[:, None] + tk - tq
    for b in range(b_):
        for h in range(hq):
            kh = h // (hq // hkv)
            s = q[b, :, h].astype(np.float64) @ k[b, :, kh].astype(np.float64).T * scale
            if causal:
                s = np.where(visible, s, -np.inf)
            m = s.max(axis=1, keepdims=True)
            m[~np.isfinite(m)] = 0
            p = np.exp(s - m)
            total = p.sum(axis=1, keepdims=True)
            out[b, :, h] = (p @ v[b, :, kh].astype(np.float64)) / np.where(total == 0, 1, total)
    return out


def flash_emulation(q, k, v, causal):
    """The flash kernel's arithmetic, rounding where it rounds: bf16 Q, K, V; S = Q K^T in f32;
    s2 = S * scale_log2 in f32; per tile of 64 keys a running row max m, p = ex2(s2 - m) in f32,
    l = l * ex2(m_old - m) + sum p, O = O * ex2(m_old - m) + bf16(p) V; out = O / l (0 when
    l = 0). What remains is the f32 summation order, so the bound can be tight."""
    b_, tq, hq, d = q.shape
    tk, hkv = k.shape[1], k.shape[2]
    sl2 = scale_log2(d)
    qr, kr, vr = (round_bf16(x).astype(np.float64) for x in (q, k, v))
    visible = np.arange(tk)[None, :] <= np.arange(tq)[:, None] + tk - tq
    out = np.zeros(q.shape)
    f32 = np.float32
    with np.errstate(invalid="ignore", over="ignore"):
        for b in range(b_):
            for h in range(hq):
                kh = h // (hq // hkv)
                # S as the mma chain forms it: f32 sums of 16-dim steps, in order (the bf16
                # products within a step sum exactly in f64), as the interpreter's mma does.
                # Any other rounding of S flips the bf16 rounding of a few p (~1e-9 each).
                s = np.zeros((tq, tk), dtype=f32)
                for k0 in range(0, d, 16):
                    part = qr[b, :, h, k0:k0 + 16] @ kr[b, :, kh, k0:k0 + 16].T
                    s = (s + part).astype(f32)
                s2 = s * sl2
                if causal:
                    s2 = np.where(visible, s2, f32(-np.inf))
                m = np.full(tq, -np.inf, dtype=f32)
                l, o = np.zeros(tq), np.zeros((tq, d))
                for t0 in range(0, tk, 64):
                    tile = s2[:, t0:t0 + 64]
                    m_new = np.maximum(m, tile.max(axis=1))
                    mu = np.where(m_new == -np.inf, f32(0), m_new)
                    corr = np.exp2((m - mu).astype(np.float64)).astype(f32)
                    p = np.exp2((tile - mu[:, None]).astype(np.float64)).astype(f32)
                    l = l * corr + p.sum(axis=1, dtype=np.float64)
                    o = o * corr[:, None] + round_bf16(p).astype(np.float64) @ vr[b, t0:t0 + 64, kh]
                    m = m_new
                out[b, :, h] = np.where(l[:, None] == 0, 0, o / np.where(l == 0, 1, l)[:, None])
    return out


def _kv(rng, b, kv_len, hkv, d, cache_rows):
    """Keys and values [B, kv_len, Hkv, D] and their device layout: as given (plain) or in a
    [B, Hkv, S, D] cache whose rows >= kv_len are garbage. Returns k, v, kd, vd, strides."""
    k = rng.uniform(-2, 2, (b, kv_len, hkv, d)).astype(np.float32)
    v = rng.uniform(-2, 2, (b, kv_len, hkv, d)).astype(np.float32)
    if cache_rows is None:
        return k, v, k, v, dict(kv_batch=kv_len * hkv * d, kv_head=d, kv_pos=hkv * d, max_kv=kv_len)
    kd = rng.uniform(50, 60, (b, hkv, cache_rows, d)).astype(np.float32)
    vd = rng.uniform(50, 60, (b, hkv, cache_rows, d)).astype(np.float32)
    n = min(kv_len, cache_rows)
    kd[:, :, :n] = k[:, :n].transpose(0, 2, 1, 3)
    vd[:, :, :n] = v[:, :n].transpose(0, 2, 1, 3)
    return k, v, kd, vd, dict(kv_batch=hkv * cache_rows * d, kv_head=cache_rows * d, kv_pos=d,
                              max_kv=cache_rows)


def _kv_f16(k, v, kd, vd):
    """The f16 cache of `_kv`'s output: kd, vd as f16 bit patterns (uint16), k, v as the
    f32 values of the rounded halves (what a `_kvf16` kernel reads)."""
    return (f16_to_f32(f16_round(k)), f16_to_f32(f16_round(v)), f16_round(kd), f16_round(vd))


def flash(d, b, tq, tk, hq, hkv, causal, past=None, cache_rows=None, warp_order="parity", seed=0,
          warps=4, kv="f32"):
    """Plain mode (past None: tk keys) or cache mode (kv_len = past + tq over cache_rows), on
    the entry with `warps` warps (16 query rows each) per CTA. kv="f16": K and V (the cache or
    the plain tensors) are stored as f16 and the `_kvf16` entry runs; the references take the
    f16-rounded K and V (the kernel widens them exactly before its bf16 rounding)."""
    mode = f"Tk={tk}" if past is None else f"cache past={past} S={cache_rows}"
    module = f"flash_attention_d{d}"
    kernel = (module if warps == 4 else f"{module}_w{warps}") + {"f32": "", "f16": "_kvf16"}[kv]
    rows = 16 * warps

    def run(src):
        rng = np.random.default_rng(seed)
        kv_len = tk if past is None else past + tq
        q = rng.uniform(-2, 2, (b, tq, hq, d)).astype(np.float32)
        k, v, kd, vd, strides = _kv(rng, b, kv_len, hkv, d, cache_rows)
        if kv == "f16":
            k, v, kd, vd = _kv_f16(k, v, kd, vd)
        g = GlobalMemory()
        pq, pk, pv = g.put(q, "q"), g.put(kd, "k"), g.put(vd, "v")
        po = g.alloc(q.nbytes, "out")
        pp = 0 if past is None else g.put(np.array([past], np.int64), "past_len")
        launch(src.text(module), kernel, ((tq + rows - 1) // rows, hq, b), 32 * warps,
               dict(q=pq, k=pk, v=pv, out=po, past=pp, q_len=tq, kv_len=tk if past is None else 0,
                    heads=hq, group=hq // hkv, scale_log2=scale_log2(d), causal=int(causal),
                    **strides), g, warp_order=warp_order)
        got = g.get(po, np.float32, q.size).reshape(q.shape)
        if past is not None and not 0 <= past <= strides["max_kv"] - tq:  # must write nothing
            return Result("written elements", int((f32_bits(got) != 0xFFFFFFFF).sum()), 0,
                          "(past < 0 or kv_len > max_kv: nothing may be written)")
        exact = reference(round_bf16(q), round_bf16(k), round_bf16(v), causal)
        same_rounding = flash_emulation(q, k, v, causal)
        return Result("nmse", nmse(got, exact), NMSE_HALF).also(
            "nmse vs the kernel's rounding", nmse(got, same_rounding), NMSE_SAME_ROUNDING)
    keys = tk if past is None else max(past + tq, 0)
    ctas = (tq + rows - 1) // rows * hq * b
    return Case(f"{kernel} B={b} Tq={tq} {mode} H={hq}/{hkv} causal={int(causal)} "
                f"warps={warp_order}", run, [module],
                cost=ctas * warps // 4 * ((keys + 63) // 64) * d // 16)


def decode_plan(d, group, tq, b, hkv, max_seq):
    """The backend's chunk plan (attention_decode::decode_plan): (rows per CTA, row groups,
    chunk_len, chunks)."""
    rows = group * tq
    rpc = next((r for r in (1, 2, 4, 8) if r >= rows), 8)
    row_groups = -(-rows // rpc)
    most = min(64, -(-max_seq // 64))
    wanted = -(-528 // (b * hkv * row_groups))
    chunk_len = -(-max_seq // min(max(wanted, 1), max(most, 1)))
    return rpc, row_groups, chunk_len, -(-max_seq // chunk_len)


def decode(d, b, tq, hq, hkv, past, cache_rows, warp_order="parity", seed=0, kv="f32"):
    """kv="f16": the caches hold f16 bit patterns and the `_kvf16` entry runs; the reference
    takes the f16-rounded K and V (the kernel widens them exactly)."""
    group = hq // hkv
    rpc, row_groups, chunk_len, chunks = decode_plan(d, group, tq, b, hkv, cache_rows)
    name = f"attention_decode_d{d}_r{rpc}" + {"f32": "", "f16": "_kvf16"}[kv]

    def run(src):
        rng = np.random.default_rng(seed)
        kv_len = past + tq
        q = rng.uniform(-2, 2, (b, tq, hq, d)).astype(np.float32)
        k, v, kd, vd, strides = _kv(rng, b, kv_len, hkv, d, cache_rows)
        if kv == "f16":
            kd, vd = f16_round(kd), f16_round(vd)
            k, v = f16_to_f32(f16_round(k)), f16_to_f32(f16_round(v))
        rows = b * tq * hq
        g = GlobalMemory()
        pq, pk, pv = g.put(q, "q"), g.put(kd, "k_cache"), g.put(vd, "v_cache")
        pp = g.put(np.array([past], np.int64), "past_len")
        part_o = g.alloc(rows * chunks * (d + 2) * 4, "partials")  # outputs, then (m, l) pairs
        part_ml = part_o + rows * chunks * d * 4
        po = g.alloc(q.nbytes, "out")
        launch(src.text(f"attention_decode_d{d}"), name, (chunks, hkv * row_groups, b), 128,
               dict(q=pq, k=pk, v=pv, part_o=part_o, part_ml=part_ml, past=pp, q_len=tq, heads=hq,
                    group=group, chunk_len=chunk_len, chunks=chunks, row_groups=row_groups,
                    scale_log2=scale_log2(d), **strides), g, warp_order=warp_order)
        if not 0 <= past <= cache_rows - tq:  # the kernel must return at once, writing nothing
            written = g.get(part_o, np.uint32, rows * chunks * (d + 2)) != 0xFFFFFFFF
            return Result("written elements", int(written.sum()), 0,
                          "(past < 0 or kv_len > max_kv)")
        launch(src.text("attention_decode_combine_f32"), "attention_decode_combine_f32",
               (rows, 1, 1), 32, dict(part_o=part_o, part_ml=part_ml, out=po, chunks=chunks,
                                      head_dim=d), g, warp_order=warp_order)
        got = g.get(po, np.float32, q.size).reshape(q.shape)
        return Result("nmse", nmse(got, reference(q, k, v, True)), NMSE_F32_KERNEL)
    return Case(f"{name} B={b} Tq={tq} H={hq}/{hkv} past={past} "
                f"S={cache_rows} chunks={chunks}x{chunk_len} row_groups={row_groups}", run,
                [f"attention_decode_d{d}", "attention_decode_combine_f32"],
                cost=chunks * hkv * row_groups * b * rpc * d // 64)


def cases():
    return [
        flash(64, 1, 70, 70, 2, 1, True),                      # GQA 2, two ragged query tiles
        flash(64, 2, 17, 100, 3, 3, False, warp_order="reverse"),
        flash(64, 1, 80, 30, 1, 1, True),                      # rows that see no key: zeros
        flash(64, 2, 70, None, 4, 2, True, past=30, cache_rows=128),  # prefill chunk on a cache
        flash(72, 1, 33, 33, 2, 2, False),                     # vision head dim, padded to 80
        flash(72, 1, 50, 50, 1, 1, True, warp_order="reverse"),
        flash(80, 1, 20, None, 4, 2, True, past=45, cache_rows=80),
        flash(80, 1, 16, 130, 1, 1, False),                    # three key tiles, the last ragged
        flash(128, 1, 40, 77, 2, 1, True, warp_order="reverse"),
        flash(128, 1, 24, None, 2, 2, True, past=64, cache_rows=100),
        flash(64, 1, 130, 200, 2, 1, False),                   # 3 query x 4 key tiles
        flash(128, 1, 100, None, 4, 2, True, past=150, cache_rows=300),  # a long past
        flash(80, 1, 64, 64, 1, 1, False, warp_order="reverse"),  # exactly one tile each
        flash(64, 1, 20, None, 1, 1, True, past=70, cache_rows=80),  # overflow: no write
        flash(128, 1, 20, None, 1, 1, True, past=-3, cache_rows=80),  # past < 0: no write
        # 8 warps, 128 query rows per CTA (Q staged over the K and V halves of the tile).
        flash(64, 1, 150, 150, 2, 1, True, warps=8),          # two ragged query tiles, GQA 2
        flash(64, 2, 40, 100, 3, 3, False, warp_order="reverse", warps=8),
        flash(80, 1, 130, None, 4, 2, True, past=45, cache_rows=200, warps=8),
        flash(128, 1, 140, 77, 2, 1, False, warps=8),         # fewer keys than query rows
        flash(128, 1, 200, 200, 1, 1, True, warp_order="reverse", warps=8),
        flash(128, 1, 20, None, 1, 1, True, past=70, cache_rows=80, warps=8),  # overflow
        # f16 K/V (_kvf16 entries) on a cache whose rows past kv_len are garbage.
        flash(64, 2, 70, None, 4, 2, True, past=30, cache_rows=128, kv="f16"),
        flash(64, 1, 150, None, 2, 1, True, past=20, cache_rows=200, warps=8, kv="f16"),
        flash(72, 1, 33, None, 2, 2, False, past=10, cache_rows=50, warp_order="reverse", kv="f16"),
        flash(80, 1, 20, None, 4, 2, True, past=45, cache_rows=80, kv="f16"),  # the cache full
        flash(80, 1, 130, None, 4, 2, True, past=45, cache_rows=200, warps=8, kv="f16"),
        flash(128, 1, 100, None, 4, 2, True, past=150, cache_rows=300, kv="f16"),  # a long past
        flash(128, 1, 140, None, 2, 1, False, past=5, cache_rows=160, warps=8, kv="f16"),
        flash(128, 1, 20, None, 1, 1, True, past=70, cache_rows=80, kv="f16"),  # overflow
        flash(64, 2, 17, 100, 3, 3, False, warp_order="reverse", kv="f16"),  # plain f16 K/V
        decode(64, 1, 1, 2, 2, 0, 5),                          # r1, a single key
        decode(64, 1, 1, 4, 2, 37, 80),                        # r2
        decode(64, 2, 2, 4, 2, 61, 64),                        # r4, the cache full
        decode(64, 2, 1, 8, 1, 100, 130, warp_order="reverse"),  # r8, batch 2
        decode(64, 1, 2, 6, 1, 20, 300),                       # r8 x 2 row groups, empty chunks
        decode(64, 1, 1, 1, 1, 1500, 2200),                    # 35 chunks: combine's 2nd pass
        decode(128, 1, 1, 2, 2, 63, 64),                       # r1
        decode(128, 1, 2, 3, 3, 40, 100),                      # r2
        decode(128, 1, 3, 4, 4, 50, 70),                       # r4, rows past 3 idle
        decode(128, 2, 4, 8, 2, 29, 200, warp_order="reverse"),  # r8 x 2 row groups, Hkv 2
        decode(128, 1, 1, 32, 8, 1000, 1024),                  # GQA 4 (r4), 16 chunks
        decode(64, 1, 1, 2, 1, 80, 80),                        # overflow: no write
        decode(128, 1, 1, 2, 2, -1, 64),                       # past < 0: no write
        # f16 cache (_kvf16 entries): garbage rows past kv_len, as above.
        decode(64, 1, 1, 8, 2, 100, 300, kv="f16"),            # GQA 4 (r4), 5 chunks
        decode(64, 2, 1, 8, 1, 100, 130, warp_order="reverse", kv="f16"),  # r8, batch 2
        decode(64, 1, 1, 1, 1, 1500, 2200, kv="f16"),          # r1, 35 chunks
        decode(64, 1, 1, 4, 2, 37, 80, kv="f16"),              # GQA 2 (r2)
        decode(128, 1, 1, 2, 2, 70, 150, kv="f16"),            # r1, 3 chunks
        decode(128, 1, 2, 4, 2, 45, 200, kv="f16"),            # GQA 2 x 2 tokens (r4), causal
        decode(128, 2, 4, 8, 2, 29, 200, warp_order="reverse", kv="f16"),  # r8 x 2 row groups
        decode(128, 1, 1, 32, 8, 1000, 1024, kv="f16"),        # GQA 4 (r4), 16 chunks
        decode(128, 1, 1, 2, 1, 80, 80, kv="f16"),             # overflow: no write
    ]
