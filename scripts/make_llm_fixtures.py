#!/usr/bin/env python3
"""Writes tiny random-weight LLM checkpoints (HF folders) with transformers reference outputs.

Run (from the repository root; CPU only, takes about a minute):

    pip install torch transformers safetensors numpy
    python3 scripts/make_llm_fixtures.py

What it writes (every folder is a normal Hugging Face checkpoint folder plus reference files):

  fixtures/tiny-llama/        LlamaForCausalLM, GQA 5 heads / 1 KV head, head_dim 16, untied
                              lm_head, vocab 1003, 3 layers, float32 weights.
  fixtures/tiny-llama-bf16/   the same weights rounded to bfloat16.
  fixtures/tiny-llama3/       LlamaForCausalLM with Llama 3 `rope_scaling` (rope_type llama3,
                              factor 8, low/high freq factor 1/4, original_max_position_embeddings
                              64, so all three frequency bands occur), rope_theta 5e5, `head_dim`
                              24 written explicitly in config.json (hidden 96 / 4 heads, so it
                              equals hidden/heads), 2 KV heads, tied embeddings, float32 weights.
  fixtures/tiny-qwen2/        Qwen2ForCausalLM, 6 heads / 2 KV heads, head_dim 12, q/k/v bias,
                              tied embeddings, rope_theta 1e6, float32 weights.
  fixtures/tiny-qwen2-bf16/   the same weights rounded to bfloat16.

Files in each folder
  config.json, model.safetensors, generation_config.json   (save_pretrained, safetensors)
  reference.safetensors   `input_ids` i64 [1, T] (T = 21: bos then 20 random ids >= 3, so
                          never pad/bos/eos after the first) and `logits` f32 [1, T, V].
                          Float32 folders: logits of the float32 model.
                          Bfloat16 folders: `logits` = transformers run entirely in bfloat16
                          (weights and activations), cast to f32. A runtime that computes in
                          f32 from bf16 weights is expected to agree with it only to about
                          NMSE <= 1e-3. `logits_f32_compute` = the same bf16 weights upcast to
                          f32 and run in f32: the exact answer for "bf16 weights, f32 compute"
                          (expect f32-level agreement with it).
  greedy.json             {"input_ids", "max_new_tokens": 32, "output_ids": 32 new ids, ...}
                          Float32 folders: from the f32 model. Bfloat16 folders: `output_ids`
                          from bf16 weights with f32 compute, plus `greedy_bf16_compute` (the
                          true bf16 run) and `bf16_compute_agrees` (whether the two are equal).
                          Also `min_top1_top2_margin` over the 32 steps.

How exactly 32 tokens are produced: model.generate(do_sample=False, max_new_tokens=32,
min_new_tokens=32). min_new_tokens only acts by masking eos; the script also requests the raw
(unprocessed) logits of every step and asserts that each chosen token is the plain argmax of the
raw logits, i.e. eos never was the argmax and the mask changed nothing. So `output_ids` is plain
greedy argmax decoding, which a runtime reproduces without any eos handling. It is additionally
checked against a loop that re-runs the full sequence without KV cache.

All reference runs use attn_implementation="eager" and load the model back from the folder just
written, so the references are computed from exactly the bytes on disk.

config.json is written in the classic Hub layout (top-level `rope_theta`, `rope_scaling` for
Llama 3 scaling, `torch_dtype`), as the real SmolLM2 / Llama 3 / Qwen2 checkpoints on the Hub
have it. transformers 5 itself would write a `rope_parameters` object instead; the script checks
that transformers reads the classic file back to identical logits.

Weights: the model's own init, then re-drawn larger so the logits are not flat: every Linear and
Embedding weight ~ N(0, 0.15^2), every RMSNorm weight ~ 1 + N(0, 0.1^2), every bias
~ N(0, 0.1^2). Deterministic: a fixed seed per model (torch.manual_seed); if a seed gives fewer
than 8 distinct greedy tokens, a top-1/top-2 logit margin < 1e-3 at some greedy step (f32, and
f32 compute of the bf16 weights), or eos as argmax, the next seed is tried (fixed order, so the
output is reproducible). Threads: torch.set_num_threads(2).
"""

import json
import os
import shutil

import numpy as np  # noqa: F401  (safetensors' torch backend needs it present)
import torch
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
import transformers

torch.set_num_threads(2)
transformers.utils.logging.disable_progress_bar()

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "fixtures")

T = 21
MAX_NEW = 32
WEIGHT_STD = 0.15
NORM_STD = 0.1
BIAS_STD = 0.1
MIN_DISTINCT = 8
MIN_MARGIN = 1e-3
MAX_SEED_TRIES = 50

BOS, EOS = 1, 2


