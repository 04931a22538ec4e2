"""Helpers every rank calls alike: one verdict for an error, timed iterations."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError


def agree(comm: Any, error: str | None) -> None:
    """Every rank learns the first rank's error (if any) and raises it: one verdict."""
    errors = comm.allgather(error)
    first = next((e for e in errors if e), None)
    if first:
        raise InputError(first)


def time_iterations(MPI: Any, once: Callable[[], None], iters: int) -> tuple[float, float]:
    """Mean and median time (us) of ``iters`` calls of ``once``, each call timed."""
    stamps = [MPI.Wtime()]
    mark = stamps.append
    for _ in range(iters):
        once()
        mark(MPI.Wtime())
    return (stamps[-1] - stamps[0]) / iters * 1e6, float(np.median(np.diff(stamps))) * 1e6
