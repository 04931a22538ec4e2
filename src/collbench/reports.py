"""Pictures and pages from result tables: ``collbench sweep``, ``collbench plot``, ``collbench report``.

Everything reads the common schema (``collbench.read_results``), so model sweeps and
measured runs mix freely.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import read_results, write_results

NVLINK = ("dgx-a100", "dgx-h100", "dgx-h200", "dgx-b200", "gb200-nvl72")
PALETTE = {"mpi": "#444444", "ring": "#1f77b4", "tree": "#2ca02c", "rhd": "#d62728",
           "rd": "#9467bd", "mesh": "#8c564b", "mesh2": "#e377c2", "innet": "#ff7f0e",
           "hier": "#17becf", "bruck": "#bcbd22"}


def progress(done, total, what):
    sys.stderr.write(f"\r# {done}/{total} {what:<40s}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise ValueError("plots need matplotlib: pip install 'collbench[plot]'") from None
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
    ax.set_xticklabels([_human(t) for t in ticks])
    ax.set_xlabel("message size (bytes)")


def _human(n):
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div:
            return f"{n / div:g}{unit}"
    return f"{n:g}"


def load(paths) -> pd.DataFrame:
    frames = [read_results(p) for p in paths]
    if not frames:
        raise ValueError("no results files given")
    return pd.concat(frames, ignore_index=True)


# ---- plots ---------------------------------------------------------------------------------

def plot_measured(df: pd.DataFrame, out: Path) -> list:
    """Measured (solid) and predicted (dashed) busbw against size, one panel per rank count."""
    plt = _plt()
    m = df[df.source == "measured"].copy()
    if m.empty:
        return []
    written = []
    for p, g in m.groupby("nranks"):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
        for algo, a in g.groupby("algorithm"):
            a = a.sort_values("nbytes")
            a = a[a.nbytes > 0]
            c = PALETTE.get(algo, None)
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
        host = ", ".join(sorted(set(g.host.dropna().astype(str))))
        pred_sys = ", ".join(sorted(set(g.predicted_system.dropna().astype(str))))
        rpn = g.ranks_per_node.iloc[0]
        rpn = int(rpn) if pd.notna(rpn) else "?"
        fig.suptitle(f"all-reduce measured on {host}: {p} ranks, {rpn} per "
                     f"node ({g.mpi_version.iloc[0]}, thread level {g.thread_level.iloc[0]})"
                     + (f"; dashed: predicted by {pred_sys}" if pred_sys else ""))
        axes[0].legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = out / f"measured_{p}ranks.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def plot_presets(df: pd.DataFrame, out: Path) -> list:
    """Predicted busbw and time of every preset side by side (auto), NVLink against UB."""
    plt = _plt()
    m = df[(df.source == "model") & (df.requested == "auto") & (df.collective == "allreduce")]
    if m.empty:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    cmap_nv = plt.get_cmap("Greens")
    cmap_ub = plt.get_cmap("Reds")
    systems = list(dict.fromkeys(m.system))
    nv = [s for s in systems if s in NVLINK]
    ub = [s for s in systems if s not in NVLINK]
    for group, cmap, style in ((nv, cmap_nv, "-"), (ub, cmap_ub, "--")):
        for i, s in enumerate(group):
            g = m[(m.system == s) & (m.nbytes > 0)]
            for p, gp in g.groupby("nranks"):
                gp = gp.sort_values("nbytes")
                col = cmap(0.45 + 0.55 * i / max(1, len(group) - 1))
                lab = f"{s} x{p:,}"
                axes[0].plot(gp.nbytes, gp.busbw_gbps, style, color=col, label=lab, lw=1.6)
                axes[1].plot(gp.nbytes, gp.time_us, style, color=col, label=lab, lw=1.6)
    axes[0].set_ylabel("predicted bus bandwidth (GB/s)")
    axes[1].set_ylabel("predicted time (us)")
    axes[1].set_yscale("log")
    for ax in axes:
        _size_axis(ax)
    axes[0].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle("all-reduce, auto algorithm: NVLink systems (green, solid) against UnifiedBus "
                 "systems (red, dashed), each at full size")
    fig.tight_layout()
    path = out / "presets.png"
    fig.savefig(path)
    plt.close(fig)
    return [path]


def crossover(system, nranks_list, sizes, library_only=True):
    from .model import estimate
    rows = []
    for p in nranks_list:
        df = estimate(system, sizes, nranks=int(p), library_only=library_only)
        rows.append(list(df.algorithm))
    return rows


def plot_crossover(system, out: Path, library_only=True) -> Path:
    """The algorithm auto picks, by size and rank count."""
    from matplotlib.colors import ListedColormap

    from .system import load_system
    plt = _plt()
    s = load_system(system)
    sizes = np.floor(2.0 ** np.arange(3, 35, 0.5))
    ranks = sorted({int(x) for x in np.unique(np.round(np.geomspace(2, s.max_ranks, 40)))})
    grid = crossover(s, ranks, sizes, library_only)
    names = sorted({a for row in grid for a in row}, key=lambda a: list(PALETTE).index(a)
                   if a in PALETTE else 99)
    idx = np.array([[names.index(a) for a in row] for row in grid])
    fig, ax = plt.subplots(figsize=(10, 5.5))
    cmap = ListedColormap([PALETTE.get(a, "#999999") for a in names])
    ax.pcolormesh(sizes, ranks, idx, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, shading="nearest")
    ax.set_yscale("log")
    _size_axis(ax)
    ax.set_ylabel("ranks")
    ax.grid(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE.get(a, "#999999")) for a in names]
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


# ---- report --------------------------------------------------------------------------------

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
        for p, g in m.groupby("nranks"):
            host = ", ".join(sorted(set(g.host.dropna().astype(str))))
            parts += [f"### {p} ranks on {host} ({g.mpi_version.iloc[0]}, thread level "
                      f"{g.thread_level.iloc[0]}, {int(g.iters.iloc[0])} iterations)", ""]
            piv = g.pivot_table(index="nbytes", columns="algorithm", values="busbw_gbps")
            piv.index = [_human(i) for i in piv.index]
            parts += ["busbw (GB/s):", "", _md_table(piv.reset_index(names="size")), ""]
            best = g[g.nbytes > 0].loc[g[g.nbytes > 0].groupby("nbytes").time_us.idxmin()]
            parts += ["fastest algorithm by size: " + ", ".join(
                f"{_human(r.nbytes)} {r.algorithm}" for r in best.itertuples()), ""]
            if g.ratio.notna().any():
                r = g.dropna(subset=["ratio"])
                gm = np.exp(np.log(r.ratio.astype(float)).groupby(r.algorithm).mean())
                parts += [f"measured / predicted (by {r.predicted_system.iloc[0]}), geometric mean "
                          "per algorithm:", "",
                          _md_table(gm.rename("meas/pred").reset_index()), ""]
            wrong = int(g.nwrong.fillna(0).sum())
            parts += [f"wrong elements: {wrong} ({'OK' if wrong == 0 else 'FAILED'})", ""]
    mo = df[(df.source == "model") & (df.requested == "auto") & (df.collective == "allreduce")]
    if not mo.empty:
        parts += ["## Model: every preset, auto algorithm", ""]
        pick = [1 << 10, 1 << 20, 1 << 26, 1 << 30]
        t = mo[mo.nbytes.isin(pick)]
        t = t.assign(size=t.nbytes.map(_human),
                     cell=[f"{b:.3g} GB/s ({a})" for b, a in zip(t.busbw_gbps, t.algorithm)])
        piv = t.pivot_table(index=["system", "nranks"], columns="size", values="cell",
                            aggfunc="first")
        piv = piv[[_human(x) for x in pick if _human(x) in piv.columns]]
        parts += ["busbw (and the algorithm auto picks):", "", _md_table(piv.reset_index()), ""]
    if images:
        parts += ["## Plots", ""]
        for img in images:
            rel = Path(img).name
            parts += [f"![{rel}]({rel})", ""]
    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
    return path


# ---- CLI -----------------------------------------------------------------------------------

def cmd_sweep(args) -> int:
    from .model import sweep
    from .sizes import size_range
    sizes = size_range(args.minbytes, args.maxbytes, args.stepfactor, args.stepbytes)
    systems = args.system.split(",") if args.system else None
    nranks = None
    if args.nranks:
        nranks = [x if x in ("full", "domain") else int(x) for x in args.nranks.split(",")]
    df = sweep(systems, sizes, algorithms=args.algo, nranks=nranks,
               collectives=args.collective.split(","), library_only=not args.all_algorithms,
               progress=None if args.quiet else progress)
    write_results(df, args.output)
    print(f"# {len(df):,} model rows -> {args.output}")
    return 0


def cmd_plot(args) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    df = load(args.results)
    written = plot_measured(df, out) + plot_presets(df, out)
    for s in (args.crossover or "").split(","):
        if s:
            written.append(plot_crossover(s, out))
    if not written:
        raise ValueError("nothing to plot: the files hold no measured rows, no model rows of "
                         "algorithm auto, and no --crossover system was named")
    for w in written:
        print(w)
    return 0


def cmd_report(args) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    df = load(args.results)
    images = []
    if not args.no_plots:
        images = plot_measured(df, out) + plot_presets(df, out)
        for s in (args.crossover or "").split(","):
            if s:
                images.append(plot_crossover(s, out))
    path = report(df, out, images)
    print(path)
    return 0


def add_parsers(sub):
    from .cli import add_size_args
    s = sub.add_parser("sweep", help="model grid (systems x ranks x algorithms x sizes) to a file")
    s.add_argument("--system", default=None, help="comma list (default: every preset)")
    add_size_args(s)
    s.add_argument("--algo", default="auto", help="comma list, auto or all")
    s.add_argument("--nranks", default=None,
                   help="comma list of counts, 'full' and 'domain' (default: full)")
    s.add_argument("--collective", default="allreduce")
    s.add_argument("--all-algorithms", action="store_true")
    s.add_argument("-o", "--output", required=True, help="results .csv or .json")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="PNG plots from results files")
    p.add_argument("results", nargs="+")
    p.add_argument("-o", "--output", default="results", help="directory for the PNGs")
    p.add_argument("--crossover", default=None, help="comma list of systems for crossover maps")
    p.set_defaults(func=cmd_plot)

    r = sub.add_parser("report", help="one Markdown page with tables and plots")
    r.add_argument("results", nargs="+")
    r.add_argument("-o", "--output", default="results", help="directory for report.md and PNGs")
    r.add_argument("--crossover", default=None)
    r.add_argument("--no-plots", action="store_true")
    r.set_defaults(func=cmd_report)
