"""``collbench compare-systems A B ...``: systems against each other at equal chip counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.versus import DEFAULT_COLLECTIVES, versus
from ..reports.plots import plot_versus
from ..units import human, parse_size, size_range
from ..validation.checked import checked
from .common import add_size_args


def add_parser(sub) -> None:
    c = sub.add_parser(
        "compare-systems", help="two or more systems at equal chip counts: time, busbw, ratio, "
        "crossovers, and what one message (a training step's gradients) costs on each",
        epilog="examples:\n  collbench compare-systems gb200-nvl72 cloudmatrix384 "
               "--nranks 8,64,72,384,1024 --step 14G\n"
               "  collbench compare-systems gb200-nvl72 atlas-950-superpod --nranks 8192")
    c.add_argument("systems", nargs="+", help="preset names or TOML files (the first is the base)")
    c.add_argument("--nranks", default="8,64,72,384,1024",
                   help="comma list of chip counts (each system must hold it)")
    c.add_argument("--collectives", default=",".join(DEFAULT_COLLECTIVES))
    add_size_args(c, default_b="8", default_e="16G")
    c.add_argument("--step", default=None,
                   help="one message size to cost on each system (e.g. 14G: the fp16 gradients "
                        "of a 7B-parameter model)")
    c.add_argument("--show", default="8,64K,1M,64M,1G", help="sizes the table shows")
    c.add_argument("--plot", default=None, help="PNG of the time ratios to the first system")
    c.set_defaults(func=run)


def run(args) -> int:
    try:
        counts = [int(x) for x in str(args.nranks).split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--nranks {args.nranks!r}: a comma list of whole numbers") from None
    if args.plot and not str(args.plot).endswith(".png"):
        raise InputError(f"--plot {args.plot!r} must end in .png")
    colls = [c.strip() for c in args.collectives.split(",") if c.strip()]
    step = parse_size(args.step) if args.step else None
    show = [parse_size(x) for x in args.show.split(",") if x.strip()]
    sizes = np.unique(np.array(size_range(args.minbytes, args.maxbytes, args.stepfactor,
                                          args.stepbytes) + show, dtype=np.int64))
    v = versus(args.systems, counts, collectives=colls, nbytes=sizes, step_bytes=step)
    base = v.systems[0]
    t = v.table
    print(f"# collbench compare-systems: {', '.join(v.systems)}; auto (each system's library "
          f"choice); ratio = time on the other / time on {base} (above 1: {base} faster)")
    for coll in colls:
        for p in sorted(t[t.collective == coll].nranks.unique()):
            g = t[(t.collective == coll) & (t.nranks == p)]
            names = [n for n in v.systems if n in set(g.system)]
            print(f"#\n# {coll} on {p:,} chips")
            head = f"# {'size':>8s}"
            for n in names:
                head += f" {n[:22]:>22s} {'busbw':>7s} {'algo':>23s}"
            head += "".join(f" {'ratio ' + n[:22]:>28s}" for n in names[1:])
            print(head)
            for size in sorted(set(show) | ({step} if step else set())):
                row = g[g.nbytes == size].set_index("system")
                if row.empty:
                    continue
                line = f"  {human(size):>8s}"
                for n in names:
                    r = row.loc[n]
                    line += f" {r.time_us:>19.1f} us {r.busbw_gbps:>7.1f} {r.algorithm[:23]:>23s}"
                line += "".join(f" {row.loc[n].time_us / row.loc[names[0]].time_us:>28.2f}"
                                for n in names[1:])
                print(line + ("   <- --step" if step == size else ""))
            xo = v.crossovers[(v.crossovers.collective == coll) & (v.crossovers.nranks == p)]
            if len(xo):
                print("# faster system changes at: " + "; ".join(
                    f"{human(r.nbytes)} ({r.faster_below} -> {r.faster_from})"
                    for r in xo.itertuples()))
            else:
                fastest = g.groupby("system").time_us.sum().idxmin()
                print(f"# no crossover: {fastest} is faster at every size")
    if step:
        print(f"#\n# one {human(step)} message (--step), all-reduce where asked:")
        s = t[(t.nbytes == step) & (t.collective == "allreduce")]
        for p, g in s.groupby("nranks"):
            cells = ", ".join(f"{r.system} {r.time_us / 1e3:.2f} ms" for r in g.itertuples())
            print(f"#   {p:>7,} chips: {cells}")
    print("#\n# how far real runs check each system (collbench validate, auto; geomean errors):")
    for spec, name in zip(args.systems, v.systems):
        got = [checked(spec, c) for c in colls]
        if all(c.runs.empty and not c.collectives for c in got):
            print(f"#   {name}: not checked: {got[0].reason}")
        else:
            print(f"#   {name}: " + "; ".join(c.brief() for c in got))
    for note in v.skipped:
        print(f"# left out: {note}")
    if args.plot:
        plot_versus(v, Path(args.plot))
        print(f"# plot: {args.plot}")
    return 0
