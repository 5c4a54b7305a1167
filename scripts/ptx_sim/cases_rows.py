"""Cases for the row kernels: rms_norm_f32(_wbf16), rope_f32 and embedding_f32(_wbf16), with
the parameters and launch shapes of the CUDA backend (rms_norm_dims: one block per row, the
block sized from dim; elementwise_dims for rope and embedding), both of each kernel's paths:
the 16-byte vector path (aligned buffers, dims a multiple of 4 or 8) and the scalar path
(odd dims, or a buffer `skew` bytes past 16-byte alignment, which the runtime allows down to
the element size).

RMSNorm sums in f32 in its own order: against an f64 reference of the same f32/bf16 inputs
the NMSE stays near 1e-14, bound 1e-10 (one element left out of a 4096-long sum already
gives ~1e-8). RoPE and embedding are held bit for bit: embedding against the table rows,
RoPE's vector path against its scalar path (the previous kernel's code) on the same data,
and both within 1e-12 of an f64 reference with libm cos/sin rounded to f32 as the CPU
reference does (a last-bit flip of a polynomial cos/sin stays far below that)."""

import numpy as np

from .harness import Case, Result, exact
from .machine import launch
from .memory import GlobalMemory
from .numerics import bf16_round, bf16_to_f32, f32_bits, nmse

NMSE_RMS_NORM = 1e-10
NMSE_ROPE = 1e-12


