"""Command line: ``collbench estimate|systems|run|...`` (also ``python -m collbench``).

Bad input prints one line ``collbench: error: ...`` and exits with code 2.
"""
from __future__ import annotations

import argparse
import sys


class UsageError(ValueError):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage too)
        raise UsageError(f"{self.prog}: {message}")


def add_size_args(p, default_b="8", default_e="8G"):
    p.add_argument("-b", "--minbytes", default=default_b, help="smallest size (K/M/G suffixes)")
    p.add_argument("-e", "--maxbytes", default=default_e, help="largest size")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-f", "--stepfactor", default=None, help="multiply size by this (default 2)")
    g.add_argument("-i", "--stepbytes", default=None, help="add this many bytes per step")


def cmd_estimate(args) -> int:
    from .model import estimate
    from .sizes import size_range
    from .system import load_system
    from .table import DTYPE_SIZES, NCCL_TYPE, estimate_table

    system = load_system(args.system)
    sizes = size_range(args.minbytes, args.maxbytes, args.stepfactor, args.stepbytes)
    if args.dtype not in DTYPE_SIZES:
        raise ValueError(f"unknown dtype {args.dtype!r}; valid: {', '.join(DTYPE_SIZES)}")
    df = estimate(system, sizes, collective=args.collective, algorithm=args.algo,
                  nranks=args.nranks, library_only=not args.all_algorithms)
    esize = DTYPE_SIZES[args.dtype]
    df["dtype"] = args.dtype
    df["count"] = df["nbytes"] // esize
    df["redop"] = "sum" if args.collective in ("allreduce", "reduce_scatter", "reduce") else "none"
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
        return 0
    if args.format == "json":
        sys.stdout.write(df.to_json(orient="records", indent=1) + "\n")
        return 0
    p = int(df["nranks"].iloc[0])
    print(f"# collbench estimate: {args.collective} on {system.name}, {p:,} ranks, "
          f"library {system.library}"
          f"{'' if not args.all_algorithms else ' (auto over every algorithm)'}")
    print(f"# model: {system.description}")
    t = estimate_table(show_terms=not args.brief)
    print("#")
    print(t.header())
    extra = df["extrapolated"].fillna("").astype(str)
    for (_, r), why in zip(df.iterrows(), extra):
        print(t.row({"size": r["nbytes"], "count": r["count"], "type": NCCL_TYPE[args.dtype],
                     "redop": r["redop"], "algo": r["algorithm"],
                     "time": (r["time_us"], "*") if why else r["time_us"],
                     "algbw": r["algbw_gbps"], "busbw": r["busbw_gbps"], "latency": r["latency_us"],
                     "bandwidth": r["bandwidth_us"], "reduce": r["reduce_us"],
                     "variant": r["variant"] if r["variant"] != r["algorithm"] else ""}))
    for req, g in df.groupby("requested", sort=False):
        print(f"# Avg bus bandwidth ({req}) : {g['busbw_gbps'].mean():.4g}")
    reasons = sorted(set(x for x in extra if x))
    if reasons:
        print(f"# * extrapolated beyond {system.name}'s calibration data: {'; '.join(reasons)}")
    return 0


def cmd_systems(args) -> int:
    from .system import load_system, systems
    names = args.names or systems()
    for i, n in enumerate(names):
        s = load_system(n)
        if args.verbose or args.names:
            if i:
                print()
            print(s.describe())
        else:
            tiers = " > ".join(f"{t.name} x{t.size} {t.bw_gbps:g} GB/s" for t in s.tiers)
            print(f"{s.name:24s} {s.max_ranks:>10,} ranks  {s.library:5s} {tiers}")
    return 0


def build_parser() -> Parser:
    from .algorithms import COLLECTIVES
    p = Parser(prog="collbench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    sub.required = True

    e = sub.add_parser("estimate", help="model time of a collective (nccl-tests-shaped table)")
    e.add_argument("--system", "-s", required=True, help="preset name or path to a .toml")
    add_size_args(e)
    e.add_argument("--algo", default="auto", help="comma list of algorithms, 'auto' or 'all'")
    e.add_argument("--nranks", "-N", type=int, default=None, help="ranks (default: whole system)")
    e.add_argument("--collective", default="allreduce", help=", ".join(COLLECTIVES))
    e.add_argument("-d", "--dtype", default="float32")
    e.add_argument("--all-algorithms", action="store_true",
                   help="let auto choose among every algorithm, not only the system library's")
    e.add_argument("--format", choices=("table", "csv", "json"), default="table")
    e.add_argument("--brief", action="store_true", help="no per-term columns")
    e.set_defaults(func=cmd_estimate)

    s = sub.add_parser("systems", help="list presets, or show named systems' tiers and sources")
    s.add_argument("names", nargs="*", help="preset names or .toml paths to describe")
    s.add_argument("-v", "--verbose", action="store_true", help="tiers and sources of every preset")
    s.set_defaults(func=cmd_systems)

    from .runtime.cli import add_run_parser    # imports no MPI until `run` runs
    add_run_parser(sub)
    from .reports import add_parsers            # sweep, plot, report
    add_parsers(sub)
    from .importers import add_parser as add_import_parser
    add_import_parser(sub)
    from .calibrate import add_parser as add_calibrate_parser
    add_calibrate_parser(sub)
    return p


def launcher_rank() -> int:
    import os
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def main(argv=None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except BrokenPipeError:               # `collbench estimate ... | head`: not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, KeyError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if launcher_rank() == 0:          # under mpiexec every rank sees it: say it once
            print(f"collbench: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collbench: interrupted", file=sys.stderr)
        return 130
