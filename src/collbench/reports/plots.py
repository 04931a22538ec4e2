"""PNG plots from result tables (model sweeps and measured runs mix freely).

Colours come from data, not from per-name tables: an algorithm's colour is its place in
the algorithm registry, a system's colour family its ``vendor``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..algorithms import REGISTRY
from ..errors import InputError
from ..model.api import estimate
from ..model.system import load_system
from ..results.io import read_results
from ..results.schema import column, typed
from ..units import human

VENDOR_CMAPS = {"NVIDIA": "Greens", "Huawei": "Reds"}


def algorithm_colour(name: str) -> str:
    """A fixed colour per registered algorithm (tab20 by registry order); grey otherwise."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    names = list(REGISTRY)
    base = name.split("(")[0]
    if base not in names:
        return "#999999"
    return str(to_hex(colormaps["tab10" if len(names) <= 10 else "tab20"](names.index(base))))


def vendor_cmap(vendor: str) -> str:
    return VENDOR_CMAPS.get(vendor, "Blues")


def _plt():
    try:
        # optional dependency: only plots need matplotlib
        import matplotlib
    except ImportError:
        raise InputError("plots need matplotlib: pip install 'collbench[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _size_axis(ax):
    ax.set_xscale("log", base=2)
    ticks = [2 ** k for k in range(0, 41, 4)]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ticks if lo <= t <= hi]
    ax.set_xticks(ticks)
    ax.set_xticklabels([human(t) for t in ticks])
    ax.set_xlabel("message size (bytes)")


def load(paths) -> pd.DataFrame:
    frames = [read_results(p).assign(results_file=Path(p).name) for p in paths]
    if not frames:
        raise InputError("no results files given")
    df = typed(pd.concat(frames, ignore_index=True))
    # what a report or plot reads but a file may lack (a plain CSV of the required columns)
    return df.assign(**{c: column(df, c) for c in OPTIONAL_READ if c not in df.columns})


OPTIONAL_READ = ("system", "variant", "requested", "predicted_us", "predicted_system", "ratio",
                 "host", "nwrong")


# ---- plots ---------------------------------------------------------------------------------

def plot_measured(df: pd.DataFrame, out: Path) -> list:
    """Measured (solid) and predicted (dashed) busbw against size, one panel per rank count."""
    plt = _plt()
    m = df[df.source == "measured"].copy()
    m["predicted_us"] = column(m, "predicted_us")
    m["predicted_system"] = column(m, "predicted_system")
    if m.empty:
        return []
    written = []
    for p, g in m.groupby("nranks", observed=True):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
        for algo, a in g.groupby("algorithm", observed=True):
            a = a.sort_values("nbytes")
            a = a[a.nbytes > 0]
            c = algorithm_colour(str(algo))
            axes[0].plot(a.nbytes, a.busbw_gbps, "-o", ms=3, color=c, label=f"{algo} measured")
            axes[1].plot(a.nbytes, a.time_us, "-o", ms=3, color=c, label=f"{algo} measured")
            pred = a.dropna(subset=["predicted_us"])
            if not pred.empty:
                factor = 2 * (p - 1) / p
                pbw = pred.nbytes / pred.predicted_us.astype(float) / 1e3 * factor
                axes[0].plot(pred.nbytes, pbw, "--", color=c, alpha=0.8, label=f"{algo} predicted")
                axes[1].plot(pred.nbytes, pred.predicted_us.astype(float), "--", color=c, alpha=0.8)
        axes[0].set_ylabel("bus bandwidth (GB/s)")
        axes[1].set_ylabel("time (us)")
        axes[1].set_yscale("log")
        for ax in axes:
            _size_axis(ax)
        host = ", ".join(sorted(set(column(g, "host").dropna().astype(str)))) or "?"
        pred_sys = ", ".join(sorted(set(g.predicted_system.dropna().astype(str))))
        rpn = column(g, "ranks_per_node").dropna()
        rpn = int(rpn.iloc[0]) if len(rpn) else "?"
        lib = column(g, "mpi_version").dropna().astype(str)
        fig.suptitle(f"all-reduce measured on {host}: {p} ranks, {rpn} per node"
                     + (f" ({lib.iloc[0]})" if len(lib) else "")
                     + (f"; dashed: predicted by {pred_sys}" if pred_sys else "")
                     + ("\nOVERSUBSCRIBED: more ranks than cores, times measure the scheduler"
                        if column(g, "oversubscribed").astype("boolean").fillna(False).any()
                        else ""))
        axes[0].legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = out / f"measured_{p}ranks.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def plot_presets(df: pd.DataFrame, out: Path) -> list:
    """Predicted all-reduce busbw and time of every preset with ``auto``: one column of panels
    per vendor (so NVLink and UnifiedBus systems are never drawn in near-identical shades), one
    colour per system, solid at one scale-up domain and dashed at the system's full size."""
    plt = _plt()
    m = df[(df.source == "model") & (df.requested == "auto") & (df.collective == "allreduce")
           & (df.nbytes > 0)]
    if m.empty:
        return []
    systems = list(dict.fromkeys(m.system.astype(str)))
    vendors: dict[str, list[str]] = {}
    for s in systems:
        try:
            vendors.setdefault(load_system(s).vendor or "other", []).append(s)
        except InputError:
            vendors.setdefault("other", []).append(s)
    cols = len(vendors)
    fig, axes = plt.subplots(2, cols, figsize=(7.5 * cols, 9), sharex=True, sharey="row",
                             squeeze=False)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (vendor, group) in enumerate(vendors.items()):
        top, bottom = axes[0][c], axes[1][c]
        for i, s in enumerate(group):
            g = m[m.system == s]
            counts = sorted(g.nranks.unique())
            for k, p in enumerate(counts):
                gp = g[g.nranks == p].sort_values("nbytes")
                style = "-" if k == 0 else "--"
                lab = f"{s} x{p:,}"
                top.plot(gp.nbytes, gp.busbw_gbps, style, color=cycle[i % len(cycle)], lw=1.6,
                         label=lab)
                bottom.plot(gp.nbytes, gp.time_us, style, color=cycle[i % len(cycle)], lw=1.6)
        top.set_title(f"{vendor}: predicted all-reduce, auto")
        top.set_ylabel("bus bandwidth (GB/s)")
        bottom.set_ylabel("time (us)")
        bottom.set_yscale("log")
        bottom.set_xlabel("size")
        for ax in (top, bottom):
            _size_axis(ax)
        top.legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle("every preset (model): solid = one scale-up domain, dashed = whole system")
    fig.tight_layout()
    path = out / "presets.png"
    fig.savefig(path)
    plt.close(fig)
    return [path]


