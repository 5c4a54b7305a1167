#!/usr/bin/env python3
"""Every CPU comparison of iris against its peers in one run, written as one markdown report.

Meant for an otherwise idle machine: before each part it waits (up to --max-wait s) for the
1-minute load average to fall below 0.5, records the load before and after each part, and
warns when a part had to start above it. All engines use 2 threads. Ratios are iris speed
over peer speed: above 1 means iris is faster.

  kernels  `iris bench kernels --json` and scripts/baselines/torch_kernels.py, alternated
           --rounds times; per row the median over rounds of each tool's own median.
  llm      SmolLM2-135M-Instruct, a 512-token prompt and 128 new tokens, alternated per round
           and per precision: `iris bench e2e` (f32 folder, bf16 folder, and f16 from the f32
           folder), llama.cpp's llama-bench on F32/BF16/F16 GGUFs of the same Q4_1-rounded
           weights (scripts/baselines/llamacpp.sh builds it and makes them), and HF transformers
           (eager attention, the measurement of scripts/bench_smollm2_vs_transformers.py).
           llama-bench times generation from an empty context (tg128) and after a 512-token
           context (tg128 @ d512, which is what iris and HF decode after the prompt).
  towers   (opt-in) `scripts/check_real_size_towers.py --bf16` (iris f32 / bf16 weights /
           bf16 dot vs PyTorch f32 and bf16, eager attention) and
           scripts/baselines/torch_towers.py (PyTorch bf16 with sdpa attention).

Needs models-cache/ from scripts/fetch_smollm2.sh, torch and transformers. Raw results go to
REPORT.json next to the report.

    python3 scripts/bench_cpu_all.py REPORT.md [--parts kernels,llm,towers] [--rounds 3]
        [--prompt-tokens 512] [--gen-tokens 128] [--kernel-runs 7] [--models DIR] [--no-build]
        [--max-wait 150]
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
THREADS = 2
ENV = {**os.environ, "RAYON_NUM_THREADS": str(THREADS), "OMP_NUM_THREADS": str(THREADS)}
# (label, iris folder suffix, iris --dtype, GGUF type, torch dtype name or None)
PRECISIONS = [
    ("f32", "", None, "F32", "float32"),
    ("bf16", "-bf16", None, "BF16", "bfloat16"),
    ("f16", "", "f16", "F16", None),
]


def log(msg):
    print(f"[bench_cpu_all {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_json(cmd, env=ENV):
    log(" ".join(cmd)[:200])
    # stderr passes through: progress of long steps (the llama.cpp build) stays visible.
    out = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise SystemExit(f"failed ({out.returncode}): {' '.join(cmd)[:200]}")
    return json.loads(out.stdout)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(iris, peer):
    return "-" if iris is None or peer is None or peer == 0 else f"{iris / peer:.2f}x"


QUIET_LOAD = 0.5


def wait_for_quiet(max_wait):
    """Waits (up to max_wait s) for the 1-minute load to fall below QUIET_LOAD: the load
    average decays over about a minute, so right after a part (or a build) it still counts
    that work, and a part started then could not tell it from another tenant's."""
    deadline = time.time() + max_wait
    while os.getloadavg()[0] >= QUIET_LOAD and time.time() < deadline:
        time.sleep(5)


class Part:
    """Times a part and records the load average around it (before: after waiting for the
    machine to be quiet; after: it includes the part's own threads)."""

    def __init__(self, name, notes, max_wait):
        self.name, self.notes, self.max_wait = name, notes, max_wait

    def __enter__(self):
        wait_for_quiet(self.max_wait)
        self.start, self.load = time.time(), os.getloadavg()
        log(f"part {self.name}: load {self.load[0]:.2f}")
        return self

    def __exit__(self, *exc):
        end = os.getloadavg()
        self.notes.append((self.name, time.time() - self.start, self.load, end))


# ---- kernels ---------------------------------------------------------------------------------

