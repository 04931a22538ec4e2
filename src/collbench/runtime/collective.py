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


def time_iterations(MPI: Any, once: Callable[[], None], iters: int
                    ) -> tuple[float, float, float, float]:
    """Mean and median time (us) of ``iters`` calls of ``once``, each call timed; the
    calls' coefficient of variation (%) and 99th percentile (us)."""
    stamps = [MPI.Wtime()]
    mark = stamps.append
    for _ in range(iters):
        once()
        mark(MPI.Wtime())
    d = np.diff(stamps) * 1e6
    mean = (stamps[-1] - stamps[0]) / iters * 1e6
    cv = float(d.std() / d.mean() * 100) if iters > 1 and d.mean() > 0 else 0.0
    return mean, float(np.median(d)), cv, float(np.percentile(d, 99))
