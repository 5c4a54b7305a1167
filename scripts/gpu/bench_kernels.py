#!/usr/bin/env python3
"""PyTorch's kernels at the shapes of `iris bench kernels --device cuda`, and the table that
joins the two runs.

    python3 scripts/gpu/bench_kernels.py time [--runs 30] [--filter TEXT] [--out FILE.json]
    python3 scripts/gpu/bench_kernels.py table IRIS.json TORCH.json [--build FILE] [--out FILE.md]
    python3 scripts/gpu/bench_kernels.py check        # every case on the meta device (no GPU)

`time`: each case in bf16 on cuda:0, as PyTorch eager runs it (cuBLAS through F.linear,
F.scaled_dot_product_attention, F.rms_norm, F.silu * up, HF's rotate_half RoPE, F.embedding).
Timing follows the iris side (tools/src/commands/bench_cuda/): inputs rotated over enough
copies to total ROTATE_BYTES (5x the H100's 50 MB L2; PyTorch allocates outputs itself), one
untimed call per copy, then --runs calls with a CUDA event between consecutive calls, median
reported. A torch.cuda._sleep before the timed calls lets Python queue them all first, so the
times are the GPU's, not Python's dispatch. `table`: the markdown table of scripts/gpu/
bench_kernels.sh. `check`: builds every case on the meta device and checks the output shapes.
The case keys (`kernel` + `shape`) must stay equal to the iris side's.
"""
import argparse
import json
import math
import statistics
import sys
import time

ROTATE_BYTES = 256 << 20
MAX_COPIES = 64
BF16 = 2


class Case:
    """One op at one shape: `make(device)` returns one copy of the rotated inputs,
    `shared(device)` the inputs every copy reads (tables), `call(inputs, shared)` runs it."""

    def __init__(self, kernel, shape, flops, bytes_, rotated_bytes, make, call, out_shape,
                 shared=None, impl=""):
        self.kernel, self.shape = kernel, shape
        self.flops, self.bytes, self.rotated_bytes = flops, bytes_, rotated_bytes
        self.make, self.call, self.out_shape = make, call, out_shape
        self.shared = shared or (lambda device: ())
        self.impl = impl

    @property
    def key(self):
        return f"{self.kernel} {self.shape}"


def _randn(torch, device, *dims):
    t = torch.empty(*dims, device=device, dtype=torch.bfloat16)
    if device != "meta":
        t.uniform_(-1.0, 1.0)
    return t