def kernels(args, iris, raw):
    iris_rounds, torch_rounds = [], []
    for r in range(args.rounds):
        log(f"kernels round {r + 1}/{args.rounds}")
        iris_rounds.append(run_json([iris, "bench", "kernels", "--json", "--runs", str(args.kernel_runs)]))
        torch_rounds.append(run_json([sys.executable, os.path.join(SCRIPTS, "baselines", "torch_kernels.py"),
                                      "--runs", str(args.kernel_runs), "--threads", str(THREADS)]))
    raw["iris_kernels"], raw["torch_kernels"] = iris_rounds, torch_rounds

    def rows_median(rounds, key):
        table = {}
        for doc in rounds:
            for row in doc["kernels"]:
                table.setdefault(key(row), []).append(row)
        return {k: {"median_ms": median(r["median_ms"] for r in rows),
                    "gflop_s": median(r["gflop_s"] for r in rows), **{x: rows[0].get(x) for x in
                    ("percent_of_peak", "bound")}} for k, rows in table.items()}

    iris_rows = rows_median(iris_rounds, lambda r: (r["kernel"], r["shape"]))
    torch_rows = rows_median(torch_rounds, lambda r: (r["kernel"], r["shape"], r["dtype"]))
    head = iris_rounds[0]
    lines = [
        f"iris: ISA {head['isa']}, {head['threads']} threads, probed FMA peak "
        f"{head['peak_gflop_s']:.1f} GFLOP/s, read bandwidth {head['read_gb_s']:.1f} GB/s. "
        f"PyTorch {torch_rounds[0]['torch']}, {torch_rounds[0]['threads']} threads, `F.linear` / "
        "`scaled_dot_product_attention` / `conv2d`. iris' \"matmul bf16\" keeps f32 activations "
        "with bf16 weights; PyTorch's has both operands in bf16, so every iris variant is set against "
        "both PyTorch dtypes.",
        "",
        "| kernel | shape | iris ms | iris GFLOP/s | % peak | PyTorch f32 ms | iris / PyTorch f32 "
        "| PyTorch bf16 ms | iris / PyTorch bf16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    def base(kernel):
        # Every iris variant of a kernel (weight dtype, packed weights, bf16 dot products) is
        # set against the same PyTorch rows.
        return " ".join(w for w in kernel.split() if w not in ("f32", "bf16", "dot", "packed"))

    for (kernel, shape), row in iris_rows.items():
        cells = []
        for dtype in ("f32", "bf16"):
            key = next((k for k in torch_rows if k[1] == shape and k[2] == dtype and
                        base(k[0]) == base(kernel)), None)
            peer = torch_rows[key]["median_ms"] if key else None
            # Ratio of speeds = peer time / iris time.
            cells += [fmt(peer, 3), ratio(peer, row["median_ms"]) if peer else "-"]
        lines.append(f"| {kernel} | {shape} | {row['median_ms']:.3f} | {fmt(row['gflop_s'])} | "
                     f"{fmt(row['percent_of_peak'])} {row['bound'] or ''} | " + " | ".join(cells) + " |")
    lines += ["", "PyTorch rows without an iris counterpart in `iris bench kernels`:", "",
              "| kernel | shape | dtype | PyTorch ms | GFLOP/s |", "|---|---|---|---|---|"]
    for key, row in torch_rows.items():
        if not any(key[1] == shape for (_, shape) in iris_rows):
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {row['median_ms']:.3f} | {fmt(row['gflop_s'])} |")
    return lines


# ---- SmolLM2 end to end ----------------------------------------------------------------------

def llm(args, iris, raw):
    setup = run_json(["bash", os.path.join(SCRIPTS, "baselines", "llamacpp.sh"), "--setup-only", args.models])
    sys.path.insert(0, SCRIPTS)
    import bench_smollm2_vs_transformers as hf  # noqa: E402  (torch + transformers)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(THREADS)
    hf.NEW_TOKENS = args.gen_tokens
    hf_models = {}
    for label, suffix, _, _, dtype in PRECISIONS:
        if dtype is None:
            continue
        folder = os.path.join(args.models, "SmolLM2-135M-Instruct" + suffix)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer(hf.prompt_text(tokenizer, args.prompt_tokens), return_tensors="pt").input_ids
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype),
                                                     attn_implementation="eager").eval()
        hf.hf_run(model, ids[:, :32])  # warm-up
        hf_models[label] = (model, ids)

    results = {label: {"iris": [], "llama": [], "hf": []} for label, *_ in PRECISIONS}
    for r in range(args.rounds):
        for label, suffix, iris_dtype, gguf_type, _ in PRECISIONS:
            log(f"llm round {r + 1}/{args.rounds}, {label}")
            cmd = [iris, "bench", "e2e", "--model", os.path.join(args.models, "SmolLM2-135M-Instruct" + suffix),
                   "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens),
                   "--runs", "1", "--warmup", "1", "--json"]
            results[label]["iris"].append(run_json(cmd + (["--dtype", iris_dtype] if iris_dtype else [])))
            if label == "bf16":
                # iris in bf16 compute too (activations rounded to bf16 in the GEMMs, as the
                # peers' bf16 runs): the same folder with IRIS_BF16_DOT=1.
                results[label].setdefault("iris_dot", []).append(
                    run_json(cmd, env={**ENV, "IRIS_BF16_DOT": "1"}))
                # And with an f16 KV cache, as llama.cpp keeps by default.
                kv16 = cmd + ["--kv-cache", "f16"]
                results[label].setdefault("iris_kv16", []).append(run_json(kv16))
                results[label].setdefault("iris_dot_kv16", []).append(
                    run_json(kv16, env={**ENV, "IRIS_BF16_DOT": "1"}))
            bench = [setup["llama_bench"], "-m", setup["gguf"][gguf_type], "-t", str(THREADS), "-r", "1",
                     "-o", "json", "-n", str(args.gen_tokens)]
            # pp and tg from an empty context, then tg after a prompt-sized context (without the
            # pp @ depth test that `-d 0,N` would add).
            results[label]["llama"].append(
                run_json(bench + ["-p", str(args.prompt_tokens)]) +
                run_json(bench + ["-p", "0", "-d", str(args.prompt_tokens)]))
            if label in hf_models:
                model, ids = hf_models[label]
                prefill, decode = hf.hf_run(model, ids)
                results[label]["hf"].append({"prefill_tok_s": prefill, "decode_tok_s": decode})
    raw["llm"] = results
    raw["llama_cpp_python_sdist"] = setup["version"]

    def llama_rate(runs, prompt, gen, depth):
        return median(t["avg_ts"] for run in runs for t in run
                      if t["n_prompt"] == prompt and t["n_gen"] == gen and t["n_depth"] == depth)

    p, g = args.prompt_tokens, args.gen_tokens
    first_llama = results["f32"]["llama"][0][0]
    pre = ["| weights | iris | llama.cpp pp{p} | HF | iris / llama.cpp | iris / HF |".format(p=p),
           "|---|---|---|---|---|---|"]
    dec = [f"| weights | iris | llama.cpp tg{g} @ d{p} | llama.cpp tg{g} @ d0 | HF | iris / llama.cpp (d{p}) "
           "| iris / HF | iris step p50 / p99 ms |", "|---|---|---|---|---|---|---|---|"]
    ttft = ["| weights | iris load ms | iris TTFT ms |", "|---|---|---|"]
    rows = [(label, results[label], "iris") for label, *_ in PRECISIONS]
    rows[2:2] = [("bf16, iris bf16 compute", results["bf16"], "iris_dot"),
                 ("bf16, iris f16 KV cache", results["bf16"], "iris_kv16"),
                 ("bf16, iris bf16 compute + f16 KV cache", results["bf16"], "iris_dot_kv16")]
    for label, res, iris_key in rows:
        res = {**res, "iris": res[iris_key]}
        ip = median(x["prefill_tok_s"] for x in res["iris"])
        idec = median(x["decode_tok_s"] for x in res["iris"])
        lp = llama_rate(res["llama"], p, 0, 0)
        ld = llama_rate(res["llama"], 0, g, p)
        ld0 = llama_rate(res["llama"], 0, g, 0)
        hp = median(x["prefill_tok_s"] for x in res["hf"])
        hd = median(x["decode_tok_s"] for x in res["hf"])
        p50 = median(x["decode_p50_ms"] for x in res["iris"])
        p99 = median(x["decode_p99_ms"] for x in res["iris"])
        pre.append(f"| {label} | {fmt(ip)} | {fmt(lp)} | {fmt(hp)} | {ratio(ip, lp)} | {ratio(ip, hp)} |")
        dec.append(f"| {label} | {fmt(idec)} | {fmt(ld)} | {fmt(ld0)} | {fmt(hd)} | {ratio(idec, ld)} | "
                   f"{ratio(idec, hd)} | {fmt(p50, 2)} / {fmt(p99, 2)} |")
        ttft.append(f"| {label} | {fmt(median(x['load_ms'] for x in res['iris']))} | "
                    f"{fmt(median(x['ttft_ms'] for x in res['iris']))} |")
    return [
        f"Prompt {p} tokens, {g} new tokens, {THREADS} threads, median of {args.rounds} rounds "
        "(each round runs iris, llama.cpp and HF back to back per precision). iris: `iris bench e2e` "
        "(synthetic prompt ids, one warm-up run per round; f16 = the f32 folder with `--dtype f16`; "
        "f32 KV cache unless the row says f16, `--kv-cache f16`). "
        f"llama.cpp: llama-cpp-python {setup['version']} sdist, llama-bench defaults otherwise "
        f"(flash_attn {first_llama.get('flash_attn')}, n_batch {first_llama.get('n_batch')}, "
        f"n_ubatch {first_llama.get('n_ubatch')}, KV cache {first_llama.get('type_k')}/"
        f"{first_llama.get('type_v')}). HF transformers: eager attention, bf16 weights and "
        "activations for bf16; no f16 run.",
        "", "Prefill, tok/s:", "", *pre, "", "Decode, tok/s (iris and HF decode after the prompt):", "",
        *dec, "", *ttft,
    ]


