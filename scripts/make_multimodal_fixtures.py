#!/usr/bin/env python3
"""Writes tiny random-weight multimodal checkpoints (HF folders) with transformers references.

Run (from the repository root; CPU only, takes about a minute):

    pip install torch transformers safetensors numpy
    python3 scripts/make_multimodal_fixtures.py

What it writes (every folder is a normal Hugging Face checkpoint folder, as save_pretrained of
transformers 5 writes it, plus reference files):

  fixtures/tiny-llava/        LlavaForConditionalGeneration. Vision: CLIP, image 30, patch 6
                              (25 patches + class token), hidden 80, 3 layers, 5 heads (head_dim
                              16), intermediate 136, quick_gelu. vision_feature_layer -2,
                              strategy `default` (class token dropped): 25 tokens per image.
                              Projector: linear_1 80 -> 96, gelu (erf), linear_2 96 -> 96, biases.
                              Text: Llama, hidden 96, 6 heads / 2 KV heads (head_dim 16),
                              intermediate 160, 2 layers, vocab 700, untied lm_head.
                              image_token_index 699 (inside the vocab). float32 weights.
  fixtures/tiny-llava-bf16/   the same weights rounded to bfloat16.
  fixtures/tiny-idefics3/     Idefics3ForConditionalGeneration. Vision: SigLIP-style
                              (Idefics3VisionTransformer), image 48, patch 8 (36 patches, 6 x 6),
                              hidden 72, 2 layers, 6 heads (head_dim 12), intermediate 120,
                              gelu_pytorch_tanh, post_layernorm. Connector: pixel shuffle with
                              scale_factor 2 (9 tokens per tile, 288 channels) then
                              modality_projection.proj 288 -> 64 without bias. Text: Llama,
                              hidden 64, 4 heads / 2 KV heads (head_dim 16), intermediate 128,
                              2 layers, vocab 700, untied lm_head. image_token_id 699.
  fixtures/tiny-idefics3-bf16/ the same weights rounded to bfloat16.

Files in each folder
  config.json, model.safetensors, generation_config.json  (save_pretrained)
  reference.safetensors
      input_ids      i64 [1, T]: bos, random text ids in 3..698, and one image's tokens.
                     LLaVA: 25 consecutive image tokens. Idefics3: two tiles of one image,
                     9 image tokens each, separated by text tokens (as the processor's
                     <row_i_col_j> markers would be).
      pixel_values   f32 [N, 3, H, W]: standard-normal values (already "normalized").
                     LLaVA: [1, 3, 30, 30]; Idefics3: [2, 3, 48, 48] = the tiles of one image
                     (transformers is given them as [1, 2, 3, 48, 48]).
      image_features f32: what `get_image_features` computes, before it is split into a list:
                     LLaVA: the projector output [num_images, 25, 96] (pooler_output stacked);
                     Idefics3: the connector output [tiles, 9, 64] (pooler_output is the same
                     values reshaped to [tiles * 9, 64] per image).
      logits         f32 [1, T, V]
      Bfloat16 folders: `image_features` / `logits` are transformers run entirely in bfloat16
      (expect NMSE <= 1e-3 against a runtime that computes in f32); `*_f32_compute` are the
      same bf16 weights upcast to f32 and run in f32 (the exact answer for bf16 weights with
      f32 compute).
  reference_2images.safetensors (tiny-llava only): the same tensors for a prompt with two
      images (pixel_values [2, 3, 30, 30], two runs of 25 image tokens).
  greedy.json   {"input_ids", "max_new_tokens": 32, "output_ids", ...}: 32 greedy tokens
      from generate(input_ids, pixel_values, do_sample=False, min_new_tokens=32) with the
      inputs of reference.safetensors. Every chosen token is checked to be the plain argmax of
      the raw logits (eos and the image token never are), so a runtime needs no eos handling.
      Bfloat16 folders: from bf16 weights with f32 compute, plus `greedy_bf16_compute`.

All reference runs use attn_implementation="eager" and reload the model from the folder just
written. Weights: every Linear/Conv/Embedding weight and the class embedding ~ N(0, 0.15^2),
every norm weight ~ 1 + N(0, 0.1^2), every bias ~ N(0, 0.1^2); a fixed seed per model, and
the next seed if greedy decoding has fewer than 8 distinct tokens, a top-1/top-2 margin below
1e-3, or produces eos or the image token. Threads: torch.set_num_threads(2).
"""

import json
import os
import shutil

import numpy as np  # noqa: F401  (safetensors' torch backend needs it present)
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    AutoModelForImageTextToText,
    CLIPVisionConfig,
    GenerationConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

torch.set_num_threads(2)
transformers.utils.logging.disable_progress_bar()

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "fixtures")