def llama_config():
    return LlamaConfig(
        vocab_size=1003,
        hidden_size=80,
        intermediate_size=200,
        num_hidden_layers=3,
        num_attention_heads=5,
        num_key_value_heads=1,
        max_position_embeddings=256,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )


def llama3_config():
    return LlamaConfig(
        vocab_size=1003,
        hidden_size=96,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,
        max_position_embeddings=256,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )


def qwen2_config():
    return Qwen2Config(
        vocab_size=1003,
        hidden_size=72,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )


# name, config factory, model class, base seed, also write a bf16 copy
MODELS = [
    ("tiny-llama", llama_config, LlamaForCausalLM, 1000, True),
    ("tiny-llama3", llama3_config, LlamaForCausalLM, 3000, False),
    ("tiny-qwen2", qwen2_config, Qwen2ForCausalLM, 2000, True),
]


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + NORM_STD * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(BIAS_STD * torch.randn(p.shape, generator=g))
            elif name.endswith(".weight"):
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=g))
            else:
                raise ValueError(f"unexpected parameter {name}")


def classic_config_json(path, dtype_name):
    """Rewrite transformers 5's config.json into the classic Hub layout (see module doc)."""
    with open(path) as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    if rp.get("rope_type", "default") == "default":
        cfg["rope_scaling"] = None
    else:
        cfg["rope_scaling"] = rp
    cfg.pop("dtype", None)
    cfg["torch_dtype"] = dtype_name
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def save_folder(model, out_dir, dtype_name):
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    classic_config_json(os.path.join(out_dir, "config.json"), dtype_name)
    # generation_config.json: just the special tokens (no sampling defaults to emulate).
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS).save_pretrained(out_dir)


def load(out_dir, dtype):
    m = AutoModelForCausalLM.from_pretrained(out_dir, dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


def make_input_ids(vocab, seed):
    g = torch.Generator().manual_seed(seed + 7)
    ids = torch.randint(3, vocab, (1, T), generator=g, dtype=torch.int64)
    ids[0, 0] = BOS
    return ids


@torch.no_grad()
def greedy(model, input_ids):
    """32 greedy tokens; returns (new ids, min top1-top2 margin, argmax_ok)."""
    out = model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        do_sample=False,
        max_new_tokens=MAX_NEW,
        min_new_tokens=MAX_NEW,
        return_dict_in_generate=True,
        output_logits=True,
        pad_token_id=0,
    )
    new = out.sequences[0, input_ids.shape[1]:].tolist()
    assert len(new) == MAX_NEW, len(new)
    margins = []
    argmax_ok = True
    for step, lg in enumerate(out.logits):
        lg = lg[0].float()
        top2 = torch.topk(lg, 2).values
        margins.append((top2[0] - top2[1]).item())
        if int(lg.argmax()) != new[step]:
            argmax_ok = False
    return new, min(margins), argmax_ok


@torch.no_grad()
def greedy_no_cache(model, input_ids):
    ids = input_ids
    for _ in range(MAX_NEW):
        lg = model(ids, use_cache=False).logits[0, -1]
        ids = torch.cat([ids, lg.argmax().view(1, 1)], dim=1)
    return ids[0, input_ids.shape[1]:].tolist()


@torch.no_grad()
def logits_of(model, input_ids):
    return model(input_ids, use_cache=False).logits.float().contiguous()


def nmse(a, b):
    a = a.double()
    b = b.double()
    return ((a - b) ** 2).sum().item() / (b**2).sum().item()


