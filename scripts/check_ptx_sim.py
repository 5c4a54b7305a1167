#!/usr/bin/env python3
"""Runs the CUDA kernels' PTX on the CPU (scripts/ptx_sim) against NumPy references.

Covered: cast_f32_bf16, pad_bf16, gemm_bf16_mma, gemv_bf16, flash_attention_d{64,72,80,128},
attention_decode_d{64,128} (every r entry) and attention_decode_combine_f32, on small random
cases with odd sizes and ragged edges, causal and not, GQA, the KV cache with past_len; and
rms_norm_f32(_wbf16, _wf16), rope_f32, embedding_f32(_wbf16, _wf16) on both their vector and
scalar paths (aligned and misaligned buffers, odd dims, in place, bad ids), and
layer_norm_f32(_wbf16, _wf16) and conv2d_f32(_wbf16, _wf16) (padding, strides, no bias).
Prints one line per case (NMSE or mismatch count against its bound) and exits non-zero on
any mismatch, interpreter error, or entry point of a covered module left unlaunched.

Then the self-test: each kernel broken on purpose (a bar.sync dropped, a swizzle constant or
a fragment layout changed, ...) must be rejected, so that this check cannot pass by seeing
nothing. ptx_sim/__init__.py says what the interpreter models and what it cannot catch.

Usage: python3 scripts/check_ptx_sim.py [--ptx-dir DIR] [--jobs N] [--filter TEXT]
                                        [--no-self-test]
DIR defaults to kernels/src/cuda/ptx (the files the runtime embeds); `iris kernels
--dump-ptx DIR` writes the same modules. Needs numpy (pip-installed into .whl/numpy when
missing). About 20 seconds on two cores.
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

try:
    import numpy  # noqa: F401
except ImportError:
    # --target keeps it inside the (git-ignored) .whl folder, as check_ptx.sh does for ptxas,
    # and works where the system Python refuses installs into its own site-packages.
    target = os.path.join(ROOT, ".whl", "numpy")
    if not os.path.isdir(os.path.join(target, "numpy")):
        print(f"numpy not found: pip-installing it into {os.path.relpath(target, ROOT)}",
              file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                               target, "numpy"])
    sys.path.insert(0, target)

from ptx_sim import SimError, parse_module  # noqa: E402
from ptx_sim import (  # noqa: E402
    cases_attention, cases_gemm, cases_kv, cases_rows, machine, mutations)
from ptx_sim.harness import Sources  # noqa: E402


def build_jobs(ptx_dir, only, self_test):
    """(cases, mutations, jobs): the cases, then each self-test's case on its broken text.
    Deterministic, so that every worker process builds the same list (closures do not pickle)."""
    sources = Sources(ptx_dir)
    every = cases_gemm.cases() + cases_attention.cases() + cases_rows.cases() + cases_kv.cases()
    cases = [c for c in every if only in c.name]
    muts = [m for m in mutations.mutations() if only in m.case.name] if self_test else []
    jobs = [(c, sources) for c in cases]
    for m in muts:
        try:
            jobs.append((m.case, sources.with_patch(m.module, m.apply(sources.text(m.module)))))
        except mutations.StaleMutation as e:  # reported as an error
            jobs.append((_Broken(m.case.name, e), sources))
    return cases, muts, jobs


JOBS = []


def init_worker(*args):
    JOBS[:] = build_jobs(*args)[2]


def run_one(index):
    """Job `index` -> (name, outcome, message, seconds, entries launched), in a worker.
    outcome: "pass", "mismatch" (outside its bound), "fault" (the interpreter stopped the
    kernel: bad access, divergence, ...) or "error" (the case or the interpreter is broken)."""
    case, sources = JOBS[index]
    machine.LAUNCHED.clear()
    start = time.time()
    try:
        result = case.run(sources)
        outcome, message = ("pass" if result.ok else "mismatch"), str(result)
    except SimError as e:
        outcome, message = "fault", f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - reported as a failure with its type
        outcome, message = "error", f"{type(e).__name__}: {e}"
    return case.name, outcome, message, time.time() - start, set(machine.LAUNCHED)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ptx-dir", default=os.path.join(ROOT, "kernels", "src", "cuda", "ptx"))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--filter", default="", help="run only the cases whose name contains this")
    ap.add_argument("--no-self-test", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(args.ptx_dir):
        ap.error(f"--ptx-dir {args.ptx_dir}: no such folder")
    setup = (args.ptx_dir, args.filter, not args.no_self_test)
    cases, muts, jobs = build_jobs(*setup)
    start = time.time()
    # The slowest first, so that two workers finish together.
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0].cost)
    if args.jobs <= 1:  # in this process (no worker processes to start)
        init_worker(*setup)
        done = {i: run_one(i) for i in order}
    else:
        with multiprocessing.Pool(args.jobs, initializer=init_worker, initargs=setup) as pool:
            done = dict(zip(order, pool.map(run_one, order, chunksize=1)))
    results = [done[i] for i in range(len(jobs))]
    failures = 0
    launched = set()
    print(f"== kernels against NumPy references ({args.ptx_dir})")
    for name, outcome, message, seconds, entries in results[: len(cases)]:
        launched |= entries
        ok = outcome == "pass"
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {message} [{seconds:.1f} s]")
    if not args.filter:
        sources = Sources(args.ptx_dir)
        modules = sorted({m for c in cases for m in c.modules})
        covered = {e for m in modules for e in parse_module(sources.text(m))}
        for entry in sorted(covered - launched):
            failures += 1
            print(f"FAIL entry {entry} of a covered module was never launched")
    if muts:
        print("== self-test: broken kernels must be rejected")
    for m, (name, outcome, message, seconds, _) in zip(muts, results[len(cases):]):
        caught = outcome in ("mismatch", "fault")
        failures += not caught
        print(f"{'ok  ' if caught else 'FAIL'} {m.module}: {m.what} -> "
              f"{'rejected' if caught else 'NOT rejected'} ({message}) [{seconds:.1f} s]")
    print(f"{len(cases)} cases, {len(muts)} self-tests, {failures} failures, "
          f"{time.time() - start:.0f} s")
    return 1 if failures else 0


class _Broken:
    """Stands in for a self-test case whose edit no longer applies to the kernel text."""

    cost = 0

    def __init__(self, name, error):
        self.name, self.error = name, error

    def run(self, sources):
        raise self.error


if __name__ == "__main__":
    sys.exit(main())