MAX_NEW = 32
WEIGHT_STD = 0.15
NORM_STD = 0.1
BIAS_STD = 0.1
MIN_DISTINCT = 8
MIN_MARGIN = 1e-3
MAX_SEED_TRIES = 50
BOS, EOS = 1, 2
VOCAB = 700
IMAGE_TOKEN = 699


def text_config(hidden, heads, kv_heads, intermediate):
    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=256,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )


def llava_config():
    vision = CLIPVisionConfig(
        hidden_size=80,
        intermediate_size=136,
        num_hidden_layers=3,
        num_attention_heads=5,
        image_size=30,
        patch_size=6,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=32,
    )
    return LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=text_config(96, 6, 2, 160).to_dict(),
        image_token_index=IMAGE_TOKEN,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=25,
        tie_word_embeddings=False,
    )


def idefics3_config():
    return Idefics3Config(
        vision_config={
            "hidden_size": 72,
            "intermediate_size": 120,
            "num_hidden_layers": 2,
            "num_attention_heads": 6,
            "image_size": 48,
            "patch_size": 8,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        },
        text_config=text_config(64, 4, 2, 128).to_dict(),
        image_token_id=IMAGE_TOKEN,
        scale_factor=2,
        tie_word_embeddings=False,
    )


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name or "layrnorm" in name:
                if name.endswith(".bias"):
                    p.copy_(BIAS_STD * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(1.0 + NORM_STD * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(BIAS_STD * torch.randn(p.shape, generator=g))
            elif name.endswith(".weight") or name.endswith("class_embedding"):
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=g))
            else:
                raise ValueError(f"unexpected parameter {name}")


def save_folder(model, out_dir):
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS).save_pretrained(out_dir)


def load(out_dir, dtype):
    m = AutoModelForImageTextToText.from_pretrained(out_dir, dtype=dtype, attn_implementation="eager")
    m.eval()
    return m


def text_ids(g, n):
    return torch.randint(3, IMAGE_TOKEN, (n,), generator=g, dtype=torch.int64).tolist()


def make_inputs(kind, seed, images=1):
    """(input_ids [1, T], pixel_values as transformers takes them, pixel_values as stored)."""
    g = torch.Generator().manual_seed(seed + 7)
    if kind == "llava":
        ids = [BOS] + text_ids(g, 5)
        for i in range(images):
            ids += [IMAGE_TOKEN] * 25 + text_ids(g, 4 + i)
        pixels = torch.randn((images, 3, 30, 30), generator=g)
        return torch.tensor([ids]), pixels, pixels
    ids = [BOS] + text_ids(g, 4) + [IMAGE_TOKEN] * 9 + text_ids(g, 2) + [IMAGE_TOKEN] * 9 + text_ids(g, 5)
    tiles = torch.randn((2, 3, 48, 48), generator=g)
    return torch.tensor([ids]), tiles.unsqueeze(0), tiles


@torch.no_grad()
def image_features(model, pixels):
    feats = model.get_image_features(pixel_values=pixels).pooler_output
    if isinstance(model, Idefics3ForConditionalGeneration):
        # One image: [tiles * 9, H] -> [tiles, 9, H] (the connector output).
        (f,) = feats
        return f.reshape(pixels.shape[1], -1, f.shape[-1]).float().contiguous()
    return torch.stack(list(feats)).float().contiguous()


@torch.no_grad()
def logits_of(model, input_ids, pixels):
    return model(input_ids=input_ids, pixel_values=pixels, use_cache=False).logits.float().contiguous()


@torch.no_grad()
def greedy(model, input_ids, pixels):
    out = model.generate(
        input_ids=input_ids,
        pixel_values=pixels,
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
    margins, argmax_ok = [], True
    for step, lg in enumerate(out.logits):
        lg = lg[0].float()
        top2 = torch.topk(lg, 2).values
        margins.append((top2[0] - top2[1]).item())
        argmax_ok &= int(lg.argmax()) == new[step]
    return new, min(margins), argmax_ok


def acceptable(new, margin, ok):
    return ok and len(set(new)) >= MIN_DISTINCT and margin >= MIN_MARGIN and EOS not in new and IMAGE_TOKEN not in new


def nmse(a, b):
    a, b = a.double(), b.double()
    return ((a - b) ** 2).sum().item() / (b**2).sum().item()


def write_json(path, obj):
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()]
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def folder_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def check_idefics3_positions(model):
    """Full tiles: the bucketed position ids are 0..P-1 (what iris implements)."""
    emb = model.model.vision_model.embeddings
    side = emb.num_patches_per_side
    seen = {}

    def record(module, inputs, output):
        seen["ids"] = inputs[0]

    hook = emb.position_embedding.register_forward_hook(record)
    emb(torch.zeros(1, 3, side * emb.patch_size, side * emb.patch_size), torch.ones(1, side, side, dtype=torch.bool))
    hook.remove()
    assert seen["ids"][0].tolist() == list(range(side * side)), "bucketed positions of a full tile"


