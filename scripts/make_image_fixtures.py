#!/usr/bin/env python3
"""Writes the image-preprocessing fixtures to fixtures/images/.

Run (from the repository root):

    pip install torch torchvision pillow safetensors transformers
    python3 scripts/make_image_fixtures.py

What it writes
- fixtures/images/*.png|jpg|webp: photograph-like test images (smooth gradients, low-frequency
  texture, a few shapes, light pixel noise), made deterministically from SEED. One JPEG
  (quality 90, 4:4:4 so no chroma-upsampling choice enters the comparison), one lossless
  WebP, one RGBA PNG (to check HF's alpha compositing onto white), the rest RGB PNG.
- fixtures/images/configs/<name>/preprocessor_config.json: the processor settings used.
  Processors are built the way AutoImageProcessor does (`from_pretrained(folder)`), so
  transformers picks its default backend: the torchvision ("fast") processors when
  torchvision is installed. The script refuses to run without torchvision so the
  fixtures never silently follow the PIL processors.
- fixtures/images/expected/<config>.safetensors: for every image `<image>/pixel_values`
  (f16). Large outputs are stored subsampled: `pixel_values[..., ::S, ::S]` with S given in
  the metadata key "stride" (1 = full). Idefics3 files also hold `<image>/rows_cols` (i64
  [2]) and `<image>/num_tiles` (i64 [1]).
- fixtures/images/expected/idefics3_prompts.json: prompts expanded by Idefics3Processor
  for a 1-image and a 2-image prompt (smollm2 tokenizer from fixtures/tokenizer).

Config notes
- clip_vit_l14_336: CLIP ViT-L/14-336 (shortest_edge 336, crop 336, OpenAI mean/std,
  bicubic). clip_small: the same with 32.
- siglip_512: SigLIP 512x512, mean/std 0.5, bicubic. siglip_small: 32x32.
- idefics3_smolvlm: SmolVLM-256M-Instruct (size longest_edge 2048, max_image_size 512,
  LANCZOS, mean/std 0.5). idefics3_small: longest_edge 64, max_image_size 32.
"""

import json
import os
import shutil

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

SEED = 20240611
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "images")

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

CONFIGS = {
    "clip_vit_l14_336": dict(
        stride=7,
        config={
            "crop_size": {"height": 336, "width": 336},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": OPENAI_MEAN,
            "image_processor_type": "CLIPImageProcessor",
            "image_std": OPENAI_STD,
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"shortest_edge": 336},
        },
    ),
    "clip_small": dict(
        stride=1,
        config={
            "crop_size": 32,
            "do_center_crop": True,
            "image_mean": OPENAI_MEAN,
            "image_processor_type": "CLIPImageProcessor",
            "image_std": OPENAI_STD,
            "resample": 3,
            "size": {"shortest_edge": 32},
        },
    ),
    "siglip_512": dict(
        stride=11,
        config={
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "processor_class": "SiglipProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"height": 512, "width": 512},
        },
    ),
    "siglip_small": dict(
        stride=1,
        config={
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "size": {"height": 32, "width": 32},
        },
    ),
    "idefics3_smolvlm": dict(
        stride=31,
        config={
            "do_convert_rgb": True,
            "do_image_splitting": True,
            "do_normalize": True,
            "do_pad": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "Idefics3ImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "max_image_size": {"longest_edge": 512},
            "processor_class": "Idefics3Processor",
            "resample": 1,
            "rescale_factor": 0.00392156862745098,
            "size": {"longest_edge": 2048},
        },
    ),
    "idefics3_small": dict(
        stride=1,
        config={
            "do_image_splitting": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "Idefics3ImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "max_image_size": {"longest_edge": 32},
            "resample": 1,
            "size": {"longest_edge": 64},
        },
    ),
}

# (file name, width, height)
IMAGES = [
    ("photo_640x480.png", 640, 480),
    ("tall_333x517.png", 333, 517),
    ("wide_1024x256.webp", 1024, 256),
    ("small_97x113.png", 97, 113),
    ("square_800x800.jpg", 800, 800),
    ("alpha_120x90.png", 120, 90),
]


