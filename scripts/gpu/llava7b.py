#!/usr/bin/env python3
"""A LLaVA-1.5-7B-shaped random-weight checkpoint, its PyTorch timings, and the iris-vs-PyTorch
table. Driven by scripts/gpu/llava7b.sh on the GPU machine; runnable on a CPU with --tiny.

    python3 scripts/gpu/llava7b.py build --out DIR --results torch.json [--tiny] [--device cpu]
                                         [--dtype bf16|f32] [--reference]
    python3 scripts/gpu/llava7b.py table --torch torch.json --iris iris.json --out table.md
    python3 scripts/gpu/llava7b.py tokens RUN.json...

`build` makes LlavaForConditionalGeneration from a config with the shapes of LLaVA-1.5-7B
(CLIP ViT-L/14 at 336 px: 24 layers, hidden 1024, 576 patch tokens, feature layer -2; MLP
projector with gelu; Llama-2-7B: 32 layers, hidden 4096, 32 heads, intermediate 11008; vocab
32064, image_token_index 32000), with transformers' random init done directly on the device
in the requested dtype (no download, no host round trip). It then times the in-memory model
(eager PyTorch, sdpa attention), the same workload `iris bench e2e` measures:
  vision_ms       get_image_features (CLIP tower + projector) of one image, median of 10
  ttft_ms         one forward of 576 image + 24 text tokens with the image, to the argmax of
                  the last logits (vision included), median of 5
  decode          128 greedy tokens: the first from that forward, then 127 one-token steps
                  over the KV cache, each timed to its argmax with a device synchronize;
                  tok/s = 127 / total, p50 / p99 over the steps
and only then writes DIR: save_pretrained safetensors shards (4 GB each) and config.json,
generation_config.json, a word-level tokenizer.json covering the vocabulary (`<unk>` 0, `<s>`
1, `</s>` 2, `<image>` 32000, `<pad>` 32001, `w<id>` for the rest), tokenizer_config.json and
a CLIP preprocessor_config.json for the tower's image size: everything iris reads.

--tiny: the same structure at toy sizes (vision 28 px / patch 14, hidden 64; text hidden 64,
2 layers; the full vocabulary), to check on a CPU that iris loads what this writes.
--reference (with --tiny): also DIR/reference.safetensors for `iris check` (input_ids,
pixel_values, image_features, logits; f32), from the model just built.

`tokens` prints the tokens of `iris bench e2e --json` runs and whether they equal the first's.
`table` merges the PyTorch JSON with `iris bench e2e --json` into one markdown table (plus, with
--graph-on / --graph-off, a line comparing decode with and without the CUDA graph, and with
--f16, a line on the text run with the weights converted to f16).
"""

import argparse
import inspect
import json
import os
import statistics
import sys
import time

VOCAB = 32064
IMAGE_TOKEN = 32000
PAD_TOKEN = 32001
BOS, EOS, UNK = 1, 2, 0
PROMPT_TEXT_TOKENS = 24
GEN_TOKENS = 128

SPECIAL = {UNK: "<unk>", BOS: "<s>", EOS: "</s>", IMAGE_TOKEN: "<image>", PAD_TOKEN: "<pad>"}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def sizes(tiny):
    """(vision kwargs, text kwargs) of CLIPVisionConfig / LlamaConfig."""
    if tiny:
        vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                      image_size=28, patch_size=14, projection_dim=32)
        text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=4, max_position_embeddings=1024)
    else:
        vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      image_size=336, patch_size=14, projection_dim=768)
        text = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=32, max_position_embeddings=4096)
    return vision, text


def llava_config(tiny):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision, text = sizes(tiny)
    vision_config = CLIPVisionConfig(hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3, **vision)
    text_config = LlamaConfig(vocab_size=VOCAB, rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu",
                              tie_word_embeddings=False, bos_token_id=BOS, eos_token_id=EOS, **text)
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    return LlavaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_index=IMAGE_TOKEN,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=patches,
        tie_word_embeddings=False,
    )


def build_model(config, device, dtype):
    import torch
    from transformers import LlavaForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):
        try:
            model = LlavaForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
        except TypeError:  # transformers 4: torch_dtype
            model = LlavaForConditionalGeneration._from_config(config, torch_dtype=dtype,
                                                               attn_implementation="sdpa")
    return model.to(device=device, dtype=dtype).eval()


