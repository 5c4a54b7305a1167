"""Execution: one CTA at a time, warp by warp, threads of a warp in lockstep groups.

Scheduling (chosen to expose missing synchronisation, not to be fast):
  * A warp's threads form groups that share a program counter; the group with the lowest pc
    runs next (so a divergent `if` or loop reconverges where the paths meet). A predicated
    branch that some threads take splits the group; groups reaching the same pc merge.
  * Warps run one after another, each as far as it can: to a `bar.sync` or to its exit. Only
    when every warp waits at a barrier does the barrier release. So without a barrier
    between a shared-memory store and another warp's load, the load sees the poison (NaN)
    shared memory starts with; the warp order (forward, reverse or by CTA parity) decides
    which side of a race runs first.
  * Warp-wide instructions (ldmatrix, mma, shfl.sync, bar.warp.sync) need all 32 lanes in one
    group; a barrier reached after some threads of the CTA exited, or under a divergent
    predicate, is an error. The lanes of a warp run in lockstep, so the schedule cannot
    expose a missing bar.warp.sync; memory.py's race detector reports it instead.
  * Every CTA starts with poisoned registers (NaN bit patterns; predicates random) and shared
    memory (memory.py also reports shared-memory read-after-write races); CTAs run in grid
    order, and a byte of global memory stored by two different CTAs of one launch is an error.
"""

import numpy as np

from .memory import AccessFault, AsyncCopies, SharedMemory
from .operands import BARRIER, BRANCH, DTYPES, EXIT, PLAIN, STORAGE
from .ops import decode
from .parse import PtxError, parse_module

POISON_BITS = {1: 0xFF, 2: 0xFFBD, 4: 0xFFBADBAD, 8: 0xFFBADBADFFBADBAD}  # NaN as a float
MAX_STEPS = 5_000_000  # warp instructions per launch before a loop counts as runaway
LAUNCHED = set()  # entry names launched in this process (the checker's coverage report)


class SimError(Exception):
    """The kernel did something wrong (a fault, divergence at a collective, a runaway loop);
    the message names the kernel, the PTX line, the CTA and the warp."""


class Group:
    """Threads of one warp at one pc: `ids` (sorted) and `sel`, the same as a slice when they
    are contiguous (faster to index with)."""

    __slots__ = ("pc", "ids", "sel", "full")

    def __init__(self, pc, ids):
        self.reset(pc, ids)

    def reset(self, pc, ids):
        self.pc, self.ids = pc, ids
        contiguous = ids[-1] - ids[0] + 1 == len(ids)
        self.sel = slice(int(ids[0]), int(ids[-1]) + 1) if contiguous else ids
        self.full = len(ids) == 32


def _normalize(groups):
    """Sorted by pc, groups at the same pc merged."""
    groups.sort(key=lambda g: g.pc)
    out = []
    for g in groups:
        if out and out[-1].pc == g.pc:
            out[-1] = Group(g.pc, np.sort(np.concatenate([out[-1].ids, g.ids])))
        else:
            out.append(g)
    return out


class Warp:
    def __init__(self, index):
        self.index = index
        self.groups = [Group(0, np.arange(32 * index, 32 * index + 32))]
        self.waiting = []  # groups at a bar.sync


