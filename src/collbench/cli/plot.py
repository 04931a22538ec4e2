"""``collbench plot``: PNG plots from results files."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..reports.plots import load, plot_crossover, plot_measured, plot_presets


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="PNG plots from results files",
                       epilog="example:\n  collbench plot results/run-*.csv -o results "
                              "--crossover dgx-h100,cloudmatrix384")
    p.add_argument("results", nargs="+")
    p.add_argument("-o", "--output", default="results", help="directory for the PNGs")
    p.add_argument("--crossover", default=None, help="comma list of systems for crossover maps")
    p.set_defaults(func=run)


def images(df, out: Path, crossover: str | None) -> list[Path]:
    written = plot_measured(df, out) + plot_presets(df, out)
    for s in (crossover or "").split(","):
        if s:
            written.append(plot_crossover(s, out))
    return written


def run(args) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    written = images(load(args.results), out, args.crossover)
    if not written:
        raise InputError("nothing to plot: the files hold no measured rows, no model rows of "
                         "algorithm auto, and no --crossover system was named")
    for w in written:
        print(w)
    return 0