def crossover(system, nranks_list, sizes, library_only=True):
    rows = []
    for p in nranks_list:
        df = estimate(system, sizes, nranks=int(p), library_only=library_only)
        rows.append(list(df.algorithm))
    return rows


def plot_crossover(system, out: Path, library_only=True) -> Path:
    """The algorithm auto picks, by size and rank count."""
    plt = _plt()
    from matplotlib.colors import ListedColormap  # after _plt(): matplotlib is optional

    s = load_system(system)
    sizes = np.floor(2.0 ** np.arange(3, 35, 0.5))
    ranks = sorted({int(x) for x in np.unique(np.round(np.geomspace(2, s.max_ranks, 40)))})
    grid = crossover(s, ranks, sizes, library_only)
    order = list(REGISTRY)
    names = sorted({a for row in grid for a in row},
                   key=lambda a: order.index(a) if a in order else 99)
    idx = np.array([[names.index(a) for a in row] for row in grid])
    fig, ax = plt.subplots(figsize=(10, 5.5))
    cmap = ListedColormap([algorithm_colour(a) for a in names])
    ax.pcolormesh(sizes, ranks, idx, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, shading="nearest")
    ax.set_yscale("log")
    _size_axis(ax)
    ax.set_ylabel("ranks")
    ax.grid(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=algorithm_colour(a)) for a in names]
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1), title="auto picks")
    boundaries = np.cumprod([t.size for t in s.tiers])[:-1]
    for b in boundaries:
        ax.axhline(b, color="white", lw=1, ls=":")
    ax.set_title(f"{s.name}: the algorithm auto picks ({'library' if library_only else 'all'} "
                 f"algorithms); dotted: tier boundaries")
    fig.tight_layout()
    path = out / f"crossover_{s.name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path




def ratio_axis(ax) -> None:
    """A log y axis of ratios labelled 0.2, 0.5, 1, 2, 5 (not 10^0)."""
    from matplotlib.ticker import FuncFormatter
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 3, 5)
        else ""))


def plot_versus(v, path: Path) -> Path:
    """Time on each other system / time on the first, by size: one panel per collective, one
    line per chip count (darker = more chips), one line style per other system."""
    plt = _plt()
    t = v.table[v.table.nbytes > 0]
    colls = list(dict.fromkeys(t.collective))
    base, others = v.systems[0], v.systems[1:]
    fig, axes = plt.subplots(1, len(colls), figsize=(5.2 * len(colls), 5.0), sharey=True,
                             squeeze=False)
    counts = sorted(t.nranks.unique())
    cmap = plt.get_cmap("viridis")
    styles = ["-", "--", ":", "-."]
    for ax, coll in zip(axes[0], colls):
        g = t[t.collective == coll]
        for i, p in enumerate(counts):
            gp = g[g.nranks == p].pivot(index="nbytes", columns="system", values="time_us")
            if base not in gp:
                continue
            for j, other in enumerate(others):
                if other not in gp:
                    continue
                ratio = gp[other] / gp[base]
                ax.plot(ratio.index, ratio.values, styles[j % 4], lw=1.7,
                        color=cmap(0.9 * i / max(1, len(counts) - 1)),
                        label=f"{other} / {base}, {p:,} chips")
        ax.axhline(1.0, color="#444444", lw=0.9)
        ratio_axis(ax)
        _size_axis(ax)
        ax.set_title(coll)
        ax.set_xlabel("size")
    axes[0][0].set_ylabel(f"time ratio to {base} (above 1: {base} faster)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{', '.join(others)} against {base}, equal chip counts, auto algorithm (model)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