def _elementwise_blocks(n):
    return min(max((n + 255) // 256, 1), 2048)  # elementwise_dims


def rms_norm_block(dim):
    """rms_norm_dims: dim / 16 threads rounded up to whole warps, 32..1024."""
    threads = -(-dim // 16)
    return min(max(-(-threads // 32) * 32, 32), 1024)


def rms_norm(rows, dim, weight, skew=(0, 0, 0), in_place=False, block=None, eps=1e-5,
             warp_order="parity", seed=0):
    """skew: bytes past 16-byte alignment of (x, w, out); block: threads (default as the
    backend launches)."""
    module = "rms_norm_f32_wbf16" if weight == "bf16" else "rms_norm_f32"
    threads = block or rms_norm_block(dim)

    def run(src):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-3, 3, (rows, dim)).astype(np.float32)
        w = rng.uniform(-1.5, 1.5, dim).astype(np.float32)
        if weight == "bf16":
            w_dev = bf16_round(w)
            w_ref = bf16_to_f32(w_dev).astype(np.float64)
        else:
            w_dev, w_ref = w, w.astype(np.float64)
        g = GlobalMemory()
        px = g.put(x, "x", skew=skew[0], readonly=not in_place)
        pw = g.put(w_dev, "w", skew=skew[1])
        po = px if in_place else g.alloc(x.nbytes, "out", skew=skew[2])
        launch(src.text(module), module, (rows, 1, 1), threads,
               dict(x=px, w=pw, out=po, dim=dim, eps=eps), g, warp_order=warp_order)
        got = g.get(po, np.float32, rows * dim).reshape(rows, dim)
        x64 = x.astype(np.float64)
        scale = 1 / np.sqrt((x64**2).mean(axis=1, keepdims=True) + float(np.float32(eps)))
        return Result("nmse", nmse(got, x64 * scale * w_ref), NMSE_RMS_NORM)
    return Case(f"{module} {rows}x{dim} skew(x,w,out)={skew} in_place={int(in_place)} "
                f"block={threads} warps={warp_order}", run, [module],
                cost=rows * max(dim, 256) // 256)


def _rope_reference(x, pos, inv_freq):
    """The CPU reference (kernels/src/cpu/reference/rope.rs) in NumPy: f32 angle, libm cos
    and sin in f64 rounded to f32, the rotation in f64 rounded once."""
    half = len(inv_freq)
    out = x.copy()
    angle = (pos.astype(np.float32)[:, None] * inv_freq[None, :]).astype(np.float32)
    c = np.cos(angle.astype(np.float64)).astype(np.float32).astype(np.float64)[:, None, :]
    s = np.sin(angle.astype(np.float64)).astype(np.float32).astype(np.float64)[:, None, :]
    x1, x2 = x[..., :half].astype(np.float64), x[..., half:2 * half].astype(np.float64)
    out[..., :half] = (x1 * c - x2 * s).astype(np.float32)
    out[..., half:2 * half] = (x2 * c + x1 * s).astype(np.float32)
    return out


def _run_rope(src, x, pos, inv_freq, skew, blocks):
    tokens, heads, head_dim = x.shape
    n = x.size
    g = GlobalMemory()
    px, pp = g.put(x, "x", skew=skew), g.put(pos, "pos")
    pf = g.put(inv_freq, "inv_freq")
    po = g.alloc(x.nbytes, "out", skew=skew)
    launch(src.text("rope_f32"), "rope_f32", (blocks or _elementwise_blocks(n), 1, 1), 256,
           dict(x_ptr=px, pos_ptr=pp, freq_ptr=pf, out_ptr=po, n=n, heads=heads,
                head_dim=head_dim, half=len(inv_freq)), g)
    return g.get(po, np.float32, n).reshape(x.shape)


def rope(tokens, heads, head_dim, half, skew=0, blocks=None, max_pos=5000, seed=0):
    """Vector path when skew == 0 and head_dim, half are multiples of 4; then the same data
    also runs skewed by 4 bytes (the scalar path) and the two must agree bit for bit."""
    vector = skew == 0 and head_dim % 4 == 0 and half % 4 == 0

    def run(src):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-3, 3, (tokens, heads, head_dim)).astype(np.float32)
        pos = rng.integers(0, max_pos, tokens).astype(np.int64)
        pos[0] = 0  # the identity
        theta = 10000.0
        inv_freq = (1 / theta ** (np.arange(half, dtype=np.float32) * 2 / max(2 * half, 1))
                    ).astype(np.float32)
        got = _run_rope(src, x, pos, inv_freq, skew, blocks)
        want = _rope_reference(x, pos, inv_freq)
        result = Result("nmse", nmse(got, want), NMSE_ROPE).also(
            "pass-through mismatches", int((f32_bits(got[..., 2 * half:])
                                            != f32_bits(x[..., 2 * half:])).sum()), 0)
        if vector:
            scalar = _run_rope(src, x, pos, inv_freq, 4, blocks)
            result.also("mismatches vs the scalar path",
                        int((f32_bits(got) != f32_bits(scalar)).sum()), 0)
        return result
    path = "vector" if vector else "scalar"
    return Case(f"rope_f32 {tokens}x{heads}x{head_dim} half={half} skew={skew} "
                f"blocks={blocks or 'auto'} ({path})", run, ["rope_f32"],
                cost=tokens * heads * head_dim // 256 + 1)


def embedding(vocab, dim, tokens, weight, skew=(0, 0), blocks=None, bad=(), seed=0):
    """skew: bytes past 16-byte alignment of (table, out); bad: {token index: id} out of range
    (their rows must stay unwritten and the error flag must hold one of them)."""
    module = "embedding_f32_wbf16" if weight == "bf16" else "embedding_f32"

    def run(src):
        rng = np.random.default_rng(seed)
        table = rng.uniform(-2, 2, (vocab, dim)).astype(np.float32)
        if weight == "bf16":
            table_dev = bf16_round(table)
            rows = bf16_to_f32(table_dev)
        else:
            table_dev = rows = table
        ids = rng.integers(0, vocab, tokens).astype(np.int64)
        for t, bad_id in bad:
            ids[t] = bad_id
        g = GlobalMemory()
        pi, pt = g.put(ids, "ids"), g.put(table_dev, "table", skew=skew[0])
        po = g.alloc(tokens * dim * 4, "out", skew=skew[1])
        pe = g.put(np.zeros(4, np.uint32), "err", readonly=False)
        n = tokens * dim
        launch(src.text(module), module, (blocks or _elementwise_blocks(n), 1, 1), 256,
               dict(ids_ptr=pi, table_ptr=pt, out_ptr=po, err_ptr=pe, n=n, dim=dim,
                    vocab=vocab), g)
        got = f32_bits(g.get(po, np.float32, n).reshape(tokens, dim))
        want = np.full((tokens, dim), 0xFFFFFFFF, np.uint32)  # unwritten: the poison
        ok = (ids >= 0) & (ids < vocab)
        want[ok] = f32_bits(rows[ids[ok]])
        result = exact(got, want)
        err = g.get(pe, np.uint32, 4)
        flag_id = int(err[2:4].view(np.int64)[0])
        if bad:
            flag_ok = err[0] == 1 and err[1] == vocab and flag_id in {b for _, b in bad}
        else:
            flag_ok = not err.any()
        return result.also("error flag wrong", int(not flag_ok), 0)
    return Case(f"{module} vocab={vocab} dim={dim} tokens={tokens} skew(table,out)={skew} "
                f"blocks={blocks or 'auto'} bad={list(bad)}", run, [module],
                cost=tokens * dim // 512 + 1)


def cases():
    return [
        # RMSNorm, vector path: dim % 4 == 0, x / out 16-byte aligned, w 16 (f32) / 8 (bf16)
        rms_norm(3, 4096, "bf16"),                       # 256 threads x 4 register chunks
        rms_norm(2, 4096, "f32", warp_order="reverse"),
        rms_norm(5, 576, "bf16"),                        # 64 threads, chunks 2..3 partial
        rms_norm(3, 1000, "f32", in_place=True),         # out = x
        rms_norm(2, 8, "bf16"),                          # one warp, one chunk each for 2 lanes
        rms_norm(2, 1000, "bf16", block=32),             # 128 chunks in registers, 122 streamed
        rms_norm(2, 1000, "f32", block=64, in_place=True, warp_order="reverse"),
        rms_norm(3, 576, "bf16", skew=(0, 8, 0)),        # w 8-byte aligned: still vector
        # RMSNorm, scalar path: odd dims, misaligned x / w / out
        rms_norm(1, 1, "f32"),
        rms_norm(2, 7, "bf16"),
        rms_norm(3, 33, "f32", eps=1e-6),
        rms_norm(2, 4099, "bf16", eps=1e-6),             # 288 threads
        rms_norm(2, 4099, "f32", in_place=True),
        rms_norm(3, 576, "f32", skew=(4, 0, 0)),
        rms_norm(3, 576, "bf16", skew=(0, 2, 0)),
        rms_norm(3, 576, "f32", skew=(0, 4, 0)),
        rms_norm(3, 576, "bf16", skew=(0, 0, 12), warp_order="reverse"),
        rms_norm(2, 1001, "bf16", skew=(8, 0, 8), in_place=True),
        # RoPE, vector path (and the same data on the scalar path, bit for bit)
        rope(5, 3, 64, 32),                              # odd heads: a pair without its 2nd
        rope(7, 2, 24, 8),                               # partial rotary: 2 copy quads
        rope(3, 4, 128, 64, max_pos=600000),             # large angles
        rope(2, 5, 80, 16, blocks=1),                    # 12 copy quads, grid-stride loop
        rope(4, 1, 8, 0),                                # rotary dim 0: copies only
        rope(6, 9, 64, 32, blocks=2),
        # RoPE, scalar path
        rope(3, 5, 18, 9),                               # head_dim, half odd
        rope(5, 3, 22, 6),                               # head_dim % 4 == 2
        rope(3, 2, 24, 6, blocks=1),                     # half % 4 == 2
        rope(3, 3, 64, 32, skew=4),                      # x / out misaligned
        # embedding, vector path (f32: dim % 4, bf16: dim % 8; 16-byte aligned table, out)
        embedding(51, 24, 13, "f32"),
        embedding(40, 4, 9, "f32", blocks=1),            # 9 units: the last trip has no u1
        embedding(100, 576, 7, "bf16"),
        embedding(30, 16, 21, "bf16", blocks=1),         # 42 units over 256 threads x 2
        embedding(1000, 8, 600, "bf16", blocks=2),       # grid-stride: 600 units, 512 threads
        embedding(51, 24, 13, "f32", bad=((3, 51), (7, -1))),
        embedding(64, 32, 9, "bf16", bad=((0, -5),)),
        # embedding, scalar path
        embedding(1000, 77, 13, "bf16"),
        embedding(60, 7, 11, "f32", blocks=1),
        embedding(60, 12, 11, "bf16"),                   # bf16 dim % 8 == 4
        embedding(60, 16, 11, "bf16", skew=(8, 0)),      # table 8-byte aligned only
        embedding(60, 24, 11, "f32", skew=(4, 0)),
        embedding(60, 24, 11, "f32", skew=(0, 4), bad=((2, 60),)),
        embedding(60, 33, 5, "bf16", skew=(2, 4), bad=((4, 1000),)),
    ]
