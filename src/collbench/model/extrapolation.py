"""Labels for estimates of a calibrated system that lie beyond the data it was fitted to."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..algorithms.base import Geometry
from ..units import human
from .system import System

LIBRARY_NAMES = ("mpi", "auto")      # rows of a library's own choice: modelled as auto


def _fixed_reasons(system: System, nranks: int, collective: str, name: str) -> list[str]:
    """Reasons beyond the data that do not depend on the size."""
    cal = system.calibration
    why = []
    ranks = cal.get("nranks") or []
    if ranks and not (min(ranks) <= nranks <= max(ranks)):
        why.append(f"ranks outside {min(ranks)}..{max(ranks)}")
    tiers = cal.get("tiers_measured")
    if tiers:
        L = Geometry(system, int(nranks)).L
        if L > tiers:
            why.append(f"tier {L - 1} ({system.tiers[L - 1].name}) not in the data")
    colls = cal.get("collectives") or []
    if colls and collective not in colls:
        why.append(f"{collective} not measured")
    algos = cal.get("algorithms") or []
    if algos and name not in algos and not (name == "auto" and set(algos) & set(LIBRARY_NAMES)):
        why.append(f"{name} not measured")
    return why


def extrapolation(system: System, nbytes: np.ndarray, nranks: int, collective: str,
                  requested: np.ndarray, implementation: str | None = None) -> np.ndarray:
    """Per row (sizes ``nbytes``, algorithms ``requested``): why an estimate of a calibrated
    system lies beyond the data it was fitted to ('' when it does not, or when the system was
    not calibrated).  Each distinct (algorithm, below, above) case is worded once."""
    n = np.asarray(nbytes, dtype=float)
    req = np.asarray(requested, dtype=object)
    out = np.full(len(n), "", dtype=object)
    cal = system.calibration
    if not cal:
        return out
    below = (n > 0) & (n < cal.get("min_bytes", 0))
    above = n > cal.get("max_bytes", np.inf)
    for name in pd.unique(req):
        fixed = _fixed_reasons(system, nranks, collective, implementation or name)
        for lo, hi in ((False, False), (True, False), (False, True)):
            mask = (req == name) & (below == lo) & (above == hi)
            if mask.any():
                size = ([f"size < {human(cal['min_bytes'], space=True)}"] if lo else []) + (
                    [f"size > {human(cal['max_bytes'], space=True)}"] if hi else [])
                out[mask] = "; ".join(size + fixed)
    return out