# ---- vision towers ---------------------------------------------------------------------------

def parse_towers(stdout):
    """Reads check_real_size_towers.py's output: {tower: {variant: (ms, nmse or None)}}."""
    rows, variant = {}, "f32"
    for line in stdout.splitlines():
        if m := re.match(r"^(\S+): pytorch (f32|bf16) \(\d+ threads\) ([\d.]+) ms", line):
            rows.setdefault(m[1], {})["pytorch " + m[2]] = (float(m[3]), None)
        elif m := re.match(r"^iris (.*):$", line):
            # The header before each iris run names its environment (f32, bf16 weights, bf16 dot).
            variant = "bf16 dot" if "IRIS_BF16_DOT" in m[1] else "bf16" if "bf16" in m[1] else "f32"
        elif m := re.match(r"^(\S+): iris (?:\S+ )?nmse (\S+), ([\d.]+) ms", line):
            rows.setdefault(m[1], {})["iris " + variant] = (float(m[3]), m[2])
    return rows


LABELS = {"pytorch f32": "PyTorch f32 eager", "iris f32": "iris f32", "pytorch bf16": "PyTorch bf16 eager",
          "pytorch bf16 sdpa": "PyTorch bf16 sdpa", "iris bf16": "iris bf16 weights", "iris bf16 dot": "iris bf16 dot"}


