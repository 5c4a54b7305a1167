"""What a check case is: a name and a function of the PTX sources returning a `Result`."""

import os

import numpy as np


class Sources:
    """The PTX modules to check, by module name, read from a folder (kernels/src/cuda/ptx or
    `iris kernels --dump-ptx` output); `patched` replaces a module's text (the self-tests)."""

    def __init__(self, folder, patched=None):
        self.folder = folder
        self.patched = dict(patched or {})

    def text(self, module):
        if module in self.patched:
            return self.patched[module]
        path = os.path.join(self.folder, module + ".ptx")
        with open(path, encoding="utf-8") as f:
            return f.read()

    def with_patch(self, module, text):
        return Sources(self.folder, {**self.patched, module: text})


class Result:
    """A case's error measures against their bounds: `checks` [(metric, value, limit)], the
    metric an NMSE or a count of mismatching elements; `ok` when every value <= its limit."""

    def __init__(self, metric, value, limit, note=""):
        self.checks = [(metric, value, limit)]
        self.note = note

    def also(self, metric, value, limit):
        self.checks.append((metric, value, limit))
        return self

    @property
    def ok(self):
        return all(value <= limit for _, value, limit in self.checks)

    def __str__(self):
        parts = [f"{m} {v:.2e} (limit {lim:g})" if isinstance(v, float)
                 else f"{m} {v} (limit {lim:g})" for m, v, lim in self.checks]
        return ", ".join(parts) + (f" {self.note}" if self.note else "")


class Case:
    """`fn(sources)` -> Result; `modules` the PTX modules it launches; `cost` a rough guess of
    its run time, to start the slow ones first."""

    def __init__(self, name, fn, modules, cost=1):
        self.name, self.fn, self.modules, self.cost = name, fn, modules, cost

    def run(self, sources):
        return self.fn(sources)


def elementwise_blocks(n):
    """Blocks of 256 threads the backend launches an elementwise kernel over `n` items with
    (iris_kernels::cuda::elementwise_dims: enough for one item per thread, 1 to 2048)."""
    return min(max((n + 255) // 256, 1), 2048)


def exact(got, want, note=""):
    """Mismatching elements, bit for bit."""
    return Result("mismatches", int((np.asarray(got) != np.asarray(want)).sum()), 0, note)