def cache_kwarg(model):
    """The forward's KV-cache argument: `past_key_values` (transformers 4) or `cache` (5)."""
    params = inspect.signature(model.forward).parameters
    return "past_key_values" if "past_key_values" in params else "cache"


def out_cache(out):
    return out.cache if hasattr(out, "cache") else out.past_key_values


def last_logits_kwargs(model):
    params = inspect.signature(model.forward).parameters
    if "logits_to_keep" in params:
        return {"logits_to_keep": 1}
    if "num_logits_to_keep" in params:
        return {"num_logits_to_keep": 1}
    return {}


def image_features(model, pixels, vision_layer, strategy):
    import torch

    out = model.get_image_features(pixel_values=pixels, vision_feature_layer=vision_layer,
                                   vision_feature_select_strategy=strategy)
    feats = getattr(out, "pooler_output", out)
    if isinstance(feats, (list, tuple)):
        feats = torch.stack(list(feats))
    return feats


def time_torch(model, config, device, tiny):
    """The PyTorch numbers (see the module notes) and the greedy tokens."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    size = config.vision_config.image_size
    patches = config.image_seq_length
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randn((1, 3, size, size), generator=gen).to(device=device, dtype=model.dtype)
    text = torch.randint(3, IMAGE_TOKEN, (PROMPT_TEXT_TOKENS,), generator=gen).tolist()
    ids = torch.tensor([[IMAGE_TOKEN] * patches + text], device=device)
    cache_arg, keep = cache_kwarg(model), last_logits_kwargs(model)
    layer, strategy = config.vision_feature_layer, config.vision_feature_select_strategy

    def timed(fn, reps, warmup):
        times, result = [], None
        for i in range(warmup + reps):
            sync()
            t0 = time.perf_counter()
            result = fn()
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        return times, result

    with torch.inference_mode():
        vision_times, _ = timed(lambda: image_features(model, pixels, layer, strategy), 10, 2)

        def first_token():
            out = model(input_ids=ids, pixel_values=pixels, use_cache=True, **keep)
            return out_cache(out), out.logits[:, -1].argmax(-1)

        ttft_times, _ = timed(first_token, 5, 1)

        def generate(n):
            cache, nxt = first_token()
            tokens, steps = [int(nxt)], []
            for _ in range(n - 1):
                sync()
                t0 = time.perf_counter()
                out = model(input_ids=nxt.view(1, 1), use_cache=True, **{cache_arg: cache})
                cache = out_cache(out)
                nxt = out.logits[:, -1].argmax(-1)
                tokens.append(int(nxt))  # reads the id back: a synchronize
                sync()
                steps.append(time.perf_counter() - t0)
            return tokens, steps

        generate(8)  # warm-up
        tokens, steps = generate(GEN_TOKENS)
    ordered = sorted(steps)

    def pct(p):
        return ordered[max(1, -(-len(ordered) * p // 100)) - 1] * 1e3

    ms = statistics.median
    return {
        "vision_ms": ms(vision_times) * 1e3,
        "ttft_ms": ms(ttft_times) * 1e3,
        "decode_tok_s": len(steps) / sum(steps),
        "decode_p50_ms": pct(50),
        "decode_p99_ms": pct(99),
        "prompt_tokens": int(ids.shape[1]),
        "gen_tokens": GEN_TOKENS,
        "tokens": tokens,
    }


def write_tokenizer(out_dir):
    """A word-level tokenizer over the whole vocabulary: iris needs tokenizer.json for the
    image marker and the special ids; the words themselves mean nothing."""
    vocab = {SPECIAL.get(i, f"w{i}"): i for i in range(VOCAB)}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in sorted(SPECIAL.items())]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, f)


def write_processor(out_dir, size):
    processor = {
        "crop_size": {"height": size, "width": size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": size},
    }
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(processor, f, indent=2)


def write_reference(model, config, out_dir):
    """reference.safetensors for `iris check`: one image, a few text tokens, f32 outputs."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(2)
    size = config.vision_config.image_size
    pixels = torch.randn((1, 3, size, size), generator=gen)
    text = torch.randint(3, IMAGE_TOKEN, (11,), generator=gen).tolist()
    ids = torch.tensor([[BOS] + text[:3] + [IMAGE_TOKEN] * config.image_seq_length + text[3:]])
    with torch.inference_mode():
        p = pixels.to(model.device, model.dtype)
        feats = image_features(model, p, config.vision_feature_layer, config.vision_feature_select_strategy)
        logits = model(input_ids=ids.to(model.device), pixel_values=p, use_cache=False).logits
    save_file({"input_ids": ids, "pixel_values": pixels, "image_features": feats.float().cpu().contiguous(),
               "logits": logits.float().cpu().contiguous()}, os.path.join(out_dir, "reference.safetensors"))


