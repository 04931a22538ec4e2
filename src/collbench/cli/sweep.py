"""``collbench sweep``: a model grid (systems x ranks x algorithms x sizes) to a file."""
from __future__ import annotations

from ..model.api import sweep
from ..results.io import write_results
from ..units import size_range
from .common import add_size_args, progress


def add_parser(sub) -> None:
    s = sub.add_parser("sweep", help="model grid (systems x ranks x algorithms x sizes) to a file",
                       epilog="example:\n  collbench sweep -b 8 -e 16G --algo auto,all "
                              "--nranks domain,full -o results/model-presets.csv")
    s.add_argument("--system", default=None, help="comma list (default: every preset)")
    add_size_args(s)
    s.add_argument("--algo", default="auto", help="comma list, auto or all")
    s.add_argument("--nranks", default=None,
                   help="comma list of counts, 'full' and 'domain' (default: full)")
    s.add_argument("--collective", default="allreduce", help="comma list")
    s.add_argument("--all-algorithms", action="store_true")
    s.add_argument("-o", "--output", required=True, help="results .csv or .json (replaced)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    s.set_defaults(func=run)


def _count(x: str):
    if x in ("full", "domain"):
        return x
    if not x.strip().isdigit() or len(x.strip()) > 12:
        from ..errors import InputError
        raise InputError(f"--nranks {x!r}: use whole numbers, 'full' or 'domain'")
    return int(x)


def run(args) -> int:
    sizes = size_range(args.minbytes, args.maxbytes, args.stepfactor, args.stepbytes)
    systems = args.system.split(",") if args.system else None
    nranks = [_count(x) for x in args.nranks.split(",")] if args.nranks else None
    df = sweep(systems, sizes, algorithms=args.algo, nranks=nranks,
               collectives=args.collective.split(","), library_only=not args.all_algorithms,
               progress=None if args.quiet else progress)
    write_results(df, args.output)
    print(f"# {len(df):,} model rows -> {args.output}")
    return 0