def cases(torch):
    import torch.nn.functional as F

    def matmul(m, n, k):
        return Case(
            "matmul", f"{m}x{n}x{k}", 2 * m * n * k, (m * k + m * n + n * k) * BF16,
            (m * k + n * k) * BF16,
            lambda d: (_randn(torch, d, m, k), _randn(torch, d, n, k)),
            lambda i, s: F.linear(i[0], i[1]), (m, n), impl="F.linear (cuBLAS)")

    def attention(b, h, t, dh, causal):
        pairs = t * (t + 1) // 2 if causal else t * t
        return Case(
            "attention", f"b{b} h{h} t{t} d{dh}{' causal' if causal else ''}",
            4 * b * h * pairs * dh, 4 * b * h * t * dh * BF16, 3 * b * h * t * dh * BF16,
            lambda d: tuple(_randn(torch, d, b, h, t, dh) for _ in range(3)),
            lambda i, s: F.scaled_dot_product_attention(i[0], i[1], i[2], is_causal=causal),
            (b, h, t, dh), impl="F.scaled_dot_product_attention [B,H,T,D]")

    def decode(h, kv, dh):
        return Case(
            "attention_decode", f"h{h} kv{kv} d{dh}", 4 * h * kv * dh,
            (2 * h * kv * dh + 2 * h * dh) * BF16, (2 * h * kv * dh + h * dh) * BF16,
            lambda d: (_randn(torch, d, 1, h, 1, dh), _randn(torch, d, 1, h, kv, dh),
                       _randn(torch, d, 1, h, kv, dh)),
            lambda i, s: F.scaled_dot_product_attention(i[0], i[1], i[2]),
            (1, h, 1, dh), impl="F.scaled_dot_product_attention, 1 query")

    def rms_norm(rows, dim):
        def call(i, s):
            if hasattr(F, "rms_norm"):
                return F.rms_norm(i[0], (dim,), i[1], eps=1e-5)
            x = i[0].float()
            return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)).to(i[0].dtype) * i[1]
        return Case(
            "rms_norm", f"{rows}x{dim}", 4 * rows * dim, (2 * rows * dim + dim) * BF16,
            (rows * dim + dim) * BF16,
            lambda d: (_randn(torch, d, rows, dim), _randn(torch, d, dim)), call, (rows, dim),
            impl="F.rms_norm")

    def elementwise(kernel, rows, dim, flops_per, call, impl):
        return Case(
            kernel, f"{rows}x{dim}", flops_per * rows * dim, 3 * rows * dim * BF16,
            2 * rows * dim * BF16,
            lambda d: (_randn(torch, d, rows, dim), _randn(torch, d, rows, dim)),
            call, (rows, dim), impl=impl)

    def rope(t, h, dh):
        # HF Llama: x * cos + rotate_half(x) * sin, cos/sin [T, 1, D] from positions 0..T.
        def tables(d):
            inv_freq = 10000.0 ** (-torch.arange(0, dh, 2, device=d, dtype=torch.float32) / dh)
            freqs = torch.outer(torch.arange(t, device=d, dtype=torch.float32), inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            return (emb.cos().to(torch.bfloat16)[:, None, :],
                    emb.sin().to(torch.bfloat16)[:, None, :])

        def call(i, s):
            x = i[0]
            x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
            return x * s[0] + torch.cat((-x2, x1), dim=-1) * s[1]
        return Case(
            "rope", f"{t}x{h}x{dh}", 3 * t * h * dh, 2 * t * h * dh * BF16, t * h * dh * BF16,
            lambda d: (_randn(torch, d, 1, t, h, dh),), call, (1, t, h, dh), shared=tables,
            impl="HF rotate_half, eager")

    def embedding(t, vocab, dim):
        def ids(d):
            if d == "meta":
                return (torch.empty(t, dtype=torch.int64, device=d),)
            return (torch.randint(0, vocab, (t,), device=d),)
        return Case(
            "embedding", f"{t} of {vocab}x{dim}", 0, 8 * t + 2 * t * dim * BF16, 8 * t,
            ids, lambda i, s: F.embedding(i[0], s[0]), (t, dim),
            shared=lambda d: (_randn(torch, d, vocab, dim),), impl="F.embedding")

    return [
        matmul(8192, 8192, 8192),
        matmul(577, 4096, 1024),
        matmul(2048, 11008, 4096),
        matmul(600, 4096, 4096),
        matmul(600, 11008, 4096),
        matmul(600, 4096, 11008),
        matmul(577, 1024, 1024),
        matmul(577, 1024, 4096),
        matmul(1, 11008, 4096),
        matmul(1, 4096, 4096),
        attention(1, 16, 577, 64, False),
        attention(4, 32, 4096, 128, True),
        attention(1, 32, 600, 128, True),
        decode(32, 4096, 128),
        rms_norm(2048, 4096),
        elementwise("add", 2048, 4096, 1, lambda i, s: i[0] + i[1], "a + b"),
        elementwise("silu_mul", 2048, 11008, 5, lambda i, s: F.silu(i[0]) * i[1],
                    "F.silu(gate) * up"),
        rope(2048, 32, 128),
        embedding(2048, 32000, 4096),
    ]


def copies_for(case):
    return max(1, min(MAX_COPIES, math.ceil(ROTATE_BYTES / max(1, case.rotated_bytes))))


def time_case(torch, case, runs):
    copies = copies_for(case)
    sets = [case.make("cuda") for _ in range(copies)]
    shared = case.shared("cuda")
    case.call(sets[0], shared)  # lazy initialisation and kernel selection, untimed
    torch.cuda.synchronize()
    warmup = max(2, copies)
    start = time.perf_counter()
    for i in range(warmup):
        case.call(sets[i % copies], shared)
    host_per_call = (time.perf_counter() - start) / warmup
    torch.cuda.synchronize()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(runs + 1)]
    if hasattr(torch.cuda, "_sleep"):
        # Keep the GPU busy while Python queues every timed call: twice the host time they
        # need, at most 50 ms (cycles counted at <= 2 GHz).
        torch.cuda._sleep(int(2e9 * min(0.05, 2 * runs * host_per_call + 1e-3)))
    events[0].record()
    for r in range(runs):
        case.call(sets[(warmup + r) % copies], shared)
        events[r + 1].record()
    torch.cuda.synchronize()
    times = sorted(events[r].elapsed_time(events[r + 1]) * 1e-3 for r in range(runs))
    median = statistics.median(times)
    return {
        "kernel": case.kernel, "shape": case.shape, "dtypes": "bf16", "impl": case.impl,
        "median_us": median * 1e6, "min_us": times[0] * 1e6, "runs": runs, "copies": copies,
        "flops": case.flops, "bytes": case.bytes,
        "tflop_s": case.flops / median / 1e12, "tb_s": case.bytes / median / 1e12,
    }