def make(name, kind, config_fn, cls, base_seed):
    out_dir = os.path.join(FIXTURES, name)
    bf_dir = out_dir + "-bf16"
    for seed in range(base_seed, base_seed + MAX_SEED_TRIES):
        torch.manual_seed(seed)
        model = cls(config_fn())
        init_weights(model, seed)
        save_folder(model, out_dir)
        mb = model.to(torch.bfloat16)
        save_folder(mb, bf_dir)
        del model, mb
        m32 = load(out_dir, torch.float32)
        mbf32 = load(bf_dir, torch.float32)
        input_ids, pixels, stored = make_inputs(kind, seed)
        new32, margin32, ok32 = greedy(m32, input_ids, pixels)
        newb32, marginb32, okb32 = greedy(mbf32, input_ids, pixels)
        if acceptable(new32, margin32, ok32) and acceptable(newb32, marginb32, okb32):
            break
        print(f"{name}: seed {seed} rejected (distinct {len(set(new32))}, margin {margin32:.2e}, bf16 margin {marginb32:.2e})")
    else:
        raise RuntimeError(f"{name}: no acceptable seed")
    if kind == "idefics3":
        check_idefics3_positions(m32)

    feats32 = image_features(m32, pixels)
    logits32 = logits_of(m32, input_ids, pixels)
    save_file(
        {"input_ids": input_ids, "pixel_values": stored.contiguous(), "image_features": feats32, "logits": logits32},
        os.path.join(out_dir, "reference.safetensors"),
    )
    report = {"name": name, "seed": seed, "T": input_ids.shape[1], "features": list(feats32.shape), "margin_f32": margin32}
    if kind == "llava":
        ids2, pix2, stored2 = make_inputs(kind, seed + 100, images=2)
        save_file(
            {
                "input_ids": ids2,
                "pixel_values": stored2.contiguous(),
                "image_features": image_features(m32, pix2),
                "logits": logits_of(m32, ids2, pix2),
            },
            os.path.join(out_dir, "reference_2images.safetensors"),
        )
    write_json(
        os.path.join(out_dir, "greedy.json"),
        {
            "input_ids": input_ids[0].tolist(),
            "pixel_values": "reference.safetensors",
            "max_new_tokens": MAX_NEW,
            "output_ids": new32,
            "distinct_tokens": len(set(new32)),
            "min_top1_top2_margin": margin32,
            "note": "f32 weights, f32 compute; plain argmax of raw logits at every step",
        },
    )

    mbf = load(bf_dir, torch.bfloat16)
    feats_bf = image_features(mbf, pixels.to(torch.bfloat16))
    logits_bf = logits_of(mbf, input_ids, pixels.to(torch.bfloat16))
    newbf, _, _ = greedy(mbf, input_ids, pixels.to(torch.bfloat16))
    feats_b32 = image_features(mbf32, pixels)
    logits_b32 = logits_of(mbf32, input_ids, pixels)
    save_file(
        {
            "input_ids": input_ids,
            "pixel_values": stored.contiguous(),
            "image_features": feats_bf,
            "logits": logits_bf,
            "image_features_f32_compute": feats_b32,
            "logits_f32_compute": logits_b32,
        },
        os.path.join(bf_dir, "reference.safetensors"),
    )
    write_json(
        os.path.join(bf_dir, "greedy.json"),
        {
            "input_ids": input_ids[0].tolist(),
            "pixel_values": "reference.safetensors",
            "max_new_tokens": MAX_NEW,
            "output_ids": newb32,
            "distinct_tokens": len(set(newb32)),
            "min_top1_top2_margin": marginb32,
            "note": "output_ids: bf16 weights upcast to f32, f32 compute. greedy_bf16_compute: all bfloat16.",
            "greedy_bf16_compute": newbf,
            "bf16_compute_agrees": newbf == newb32,
        },
    )
    report.update(
        {
            "nmse_logits_bf16compute_vs_f32compute": nmse(logits_bf, logits_b32),
            "nmse_features_bf16compute_vs_f32compute": nmse(feats_bf, feats_b32),
            "bf16_greedy_agrees": newbf == newb32,
            "size": folder_size(out_dir),
            "bf16_size": folder_size(bf_dir),
        }
    )
    return report


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    for args in [
        ("tiny-llava", "llava", llava_config, LlavaForConditionalGeneration, 5000),
        ("tiny-idefics3", "idefics3", idefics3_config, Idefics3ForConditionalGeneration, 6000),
    ]:
        r = make(*args)
        print(json.dumps(r))
        for d in [args[0], args[0] + "-bf16"]:
            size = folder_size(os.path.join(FIXTURES, d))
            assert size < 3_000_000, f"{d} is {size} bytes"


if __name__ == "__main__":
    main()
