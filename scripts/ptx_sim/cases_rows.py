"""Cases for the row kernels: rms_norm_f32(_wbf16, _wf16), layer_norm_f32(_wbf16, _wf16),
rope_f32, embedding_f32(_wbf16, _wf16), and conv2d_f32(_wbf16, _wf16), with the parameters
and launch shapes of the CUDA backend (rms_norm_dims: one block per row, the block sized from
dim; row_dims for layer_norm; elementwise_dims for rope, embedding and conv2d), both of each
kernel's paths where it has two: the 16-byte vector path (aligned buffers, dims a multiple of
4 or 8) and the scalar path (odd dims, or a buffer `skew` bytes past 16-byte alignment, which
the runtime allows down to the element size).

A weight (and bias) is f32, bf16 or IEEE f16: the 16-bit kernels widen it exactly, so the
references take the same rounded values widened in f64 (NumPy's float16 for f16).

RMSNorm and LayerNorm sum in f32 in their own order: against an f64 reference of the same
f32/bf16/f16 inputs the NMSE stays near 1e-14, bound 1e-10 (one element left out of a
4096-long sum already gives ~1e-8); so does conv2d's f32 fma chain. RoPE and embedding are
held bit for bit: embedding against the table rows (f16 tables spanning subnormals to 2^15),
RoPE's vector path against its scalar path (the previous kernel's code) on the same data,
and both within 1e-12 of an f64 reference with libm cos/sin rounded to f32 as the CPU
reference does (a last-bit flip of a polynomial cos/sin stays far below that)."""

import numpy as np

from .harness import Case, Result, elementwise_blocks, exact
from .machine import launch
from .memory import GlobalMemory
from .numerics import bf16_round, bf16_to_f32, f16_to_f32, f32_bits, nmse

NMSE_RMS_NORM = 1e-10
NMSE_LAYER_NORM = 1e-10
NMSE_CONV2D = 1e-10
NMSE_ROPE = 1e-12
# The kernel of each weight dtype: <op>_f32 + suffix.
WEIGHT_SUFFIX = {"f32": "", "bf16": "_wbf16", "f16": "_wf16"}


def stored_weight(values, weight):
    """f32 `values` as a `weight` (f32, bf16, f16) buffer holds them: (device array, the
    values it widens to, f64)."""
    if weight == "bf16":
        dev = bf16_round(values)
        return dev, bf16_to_f32(dev).astype(np.float64)
    if weight == "f16":
        dev = np.asarray(values, dtype=np.float32).astype(np.float16).view(np.uint16)
        return dev, f16_to_f32(dev).astype(np.float64)
    return values, values.astype(np.float64)


