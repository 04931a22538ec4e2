"""Inputs whose reduction is exactly predictable in every dtype, and the expected result."""
from __future__ import annotations

import numpy as np

from ..algorithms import COLLECTIVES


def storage(dtype: str) -> np.dtype:
    """The NumPy storage of a run dtype: bfloat16 (no NumPy type) lives in uint16."""
    return np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)


def to_storage(values: np.ndarray, dtype: str) -> np.ndarray:
    """Small integers (exact in every run dtype) in the dtype's storage; bfloat16 is the top
    half of the float32 bits (exact for these values)."""
    if dtype == "bfloat16":
        return (np.asarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return np.asarray(values).astype(dtype)


# poison of a receive buffer before the checked call: a value no result can have
BF16_NAN = 0x7FC0


def poison_value(dtype: str):
    if dtype == "bfloat16":
        return BF16_NAN
    d = np.dtype(dtype)
    return np.iinfo(d).max if d.kind in "iu" else np.nan


def _values(rank: int, p: int, count: int, op: str, unsigned: bool) -> np.ndarray:
    i = np.arange(count, dtype=np.int64)
    if op == "sum":
        return (rank + i) % 4 + 1                    # sums stay small integers: exact
    if op == "prod":
        return np.where((rank + i) % 8 == 0, 2, 1)   # products are powers of two
    if op in ("min", "max"):                         # unsigned types get no negatives
        return (rank * 7 + i) % 13 - (0 if unsigned else 6)
    return 2 * ((i + rank) % p) + i % 3              # avg: the sum is a multiple of p


def make_input(rank: int, p: int, count: int, dtype: str, op: str) -> np.ndarray:
    """This rank's input: values whose reduction is exact in every dtype (int8 and uint8
    included for the small rank counts a check runs at)."""
    return to_storage(_values(rank, p, count, op, dtype.startswith("uint")), dtype)


def expected(p: int, count: int, dtype: str, op: str) -> np.ndarray:
    i = np.arange(count, dtype=np.int64)
    if op == "avg":
        return to_storage((p - 1) + i % 3, dtype)
    unsigned = dtype.startswith("uint")
    acc = _values(0, p, count, op, unsigned)
    for r in range(1, p):
        v = _values(r, p, count, op, unsigned)
        if op == "sum":
            acc = acc + v
        elif op == "prod":
            acc = acc * v
        elif op == "min":
            acc = np.minimum(acc, v)
        else:
            acc = np.maximum(acc, v)
    return to_storage(acc, dtype)


ROOT = 0          # broadcast and reduce use rank 0 as root unless -r says otherwise (nccl-tests)


class Buffers:
    """One size of one collective on one rank, in nccl-tests' conventions: ``nbytes`` is the
    size nccl-tests prints (all-reduce, broadcast, reduce: the buffer; reduce-scatter and
    all-gather: the whole array; all-to-all: what one rank sends), ``count`` the count it
    prints (per rank for reduce-scatter and all-gather, per peer for all-to-all; sendrecv: the
    buffer each rank sends to its right neighbour), ``expected``
    what ``recv`` must hold after the call (None where this rank receives nothing to check)."""

    def __init__(self, coll: str, rank: int, p: int, nbytes: int, dtype: str, op: str,
                 root: int = ROOT) -> None:
        store = storage(dtype)
        esize = store.itemsize
        n = nbytes // esize
        reduces = COLLECTIVES[coll].reduces
        vop = op if reduces else "sum"          # the values of non-reducing collectives
        if coll in ("reduce_scatter", "all_gather", "all_to_all"):
            m = n // p                      # per rank (per peer for all-to-all)
            total = m * p
            self.count, self.nbytes = m, total * esize
        else:
            m = total = n
            self.count, self.nbytes = n, n * esize
        if coll == "allreduce":
            self.send = make_input(rank, p, total, dtype, vop)
            self.recv = np.zeros(total, dtype=store)
            self.expected = expected(p, total, dtype, vop)
        elif coll == "reduce_scatter":
            self.send = make_input(rank, p, total, dtype, vop)
            self.recv = np.zeros(m, dtype=store)
            self.expected = expected(p, total, dtype, vop)[rank * m:(rank + 1) * m]
        elif coll == "all_gather":
            self.send = make_input(rank, p, m, dtype, vop)
            self.recv = np.zeros(total, dtype=store)
            self.expected = np.concatenate([make_input(j, p, m, dtype, vop) for j in range(p)])
        elif coll == "broadcast":
            self.send = make_input(root, p, total, dtype, vop) if rank == root else \
                np.zeros(total, dtype=store)
            self.recv = np.zeros(total, dtype=store)
            self.expected = make_input(root, p, total, dtype, vop)
        elif coll == "reduce":
            self.send = make_input(rank, p, total, dtype, vop)
            self.recv = np.zeros(total, dtype=store)
            self.expected = expected(p, total, dtype, vop) if rank == root else None
        elif coll == "all_to_all":
            self.send = make_input(rank, p, total, dtype, vop)
            self.recv = np.zeros(total, dtype=store)
            self.expected = np.concatenate([make_input(j, p, total, dtype, vop)[rank * m:
                                                                               (rank + 1) * m]
                                            for j in range(p)])
        elif coll == "sendrecv":
            self.send = make_input(rank, p, total, dtype, vop)
            self.recv = np.zeros(total, dtype=store)
            self.expected = make_input((rank - 1) % p, p, total, dtype, vop)
        else:
            raise ValueError(f"no buffers for {coll}")
        self.redop = op if reduces else "none"
        self.root = root if COLLECTIVES[coll].rooted else -1
        self.coll, self.rank, self.p, self.m = coll, rank, p, m

    def in_place(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(send, recv) views of one buffer in nccl-tests' in-place layout, or None where the
        collective has no in-place form here (all-to-all, sendrecv).  all-reduce, broadcast,
        reduce: one buffer; reduce-scatter: the whole array in, block ``rank`` out;
        all-gather: block ``rank`` in, the whole array out."""
        if self.coll in ("all_to_all", "sendrecv"):
            return None
        if not hasattr(self, "_buf"):
            self._buf = np.zeros(self.send.size if self.coll != "all_gather" else
                                 self.recv.size, dtype=self.send.dtype)
        b, r, m = self._buf, self.rank, self.m
        if self.coll == "reduce_scatter":
            return b, b[r * m:(r + 1) * m]
        if self.coll == "all_gather":
            return b[r * m:(r + 1) * m], b
        return b, b

    def refill_in_place(self, poison) -> None:
        """The in-place buffer as before a call: this rank's input where the collective
        reads it, ``poison`` everywhere else (so a call that writes nothing is caught)."""
        send, _ = self.in_place() or (None, None)
        if send is None:
            return
        self._buf.fill(poison)
        if self.coll != "broadcast" or self.rank == self.root:
            send[...] = self.send