def write_json(path, obj):
    """One key per line, id lists on one line."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()]
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def acceptable(new, margin, argmax_ok):
    return argmax_ok and len(set(new)) >= MIN_DISTINCT and margin >= MIN_MARGIN and EOS not in new


def folder_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def llama3_bands(cfg):
    """Counts of inverse frequencies in the llama3 high / medium / low bands (for the log)."""
    import math

    rs = cfg["rope_scaling"]
    hd = cfg["head_dim"]
    inv = [1.0 / cfg["rope_theta"] ** (i / hd) for i in range(0, hd, 2)]
    hi_w = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
    lo_w = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
    wl = [2 * math.pi / f for f in inv]
    return sum(w < hi_w for w in wl), sum(hi_w <= w <= lo_w for w in wl), sum(w > lo_w for w in wl)


def make(name, config_fn, cls, base_seed, with_bf16):
    out_dir = os.path.join(FIXTURES, name)
    for seed in range(base_seed, base_seed + MAX_SEED_TRIES):
        torch.manual_seed(seed)
        model = cls(config_fn())
        init_weights(model, seed)
        save_folder(model, out_dir, "float32")
        del model
        m32 = load(out_dir, torch.float32)
        input_ids = make_input_ids(m32.config.vocab_size, seed)
        new32, margin32, ok32 = greedy(m32, input_ids)
        if not acceptable(new32, margin32, ok32):
            print(f"{name}: seed {seed} rejected (distinct {len(set(new32))}, margin {margin32:.2e}, argmax_ok {ok32})")
            continue
        if with_bf16:
            mb = load(out_dir, torch.float32).to(torch.bfloat16)
            bf_dir = out_dir + "-bf16"
            save_folder(mb, bf_dir, "bfloat16")
            del mb
            mbf32 = load(bf_dir, torch.float32)  # bf16 weights upcast, f32 compute
            newb32, marginb32, okb32 = greedy(mbf32, input_ids)
            if not acceptable(newb32, marginb32, okb32):
                print(f"{name}: seed {seed} rejected for bf16 (distinct {len(set(newb32))}, margin {marginb32:.2e})")
                continue
        break
    else:
        raise RuntimeError(f"{name}: no acceptable seed")

    # Cross-check: config.json in the classic layout reproduces the in-memory model exactly.
    torch.manual_seed(seed)
    ref_model = cls(config_fn())
    init_weights(ref_model, seed)
    ref_model.config._attn_implementation = "eager"
    ref_model.set_attn_implementation("eager")
    ref_model.eval()
    logits32 = logits_of(m32, input_ids)
    assert torch.equal(logits_of(ref_model, input_ids), logits32), "classic config.json changed the model"
    del ref_model
    assert greedy_no_cache(m32, input_ids) == new32, "KV-cache greedy != full-recompute greedy"

    save_file({"input_ids": input_ids.contiguous(), "logits": logits32}, os.path.join(out_dir, "reference.safetensors"))
    write_json(
        os.path.join(out_dir, "greedy.json"),
        {
            "input_ids": input_ids[0].tolist(),
            "max_new_tokens": MAX_NEW,
            "output_ids": new32,
            "distinct_tokens": len(set(new32)),
            "min_top1_top2_margin": margin32,
            "note": "f32 weights, f32 compute; plain argmax of raw logits at every step "
            "(eos never the argmax, so no eos handling is needed)",
        },
    )
    report = {"name": name, "seed": seed, "min_margin_f32": margin32, "distinct_f32": len(set(new32))}
    if name == "tiny-llama3":
        with open(os.path.join(out_dir, "config.json")) as f:
            report["llama3_bands_high_mid_low"] = llama3_bands(json.load(f))

    if with_bf16:
        assert greedy_no_cache(mbf32, input_ids) == newb32
        logits_b32 = logits_of(mbf32, input_ids)
        mbf = load(bf_dir, torch.bfloat16)
        logits_bf = logits_of(mbf, input_ids)
        newbf, marginbf, okbf = greedy(mbf, input_ids)
        agree = newbf == newb32
        first_diff = None if agree else next(i for i, (a, b) in enumerate(zip(newbf, newb32)) if a != b)
        save_file(
            {"input_ids": input_ids.contiguous(), "logits": logits_bf, "logits_f32_compute": logits_b32},
            os.path.join(bf_dir, "reference.safetensors"),
        )
        write_json(
            os.path.join(bf_dir, "greedy.json"),
            {
                "input_ids": input_ids[0].tolist(),
                "max_new_tokens": MAX_NEW,
                "output_ids": newb32,
                "distinct_tokens": len(set(newb32)),
                "min_top1_top2_margin": marginb32,
                "note": "output_ids: bf16 weights upcast to f32, f32 compute (plain argmax at every step). "
                "greedy_bf16_compute: transformers run entirely in bfloat16.",
                "greedy_bf16_compute": newbf,
                "bf16_compute_agrees": agree,
                "bf16_compute_first_difference": first_diff,
            },
        )
        report.update(
            {
                "min_margin_bf16w_f32c": marginb32,
                "distinct_bf16w_f32c": len(set(newb32)),
                "nmse_bf16compute_vs_f32compute": nmse(logits_bf, logits_b32),
                "nmse_bf16weights_vs_f32weights": nmse(logits_b32, logits32),
                "bf16_compute_greedy_agrees": agree,
                "bf16_compute_first_difference": first_diff,
                "bf16_compute_argmax_ok": okbf,
                "bf16_size": folder_size(bf_dir),
            }
        )
    report["size"] = folder_size(out_dir)
    return report


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    for args in MODELS:
        r = make(*args)
        print(json.dumps(r))
        for d in [args[0]] + ([args[0] + "-bf16"] if args[4] else []):
            p = os.path.join(FIXTURES, d)
            for f in sorted(os.listdir(p)):
                print(f"  {d}/{f}: {os.path.getsize(os.path.join(p, f))} bytes")


if __name__ == "__main__":
    main()