def rms_norm_block(dim):
    """rms_norm_dims: dim / 16 threads rounded up to whole warps, 32..1024."""
    threads = -(-dim // 16)
    return min(max(-(-threads // 32) * 32, 32), 1024)


def rms_norm(rows, dim, weight, skew=(0, 0, 0), in_place=False, block=None, eps=1e-5,
             warp_order="parity", seed=0):
    """skew: bytes past 16-byte alignment of (x, w, out); block: threads (default as the
    backend launches)."""
    module = "rms_norm_f32" + WEIGHT_SUFFIX[weight]
    threads = block or rms_norm_block(dim)

    def run(src):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-3, 3, (rows, dim)).astype(np.float32)
        w = rng.uniform(-1.5, 1.5, dim).astype(np.float32)
        w_dev, w_ref = stored_weight(w, weight)
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
    launch(src.text("rope_f32"), "rope_f32", (blocks or elementwise_blocks(n), 1, 1), 256,
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
    module = "embedding_f32" + WEIGHT_SUFFIX[weight]

    def run(src):
        rng = np.random.default_rng(seed)
        table = rng.uniform(-2, 2, (vocab, dim)).astype(np.float32)
        if weight == "f16":  # every f16 exponent, subnormals (2^-24 ..) to 2^15
            table *= np.exp2(rng.integers(-23, 15, (vocab, dim))).astype(np.float32)
        table_dev, rows = stored_weight(table, weight)
        rows = rows.astype(np.float32)
        ids = rng.integers(0, vocab, tokens).astype(np.int64)
        for t, bad_id in bad:
            ids[t] = bad_id
        g = GlobalMemory()
        pi, pt = g.put(ids, "ids"), g.put(table_dev, "table", skew=skew[0])
        po = g.alloc(tokens * dim * 4, "out", skew=skew[1])
        pe = g.put(np.zeros(4, np.uint32), "err", readonly=False)
        n = tokens * dim
        launch(src.text(module), module, (blocks or elementwise_blocks(n), 1, 1), 256,
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


def layer_norm(rows, cols, weight, bias=True, skew=(0, 0, 0, 0), in_place=False, eps=1e-5,
               warp_order="parity", seed=0):
    """skew: bytes past 16-byte alignment of (x, w, b, out); bias=False passes b = 0. One
    256-thread block per row (row_dims); the kernel has one (scalar) path."""
    module = "layer_norm_f32" + WEIGHT_SUFFIX[weight]

    def run(src):
        rng = np.random.default_rng(seed)
        # rows off centre, so that a wrong mean shows
        x = (rng.uniform(-3, 3, (rows, cols)) + rng.uniform(-2, 2, (rows, 1))).astype(np.float32)
        w_dev, w_ref = stored_weight(rng.uniform(-1.5, 1.5, cols).astype(np.float32), weight)
        b_dev, b_ref = stored_weight(rng.uniform(-1, 1, cols).astype(np.float32), weight)
        g = GlobalMemory()
        px = g.put(x, "x", skew=skew[0], readonly=not in_place)
        pw = g.put(w_dev, "w", skew=skew[1])
        pb = g.put(b_dev, "b", skew=skew[2]) if bias else 0
        po = px if in_place else g.alloc(x.nbytes, "out", skew=skew[3])
        launch(src.text(module), module, (rows, 1, 1), 256,
               dict(x=px, w=pw, b=pb, out=po, cols=cols, eps=eps), g, warp_order=warp_order)
        got = g.get(po, np.float32, rows * cols).reshape(rows, cols)
        x64 = x.astype(np.float64)
        centred = x64 - x64.mean(axis=1, keepdims=True)
        var = (centred**2).mean(axis=1, keepdims=True)
        want = centred / np.sqrt(var + float(np.float32(eps))) * w_ref + (b_ref if bias else 0)
        return Result("nmse", nmse(got, want), NMSE_LAYER_NORM)
    return Case(f"{module} {rows}x{cols} bias={int(bias)} skew(x,w,b,out)={skew} "
                f"in_place={int(in_place)} warps={warp_order}", run, [module],
                cost=rows * max(cols, 256) // 256)


def conv2d(n, channels, height, width, out_channels, kernel, stride, pad, weight, bias=True,
           blocks=None, seed=0):
    """kernel, stride, pad: (h, w). One thread per output element, grid-stride
    (elementwise_dims, or `blocks`)."""
    module = "conv2d_f32" + WEIGHT_SUFFIX[weight]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1

    def run(src):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2, 2, (n, channels, height, width)).astype(np.float32)
        w_dev, w_ref = stored_weight(
            rng.uniform(-1, 1, (out_channels, channels, kh, kw)).astype(np.float32), weight)
        b_dev, b_ref = stored_weight(rng.uniform(-1, 1, out_channels).astype(np.float32), weight)
        total = n * out_channels * out_h * out_w
        g = GlobalMemory()
        px, pw_ = g.put(x, "x"), g.put(w_dev, "w")
        pb = g.put(b_dev, "bias") if bias else 0
        po = g.alloc(total * 4, "out")
        launch(src.text(module), module, (blocks or elementwise_blocks(total), 1, 1), 256,
               dict(x_ptr=px, w_ptr=pw_, bias_ptr=pb, out_ptr=po, n=total, channels=channels,
                    height=height, width=width, out_channels=out_channels, kernel_h=kh,
                    kernel_w=kw, out_h=out_h, out_w=out_w, stride_h=sh, stride_w=sw,
                    pad_h=ph, pad_w=pw), g)
        got = g.get(po, np.float32, total).reshape(n, out_channels, out_h, out_w)
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        want = np.zeros((n, out_channels, out_h, out_w))
        for ky in range(kh):
            for kx in range(kw):
                taps = xp[:, :, ky: ky + sh * (out_h - 1) + 1: sh,
                          kx: kx + sw * (out_w - 1) + 1: sw]
                want += np.einsum("bchw,oc->bohw", taps, w_ref[:, :, ky, kx])
        if bias:
            want += b_ref[None, :, None, None]
        return Result("nmse", nmse(got, want), NMSE_CONV2D)
    return Case(f"{module} {n}x{channels}x{height}x{width} oc={out_channels} k={kernel} "
                f"s={stride} p={pad} bias={int(bias)} blocks={blocks or 'auto'}", run, [module],
                cost=n * out_channels * out_h * out_w * channels * kh * kw // 20000 + 1)


def cases():
    return [
        # RMSNorm, vector path: dim % 4 == 0, x / out 16-byte aligned, w 16 (f32) / 8 (16-bit)
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
        # RMSNorm with an f16 weight: the bf16 cases' shapes, on both paths
        rms_norm(3, 4096, "f16", seed=1),                # vector: 4 register chunks
        rms_norm(5, 576, "f16", warp_order="reverse"),
        rms_norm(2, 1000, "f16", block=32),              # vector: streamed chunks
        rms_norm(3, 576, "f16", skew=(0, 8, 0)),         # w 8-byte aligned: still vector
        rms_norm(2, 8, "f16", in_place=True),
        rms_norm(2, 7, "f16"),                           # scalar from here
        rms_norm(2, 4099, "f16", eps=1e-6),
        rms_norm(3, 576, "f16", skew=(0, 2, 0)),
        rms_norm(2, 1001, "f16", skew=(8, 0, 8), in_place=True, warp_order="reverse"),
        # LayerNorm (one path: scalar loads; w and b at any alignment of their dtype)
        layer_norm(3, 1000, "f32"),
        layer_norm(2, 333, "f32", bias=False, in_place=True),
        layer_norm(2, 576, "bf16"),
        layer_norm(2, 4099, "bf16", eps=1e-6, warp_order="reverse"),
        layer_norm(3, 1000, "f16"),
        layer_norm(2, 77, "f16", bias=False),
        layer_norm(1, 1, "f16"),                         # var 0: out = b
        layer_norm(3, 33, "f16", skew=(4, 2, 6, 12)),
        layer_norm(2, 300, "f16", in_place=True, warp_order="reverse"),
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
        # embedding from an f16 table (vector path when dim % 8 == 0 and aligned)
        embedding(100, 576, 7, "f16"),
        embedding(30, 16, 21, "f16", blocks=1),
        embedding(1000, 8, 600, "f16", blocks=2),
        embedding(64, 32, 9, "f16", bad=((0, -5), (5, 64))),
        embedding(1000, 77, 13, "f16"),                  # scalar from here
        embedding(60, 12, 11, "f16"),
        embedding(60, 16, 11, "f16", skew=(8, 0)),
        embedding(60, 33, 5, "f16", skew=(2, 4), bad=((4, 1000),)),
        # conv2d: a ViT patch embedding, a padded strided 3x3, a non-square kernel
        conv2d(1, 3, 28, 42, 8, (14, 14), (14, 14), (0, 0), "f32"),
        conv2d(1, 3, 28, 42, 8, (14, 14), (14, 14), (0, 0), "bf16"),
        conv2d(1, 3, 28, 42, 8, (14, 14), (14, 14), (0, 0), "f16"),
        conv2d(2, 5, 9, 11, 7, (3, 3), (2, 2), (1, 1), "f32"),
        conv2d(2, 5, 9, 11, 7, (3, 3), (2, 2), (1, 1), "bf16"),
        conv2d(2, 5, 9, 11, 7, (3, 3), (2, 2), (1, 1), "f16"),
        conv2d(2, 4, 7, 6, 8, (3, 2), (1, 2), (2, 1), "f16", bias=False, blocks=1),
        conv2d(2, 4, 7, 6, 8, (3, 2), (1, 2), (2, 1), "bf16", blocks=1),  # 576 outputs, 3 trips
    ]
