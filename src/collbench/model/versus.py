"""Systems against each other at equal chip counts: the planner's form of the question behind
collbench (do weaker chips win by scale and interconnect?).

``versus`` estimates each collective with ``auto`` (each system's own library choice) on every
system at every rank count both hold, and reports the ratio to the first system, the sizes at
which the faster system changes (crossovers), and what one given message (e.g. a training step's
gradient all-reduce) costs on each.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..units import check_sizes
from .api import estimate
from .system import System, load_system

DEFAULT_COLLECTIVES = ("allreduce", "all_gather", "all_to_all")


@dataclass
class Versus:
    table: pd.DataFrame        # system, collective, nranks, nbytes, time_us, busbw_gbps, algorithm
    crossovers: pd.DataFrame   # collective, nranks, nbytes, faster_below, faster_from
    skipped: list[str]         # (system, ranks) left out and why
    systems: list[str]


def versus(systems: Sequence[System | str], nranks: Iterable[int], *,
           collectives: Iterable[str] = DEFAULT_COLLECTIVES, nbytes=None,
           step_bytes: int | None = None) -> Versus:
    """Every system at every rank count it holds, every collective, ``auto``."""
    loaded = [load_system(s) for s in systems]
    if len(loaded) < 2:
        raise InputError("compare-systems needs at least two systems")
    names = [s.name for s in loaded]
    if len(set(names)) != len(names):
        raise InputError(f"the same system twice: {', '.join(names)}")
    counts = sorted({int(p) for p in nranks})
    if not counts or counts[0] < 2:
        raise InputError("rank counts must be 2 or more")
    sizes = check_sizes(2.0 ** np.arange(3, 35) if nbytes is None else nbytes)
    if step_bytes is not None:
        sizes = np.unique(np.append(sizes, check_sizes(step_bytes)))
    frames, skipped = [], []
    for p in counts:
        fits = [s for s in loaded if p <= s.max_ranks]
        for s in loaded:
            if p > s.max_ranks:
                skipped.append(f"{s.name} holds {s.max_ranks:,} chips, not {p:,}")
        if len(fits) < 2:
            continue
        for coll in collectives:
            for s in fits:
                df = estimate(s, sizes, nranks=p, collective=coll, algorithm="auto")
                frames.append(pd.DataFrame({
                    "system": s.name, "collective": coll, "nranks": p,
                    "nbytes": df.nbytes.to_numpy(), "time_us": df.time_us.to_numpy(),
                    "busbw_gbps": df.busbw_gbps.to_numpy(),
                    "algorithm": df.variant.astype(str).to_numpy()}))
    if not frames:
        raise InputError("no rank count is held by two of the systems; "
                         + "; ".join(dict.fromkeys(skipped)))
    table = pd.concat(frames, ignore_index=True)
    return Versus(table, _crossovers(table), list(dict.fromkeys(skipped)), names)


def _crossovers(table: pd.DataFrame) -> pd.DataFrame:
    """Sizes at which the fastest system changes, per collective and rank count."""
    rows = []
    for (coll, p), g in table[table.nbytes > 0].groupby(["collective", "nranks"], sort=False):
        piv = g.pivot(index="nbytes", columns="system", values="time_us").sort_index()
        best = piv.idxmin(axis=1)
        prev = None
        for size, name in best.items():
            if prev is not None and name != prev:
                rows.append({"collective": coll, "nranks": p, "nbytes": int(size),
                             "faster_below": prev, "faster_from": name})
            prev = name
    return pd.DataFrame(rows, columns=["collective", "nranks", "nbytes", "faster_below",
                                       "faster_from"])
