"""Compare two results files (runs, imports or model estimates): per (collective, algorithm,
placement, ranks, size) the ratio of times NEW / BASE and a verdict.

The verdict uses the files' own spread where they have repeats (several runs of the same
point in one file): the threshold is the larger of the stated one and the spread seen on
either side, so noise the runs themselves show is never called a change.  Without repeats the
stated threshold alone decides (10% by default, asv's default factor).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..results.schema import column
from .plots import _plt, _size_axis, algorithm_colour, ratio_axis

KEYS = ["collective", "algorithm", "placement", "nranks", "nbytes"]
SLOWER, FASTER, SAME = "slower", "faster", "same"


@dataclass
class Comparison:
    table: pd.DataFrame           # one row per key present in both files
    only_base: int                # keys in one file only (not compared)
    only_new: int
    threshold: float

    @property
    def slower(self) -> int:
        return int((self.table.verdict == SLOWER).sum())

    @property
    def faster(self) -> int:
        return int((self.table.verdict == FASTER).sum())

    @property
    def geomean(self) -> float:
        r = self.table.ratio.to_numpy(float)
        return float(np.exp(np.log(r).mean())) if len(r) else float("nan")


def _points(df: pd.DataFrame) -> pd.DataFrame:
    """Per key: median time, relative spread over repeats, number of repeats."""
    d = pd.DataFrame({
        "collective": df["collective"].astype(str), "algorithm": df["algorithm"].astype(str),
        "placement": column(df, "placement").astype("string").fillna("").astype(str),
        "nranks": df["nranks"].astype("int64"), "nbytes": df["nbytes"].astype("int64"),
        "time_us": df["time_us"].astype(float)})
    d = d[d.nbytes > 0]
    g = d.groupby(KEYS, sort=True)["time_us"]
    out = g.agg(median="median", lo="min", hi="max", repeats="size").reset_index()
    out["spread"] = np.where(out.repeats > 1, (out.hi - out.lo) / out["median"], 0.0)
    return out


def compare(base: pd.DataFrame, new: pd.DataFrame, threshold: float = 0.10) -> Comparison:
    """Ratio NEW / BASE of the median time per key, with a verdict per key."""
    if not (0 < threshold < 10 and np.isfinite(threshold)):
        raise InputError(f"--threshold must be a fraction above 0 (0.1 = 10%); got {threshold}")
    b, n = _points(base), _points(new)
    m = b.merge(n, on=KEYS, suffixes=("_base", "_new"))
    if m.empty:
        raise InputError("the two files share no (collective, algorithm, placement, ranks, size): "
                         "nothing to compare")
    m["ratio"] = m.median_new / m.median_base
    m["threshold"] = np.maximum(threshold, np.maximum(m.spread_base, m.spread_new))
    # with repeats on both sides a change must also leave the other side's range
    both = (m.repeats_base > 1) & (m.repeats_new > 1)
    up = (m.ratio > 1 + m.threshold) & (~both | (m.lo_new > m.hi_base))
    down = (m.ratio < 1 / (1 + m.threshold)) & (~both | (m.hi_new < m.lo_base))
    m["verdict"] = np.where(up, SLOWER, np.where(down, FASTER, SAME))
    keys_b = set(map(tuple, b[KEYS].itertuples(index=False)))
    keys_n = set(map(tuple, n[KEYS].itertuples(index=False)))
    both_keys = keys_b & keys_n
    return Comparison(m, len(keys_b - both_keys), len(keys_n - both_keys), threshold)


def plot_comparison(cmp: Comparison, path, base_name: str, new_name: str):
    """Ratio against size, one line per (collective, algorithm, placement, ranks), with the
    threshold band; slower points in red, faster in green."""
    plt = _plt()
    t = cmp.table
    fig, ax = plt.subplots(figsize=(11, 5.5))
    ax.axhspan(1 / (1 + cmp.threshold), 1 + cmp.threshold, color="#dddddd", alpha=0.6,
               label=f"same (within {cmp.threshold:.0%} or the runs' own spread)")
    ax.axhline(1.0, color="#555555", lw=0.8)
    series = list(t.groupby(["collective", "algorithm", "placement", "nranks"], sort=True))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (key, g) in enumerate(series):
        coll, algo, place, p = key
        g = g.sort_values("nbytes")
        label = f"{coll} {algo} {p} ranks" + (f" {place}" if place else "")
        colour = algorithm_colour(str(algo))
        if colour == "#999999" or len({a for (_, a, _, _), _ in series}) == 1:
            colour = cycle[k % len(cycle)]          # one algorithm: tell series apart
        ax.plot(g.nbytes, g.ratio, "--" if place == "in-place" else "-", marker="o", ms=3,
                lw=1.4, color=colour, label=label)
        for verdict, ring in ((SLOWER, "#d62728"), (FASTER, "#2ca02c")):
            s = g[g.verdict == verdict]
            ax.scatter(s.nbytes, s.ratio, s=45, facecolors="none", edgecolors=ring, lw=1.3,
                       zorder=5)
    ratio_axis(ax)
    _size_axis(ax)
    ax.set_xlabel("size")
    ax.set_ylabel(f"time ratio {new_name} / {base_name}")
    ax.set_title(f"{new_name} against {base_name}: {cmp.slower} slower (red rings), "
                 f"{cmp.faster} faster (green), geometric mean ratio {cmp.geomean:.3f}")
    ax.legend(fontsize=8, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
