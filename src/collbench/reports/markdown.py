"""One Markdown page from result tables: measured tables per run, the model's presets, plots."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..results.io import atomic_write
from ..results.schema import column
from ..units import human


def _cell(v) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)) or v is pd.NA:
        return "-"
    if isinstance(v, (float, np.floating)):
        return _sig3(float(v))
    return str(v)


def _sig3(v: float) -> str:
    """Three significant digits, never in exponent form from 1,000 up ("1,050", not
    "1.05e+03")."""
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _time(v) -> str:
    if v is None or v is pd.NA or not np.isfinite(v):
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _bw(v) -> str:
    return "-" if v is None or v is pd.NA or not np.isfinite(v) else f"{v:.2f}"


def _md_table(df: pd.DataFrame) -> str:
    """A Markdown table; columns named '... us' print like nccl-tests times, '... GB/s' with
    two decimals, other numbers with 3 significant digits; missing values as '-'."""
    cols = list(df.columns)
    fmt = [_time if str(c).endswith(" us") else _bw if str(c).endswith("GB/s") else _cell
           for c in cols]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f(r[c]) for f, c in zip(fmt, cols)) + " |")
    return "\n".join(lines)


def _first(g: pd.DataFrame, name: str) -> str | None:
    v = column(g, name).dropna()
    return str(v.iloc[0]) if len(v) else None


def _run_heading(run: str, g: pd.DataFrame) -> list[str]:
    colls = ", ".join(sorted(set(g.collective.astype(str))))
    ranks = ", ".join(str(p) for p in sorted(set(g.nranks)))
    hosts = sorted({h for x in column(g, "host").dropna().astype(str) for h in x.split(",")})
    host = (", ".join(hosts) if len(hosts) <= 3 else f"{len(hosts)} hosts ({', '.join(hosts[:2])}, "
            "...)") if hosts else "host not recorded"
    what = [x for x in (_first(g, "mpi_version"), _first(g, "tool")) if x]
    lines = [f"### Run `{run}`: {colls} on {ranks} ranks, {host}"
             + (f" ({'; '.join(what)})" if what else ""), ""]
    f = _first(g, "file")
    if f and _first(g, "tool") and not str(run).startswith("run-"):
        lines += [f"source file: `{Path(f).name}`", ""]
    over = column(g, "oversubscribed").astype("boolean").fillna(False)
    if over.any():
        lines += ["> **Warning: oversubscribed** (more ranks than cores on a host): the times "
                  "measure the scheduler as much as the algorithms.", ""]
    return lines


def _measured(m: pd.DataFrame) -> list[str]:
    """Per run, per placement: time (us) and busbw (GB/s) by size and algorithm, the spread
    over ranks where it was recorded, predictions and the check."""
    parts = ["## Measured", ""]
    # files of schema 1 carry no run id: their file and rank count stand in for one
    runs = column(m, "run").astype("string").fillna(
        "file " + column(m, "results_file").astype("string").fillna("?") + ", "
        + m.nranks.astype(str) + " ranks")
    for run, g in m.groupby(runs, sort=True):
        parts += _run_heading(str(run), g)
        places = column(g, "placement").astype("string").fillna("")
        for place, gp in g.groupby(places, sort=False):
            gp = gp[gp.nbytes > 0]
            if gp.empty:
                continue
            label = f" ({place})" if place else ""
            for coll, gc in gp.groupby(gp.collective.astype(str), sort=True):
                t = gc.pivot_table(index="nbytes", columns="algorithm", values="time_us",
                                   observed=True, aggfunc="median")
                b = gc.pivot_table(index="nbytes", columns="algorithm", values="busbw_gbps",
                                   observed=True, aggfunc="median")
                both = pd.concat({"time us": t, "busbw GB/s": b}, axis=1)
                both.columns = [f"{a} {kind}" for kind, a in both.columns]
                order = [f"{a} {k}" for a in t.columns for k in ("time us", "busbw GB/s")]
                both = both[order]
                both.index = [human(i) for i in both.index]
                parts += [f"{coll}{label}, median over repeats:", "",
                          _md_table(both.reset_index(names="size")), ""]
                lo, hi = column(gc, "time_min_us"), column(gc, "time_max_us")
                if lo.notna().any():
                    spread = ((hi - lo) / gc.time_us).astype(float)
                    parts += [f"spread of the time over ranks (max - min) / time: median "
                              f"{np.nanmedian(spread):.1%}, largest {np.nanmax(spread):.1%}", ""]
                best = gc.loc[gc.groupby("nbytes").time_us.idxmin()]
                if gc.algorithm.nunique() > 1:
                    parts += ["fastest algorithm by size: " + ", ".join(
                        f"{human(r.nbytes)} {r.algorithm}" for r in best.itertuples()), ""]
        ratio = column(g, "ratio").astype(float)
        if ratio.notna().any():
            r = g[ratio.notna()]
            gm = np.exp(np.log(r.ratio.astype(float)).groupby(r.algorithm, observed=True).mean())
            parts += [f"measured / predicted, predicted by **{_first(r, 'predicted_system')}**, "
                      "geometric mean per algorithm:", "",
                      _md_table(gm.rename("meas/pred").reset_index()), ""]
        wrong = column(g, "nwrong")
        if wrong.notna().any():
            n = int(wrong.fillna(0).sum())
            parts += [f"wrong elements: {n} ({'OK' if n == 0 else 'FAILED'})", ""]
        else:
            parts += ["wrong elements: not checked in this run", ""]
    return parts


def report(df: pd.DataFrame, out: Path, images: list) -> Path:
    parts = ["# collbench report", ""]
    m = df[df.source == "measured"]
    if not m.empty:
        parts += _measured(m)
    mo = df[(df.source == "model") & (df.requested == "auto") & (df.collective == "allreduce")]
    if not mo.empty:
        parts += ["## Model: every preset, auto algorithm", ""]
        pick = [1 << 10, 1 << 20, 1 << 26, 1 << 30]
        t = mo[mo.nbytes.isin(pick)]
        t = t.assign(size=t.nbytes.map(human),
                     cell=[f"{_sig3(b)} GB/s ({a})" for b, a in zip(t.busbw_gbps, t.algorithm)])
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


