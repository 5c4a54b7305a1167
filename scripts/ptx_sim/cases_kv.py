"""Cases for the KV-cache append, kv_write_f32 and kv_write_f16, launched as the backend
launches them (runtime/src/backend/cuda/ops_attention.rs: elementwise_dims over the new
elements, past_len read from device memory).

The cache rows past_len..past_len + new_len must hold the new keys and values (f32 as they
are, f16 rounded to nearest even as NumPy's float16 rounds), bit for bit, and every other
cache row must keep its bytes. A past_len below 0 or past the capacity must write nothing
and raise the device error flag (code 2, the capacity, past_len)."""

import numpy as np

from .harness import Case, elementwise_blocks, exact
from .machine import launch
from .memory import GlobalMemory
from .numerics import f16_round


def kv_write(ty, b, new_len, heads, d, max_seq, past, blocks=None, seed=0):
    kernel = f"kv_write_{ty}"
    store = (lambda x: x) if ty == "f32" else f16_round
    elem = np.float32 if ty == "f32" else np.uint16

    def run(src):
        rng = np.random.default_rng(seed)
        k_new = rng.uniform(-3, 3, (b, new_len, heads, d)).astype(np.float32)
        v_new = rng.uniform(-3, 3, (b, new_len, heads, d)).astype(np.float32)
        k_old = store(rng.uniform(50, 60, (b, heads, max_seq, d)).astype(np.float32))
        v_old = store(rng.uniform(50, 60, (b, heads, max_seq, d)).astype(np.float32))
        g = GlobalMemory()
        pk, pv = g.put(k_new, "k_new"), g.put(v_new, "v_new")
        pkc = g.put(k_old, "k_cache", readonly=False)
        pvc = g.put(v_old, "v_cache", readonly=False)
        pp = g.put(np.array([past], np.int64), "past")
        pe = g.put(np.zeros(4, np.uint32), "err", readonly=False)
        n = b * new_len * heads * d
        launch(src.text(kernel), kernel, (blocks or elementwise_blocks(n), 1, 1), 256,
               dict(k_new_ptr=pk, v_new_ptr=pv, k_cache_ptr=pkc, v_cache_ptr=pvc, past_ptr=pp,
                    err_ptr=pe, n=n, new_len=new_len, heads=heads, head_dim=d,
                    max_seq=max_seq), g)
        count = b * heads * max_seq * d
        got_k = g.get(pkc, elem, count).reshape(b, heads, max_seq, d)
        got_v = g.get(pvc, elem, count).reshape(b, heads, max_seq, d)
        err = g.get(pe, np.uint32, 4)
        want_k, want_v = k_old.copy(), v_old.copy()
        if 0 <= past <= max_seq - new_len:
            want_k[:, :, past:past + new_len] = store(k_new.transpose(0, 2, 1, 3))
            want_v[:, :, past:past + new_len] = store(v_new.transpose(0, 2, 1, 3))
            want_err = np.zeros(4, np.uint32)
        else:
            want_err = np.array([2, max_seq, *np.array([past], np.int64).view(np.uint32)],
                                np.uint32)
        got = np.concatenate([got_k.view(np.uint8).ravel(), got_v.view(np.uint8).ravel(),
                              err.view(np.uint8)])
        want = np.concatenate([want_k.view(np.uint8).ravel(), want_v.view(np.uint8).ravel(),
                               want_err.view(np.uint8)])
        return exact(got, want)
    return Case(f"{kernel} B={b} T={new_len} H={heads} D={d} S={max_seq} past={past} "
                f"blocks={blocks or 'auto'}", run, [kernel])


def cases():
    return [case for ty in ("f32", "f16") for case in (
        kv_write(ty, 1, 5, 3, 64, 16, past=0),          # a prompt into an empty cache
        kv_write(ty, 2, 1, 2, 16, 9, past=8),           # decode into the last row
        kv_write(ty, 1, 7, 2, 24, 40, past=11, blocks=2),  # grid-stride loop
        kv_write(ty, 1, 3, 2, 8, 10, past=8),           # overflow: nothing written, flag
        kv_write(ty, 1, 2, 2, 8, 10, past=-1),          # negative past_len: the same
    )]