def smooth_noise(rng, w, h, cell):
    """Value noise: a coarse random grid upsampled with PIL bicubic (low-frequency texture)."""
    gw, gh = max(2, w // cell + 2), max(2, h // cell + 2)
    grid = (rng.random((gh, gw)) * 255).astype(np.uint8)
    up = Image.fromarray(grid, "L").resize((w, h), Image.BICUBIC)
    return np.asarray(up, dtype=np.float64) / 255.0 - 0.5


def make_image(rng, w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / max(w - 1, 1), y / max(h - 1, 1)
    img = np.zeros((h, w, 3))
    # Sky-to-ground style gradients, different per channel.
    img[..., 0] = 0.25 + 0.5 * u + 0.15 * np.sin(3.0 * v)
    img[..., 1] = 0.35 + 0.35 * v * (1 - u) + 0.1 * np.cos(5.0 * u)
    img[..., 2] = 0.8 - 0.5 * v + 0.1 * u
    # Texture: two octaves of value noise.
    for c in range(3):
        img[..., c] += 0.18 * smooth_noise(rng, w, h, 24) + 0.08 * smooth_noise(rng, w, h, 6)
    # Shapes: discs and rectangles with hard edges (the case where filters differ most).
    for _ in range(5):
        cx, cy = rng.random() * w, rng.random() * h
        r = (0.05 + 0.15 * rng.random()) * min(w, h)
        col = rng.random(3)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[mask] = 0.3 * img[mask] + 0.7 * col
    for _ in range(3):
        x0, y0 = int(rng.random() * w), int(rng.random() * h)
        x1, y1 = x0 + int((0.05 + 0.2 * rng.random()) * w), y0 + int((0.05 + 0.2 * rng.random()) * h)
        img[y0:y1, x0:x1] = rng.random(3)
    # Sparse sensor-like noise (kept sparse so the PNGs stay small).
    img += (rng.random(img.shape) < 0.05) * rng.normal(0.0, 3.0 / 255.0, img.shape)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def write_images(rng):
    paths = []
    for name, w, h in IMAGES:
        rgb = make_image(rng, w, h)
        path = os.path.join(ROOT, name)
        if name.endswith(".jpg"):
            Image.fromarray(rgb).save(path, quality=90, subsampling=0)
        elif name.endswith(".webp"):
            Image.fromarray(rgb).save(path, lossless=True, quality=100, method=6)
        elif name.startswith("alpha"):
            yy, xx = np.mgrid[0:h, 0:w]
            alpha = np.clip(255 * (xx / (w - 1)) + 40 * np.sin(yy / 5.0), 0, 255).astype(np.uint8)
            alpha[: h // 4, :] = 255
            alpha[-h // 4 :, : w // 3] = 0
            Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path, optimize=True)
        else:
            Image.fromarray(rgb).save(path, optimize=True)
        paths.append(path)
    return paths


def subsample(pv, stride):
    return pv[..., ::stride, ::stride].contiguous()


def main():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise SystemExit("torchvision is required: the fixtures follow the fast (torchvision) processors")
    from transformers import AutoImageProcessor, Idefics3Processor, AutoTokenizer

    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(os.path.join(ROOT, "expected"))
    rng = np.random.default_rng(SEED)
    paths = write_images(rng)
    # Decode exactly as AutoProcessor users do: PIL.Image.open; the processor converts to RGB.
    pil_images = [Image.open(p) for p in paths]
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]

    processors = {}
    for cname, spec in CONFIGS.items():
        folder = os.path.join(ROOT, "configs", cname)
        os.makedirs(folder)
        with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
            json.dump(spec["config"], f, indent=2, sort_keys=True)
            f.write("\n")
        proc = AutoImageProcessor.from_pretrained(folder)
        processors[cname] = proc
        print(f"{cname}: {type(proc).__name__} backend={getattr(proc, 'backend', '?')}")
        assert getattr(proc, "backend", None) == "torchvision", "expected the fast processor"
        stride = spec["stride"]
        tensors = {}
        is_idefics = spec["config"]["image_processor_type"].startswith("Idefics3")
        for stem, img in zip(stems, pil_images):
            if is_idefics:
                out = proc(images=[img], return_tensors="pt", return_row_col_info=True)
                pv = out["pixel_values"][0]  # [tiles, 3, H, W]
                mask = out["pixel_attention_mask"][0]
                assert bool(mask.all()), "single-image batch: no padded tiles expected"
                rows, cols = out["rows"][0][0], out["cols"][0][0]
                tensors[f"{stem}/rows_cols"] = torch.tensor([rows, cols], dtype=torch.int64)
                tensors[f"{stem}/num_tiles"] = torch.tensor([pv.shape[0]], dtype=torch.int64)
            else:
                pv = proc(images=img, return_tensors="pt")["pixel_values"]  # [1, 3, H, W]
            tensors[f"{stem}/full_shape"] = torch.tensor(list(pv.shape), dtype=torch.int64)
            tensors[f"{stem}/pixel_values"] = subsample(pv, stride).to(torch.float16)
            print(f"  {stem}: {tuple(pv.shape)}" + (f" rows/cols {rows}x{cols}" if is_idefics else ""))
        save_file(
            tensors,
            os.path.join(ROOT, "expected", f"{cname}.safetensors"),
            metadata={"stride": str(stride), "images": ",".join(stems)},
        )

    # Expanded Idefics3 prompts (Idefics3Processor.__call__'s text path, step by step).
    tok_dir = os.path.join(ROOT, "..", "tokenizer", "smollm2")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    prompts = []
    for cname in ("idefics3_small", "idefics3_smolvlm"):
        proc = Idefics3Processor(image_processor=processors[cname], tokenizer=tokenizer, image_seq_len=64)
        for text, idx in [
            ("User:<image>Describe this image.", [0]),
            ("User: compare <image> with\n<image>, please.", [3, 2]),
        ]:
            imgs = [pil_images[i] for i in idx]
            image_inputs, repl = proc._process_images([imgs], return_row_col_info=True)
            expanded, _ = proc.get_text_with_replacements([text], images_replacements=repl)
            rows = [r for rr in image_inputs["rows"] for r in rr]
            cols = [c for cc in image_inputs["cols"] for c in cc]
            prompts.append(
                {
                    "config": cname,
                    "text": text,
                    "images": [stems[i] for i in idx],
                    "image_seq_len": 64,
                    "rows_cols": [[int(r), int(c)] for r, c in zip(rows, cols)],
                    "expanded": expanded[0],
                }
            )
    with open(os.path.join(ROOT, "expected", "idefics3_prompts.json"), "w") as f:
        json.dump(prompts, f, indent=1)
        f.write("\n")

    total = 0
    for dirpath, _, files in os.walk(ROOT):
        for fn in files:
            total += os.path.getsize(os.path.join(dirpath, fn))
    print(f"fixtures/images: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
