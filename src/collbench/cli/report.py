"""``collbench report``: one Markdown page with tables and plots."""
from __future__ import annotations

from pathlib import Path

from ..reports.markdown import report
from ..reports.plots import load
from .plot import images


def add_parser(sub) -> None:
    r = sub.add_parser("report", help="one Markdown page with tables and plots",
                       epilog="example:\n  collbench report results/run-*.csv "
                              "results/model-presets.csv -o results")
    r.add_argument("results", nargs="+")
    r.add_argument("-o", "--output", default="results", help="directory for report.md and PNGs")
    r.add_argument("--crossover", default=None)
    r.add_argument("--no-plots", action="store_true")
    r.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    df = load(args.results)
    print(report(df, out, [] if args.no_plots else images(df, out, args.crossover)))
    return 0