def build(args):
    import torch
    import transformers
    from transformers import GenerationConfig

    transformers.utils.logging.disable_progress_bar()
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    report = {"torch": torch.__version__, "transformers": transformers.__version__,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "dtype": args.dtype, "tiny": args.tiny}
    t0 = time.perf_counter()
    config = llava_config(args.tiny)
    model = build_model(config, device, dtype)
    report["params"] = sum(p.numel() for p in model.parameters())
    report["build_s"] = time.perf_counter() - t0
    print(f"built {report['params'] / 1e9:.2f} B parameters ({args.dtype}) on {device} in "
          f"{report['build_s']:.1f} s", flush=True)

    report.update(time_torch(model, config, device, args.tiny))
    print(f"pytorch: vision {report['vision_ms']:.1f} ms, ttft {report['ttft_ms']:.1f} ms, decode "
          f"{report['decode_tok_s']:.1f} tok/s (p50 {report['decode_p50_ms']:.2f} ms, p99 "
          f"{report['decode_p99_ms']:.2f} ms)", flush=True)
    with open(args.results, "w") as f:  # written before the slow save: the timings survive it
        json.dump(report, f, indent=1)

    t0 = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, max_shard_size="4GB")
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD_TOKEN).save_pretrained(args.out)
    write_tokenizer(args.out)
    write_processor(args.out, config.vision_config.image_size)
    if args.reference:
        write_reference(model, config, args.out)
    report["save_s"] = time.perf_counter() - t0
    report["checkpoint_bytes"] = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"saved {report['checkpoint_bytes'] / 1e9:.2f} GB to {args.out} in {report['save_s']:.1f} s", flush=True)
    with open(args.results, "w") as f:
        json.dump(report, f, indent=1)


