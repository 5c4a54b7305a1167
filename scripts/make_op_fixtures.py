#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for iris' CPU reference kernels to fixtures/ops/.

Run (from the repository root):

    pip install torch safetensors numpy     # CPU torch is enough
    python3 scripts/make_op_fixtures.py

tests/reference_fixtures.rs loads every file written here, runs the matching kernel in
`iris_kernels::cpu::reference` and compares by NMSE (sum (a-b)^2 / sum b^2).

Conventions
- Deterministic: torch.manual_seed(SEED) and torch's own CPU generator only.
- Inputs are drawn in float64 and rounded to float32 (or to bf16/f16 for half weights)
  *before* anything is computed; every expected output is then computed in float64 from
  exactly those stored values and rounded once to float32. So each `expected` tensor is
  the exact answer (to f32 rounding) for the inputs as stored, and the only error a test
  sees is the kernel's own f32 arithmetic. Exceptions, both documented below:
    * rope: the rotation angle pos * inv_freq is computed in float32, exactly as
      transformers' LlamaRotaryEmbedding.forward does (cos/sin and the rotation itself are
      float64). Positions are kept moderate so a kernel that forms the angle in f64 also
      passes; the script prints how far apart the two conventions are.
    * rope inv_freq: stored as transformers computes it (float32 arithmetic).
- Exact by construction (NMSE must be 0 up to f32 noise): pixel_shuffle, embedding,
  argmax (compared for equality).
- One file per op family; scalar parameters live in the safetensors `__metadata__` under the
  single key "cases": a JSON object {case name: {param: value}}, e.g.
  {"rope_full_theta1e4": {"theta": 10000.0, "n_heads": 3, ...}, ...}.
  Tensors are named "<case>/<role>", e.g. "rope_full/x", "rope_full/expected".