def towers(args, raw):
    cmd = [sys.executable, os.path.join(SCRIPTS, "check_real_size_towers.py"), args.towers_dir, "--bf16"]
    log(" ".join(cmd))
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    raw["towers_check_stdout"] = out.stdout
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
        raise SystemExit("check_real_size_towers.py failed")
    rows = parse_towers(out.stdout)
    sdpa = run_json([sys.executable, os.path.join(SCRIPTS, "baselines", "torch_towers.py"), "--dtypes", "bf16",
                     "--attn", "sdpa"])
    for r in sdpa["towers"]:
        rows.setdefault(r["tower"], {})["pytorch bf16 sdpa"] = (r["median_ms"], None)
    raw["towers"] = rows
    cols = ["pytorch f32", "iris f32", "pytorch bf16", "pytorch bf16 sdpa", "iris bf16", "iris bf16 dot"]
    lines = ["Random-weight towers, 2 threads, median of 3 of `get_image_features` "
             "(scripts/check_real_size_towers.py --bf16: PyTorch eager attention, iris f32, iris with bf16 "
             "weights and f32 compute, and with `IRIS_BF16_DOT=1`; scripts/baselines/torch_towers.py: "
             "PyTorch bf16 with sdpa attention). NMSE against the PyTorch f32 features.", "",
             "| tower | " + " | ".join(LABELS[c] + " ms" for c in cols) +
             " | iris f32 / PyTorch f32 | best iris / best PyTorch bf16 |", "|---" * (len(cols) + 3) + "|"]
    nmse = ["| tower | " + " | ".join(LABELS[c] + " NMSE" for c in cols if c.startswith("iris")) + " |",
            "|---|---|---|---|"]
    for name, row in rows.items():
        ms = {c: row[c][0] if c in row else None for c in cols}
        best_iris = min((v for c, v in ms.items() if c.startswith("iris") and v), default=None)
        best_bf16 = min((v for c, v in ms.items() if c.startswith("pytorch bf16") and v), default=None)
        lines.append(f"| {name} | " + " | ".join(fmt(ms[c]) for c in cols) +
                     f" | {ratio(ms['pytorch f32'], ms['iris f32'])} | {ratio(best_bf16, best_iris)} |")
        nmse.append(f"| {name} | " + " | ".join(row[c][1] if c in row else "-" for c in cols
                                               if c.startswith("iris")) + " |")
    return lines + ["", *nmse]