def fmt(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def table(args):
    with open(args.torch) as f:
        pt = json.load(f)
    try:
        with open(args.iris) as f:
            iris = json.load(f)
    except (OSError, ValueError) as e:
        iris = {"error": f"no iris result ({e})"}
    vision_i, ttft_i = iris.get("vision_ms"), iris.get("ttft_ms")
    # iris's ttft_ms starts at prefill; PyTorch's forward includes the vision tower.
    ttft_all_i = None if vision_i is None or ttft_i is None else vision_i + ttft_i
    prefill_pt = pt["ttft_ms"] - pt["vision_ms"]
    rows = [
        ("vision + projector (ms)", fmt(pt["vision_ms"], 1), fmt(vision_i, 1)),
        (f"prefill of {pt['prompt_tokens']} tokens after vision (ms; PyTorch: TTFT - vision)",
         fmt(prefill_pt, 1), fmt(ttft_i, 1)),
        ("time to first token incl. vision (ms)", fmt(pt["ttft_ms"], 1), fmt(ttft_all_i, 1)),
        (f"decode ({pt['gen_tokens'] - 1} steps, tok/s)", fmt(pt["decode_tok_s"], 1),
         fmt(iris.get("decode_tok_s"), 1)),
        ("decode step p50 (ms)", fmt(pt["decode_p50_ms"], 2), fmt(iris.get("decode_p50_ms"), 2)),
        ("decode step p99 (ms)", fmt(pt["decode_p99_ms"], 2), fmt(iris.get("decode_p99_ms"), 2)),
        ("load (ms)", "- (timed in memory)", fmt(iris.get("load_ms"), 0)),
        ("decode step", "eager", str(iris.get("decode_graph", "-"))),
    ]
    lines = [
        f"LLaVA-1.5-7B shape, random weights, {pt['dtype']}; {pt['device']}; torch {pt['torch']}, "
        f"transformers {pt['transformers']}. PyTorch: eager, sdpa attention, bf16 compute, medians "
        f"(vision of 10, TTFT of 5), decode steps timed to the argmax with a device synchronize. "
        f"iris: `bench e2e`, bf16 weights with f32 activations, median of "
        f"{iris.get('runs', '?')} runs after {iris.get('warmup_runs', '?')} warm-up.",
        "",
        "| | PyTorch | iris |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {a} | {b} |" for name, a, b in rows]
    lines += [
        "",
        "Same shapes and work, not the same numbers: PyTorch runs random pixels and ids, iris a "
        "photo and its synthetic prompt, so their tokens are not compared.",
    ]
    if "error" in iris:
        lines += ["", f"iris: {iris['error']}"]
    lines += graph_lines(args.graph_on, args.graph_off)
    lines += f16_lines(args.f16)
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


def graph_lines(on_path, off_path):
    """One line comparing decode with the CUDA graph replayed and op by op, if both ran."""
    if not on_path or not off_path:
        return []
    try:
        with open(on_path) as f:
            on = json.load(f)
        with open(off_path) as f:
            off = json.load(f)
        same = "the same" if on["tokens"] == off["tokens"] else "DIFFERENT"
        return ["", f"Decode, text prompt of {on['prompt_tokens']} tokens, {on['gen_tokens']} new: "
                    f"CUDA graph ({on['decode_graph']}) {on['decode_tok_s']:.1f} tok/s, p50 "
                    f"{on['decode_p50_ms']:.2f} ms; op by op ({off['decode_graph']}) "
                    f"{off['decode_tok_s']:.1f} tok/s, p50 {off['decode_p50_ms']:.2f} ms; {same} tokens."]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return ["", f"Graph on/off comparison unavailable: {e}"]


def f16_lines(path):
    """One line on the same text run with the weights converted to f16 at load, if it ran."""
    if not path:
        return []
    try:
        with open(path) as f:
            run = json.load(f)
        return ["", f"f16 weights (`--dtype f16`, converted at load; f16 GEMM/GEMV kernels), text "
                    f"prompt of {run['prompt_tokens']} tokens, {run['gen_tokens']} new: prefill "
                    f"{run['prefill_tok_s']:.0f} tok/s, decode {run['decode_tok_s']:.1f} tok/s, "
                    f"p50 {run['decode_p50_ms']:.2f} ms ({run['decode_graph']})."]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return ["", f"f16 run unavailable: {e}"]


def tokens(args):
    """Prints each `iris bench e2e --json` run's decode path and tokens, and whether the
    tokens equal the first run's."""
    runs = []
    for path in args.runs:
        try:
            with open(path) as f:
                runs.append((os.path.basename(path), json.load(f)))
        except (OSError, ValueError) as e:
            print(f"{path}: no result ({e})")
    for name, r in runs:
        print(f"{name}: {r['device']}, decode {r['decode_graph']}, {r['decode_tok_s']:.0f} tok/s, "
              f"tokens {r['tokens']}")
    if runs:
        first_name, first = runs[0]
        for name, r in runs[1:]:
            same = "the same tokens" if r["tokens"] == first["tokens"] else "DIFFERENT tokens"
            print(f"{name} vs {first_name}: {same}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build, time with PyTorch, save the checkpoint")
    b.add_argument("--out", required=True)
    b.add_argument("--results", required=True)
    b.add_argument("--tiny", action="store_true")
    b.add_argument("--device", default="cuda")
    b.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    b.add_argument("--reference", action="store_true")
    t = sub.add_parser("table", help="merge PyTorch and iris JSON into a markdown table")
    t.add_argument("--torch", required=True)
    t.add_argument("--iris", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--graph-on", help="iris bench JSON of a decode run with the CUDA graph")
    t.add_argument("--graph-off", help="the same run with IRIS_CUDA_GRAPH=0")
    t.add_argument("--f16", help="iris bench JSON of the text run with --dtype f16")
    k = sub.add_parser("tokens", help="compare the tokens of iris bench e2e --json runs")
    k.add_argument("runs", nargs="+")
    args = parser.parse_args()
    if args.command == "tokens":
        tokens(args)
    elif args.command == "build":
        if args.reference and not args.tiny:
            sys.exit("--reference is for --tiny models")
        build(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
