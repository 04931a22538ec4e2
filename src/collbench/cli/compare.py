"""``collbench compare BASE NEW``: what got faster or slower between two results files."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError
from ..reports.compare import SLOWER, compare, plot_comparison
from ..reports.plots import load
from ..results.io import atomic_write, check_path
from ..units import human


def add_parser(sub) -> None:
    c = sub.add_parser(
        "compare", help="time ratio NEW / BASE per collective, algorithm, ranks and size, with "
        "a verdict; exit 1 if anything got slower",
        epilog="examples:\n  collbench compare results/before.csv results/after.csv\n"
               "  collbench compare base.csv new.csv --threshold 0.05 --plot cmp.png\n"
               "exit codes: 0 nothing slower, 1 something slower, 2 bad input")
    c.add_argument("base")
    c.add_argument("new")
    c.add_argument("--threshold", type=float, default=0.10,
                   help="relative change called a change when a point has no repeats; with "
                        "repeats, the larger of this and the runs' own spread")
    c.add_argument("--plot", default=None, help="write a PNG of the ratios")
    c.add_argument("--csv", default=None, help="write the comparison table (.csv or .json)")
    c.add_argument("--only-changes", action="store_true", help="print changed points only")
    c.set_defaults(func=run)


def run(args) -> int:
    csv_path = check_path(args.csv) if args.csv else None
    if args.plot and not str(args.plot).endswith(".png"):
        raise InputError(f"--plot {args.plot!r} must end in .png")
    base, new = load([args.base]), load([args.new])
    cmp = compare(base, new, args.threshold)
    t = cmp.table
    print(f"# collbench compare: {args.new} against {args.base}; verdict threshold "
          f"{cmp.threshold:.0%} or the runs' own spread where a point has repeats")
    print(f"# {'collective':>14s} {'algo':>8s} {'place':>12s} {'ranks':>6s} {'size':>8s} "
          f"{'base(us)':>10s} {'new(us)':>10s} {'ratio':>7s} {'thresh':>7s} {'n':>5s}  verdict")
    for r in t.itertuples():
        if args.only_changes and r.verdict not in ("slower", "faster"):
            continue
        print(f"  {r.collective:>14s} {r.algorithm:>8s} {r.placement or '-':>12s} "
              f"{r.nranks:>6d} {human(r.nbytes):>8s} {r.median_base:>10.2f} {r.median_new:>10.2f} "
              f"{r.ratio:>7.3f} {r.threshold:>6.0%} {f'{r.repeats_base}/{r.repeats_new}':>5s}  "
              f"{r.verdict.upper() if r.verdict == SLOWER else r.verdict}")
    print(f"# {len(t)} points compared: {cmp.slower} slower, {cmp.faster} faster, "
          f"{len(t) - cmp.slower - cmp.faster} same; geometric mean ratio {cmp.geomean:.3f}"
          + (f"; not in both files: {cmp.only_base} base only, {cmp.only_new} new only"
             if cmp.only_base or cmp.only_new else ""))
    if csv_path:
        text = (t.to_json(orient="records", indent=1) if csv_path.suffix == ".json"
                else t.to_csv(index=False))
        atomic_write(csv_path, text)
    if args.plot:
        plot_comparison(cmp, Path(args.plot), Path(args.base).stem, Path(args.new).stem)
        print(f"# plot: {args.plot}")
    if cmp.slower:
        print(f"collbench compare: {cmp.slower} point(s) slower", file=sys.stderr)
    return 1 if cmp.slower else 0
