"""Launch/synchronisation floors (``Tier.sync_us``) fitted to the corpus's small sizes.

NCCL's tuner constants rank algorithms; what nccl-tests measures at a few bytes also holds the
kernel launch and the synchronisation of the ranks, which grow with the reach of the
collective (inside a node, across a network).  The model charges it once per collective, the
``sync_us`` of the outermost tier the ranks span.

The fit: for each corpus case of a validation system and each of its runs, the median over
sizes up to ``SMALL`` bytes of (measured time - ``auto``'s estimate with every ``sync_us`` at
0); per outermost tier, the median over the runs (a run published twice counted once), never
below 0.  A system file that takes a
fitted floor cites this module and the corpus cases listed here; ``python -m
collbench.validation.floors`` prints them, and a test holds every file to it.
"""
from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd

from ..algorithms.base import Geometry
from ..model.api import estimate
from ..model.system import System
from .cases import (
    _system,
    case_rows,
    copies,
    index,
    per_node,
    per_node_system,
    system_for,
    system_names,
)

SMALL = 1024          # bytes: at and below this the time is latency only


def without_sync(system: System) -> System:
    return replace(system, tiers=tuple(replace(t, sync_us=0.0) for t in system.tiers))


def residuals(name: str) -> pd.DataFrame:
    """Per run of each corpus case held against ``name``: the outermost tier spanned and the
    median of measured - model (without floors) over the sizes up to ``SMALL``."""
    base = without_sync(_system(name))
    copied = copies(name)                   # a run published twice counts once
    rows = []
    for e in index():
        if system_for(e["id"])[0] != name:
            continue
        df = case_rows(e["id"])
        s = per_node_system(base, per_node(e, base))
        for (_, coll, p), g in df[df.nbytes <= SMALL].groupby(["run", "collective", "nranks"],
                                                              observed=True):
            p = int(p)
            if p > s.max_ranks or (e["id"], str(coll), p) in copied:
                continue
            sizes = g.nbytes.to_numpy(np.int64)
            est = estimate(s, sizes, nranks=p, collective=str(coll), algorithm="auto")
            geo = Geometry(s, p)
            rows.append({"case": e["id"], "collective": str(coll), "nranks": p,
                         "tier": geo.ks[-1], "tier_name": geo.tiers[-1].name,
                         "measured_us": float(np.median(g.time_us)),
                         "model_us": float(np.median(est.time_us)),
                         "residual_us": float(np.median(g.time_us.to_numpy()
                                                        - est.time_us.to_numpy()))})
    return pd.DataFrame(rows, columns=["case", "collective", "nranks", "tier", "tier_name",
                                       "measured_us", "model_us", "residual_us"])


def fit_sync(name: str) -> dict[int, tuple[float, list[str]]]:
    """{tier index: (sync_us, corpus cases it rests on)} for the tiers the corpus reaches."""
    r = residuals(name)
    out = {}
    for tier, g in r.groupby("tier"):
        value = max(0.0, round(float(np.median(g.residual_us)), 1))
        out[int(tier)] = (value, sorted(set(g.case)))
    return out


# Platforms the corpus measures, pooled by kind: a tier without small-size runs of its own
# takes the median of its kind's fits ((system, tier index) pairs).
KINDS: dict[str, list[tuple[str, int]]] = {
    "NCCL inside an NVLink node": [("aws-p5", 0), ("snellius-h100", 0)],
    "NCCL across nodes over InfiniBand": [("dgx-a100", 1), ("snellius-h100", 1),
                                          ("a100-pcie-ib", 1)],
    "NCCL inside a PCIe node": [("pc-2080ti-pcie", 0)],
    "RCCL inside an xGMI node": [("mi300x-node", 0)],
}
# Tiers with no small-size runs in the corpus: (system, tier) -> (the same hardware measured
# elsewhere as (system, tier), or a kind of KINDS; why).
DERIVED: dict[tuple[str, int], tuple[tuple[str, int] | str, str]] = {
    ("dgx-h100", 0): (("aws-p5", 0), "a p5 is an HGX H100 8-GPU board, DGX H100's"),
    ("dgx-h200", 0): (("aws-p5", 0), "the HGX H100 board and NVSwitch with H200 chips"),
    **{(n, 0): ("NCCL inside an NVLink node", "NCCL inside an NVLink node")
       for n in ("dgx-a100", "aws-p4de", "alcf-polaris", "dgx-b200", "gb200-nvl72")},
    **{(n, 1): ("NCCL across nodes over InfiniBand", "NCCL across nodes over InfiniBand")
       for n in ("dgx-h100", "dgx-h200", "dgx-b200", "gb200-nvl72")},
    ("a100-pcie-ib", 0): ("NCCL inside a PCIe node", "NCCL inside a PCIe node"),
    ("mi355x-node", 0): ("RCCL inside an xGMI node", "RCCL inside an xGMI node"),
}


def floors() -> dict[tuple[str, int], tuple[float, str]]:
    """Every fitted or derived floor: (system, tier) -> (sync_us, where it comes from)."""
    fits = {(n, k): v for n in system_names() for k, v in fit_sync(n).items()}
    out: dict[tuple[str, int], tuple[float, str]] = {
        key: (value, "fitted to " + ", ".join(cases)) for key, (value, cases) in fits.items()}
    for key, (origin, why) in DERIVED.items():
        if isinstance(origin, str):
            vals = [fits[m][0] for m in KINDS[origin]]
            out[key] = (round(float(np.median(vals)), 1),
                        f"no small-size run of this tier in the corpus; median over {origin}: "
                        + ", ".join(f"{n} tier {k} {fits[(n, k)][0]:g}" for n, k in KINDS[origin]))
        else:
            value, cases = fits[origin]
            out[key] = (value, f"no small-size run of this tier in the corpus; {origin[0]} tier "
                        f"{origin[1]} ({why}), fitted to {', '.join(cases)}")
    return out


def main(argv: list[str] | None = None) -> int:
    for (name, tier), (value, origin) in sorted(floors().items()):
        t = _system(name).tiers[tier]
        flag = "" if t.sync_us == value else f"  (file has {t.sync_us:g})"
        print(f"{name:15} tier {tier} {t.name:18} sync_us {value:6.1f}{flag}  {origin}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
