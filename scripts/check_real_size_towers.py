#!/usr/bin/env python3
"""Real-size vision towers against transformers: NMSE and latency (documented, not CI).

Builds random-weight pipelines whose vision halves have real sizes, saves them, computes
transformers' `get_image_features` (eager attention, float32, 2 threads) and runs iris on the
same folders through an ignored test (models/tests/multimodal_real_size.rs):

  clip-vit-l-14-336   LLaVA-1.5's tower: CLIP ViT-L/14 at 336 px (24 layers, hidden 1024,
                      16 heads, 577 tokens), vision_feature_layer -2, strategy default,
                      GELU projector to a small Llama (only the vision half is compared).
  siglip-base-512     SmolVLM-256M's tower: SigLIP base at 512 px, patch 16 (12 layers,
                      hidden 768, 1024 patches), Idefics3 connector with scale_factor 4.

Run from the repository root (about 1.5 GB of disk under the output folder, a few minutes):

    python3 scripts/check_real_size_towers.py [OUT_DIR] [--bf16]

It prints, per tower, PyTorch's latency (median of 3) next to iris' NMSE and latency.
With --bf16 it also times PyTorch with the weights and pixels cast to bf16, then runs iris
with bf16 weights twice: f32 compute (default) and bf16 compute (IRIS_BF16_DOT=1); NMSE is
against the f32 reference in every case.
"""

import os
import subprocess
import sys
import time

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    CLIPVisionConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

torch.set_num_threads(2)
transformers.utils.logging.disable_progress_bar()
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def small_llm(hidden):
    return LlamaConfig(
        vocab_size=512, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
    ).to_dict()


def clip_l_336():
    vision = CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    )
    config = LlavaConfig(vision_config=vision.to_dict(), text_config=small_llm(256), image_token_index=511,
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    return LlavaForConditionalGeneration(config), torch.randn(1, 3, 336, 336)


def siglip_base_512():
    config = Idefics3Config(
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
        text_config=small_llm(256), image_token_id=511, scale_factor=4,
    )
    return Idefics3ForConditionalGeneration(config), torch.randn(2, 3, 512, 512)


@torch.no_grad()
def features(model, pixels):
    if isinstance(model, Idefics3ForConditionalGeneration):
        (f,) = model.get_image_features(pixel_values=pixels.unsqueeze(0)).pooler_output
        return f.reshape(pixels.shape[0], -1, f.shape[-1])
    return torch.stack(list(model.get_image_features(pixel_values=pixels).pooler_output))


def main():
    args = [a for a in sys.argv[1:] if a != "--bf16"]
    bf16 = "--bf16" in sys.argv[1:]
    out = args[0] if args else os.path.join(ROOT, "target", "real-size-towers")
    torch.manual_seed(0)
    for name, make in [("clip-vit-l-14-336", clip_l_336), ("siglip-base-512", siglip_base_512)]:
        model, pixels = make()
        model.eval()
        folder = os.path.join(out, name)
        model.save_pretrained(folder, safe_serialization=True)
        model = type(model).from_pretrained(folder, attn_implementation="eager").eval()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            feats = features(model, pixels)
            times.append(time.perf_counter() - start)
        save_file({"pixel_values": pixels.contiguous(), "image_features": feats.float().contiguous()},
                  os.path.join(folder, "reference.safetensors"))
        print(f"{name}: pytorch f32 (2 threads) {sorted(times)[1] * 1e3:.1f} ms, image_features {list(feats.shape)}")
        if bf16:
            model = model.to(torch.bfloat16)
            pixels_bf16 = pixels.to(torch.bfloat16)
            features(model, pixels_bf16)  # warm-up: oneDNN primitive creation
            times = []
            for _ in range(3):
                start = time.perf_counter()
                features(model, pixels_bf16)
                times.append(time.perf_counter() - start)
            print(f"{name}: pytorch bf16 (2 threads) {sorted(times)[1] * 1e3:.1f} ms")
        del model
    runs = [{}]
    if bf16:
        runs += [{"IRIS_REAL_TOWERS_DTYPE": "bf16"}, {"IRIS_REAL_TOWERS_DTYPE": "bf16", "IRIS_BF16_DOT": "1"}]
    for extra in runs:
        env = dict(os.environ, IRIS_REAL_TOWERS=out, RAYON_NUM_THREADS="2", **extra)
        print(f"iris {extra or 'f32'}:", flush=True)
        subprocess.run(
            ["cargo", "test", "--release", "-p", "iris-models", "--test", "multimodal_real_size", "--",
             "--ignored", "--nocapture"],
            cwd=ROOT, env=env, check=True,
        )


if __name__ == "__main__":
    main()