class Runner:
    """One entry decoded for a block size: the register arrays, shared memory and decoded
    steps, and the context (`ctx`) the steps are bound to."""

    def __init__(self, entry, nthreads, cp_async, dynamic_shared=0):
        if nthreads % 32:
            raise PtxError("blocks must be a multiple of 32 threads")
        self.entry, self.n = entry, nthreads
        self.ids = np.arange(nthreads)
        self.regs = {}
        for name, ty in entry.regs.items():
            if ty not in DTYPES:
                raise PtxError(f"{entry.name}: register type .{ty} not modelled")
            dt = np.dtype(DTYPES[ty])
            storage = bool if ty == "pred" else STORAGE[dt.itemsize]
            self.regs[name] = np.zeros(nthreads, dtype=storage)
        special = {"%tid.x": self.ids, "%tid.y": 0, "%tid.z": 0, "%ntid.x": nthreads,
                   "%ntid.y": 1, "%ntid.z": 1, "%laneid": self.ids & 31, "%warpid": self.ids >> 5}
        for ax in "xyz":
            special[f"%ctaid.{ax}"] = special[f"%nctaid.{ax}"] = 0  # set per CTA
        for name, value in special.items():
            self.regs[name] = np.full(nthreads, value, dtype=np.uint32)
        self.shared = {name: off for name, (off, _) in entry.shared.items()}
        size = entry.shared_size
        for name, align in entry.dynamic:  # every dynamic array starts at the same place
            self.shared[name] = (entry.shared_size + align - 1) // align * align
            size = self.shared[name] + dynamic_shared
        self.labels = entry.labels
        self.smem = SharedMemory(size, nthreads)
        self.early = cp_async == "early"
        self.copies = self.gmem = None
        self.params = {}
        self.steps = []
        for ins in entry.instrs:
            try:
                self.steps.append(decode(ins, self))
            except PtxError as e:
                raise PtxError(f"{entry.name} {ins}: {e}") from None
        self.executed = 0
        self.rng = np.random.default_rng(0)

    def param(self, name, ty):
        try:
            return self.params[name]
        except KeyError:
            raise PtxError(f"ld.param of unknown parameter {name}") from None

    def run_cta(self, ctaid, nctaid, reverse):
        """Runs CTA `ctaid` of a grid of `nctaid`, warps in reverse order if `reverse`."""
        for name, arr in self.regs.items():
            if name.startswith(("%ctaid", "%nctaid")):
                arr.fill((ctaid if name.startswith("%ctaid") else nctaid)["xyz".index(name[-1])])
            elif arr.dtype == bool:  # no NaN for a predicate: random, so reading it early shows
                arr[:] = self.rng.random(self.n) < 0.5
            elif not name.startswith(("%tid", "%ntid", "%laneid", "%warpid")):
                arr.fill(POISON_BITS[arr.dtype.itemsize])
        self.smem.reset()
        self.copies = AsyncCopies(self.n, self.early)
        self.exited = np.zeros(self.n, dtype=bool)
        self.ctaid = ctaid
        warps = [Warp(w) for w in range(self.n // 32)]
        while True:
            for w in (warps[::-1] if reverse else warps):
                self._run_warp(w)
            if not any(w.waiting for w in warps):
                return
            if self.exited.any():
                w = next(w for w in warps if w.waiting)
                raise SimError(self._where(w, w.waiting[0]) + ": bar.sync reached after "
                               f"{int(self.exited.sum())} threads of the CTA exited")
            self.smem.cta_epoch += 1
            for w in warps:
                for g in w.waiting:
                    g.pc += 1
                w.groups, w.waiting = _normalize(w.waiting), []

    def _where(self, warp, group):
        ins = self.steps[group.pc].instr if group.pc < len(self.steps) else "end of kernel"
        return f"{self.entry.name} {ins} (ctaid {self.ctaid}, warp {warp.index})"

    def _run_warp(self, warp):
        """Runs `warp` until each of its threads waits at a barrier or has exited: always the
        group with the lowest pc, until it stops or passes the next group's pc."""
        groups = warp.groups
        while groups:
            g = groups[0]
            while True:
                if g.pc >= len(self.steps):
                    raise SimError(self._where(warp, g) + ": ran off the end without ret")
                self.executed += 1
                if self.executed > MAX_STEPS:
                    raise SimError(self._where(warp, g) + f": more than {MAX_STEPS} steps "
                                   "(a runaway loop?)")
                if not self._step(warp, g) or (len(groups) > 1 and g.pc >= groups[1].pc):
                    break
            groups[:] = _normalize(groups)

    def _step(self, warp, g):
        """Executes the instruction at g.pc for group g. False when g stopped: it split at a
        branch, waits at a barrier or exited."""
        st = self.steps[g.pc]
        act, partial = g.sel, False
        if st.guard is not None:
            arr, negated = st.guard
            p = arr[g.sel]
            if negated:
                p = ~p
            if not p.any():
                act = None
            elif not p.all():
                act, partial = g.ids[p], True
        if act is None:  # guarded off for the whole group
            g.pc += 1
            return True
        if st.kind == PLAIN:
            if st.collective and (partial or not g.full):
                others = [self.steps[o.pc].instr.line for o in warp.groups if o is not g]
                raise SimError(self._where(warp, g) + ": warp-wide instruction with lanes "
                               f"{sorted(int(i) & 31 for i in (act if partial else g.ids))} of 32 "
                               f"({'predicated' if partial else 'diverged'}; the others at lines "
                               f"{others})")
            try:
                st.fn(act)
            except (AccessFault, ArithmeticError, PtxError) as e:
                raise SimError(self._where(warp, g) + f": {e}") from None
            g.pc += 1
            return True
        rest = g.ids[~np.isin(g.ids, act)] if partial else None
        if st.kind == BRANCH:
            if not partial:
                g.pc = st.target
                return True
            warp.groups.append(Group(st.target, act))
            g.reset(g.pc + 1, rest)
            return False
        if st.kind == EXIT:
            self.exited[act] = True
            if partial:
                g.reset(g.pc + 1, rest)
                return True
            warp.groups.remove(g)
            return False
        assert st.kind == BARRIER
        if partial:
            raise SimError(self._where(warp, g) + ": bar.sync under a divergent predicate")
        warp.groups.remove(g)
        warp.waiting.append(g)
        return False


_RUNNERS = {}


def runner_for(text, entry_name, nthreads, cp_async="late", dynamic_shared=0):
    """The decoded entry for a block size (cached: decoding a long kernel takes a while)."""
    key = (hash(text), entry_name, nthreads, cp_async, dynamic_shared)
    if key not in _RUNNERS:
        entries = parse_module(text)
        if entry_name not in entries:
            raise PtxError(f"no .entry {entry_name} (the module has {sorted(entries)})")
        _RUNNERS[key] = Runner(entries[entry_name], nthreads, cp_async, dynamic_shared)
    return _RUNNERS[key]


def _param_value(entry_name, name, ty, value):
    dt = np.dtype(DTYPES[ty])
    if ty in ("f32", "f64"):
        return dt.type(value)
    bits = 8 * dt.itemsize
    if not -(1 << (bits - 1)) <= int(value) < (1 << bits):
        raise PtxError(f"{entry_name}: {name} = {value} does not fit .{ty}")
    return np.array(int(value) % (1 << bits), dtype=STORAGE[dt.itemsize]).view(dt)[()]


def launch(text, entry_name, grid, block, args, gmem, warp_order="parity", cp_async="late",
           dynamic_shared=0):
    """Runs `entry_name` of the PTX module `text` on `gmem` over the whole grid.

    grid: (x, y, z); block: threads (1-D). args: {parameter: value}, the parameter named as in
    the PTX (`<entry>_param_<name>`) or by its `<name>` alone; u64/u32/s32/s64 take ints, f32
    a float. warp_order: "forward", "reverse" or "parity" (even CTAs forward, odd reverse).
    cp_async: "late" (copies land at the wait) or "early" (at issue). dynamic_shared: bytes of
    dynamic shared memory, as the launch passes them. Returns the number of warp instructions
    executed."""
    r = runner_for(text, entry_name, block, cp_async, dynamic_shared)
    LAUNCHED.add(entry_name)
    prefix = f"{entry_name}_param_"
    given = {(k if k.startswith(prefix) else prefix + k): v for k, v in args.items()}
    missing = [name for name, _ in r.entry.params if name not in given]
    unknown = sorted(set(given) - {name for name, _ in r.entry.params})
    if missing or unknown:
        raise PtxError(f"{entry_name}: parameters missing {missing}, unknown {unknown}")
    r.params = {name: _param_value(entry_name, name, ty, given[name])
                for name, ty in r.entry.params}
    r.gmem = gmem
    r.executed = 0
    r.rng = np.random.default_rng(0)
    gmem.begin_launch()
    gx, gy, gz = grid
    with np.errstate(all="ignore"):
        for z in range(gz):
            for y in range(gy):
                for x in range(gx):
                    gmem.cta = (z * gy + y) * gx + x
                    reverse = warp_order == "reverse" or (warp_order == "parity" and gmem.cta % 2)
                    r.run_cta((x, y, z), grid, reverse)
    return r.executed