def cmd_time(args):
    import torch
    if not torch.cuda.is_available():
        sys.exit("error: torch sees no CUDA device")
    torch.manual_seed(0)
    rows = []
    for case in cases(torch):
        if args.filter and args.filter not in case.key:
            continue
        try:
            rows.append(time_case(torch, case, args.runs))
        except Exception as err:  # one failing case must not hide the others
            rows.append({"kernel": case.kernel, "shape": case.shape, "error": repr(err)})
        torch.cuda.empty_cache()
        print(f"torch {case.key}: {rows[-1].get('median_us', rows[-1].get('error'))}",
              file=sys.stderr)
    doc = {
        "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "cuda": torch.version.cuda, "runs": args.runs, "rotate_bytes": ROTATE_BYTES,
        "timer": "cuda events, median", "kernels": rows,
    }
    text = json.dumps(doc, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


# The iris side's keys, in its order (tools/src/commands/bench_cuda/cases.rs checks the same
# list in its `keys_match_the_pytorch_side` test).
IRIS_KEYS = [
    "matmul 8192x8192x8192", "matmul 577x4096x1024", "matmul 2048x11008x4096",
    "matmul 600x4096x4096", "matmul 600x11008x4096", "matmul 600x4096x11008",
    "matmul 577x1024x1024", "matmul 577x1024x4096", "matmul 1x11008x4096",
    "matmul 1x4096x4096", "attention b1 h16 t577 d64", "attention b4 h32 t4096 d128 causal",
    "attention b1 h32 t600 d128 causal", "attention_decode h32 kv4096 d128",
    "rms_norm 2048x4096", "add 2048x4096", "silu_mul 2048x11008", "rope 2048x32x128",
    "embedding 2048 of 32000x4096",
]


def cmd_check(_args):
    import torch
    all_cases = cases(torch)
    keys = [c.key for c in all_cases]
    assert keys == IRIS_KEYS, f"keys differ from the iris side: {keys}"
    for case in all_cases:
        out = case.call(case.make("meta"), case.shared("meta"))
        assert tuple(out.shape) == tuple(case.out_shape), (case.key, out.shape, case.out_shape)
        assert out.dtype == torch.bfloat16, (case.key, out.dtype)
        print(f"ok {case.key:<36} copies {copies_for(case):>2}  {case.impl}")


def _load(path):
    try:
        with open(path) as f:
            return json.load(f), None
    except (OSError, ValueError) as err:
        return {"kernels": []}, f"{path}: {err}"


def _rate(row, peak_tflops, peak_tb_s):
    """(rate text, % of peak) by the roofline at the given peaks."""
    if row.get("median_us") is None:
        return "", None
    compute = row["flops"] / peak_tflops >= row["bytes"] / peak_tb_s
    if compute:
        return f"{row['tflop_s']:.1f} TFLOP/s", 100 * row["tflop_s"] / peak_tflops
    return f"{row['tb_s']:.2f} TB/s", 100 * row["tb_s"] / peak_tb_s


def cmd_table(args):
    iris, iris_err = _load(args.iris)
    torch_doc, torch_err = _load(args.torch)
    peak_tflops = iris.get("peak_tflops", 989.0)
    peak_tb_s = iris.get("peak_tb_s", 3.35)
    by_key = {(r["kernel"], r["shape"]): r for r in torch_doc.get("kernels", [])}
    keys = [(r["kernel"], r["shape"]) for r in iris.get("kernels", [])]
    keys += [k for k in by_key if k not in keys]
    iris_rows = {(r["kernel"], r["shape"]): r for r in iris.get("kernels", [])}
    build = ""
    if args.build:
        try:
            with open(args.build) as f:
                build = f.read().strip()
        except OSError:
            build = "unknown"
    lines = [
        f"Device: {iris.get('device') or torch_doc.get('device', '?')}; peaks {peak_tflops} "
        f"TFLOP/s dense bf16, {peak_tb_s} TB/s ({iris.get('peak_source', 'H100 SXM figures')}). "
        f"iris build: {build or '?'}; PyTorch {torch_doc.get('torch', '?')} "
        f"(CUDA {torch_doc.get('cuda', '?')}).",
        "Median of up to "
        f"{iris.get('runs', '?')} (iris) / {torch_doc.get('runs', '?')} (PyTorch) calls, CUDA "
        "events, every input rotated over >= 256 MiB. Rate and % of peak are those of the "
        "bound (roofline) resource; `iris / PyTorch` is the time ratio (> 1: iris slower).",
        "",
        "| kernel | shape | iris dtypes | iris us | PyTorch us | iris / PyTorch | iris rate "
        "| iris % of peak | PyTorch % of peak |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        ir, tr = iris_rows.get(key, {}), by_key.get(key, {})
        rate, pct = _rate(ir, peak_tflops, peak_tb_s) if ir else ("", None)
        _, tpct = _rate(tr, peak_tflops, peak_tb_s) if tr else ("", None)
        if ir.get("median_us") is not None:
            iris_us = f"{ir['median_us']:.1f}"
        else:
            why = ir.get("unsupported") or ir.get("error") or "not run"
            iris_us = ("unsupported: " if "unsupported" in ir else "") + why.replace("|", "/")
        torch_us = f"{tr['median_us']:.1f}" if tr.get("median_us") is not None else (
            tr.get("error", "not run").replace("|", "/"))
        ratio = ""
        if ir.get("median_us") is not None and tr.get("median_us"):
            ratio = f"{ir['median_us'] / tr['median_us']:.2f}"
        lines.append(
            f"| {key[0]} | {key[1]} | {ir.get('dtypes', '')} | {iris_us} | {torch_us} | {ratio} "
            f"| {rate} | {'' if pct is None else f'{pct:.1f}'} "
            f"| {'' if tpct is None else f'{tpct:.1f}'} |")
    for err in (iris_err, torch_err):
        if err:
            lines.append(f"\nMissing input: {err}")
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text, end="")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("time", help="time PyTorch on cuda:0, JSON out")
    t.add_argument("--runs", type=int, default=30)
    t.add_argument("--filter", help="only cases whose `kernel shape` contains this text")
    t.add_argument("--out", help="JSON file (default: stdout)")
    tb = sub.add_parser("table", help="markdown table joining iris and PyTorch JSON")
    tb.add_argument("iris")
    tb.add_argument("torch")
    tb.add_argument("--build", help="file naming the iris build (commit)")
    tb.add_argument("--out", help="markdown file (also printed)")
    sub.add_parser("check", help="build every case on the meta device (no GPU needed)")
    args = parser.parse_args()
    if args.command == "time" and args.runs < 1:
        parser.error("--runs must be at least 1")
    {"time": cmd_time, "table": cmd_table, "check": cmd_check}[args.command](args)


if __name__ == "__main__":
    main()
