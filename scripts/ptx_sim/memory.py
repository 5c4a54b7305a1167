"""The memory model: global memory (a heap of named allocations with poisoned red zones),
shared memory (one poisoned array per CTA, with a race detector) and cp.async copies that land
as late (or, on request, as early) as the program allows.

Every access is checked: aligned to its full size (a v4.f32 load to 16 bytes), inside one
allocation (global) or inside the CTA's static shared memory, global stores only into
allocations not marked read-only and never into a byte another CTA of the same launch stored
(atomics excepted: any CTA may swap a word, and a plain store after it by another CTA is
reported).
Addresses are vectors, one per active thread."""

import numpy as np

POISON = 0xFF  # every byte of fresh shared memory and red zones: f32 and bf16 NaN


class AccessFault(Exception):
    """An access the hardware would fault on, or that reads or writes the wrong buffer."""


class GlobalMemory:
    """Device memory. Allocations start above 4 GiB, so an address truncated to 32 bits
    faults, and are separated by poisoned red zones."""

    BASE = 0x7_0000_0000
    RED_ZONE = 256

    def __init__(self):
        self.mem = np.full(1 << 16, POISON, dtype=np.uint8)
        self.top = self.RED_ZONE
        self.starts, self.ends, self.names, self.readonly = [], [], [], []
        self._starts = np.zeros(0, dtype=np.int64)
        self._ends = np.zeros(0, dtype=np.int64)
        self.cta = 0  # the CTA running now
        self.writer = None  # per byte: the CTA of this launch that stored it, or -1

    def begin_launch(self):
        self.writer = np.full(len(self.mem), -1, dtype=np.int64)

    def alloc(self, nbytes, name, skew=0, readonly=False):
        """A new allocation of `nbytes` (poisoned) at 256-byte alignment plus `skew` bytes;
        returns its address."""
        off = (self.top + 255) // 256 * 256 + skew
        end = off + nbytes
        if end + self.RED_ZONE > len(self.mem):
            grown = np.full(max(2 * len(self.mem), end + 2 * self.RED_ZONE), POISON, np.uint8)
            grown[: len(self.mem)] = self.mem
            self.mem = grown
        self.starts.append(off)
        self.ends.append(end)
        self.names.append(name)
        self.readonly.append(readonly)
        self.top = end + self.RED_ZONE
        self._starts = np.array(self.starts, dtype=np.int64)
        self._ends = np.array(self.ends, dtype=np.int64)
        return self.BASE + off

    def put(self, array, name, skew=0, readonly=True):
        """Allocates a buffer holding `array`'s bytes (read-only unless told); its address."""
        data = np.ascontiguousarray(array).view(np.uint8).ravel()
        addr = self.alloc(len(data), name, skew, readonly)
        self.mem[addr - self.BASE: addr - self.BASE + len(data)] = data
        return addr

    def get(self, addr, dtype, count):
        """`count` elements of `dtype` at `addr` (a copy)."""
        off = addr - self.BASE
        return self.mem[off: off + count * np.dtype(dtype).itemsize].copy().view(dtype)

    def _offsets(self, addrs, nbytes, write):
        addrs = np.asarray(addrs, dtype=np.uint64)
        misaligned = (addrs % np.uint64(nbytes)) != 0
        if misaligned.any():
            raise AccessFault(f"global access of {nbytes} bytes at {int(addrs[misaligned][0]):#x}: "
                              "misaligned")
        off = addrs.astype(np.int64) - self.BASE
        which = np.searchsorted(self._starts, off, side="right") - 1
        outside = (which < 0) | (off + nbytes > self._ends[np.maximum(which, 0)])
        if outside.any():
            a = int(off[outside][0])
            raise AccessFault(f"global access of {nbytes} bytes at {a + self.BASE:#x}: outside "
                              f"every allocation ({self._near(a)})")
        if write:
            ro = np.asarray(self.readonly)[which]
            if ro.any():
                raise AccessFault(f"global store into the read-only input "
                                  f"`{self.names[which[ro][0]]}`")
        return off

    def _near(self, off):
        i = int(np.searchsorted(self._starts, off, side="right")) - 1
        if i < 0:
            return "below the first allocation"
        size = self.ends[i] - self.starts[i]
        return f"{off - self.starts[i]} bytes into `{self.names[i]}`, {size} bytes long"

    def load(self, addrs, nbytes):
        """(threads, nbytes) uint8 read at each address."""
        off = self._offsets(addrs, nbytes, False)
        return self.mem[off[:, None] + np.arange(nbytes)]

    def store(self, addrs, data):
        """Stores row i of `data` (threads, nbytes) at address i."""
        idx = self._offsets(addrs, data.shape[1], True)[:, None] + np.arange(data.shape[1])
        if self.writer is not None:
            prev = self.writer[idx]
            clash = (prev >= 0) & (prev != self.cta)
            if clash.any():
                a = int(idx[clash][0])
                raise AccessFault(f"global store at {a + self.BASE:#x} ({self._near(a)}): CTA "
                                  f"{self.cta} stores a byte CTA {int(prev[clash][0])} stored "
                                  "in this launch")
            self.writer[idx] = self.cta
        self.mem[idx] = data


    def atomic_cas(self, addr, compare, value):
        """The u32 at `addr`; replaced by `value` where it equals `compare` (atom.cas)."""
        off = int(self._offsets(np.array([addr], dtype=np.uint64), 4, True)[0])
        old = self.mem[off:off + 4].view(np.uint32)[0]
        if old == compare:
            self.mem[off:off + 4] = np.array([value], dtype=np.uint32).view(np.uint8)
            if self.writer is not None:  # a later plain store by another CTA is a race
                self.writer[off:off + 4] = self.cta
        return old