"""

import json
import math
import os

import numpy as np  # noqa: F401  (safetensors' torch backend needs it present)
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

SEED = 20240607
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ops")

torch.manual_seed(SEED)

f64 = torch.float64
f32 = torch.float32


def randn(*shape, scale=1.0):
    """randn in float64, rounded to f32, returned as float64 holding f32-representable values."""
    return (torch.randn(*shape, dtype=f64) * scale).to(f32).to(f64)


def as_dtype(t64, dtype):
    """Round float64 values to `dtype` and back (the values the kernel will actually see)."""
    return t64.to(dtype).to(f64)


class Fixture:
    def __init__(self, name):
        self.name = name
        self.tensors = {}
        self.meta = {}

    def case(self, case, params, **tensors):
        assert case not in self.meta, case
        self.meta[case] = params
        for role, t in tensors.items():
            if t.dtype == f64:
                t = t.to(f32)
            self.tensors[f"{case}/{role}"] = t.contiguous().clone()

    def write(self):
        os.makedirs(OUT_DIR, exist_ok=True)
        path = os.path.join(OUT_DIR, f"{self.name}.safetensors")
        # One metadata key only: safetensors writes __metadata__ from a hash map, so several
        # keys would come out in a random order and the file would not be byte-reproducible.
        cases = json.dumps(self.meta, sort_keys=True, separators=(",", ":"))
        save_file(self.tensors, path, metadata={"cases": cases})
        size = os.path.getsize(path)
        print(f"{os.path.relpath(path)}: {size} bytes, {len(self.meta)} cases")
        for case in sorted(self.meta):
            print(f"  {case}: {json.dumps(self.meta[case], sort_keys=True)}")
            for k in sorted(self.tensors):
                if k.startswith(case + "/"):
                    t = self.tensors[k]
                    print(f"    {k:40s} {str(t.dtype):15s} {list(t.shape)}")
        return size


def nmse(a, b):
    a = a.to(f64)
    b = b.to(f64)
    return float(((a - b) ** 2).sum() / (b**2).sum())


# ---------------------------------------------------------------------------------------
# Activations (elementwise): x covers -8..8 evenly plus randn, odd length.
# ---------------------------------------------------------------------------------------
def make_activations():
    fx = Fixture("activations")
    grid = torch.linspace(-8.0, 8.0, 801, dtype=f64)
    x = torch.cat([grid, torch.randn(1234, dtype=f64) * 2.0]).to(f32).to(f64)
    # transformers ACT2FN: "gelu" -> GELUActivation = F.gelu (erf);
    # "gelu_pytorch_tanh" -> F.gelu(approximate="tanh"); "quick_gelu" -> x * sigmoid(1.702 x);
    # "silu" -> F.silu.
    fx.case("gelu_erf", {}, x=x, expected=F.gelu(x, approximate="none"))
    fx.case("gelu_tanh", {}, x=x, expected=F.gelu(x, approximate="tanh"))
    fx.case("quick_gelu", {}, x=x, expected=x * torch.sigmoid(1.702 * x))
    fx.case("silu", {}, x=x, expected=F.silu(x))
    return fx.write()


# ---------------------------------------------------------------------------------------
# Norms
# ---------------------------------------------------------------------------------------
def llama_rms_norm(x, weight, eps):
    # transformers.models.llama.modeling_llama.LlamaRMSNorm.forward (input already f32):
    #   variance = hidden_states.pow(2).mean(-1, keepdim=True)
    #   hidden_states = hidden_states * torch.rsqrt(variance + eps)
    #   return self.weight * hidden_states
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def make_norms():
    fx = Fixture("norms")
    rows, dim = 7, 203
    for eps, case in [(1e-5, "rms_norm_eps1e-5"), (1e-6, "rms_norm_eps1e-6")]:
        x = randn(rows, dim, scale=3.0)
        w = randn(dim) * 0.5 + 1.0
        w = as_dtype(w, f32)
        fx.case(case, {"eps": eps, "dim": dim}, x=x, weight=w, expected=llama_rms_norm(x, w, eps))
    # bf16 weight (checkpoints store norm weights in bf16; the kernel widens them).
    x = randn(5, 96)
    w = as_dtype(randn(96) * 0.3 + 1.0, torch.bfloat16)
    fx.case(
        "rms_norm_bf16_weight",
        {"eps": 1e-6, "dim": 96},
        x=x,
        weight=w.to(torch.bfloat16),
        expected=llama_rms_norm(x, w, 1e-6),
    )

    # LayerNorm (CLIP / SigLIP use eps 1e-5 / 1e-6 with bias); rows with a large mean offset
    # check the variance is computed around the mean.
    rows, dim = 6, 157
    x = randn(rows, dim, scale=2.0) + torch.arange(rows, dtype=f64)[:, None] * 10.0
    x = as_dtype(x, f32)
    w = randn(dim) * 0.5 + 1.0
    b = randn(dim) * 0.5
    fx.case(
        "layer_norm_bias",
        {"eps": 1e-5, "dim": dim},
        x=x,
        weight=w,
        bias=b,
        expected=F.layer_norm(x, (dim,), w, b, 1e-5),
    )
    x = randn(4, 90)
    w = randn(90) * 0.5 + 1.0
    fx.case(
        "layer_norm_no_bias",
        {"eps": 1e-6, "dim": 90},
        x=x,
        weight=w,
        expected=F.layer_norm(x, (90,), w, None, 1e-6),
    )
    return fx.write()


# ---------------------------------------------------------------------------------------
# Softmax (last axis), including rows with large offsets (max subtraction) and a wide spread.
# ---------------------------------------------------------------------------------------
def make_softmax():
    fx = Fixture("softmax")
    rows, cols = 9, 131
    x = randn(rows, cols, scale=3.0)
    x[1] += 200.0  # exp would overflow f32 without subtracting the row max
    x[2] -= 300.0  # and underflow to 0/0
    x[3] *= 10.0  # very peaked
    x = as_dtype(x, f32)
    fx.case("softmax", {"cols": cols}, x=x, expected=torch.softmax(x, dim=-1))
    x = randn(3, 1)
    fx.case("softmax_one_col", {"cols": 1}, x=x, expected=torch.softmax(x, dim=-1))
    return fx.write()


# ---------------------------------------------------------------------------------------
# Matmul: out[m,n] = a[m,k] @ w[n,k]^T + bias  (nn.Linear / F.linear)
# ---------------------------------------------------------------------------------------
def make_matmul():
    fx = Fixture("matmul")
    for case, (m, n, k), wdtype, has_bias in [
        ("matmul_f32_bias", (7, 33, 67), f32, True),
        ("matmul_f32_gemv", (1, 45, 129), f32, False),
        ("matmul_bf16_bias", (5, 37, 75), torch.bfloat16, True),
        ("matmul_f16", (6, 29, 83), torch.float16, False),
        ("matmul_f16_bias_gemv", (1, 31, 200), torch.float16, True),
    ]:
        a = randn(m, k)
        w = as_dtype(randn(n, k, scale=1.0 / math.sqrt(k)), wdtype)
        b = as_dtype(randn(n), wdtype) if has_bias else None
        expected = F.linear(a, w, b)
        tensors = dict(a=a, weight=w.to(wdtype), expected=expected)
        if has_bias:
            tensors["bias"] = b.to(wdtype)
        fx.case(case, {"m": m, "n": n, "k": k, "dtype": str(wdtype).replace("torch.", "")}, **tensors)
    return fx.write()


# ---------------------------------------------------------------------------------------
# RoPE, HF rotate_half layout.
# ---------------------------------------------------------------------------------------
def hf_default_inv_freq(rotary_dim, theta):
    # transformers.modeling_rope_utils._compute_default_rope_parameters (float32, as HF):
    #   inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    return 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).to(f32) / rotary_dim))


def hf_rotate_half(x):
    # transformers.models.llama.modeling_llama.rotate_half
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def hf_rope(x, positions, inv_freq_f32):
    """x: [tokens, n_heads, head_dim] float64; positions: [tokens] int64.

    Mirrors transformers' LlamaRotaryEmbedding.forward (freqs = inv_freq @ positions in
    float32, emb = cat(freqs, freqs), cos/sin) and apply_rotary_pos_emb
    (q * cos + rotate_half(q) * sin); for partial rotary (rotary_dim < head_dim) the split
    q_rot / q_pass of transformers.models.phi.modeling_phi.apply_rotary_pos_emb (the same
    shape NeoX / StableLM / Persimmon use): only the first rotary_dim dims rotate, the rest
    pass through.
    """
    freqs = (positions.to(f32)[:, None] * inv_freq_f32[None, :]).to(f64)  # f32 angle, as HF
    emb = torch.cat((freqs, freqs), dim=-1)  # [tokens, rotary_dim]
    cos = emb.cos()[:, None, :]  # unsqueeze the head axis
    sin = emb.sin()[:, None, :]
    rotary_dim = emb.shape[-1]
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    x_embed = (x_rot * cos) + (hf_rotate_half(x_rot) * sin)
    return torch.cat([x_embed, x_pass], dim=-1), freqs


def make_rope():
    fx = Fixture("rope")
    cases = [
        # case, n_heads, head_dim, rotary_dim, theta, positions
        ("rope_full_theta1e4", 3, 64, 64, 10000.0, [0, 1, 2, 3, 7, 8, 31, 100, 257]),
        ("rope_full_theta1e5", 2, 80, 80, 100000.0, [5, 6, 7, 40, 41, 300, 511]),
        ("rope_partial_24_16", 4, 24, 16, 10000.0, [0, 3, 4, 9, 10, 11, 64, 129, 200, 401, 2]),
        ("rope_partial_80_32", 2, 80, 32, 100000.0, [511, 3, 0, 77]),
    ]
    for case, n_heads, head_dim, rotary_dim, theta, positions in cases:
        pos = torch.tensor(positions, dtype=torch.int64)
        x = randn(len(positions), n_heads, head_dim)
        inv_freq = hf_default_inv_freq(rotary_dim, theta)
        expected, _ = hf_rope(x, pos, inv_freq)
        # How far a kernel forming the angle in float64 would be from this fixture:
        exact_angles = pos.to(f64)[:, None] * inv_freq.to(f64)[None, :]
        emb = torch.cat((exact_angles, exact_angles), dim=-1)
        x_rot = x[..., :rotary_dim]
        alt = torch.cat(
            [x_rot * emb.cos()[:, None, :] + hf_rotate_half(x_rot) * emb.sin()[:, None, :], x[..., rotary_dim:]],
            dim=-1,
        )
        print(f"  {case}: NMSE(f64-angle rope, f32-angle rope as HF) = {nmse(alt, expected):.3e}")
        fx.case(
            case,
            {"n_heads": n_heads, "head_dim": head_dim, "rotary_dim": rotary_dim, "theta": theta},
            x=x,
            positions=pos,
            inv_freq=inv_freq,
            expected=expected,
        )
    return fx.write()


# ---------------------------------------------------------------------------------------
# Attention: q, out [B, Tq, Hq, D]; k, v [B, Tk, Hkv, D]; mask additive [B, Tq, Tk].
# ---------------------------------------------------------------------------------------
def hf_repeat_kv(x, n_rep):
    # transformers.models.llama.modeling_llama.repeat_kv on [B, Hkv, T, D]: kv head j serves
    # query heads j*n_rep .. (j+1)*n_rep-1 (== repeat_interleave on the head axis).
    return x.repeat_interleave(n_rep, dim=1)


def sdpa_reference(q, k, v, scale, causal, mask):
    """q [B,Tq,Hq,D], k/v [B,Tk,Hkv,D] (float64) -> [B,Tq,Hq,D] via F.scaled_dot_product_attention."""
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    qh = q.transpose(1, 2)
    kh = hf_repeat_kv(k.transpose(1, 2), Hq // Hkv)
    vh = hf_repeat_kv(v.transpose(1, 2), Hq // Hkv)
    attn_mask = torch.zeros(B, 1, Tq, Tk, dtype=f64)
    if mask is not None:
        attn_mask = attn_mask + mask[:, None, :, :]
    if causal:
        # SDPA's is_causal aligns the triangle top-left; iris (and HF with a KV cache) align
        # it bottom-right: query i sees keys j <= i + (Tk - Tq). Build that mask explicitly.
        i = torch.arange(Tq)[:, None]
        j = torch.arange(Tk)[None, :]
        allowed = j <= i + (Tk - Tq)
        attn_mask = attn_mask.masked_fill(~allowed, float("-inf"))
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=attn_mask, scale=scale)
    return out.transpose(1, 2)


def make_attention():
    fx = Fixture("attention")
    cases = [
        # case, B, Tq, Tk, Hq, Hkv, D, causal, mask, scale (None -> 1/sqrt(D))
        ("attn_noncausal_d24", 2, 7, 7, 3, 3, 24, False, False, None),
        ("attn_noncausal_cross_d80", 1, 5, 9, 2, 2, 80, False, False, None),
        ("attn_causal_square_d80", 1, 9, 9, 4, 4, 80, True, False, None),
        ("attn_causal_offset_d24", 2, 3, 11, 2, 2, 24, True, False, None),
        ("attn_causal_decode_d80", 2, 1, 13, 3, 3, 80, True, False, None),
        ("attn_gqa_causal_d24", 1, 6, 6, 6, 2, 24, True, False, None),
        ("attn_gqa_decode_d80", 2, 1, 10, 6, 2, 80, True, False, None),
        ("attn_gqa_prefill_offset_d80", 1, 4, 9, 6, 2, 80, True, False, None),
        ("attn_mask_d24", 2, 5, 6, 3, 1, 24, False, True, None),
        ("attn_mask_causal_scale_d24", 1, 4, 7, 2, 1, 24, True, True, 0.37),
    ]
    for case, B, Tq, Tk, Hq, Hkv, D, causal, use_mask, scale in cases:
        q = randn(B, Tq, Hq, D)
        k = randn(B, Tk, Hkv, D)
        v = randn(B, Tk, Hkv, D)
        mask = None
        if use_mask:
            mask = randn(B, Tq, Tk)
            # Fully masked positions as HF writes them (finfo(f32).min), never a whole row.
            drop = torch.rand(B, Tq, Tk) < 0.3
            drop[..., -1] = False
            mask = mask.masked_fill(drop, torch.finfo(f32).min)
        s = 1.0 / math.sqrt(D) if scale is None else scale
        s = float(torch.tensor(s, dtype=f32))  # the f32 scale the kernel gets
        expected = sdpa_reference(q, k, v, s, causal, mask)
        params = {
            "batch": B,
            "q_len": Tq,
            "kv_len": Tk,
            "n_heads": Hq,
            "n_kv_heads": Hkv,
            "head_dim": D,
            "scale": s,
            "causal": causal,
        }
        tensors = dict(q=q, k=k, v=v, expected=expected)
        if mask is not None:
            tensors["mask"] = mask
        fx.case(case, params, **tensors)
    return fx.write()


# ---------------------------------------------------------------------------------------
# Conv2d, NCHW, weight [Cout, Cin, kh, kw].
# ---------------------------------------------------------------------------------------
def make_conv2d():
    fx = Fixture("conv2d")
    cases = [
        # case, B, Cin, H, W, Cout, kh, kw, stride, padding, bias, weight dtype
        ("conv_patch14", 1, 3, 42, 70, 40, 14, 14, (14, 14), (0, 0), True, f32),
        ("conv_patch7_nobias_bf16", 2, 3, 21, 28, 24, 7, 7, (7, 7), (0, 0), False, torch.bfloat16),
        ("conv_3x3_s2_p1", 2, 5, 11, 13, 7, 3, 3, (2, 2), (1, 1), True, f32),
        ("conv_asym_k3x2_s2x1_p0x2", 1, 4, 9, 8, 6, 3, 2, (2, 1), (0, 2), True, f32),
    ]
    for case, B, Cin, H, W, Cout, kh, kw, stride, padding, has_bias, wdtype in cases:
        x = randn(B, Cin, H, W)
        w = as_dtype(randn(Cout, Cin, kh, kw, scale=1.0 / math.sqrt(Cin * kh * kw)), wdtype)
        b = as_dtype(randn(Cout) * 0.1, wdtype) if has_bias else None
        expected = F.conv2d(x, w, b, stride=stride, padding=padding)
        params = {
            "batch": B,
            "in_channels": Cin,
            "height": H,
            "width": W,
            "out_channels": Cout,
            "kernel_h": kh,
            "kernel_w": kw,
            "stride": list(stride),
            "padding": list(padding),
            "out_height": expected.shape[2],
            "out_width": expected.shape[3],
        }
        tensors = dict(x=x, weight=w.to(wdtype), expected=expected)
        if has_bias:
            tensors["bias"] = b.to(wdtype)
        fx.case(case, params, **tensors)
    return fx.write()


# ---------------------------------------------------------------------------------------
# Idefics3 pixel shuffle.
# ---------------------------------------------------------------------------------------
def idefics3_pixel_shuffle(x, scale_factor=2):
    # Copied from transformers.models.idefics3.modeling_idefics3.Idefics3Connector.pixel_shuffle
    bsz, seq, embed_dim = x.size()
    height = width = int(seq**0.5)
    x = x.view(bsz, height, width, embed_dim)
    x = x.view(bsz, height, int(width / scale_factor), embed_dim * scale_factor)
    x = x.permute(0, 2, 1, 3)
    x = x.reshape(bsz, int(width / scale_factor), int(height / scale_factor), embed_dim * (scale_factor**2))
    x = x.permute(0, 2, 1, 3)
    x = x.reshape(bsz, int(seq / (scale_factor**2)), embed_dim * (scale_factor**2))
    return x


def make_pixel_shuffle():
    fx = Fixture("pixel_shuffle")
    for case, B, seq, embed, scale in [
        ("pixel_shuffle_s2", 2, 36, 10, 2),
        ("pixel_shuffle_s3", 2, 36, 10, 3),
        ("pixel_shuffle_s4", 1, 64, 7, 4),
    ]:
        x = randn(B, seq, embed)
        fx.case(
            case,
            {"batch": B, "seq": seq, "embed": embed, "scale": scale},
            x=x,
            expected=idefics3_pixel_shuffle(x, scale),
        )
    return fx.write()


# ---------------------------------------------------------------------------------------
# Embedding gather and argmax.
# ---------------------------------------------------------------------------------------
def make_embedding_argmax():
    fx = Fixture("embedding")
    vocab, dim = 53, 19
    ids = torch.tensor([0, 52, 7, 7, 31, 1, 0, 45, 12], dtype=torch.int64)
    for case, dtype in [("embedding_f32", f32), ("embedding_bf16", torch.bfloat16), ("embedding_f16", torch.float16)]:
        table = as_dtype(randn(vocab, dim), dtype)
        fx.case(
            case,
            {"vocab": vocab, "dim": dim, "dtype": str(dtype).replace("torch.", "")},
            ids=ids,
            table=table.to(dtype),
            expected=F.embedding(ids, table),
        )
    size = fx.write()

    fx = Fixture("argmax")
    rows, cols = 8, 301
    x = randn(rows, cols, scale=2.0)
    x[0, 0] = 50.0  # max at the first column
    x[1, -1] = 50.0  # max at the last column
    x[2] -= 1000.0  # all negative
    x = as_dtype(x, f32)
    fx.case("argmax", {"cols": cols}, x=x, expected=torch.argmax(x, dim=-1))
    # Ties: torch.argmax (what HF greedy decoding uses) returns the first maximal index.
    xt = randn(3, 17)
    xt[0, 3] = xt[0, 11] = 9.0
    xt[1, 0] = xt[1, 16] = 9.0
    xt[2, 5] = xt[2, 6] = xt[2, 7] = 9.0
    xt = as_dtype(xt, f32)
    fx.case("argmax_ties", {"cols": 17}, x=xt, expected=torch.argmax(xt, dim=-1))
    assert torch.argmax(xt, dim=-1).tolist() == [3, 0, 5]
    return size + fx.write()


def main():
    total = 0
    total += make_activations()
    total += make_norms()
    total += make_softmax()
    total += make_matmul()
    total += make_rope()
    total += make_attention()
    total += make_conv2d()
    total += make_pixel_shuffle()
    total += make_embedding_argmax()
    print(f"total: {total} bytes in {os.path.relpath(OUT_DIR)}")
    assert total < 2_000_000


if __name__ == "__main__":
    main()
