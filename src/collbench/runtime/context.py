"""What a real algorithm gets: the communicators, the reduction (Cython, GIL released, from
``cext/runtime/_reduce.pyx``) and scratch space.  Algorithms call ``ctx.reduce_into``,
``ctx.reduce_out``, ``ctx.waitall`` and ``ctx.tmp`` so that they depend on this interface
only (and can run under the tests' simulated communicator)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._reduce import DTYPE_CODES, OPS, reduce_into, reduce_out
from .checks import storage


def c_steps(MPI: Any) -> Any:
    """collbench's C step loops (``cext/runtime/_steps.pyx``), or None when they cannot run
    here: not built (no MPI header at build time), an MPI library of another ABI than the
    MPICH one they were built against (Open MPI), or ``COLLBENCH_STEPS=python`` (the Python
    loops beside each algorithm, kept as the reference)."""
    if os.environ.get("COLLBENCH_STEPS", "c") == "python":
        return None
    try:
        if "openmpi" in Path(MPI.__file__).name:
            return None
        if "libmpi.so.12" not in Path("/proc/self/maps").read_text():
            return None
        from . import _steps  # type: ignore[attr-defined]   # links to the loaded libmpi
    except (ImportError, OSError, AttributeError):
        return None
    return _steps


class Context:
    def __init__(self, MPI: Any, comm: Any, op: str, mpi_op: Any, dtype: str,
                 node_comm: Any = None, cross_comm: Any = None) -> None:
        self.MPI = MPI
        self.comm = comm
        self.op = OPS[op]
        self.mpi_op = mpi_op
        self.dtype = storage(dtype)          # bfloat16: uint16 storage, reduced as bfloat16
        # the MPI datatype the library's own calls must be told (NumPy cannot say bfloat16)
        self.mpi_type = getattr(MPI, "BFLOAT16_T", None) if dtype == "bfloat16" else None
        self.node_comm = node_comm
        self.cross_comm = cross_comm
        self._tmp = np.empty(0, dtype=self.dtype)
        self.dtcode = DTYPE_CODES.get(self.dtype.name, -1)
        self.in_place = False        # the harness is timing nccl-tests' in-place layout
        self.root = 0                # broadcast and reduce
        self.uniform_nodes = False   # every node has as many ranks (set by the harness)
        # the algorithms' C step loops, where this MPI and dtype allow them
        self.steps = c_steps(MPI) if self.dtcode >= 0 else None

    def typed(self, buf: Any) -> Any:
        """A buffer as the MPI library's own calls take it: with its MPI datatype where NumPy's
        cannot say it (bfloat16)."""
        return [buf, self.mpi_type] if self.mpi_type is not None else buf

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