class SharedMemory:
    """One CTA's static shared memory, poisoned before the CTA starts, with a race detector:
    each byte remembers the thread that last stored it and the synchronisation epoch of that
    store. A thread loading a byte another thread stored with no bar.sync in between (or, for
    two lanes of one warp, no bar.warp.sync either) is a read-after-write race, reported even
    when the value read happens to be right. (Write-after-read races are left to the warp
    order, which makes the early writer clobber data a later warp still needs.)"""

    def __init__(self, size, nthreads):
        self.size = size
        self.mem = np.full(max(size, 16), POISON, dtype=np.uint8)
        self.writer = np.full(len(self.mem), -1, dtype=np.int64)
        self.cta_epoch_of = np.zeros(len(self.mem), dtype=np.int64)
        self.warp_epoch_of = np.zeros(len(self.mem), dtype=np.int64)
        self.warp_epoch = np.zeros((nthreads + 31) // 32, dtype=np.int64)
        self.cta_epoch = 0

    def reset(self):
        self.mem.fill(POISON)
        self.writer.fill(-1)
        self.warp_epoch.fill(0)
        self.cta_epoch = 0

    def check(self, addrs, nbytes):
        """Byte offsets of accesses of `nbytes` at `addrs`, each aligned and inside."""
        off = np.asarray(addrs).astype(np.int64)
        if (off % nbytes).any():
            bad = int(off[off % nbytes != 0][0])
            raise AccessFault(f"shared access of {nbytes} bytes at {bad}: misaligned")
        if (off < 0).any() or (off + nbytes > self.size).any():
            raise AccessFault(f"shared access of {nbytes} bytes at {int(off.max())}: beyond the "
                              f"{self.size} bytes declared")
        return off

    def load(self, addrs, nbytes, tids):
        """(threads, nbytes) uint8 read at each address by the threads `tids`."""
        idx = self.check(addrs, nbytes)[:, None] + np.arange(nbytes)
        wr = self.writer[idx]
        other = (wr >= 0) & (wr != tids[:, None])
        if other.any():
            unsynced = self.cta_epoch_of[idx] == self.cta_epoch
            same_warp = (wr >> 5) == (tids[:, None] >> 5)
            warp_now = self.warp_epoch[tids >> 5][:, None]
            warp_synced = same_warp & (self.warp_epoch_of[idx] < warp_now)
            race = other & unsynced & ~warp_synced
            if race.any():
                r, b = np.argwhere(race)[0]
                sync = "bar.sync/bar.warp.sync" if same_warp[r, b] else "bar.sync"
                raise AccessFault(f"shared load at {int(idx[r, b])} by thread {int(tids[r])} of a "
                                  f"byte thread {int(wr[r, b])} stored with no {sync} between "
                                  "(a race)")
        return self.mem[idx]

    def store(self, addrs, data, tids):
        """Stores row i of `data` (threads, nbytes) at address i for thread tids[i]."""
        idx = self.check(addrs, data.shape[1])[:, None] + np.arange(data.shape[1])
        self.mem[idx] = data
        self.writer[idx] = tids[:, None]
        self.cta_epoch_of[idx] = self.cta_epoch
        self.warp_epoch_of[idx] = self.warp_epoch[tids >> 5][:, None]


class AsyncCopies:
    """cp.async bookkeeping for one CTA. A copy reads its source when issued (global inputs
    do not change during a kernel) and writes shared memory only when its thread's
    cp.async.wait_group retires its group ("late", the latest legal moment, so a missing wait
    or barrier reads poison), or at once ("early", which exposes a stage refilled while
    another warp still reads it)."""

    def __init__(self, nthreads, early):
        self.early = early
        self.committed = np.zeros(nthreads, dtype=np.int64)  # groups committed per thread
        self.pending = []  # [thread ids, group index per thread, dst offsets, data]

    def issue(self, smem, tids, dst, data):
        if self.early:
            smem.store(dst, data, tids)
        else:
            smem.check(dst, data.shape[1])  # fault at the instruction, not at the wait
            self.pending.append([tids, self.committed[tids], dst, data])

    def commit(self, tids):
        self.committed[tids] += 1

    def wait(self, smem, tids, allowed):
        """Lands every copy of `tids` whose group is older than its `allowed` newest ones."""
        keep = []
        for rec in self.pending:
            rt, group, dst, data = rec
            land = np.isin(rt, tids) & (group < self.committed[rt] - allowed)
            if land.any():
                smem.store(dst[land], data[land], rt[land])
                rest = ~land
                rec = [rt[rest], group[rest], dst[rest], data[rest]]
            if len(rec[0]):
                keep.append(rec)
        self.pending = keep
