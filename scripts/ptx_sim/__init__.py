"""An offline PTX interpreter for the project's CUDA kernels: it executes the PTX text the
runtime loads (kernels/src/cuda/ptx/*.ptx, or `iris kernels --dump-ptx` output) on the CPU,
thread by thread in the order a GPU might, and `scripts/check_ptx_sim.py` compares the results
with NumPy references. It exists because the kernels are written without a GPU: ptxas proves
the text assembles, this proves (within its model) that it computes the right thing.

What is modelled
  * Parsing (parse.py): `.entry` kernels with `.param`, `.reg`, `.shared` (static) and labels.
  * Instructions (operands.py, ops.py, mem_ops.py, warp_ops.py): integer, f32 and f64
    arithmetic (add sub mul mad div rem min max and or xor not shl shr neg abs, fma (exact in
    f64), ex2 and friends), setp (with .and/.or), selp, mov (incl. packing {a, b}), cvt (ints,
    f32 <-> f64, f32 <-> bf16, bf16x2, f16 -> f32, float <-> int, float -> integral float),
    cvta.to.global, ld/st .param/.global/.shared (scalar, .v2, .v4), atom.global.cas.b32, bra,
    ret/exit, bar.sync, cp.async.{ca,cg}.shared.global (+ commit_group, wait_group,
    wait_all), ldmatrix.m8n8.x1/.x2/.x4[.trans], mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32,
    shfl.sync (up/down/bfly/idx, full mask), bar.warp.sync. Anything else (an unknown opcode,
    type or modifier) fails to decode with the line named: nothing is silently skipped.
  * Memory (memory.py, mem_ops.py): global memory as named allocations above 4 GiB with
    poisoned red zones, read-only inputs, alignment checks, and no byte written by two CTAs
    of a launch; shared memory poisoned (0xFF bytes: f32 / bf16 NaN) per CTA, with a
    read-after-write race detector (a byte read by another thread than the one that stored
    it, no bar.sync -- or, within a warp, bar.warp.sync -- in between); cp.async copies land
    at the latest legal moment (the thread's wait_group) or, on request, at issue.
  * Threads (machine.py): 1-D blocks of whole warps; lanes of a warp in lockstep groups with
    min-pc reconvergence; warps run one at a time up to each barrier, in forward or reverse
    order, so a missing bar.sync or cp.async.wait shows up as NaN or stale data even where
    the race detector would not look; registers start as NaN-patterned garbage, predicates
    random.

What is not
  * The fragment layouts of ldmatrix and mma (warp_ops.py header) and every other semantic
    here follow the project's reading of the PTX ISA. A misreading shared by the kernel and
    this interpreter passes: only a GPU run can catch it.
  * Numerics: `.approx` math is exact here; mma sums in f64 then rounds (the tensor core's
    order and truncation differ slightly); f32 fma rounds twice (f64 then f32). So checks use
    NMSE bounds, not bit equality, wherever floats are summed; the bounds are tight (the
    references round where the kernels round) but say nothing of the hardware's rounding.
  * Timing, occupancy, bank conflicts, register limits and spills (ptxas checks those),
    caches and `.nc` coherence, memory ordering beyond barriers, write-after-read races
    other than those the warp order exposes, races through global memory, the barrier id
    of bar.sync (all barriers are one), 2-D/3-D blocks, dynamic shared memory, atomics
    other than atom.cas (which runs thread by thread, in order), local memory, generic
    addressing, f16/tf32/int8 mma.
"""

from .machine import SimError, launch
from .memory import AccessFault, GlobalMemory
from .numerics import (NMSE_F32_ELEMENTWISE, NMSE_F32_REDUCTION, NMSE_HALF, bf16_round,
                       bf16_to_f32, nmse, round_bf16)
from .parse import PtxError, parse_module

__all__ = [
    "AccessFault", "GlobalMemory", "NMSE_F32_ELEMENTWISE", "NMSE_F32_REDUCTION", "NMSE_HALF",
    "PtxError", "SimError", "bf16_round", "bf16_to_f32", "launch", "nmse", "parse_module",
    "round_bf16",
]
