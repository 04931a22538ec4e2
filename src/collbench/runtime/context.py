"""What a real algorithm gets: the communicators, the reduction (Cython, GIL released, from
``cext/runtime/_reduce.pyx``) and scratch space.  Algorithms call ``ctx.reduce_into``,
``ctx.reduce_out``, ``ctx.waitall`` and ``ctx.tmp`` so that they depend on this interface
only (and can run under the tests' simulated communicator)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._reduce import OPS, reduce_into, reduce_out


class Context:
    def __init__(self, MPI: Any, comm: Any, op: str, mpi_op: Any, dtype: str,
                 node_comm: Any = None, cross_comm: Any = None) -> None:
        self.MPI = MPI
        self.comm = comm
        self.op = OPS[op]
        self.mpi_op = mpi_op
        self.dtype = np.dtype(dtype)
        self.node_comm = node_comm
        self.cross_comm = cross_comm
        self._tmp = np.empty(0, dtype=self.dtype)

    def tmp(self, n: int) -> np.ndarray:
        if self._tmp.size < n:
            self._tmp = np.empty(n, dtype=self.dtype)
        return self._tmp[:n]

    def reduce_into(self, dst: np.ndarray, src: np.ndarray) -> None:
        reduce_into(dst, src, self.op)

    def reduce_out(self, dst: np.ndarray, a: np.ndarray, src: np.ndarray) -> None:
        reduce_out(dst, a, src, self.op)

    def waitall(self, reqs: list[Any]) -> None:
        self.MPI.Request.Waitall(reqs)
