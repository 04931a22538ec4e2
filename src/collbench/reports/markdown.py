"""One Markdown page from result tables: measured tables per run, the model's presets, plots."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..results.io import atomic_write
from ..results.schema import column
from ..units import human


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(df: pd.DataFrame, out: Path, images: list) -> Path:
    parts = ["# collbench report", ""]
    m = df[df.source == "measured"]
    if not m.empty:
        parts += ["## Measured all-reduce", ""]
        for p, g in m.groupby("nranks", observed=True):
            host = ", ".join(sorted(set(column(g, "host").dropna().astype(str)))) or "?"
            lib = column(g, "mpi_version").dropna().astype(str)
            parts += [f"### {p} ranks on {host}" + (f" ({lib.iloc[0]})" if len(lib) else ""), ""]
            piv = g.pivot_table(index="nbytes", columns="algorithm", values="busbw_gbps",
                                observed=True)
            piv.index = [human(i) for i in piv.index]
            parts += ["busbw (GB/s):", "", _md_table(piv.reset_index(names="size")), ""]
            best = g[g.nbytes > 0].loc[g[g.nbytes > 0].groupby("nbytes").time_us.idxmin()]
            parts += ["fastest algorithm by size: " + ", ".join(
                f"{human(r.nbytes)} {r.algorithm}" for r in best.itertuples()), ""]
            if column(g, "ratio").notna().any():
                r = g.dropna(subset=["ratio"])
                gm = np.exp(np.log(r.ratio.astype(float)).groupby(r.algorithm, observed=True).mean())
                parts += [f"measured / predicted (by {r.predicted_system.iloc[0]}), geometric mean "
                          "per algorithm:", "",
                          _md_table(gm.rename("meas/pred").reset_index()), ""]
            wrong = int(column(g, "nwrong").fillna(0).sum())
            parts += [f"wrong elements: {wrong} ({'OK' if wrong == 0 else 'FAILED'})", ""]
    mo = df[(df.source == "model") & (df.requested == "auto") & (df.collective == "allreduce")]
    if not mo.empty:
        parts += ["## Model: every preset, auto algorithm", ""]
        pick = [1 << 10, 1 << 20, 1 << 26, 1 << 30]
        t = mo[mo.nbytes.isin(pick)]
        t = t.assign(size=t.nbytes.map(human),
                     cell=[f"{b:.3g} GB/s ({a})" for b, a in zip(t.busbw_gbps, t.algorithm)])
        piv = t.pivot_table(index=["system", "nranks"], columns="size", values="cell",
                            aggfunc="first", observed=True)
        piv = piv[[human(x) for x in pick if human(x) in piv.columns]]
        parts += ["busbw (and the algorithm auto picks):", "", _md_table(piv.reset_index()), ""]
    if images:
        parts += ["## Plots", ""]
        for img in images:
            rel = Path(img).name
            parts += [f"![{rel}]({rel})", ""]
    path = out / "report.md"
    atomic_write(path, "\n".join(parts))
    return path