# ---- report ----------------------------------------------------------------------------------

def machine():
    def cmd(*c):
        try:
            return subprocess.run(c, cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    cpu = next((line.split(":", 1)[1].strip() for line in cmd("lscpu").splitlines()
                if line.startswith("Model name")), platform.processor())
    flags = cmd("grep", "-m1", "^flags", "/proc/cpuinfo").split()
    isa = " ".join(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    dirty = " (with uncommitted changes)" if cmd("git", "status", "--porcelain", "--untracked-files=no") else ""
    return [f"- CPU: {cpu}, {os.cpu_count()} logical cores; ISA flags: {isa}",
            f"- iris commit {cmd('git', 'rev-parse', '--short', 'HEAD')}{dirty}",
            f"- Python {platform.python_version()}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", help="markdown file to write")
    parser.add_argument("--parts", default="kernels,llm", help="comma-separated: kernels, llm, towers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kernel-runs", type=int, default=7)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--models", default=os.path.join(ROOT, "models-cache"))
    parser.add_argument("--towers-dir", default=os.path.join(ROOT, "target", "real-size-towers"))
    parser.add_argument("--no-build", action="store_true", help="use the iris binary as built")
    parser.add_argument("--max-wait", type=float, default=150,
                        help="seconds to wait before each part for the 1-minute load to fall below 0.5")
    args = parser.parse_args()
    args.models = os.path.abspath(args.models)
    parts = args.parts.split(",")
    if unknown := set(parts) - {"kernels", "llm", "towers"}:
        parser.error(f"unknown parts {sorted(unknown)}")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "iris-cli"], cwd=ROOT, check=True)
    iris = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "iris")

    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()
    raw, notes, sections = {"args": vars(args)}, [], []
    if "kernels" in parts:
        with Part("kernels", notes, args.max_wait):
            sections += ["## Kernels: iris bench kernels vs PyTorch", "", *kernels(args, iris, raw), ""]
    if "llm" in parts:
        with Part("llm", notes, args.max_wait):
            sections += ["## SmolLM2-135M-Instruct: iris vs llama.cpp vs HF transformers", "",
                         *llm(args, iris, raw), ""]
    if "towers" in parts:
        with Part("towers", notes, args.max_wait):
            sections += ["## Vision towers: iris vs PyTorch", "", *towers(args, raw), ""]

    # The load after a part is the part's own threads; only the load before one tells.
    idle = all(n[2][0] < QUIET_LOAD for n in notes)
    head = [f"# CPU baselines, {started:%Y-%m-%d %H:%M} UTC", "",
            f"Written by `python3 scripts/bench_cpu_all.py {' '.join(sys.argv[1:])}`. "
            "Ratios: iris speed / peer speed (above 1: iris is faster).", "", *machine(),
            f"- load average at start (1/5/15 min): {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}", ""]
    if not idle:
        head += ["**The machine was not quiet before every part (1-minute load 0.5 or more after "
                 "waiting up to --max-wait s): treat these numbers as noisy.**", ""]
    head += ["| part | wall s | load before (1/5/15) | load after (1/5/15) |", "|---|---|---|---|"]
    for name, secs, before, after in notes:
        head.append(f"| {name} | {secs:.0f} | {' / '.join(f'{x:.2f}' for x in before)} | "
                    f"{' / '.join(f'{x:.2f}' for x in after)} |")
    text = "\n".join(head + [""] + sections).rstrip() + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    raw["parts"] = notes
    with open(args.report, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.report)[0] + ".json", "w") as f:
        json.dump(raw, f, indent=1, default=str)
    log(f"wrote {args.report}")


if __name__ == "__main__":
    main()
