#!/usr/bin/env python3
"""SmolLM2-135M-Instruct speed of iris next to HF transformers, measured in the same run.

Both run on the CPU with 2 threads on the same converted folder (scripts/fetch_smollm2.sh)
and the same prompt: a raw text of about 512 tokens, then 128 greedy new tokens (end of
sequence ignored). iris: `iris run --raw --json --ignore-eos` (prefill tok/s and decode tok/s
as it reports them). transformers: one forward over the prompt with a KV cache (prefill), then
`generate` of 128 tokens (decode tok/s = 127 / time between the first and last token), eager
attention, median of 3 runs each.

    pip install torch transformers safetensors
    python3 scripts/bench_smollm2_vs_transformers.py [MODELS_DIR]   # default models-cache
"""
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

THREADS = 2
NEW_TOKENS = 128
RUNS = 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prompt_text(tokenizer, target=512):
    sentence = ("The quick brown fox studies the history of tensor runtimes, measuring each kernel "
                "against its reference and writing down what it learns. ")
    text = sentence
    while len(tokenizer(text).input_ids) < target:
        text += sentence
    ids = tokenizer(text).input_ids[:target]
    return tokenizer.decode(ids)


def iris_run(iris, folder, text):
    out = subprocess.run([iris, "run", "--model", folder, "--raw", "--prompt", text, "--max-tokens",
                          str(NEW_TOKENS), "--ignore-eos", "--json"],
                         env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)},
                         capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    return doc["prompt_tokens"], doc["timings"]["prefill_tok_s"], doc["timings"]["decode_tok_s"]


class Stamps:
    """Records when each new token's logits are ready."""

    def __init__(self):
        self.times = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


def hf_run(model, ids):
    with torch.no_grad():
        start = time.perf_counter()
        model(ids, use_cache=True)
        prefill = ids.shape[1] / (time.perf_counter() - start)
        stamps = Stamps()
        model.generate(ids, do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                       stopping_criteria=[stamps], pad_token_id=0)
        decode = (len(stamps.times) - 1) / (stamps.times[-1] - stamps.times[0])
    return prefill, decode


def main():
    models = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models-cache")
    torch.set_num_threads(THREADS)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "iris-cli"], cwd=ROOT, check=True)
    iris = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "iris")
    rows = []
    for name, dtype in [("SmolLM2-135M-Instruct", torch.float32), ("SmolLM2-135M-Instruct-bf16", torch.bfloat16)]:
        folder = os.path.join(models, name)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        text = prompt_text(tokenizer)
        ids = tokenizer(text, return_tensors="pt").input_ids
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager").eval()
        hf_run(model, ids[:, :32])  # warm-up
        iris_runs, hf_runs = [], []
        for _ in range(RUNS):  # interleaved, so both see the same machine state
            iris_runs.append(iris_run(iris, folder, text))
            hf_runs.append(hf_run(model, ids))
        prompt_tokens = iris_runs[0][0]
        row = {
            "weights": str(dtype).replace("torch.", ""),
            "prompt_tokens_iris": prompt_tokens,
            "prompt_tokens_hf": ids.shape[1],
            "iris_prefill_tok_s": statistics.median(r[1] for r in iris_runs),
            "iris_decode_tok_s": statistics.median(r[2] for r in iris_runs),
            "hf_prefill_tok_s": statistics.median(r[0] for r in hf_runs),
            "hf_decode_tok_s": statistics.median(r[1] for r in hf_runs),
        }
        row["prefill_ratio"] = row["iris_prefill_tok_s"] / row["hf_prefill_tok_s"]
        row["decode_ratio"] = row["iris_decode_tok_s"] / row["hf_decode_tok_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"threads": THREADS, "new_tokens": NEW_TOKENS, "runs": RUNS, "torch": torch.__version__,
                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
