"""``collbench estimate``: the model's nccl-tests-shaped table."""
from __future__ import annotations

import sys

from ..algorithms import COLLECTIVES
from ..model.api import estimate
from ..model.system import load_system
from ..results.table import estimate_table
from ..units import dtype, size_range
from ..validation.checked import checked
from .common import add_size_args

EXAMPLES = """examples:
  collbench estimate --system dgx-h100 --nranks 8 -b 8 -e 8G -f 2
  collbench estimate --system gb200-nvl72 --nranks 1440 --algo ring,tree,auto -b 1M -e 1G
  collbench estimate --system my-cluster.toml --algo 'hier(ring>rhd)' --format csv
"""


def add_parser(sub) -> None:
    e = sub.add_parser("estimate", help="model time of a collective (nccl-tests-shaped table)",
                       description="Model time of a collective on a system, per size and "
                                   "algorithm.", epilog=EXAMPLES)
    e.add_argument("--system", "-s", required=True, help="preset name or path to a .toml")
    add_size_args(e)
    e.add_argument("--algo", default="auto",
                   help="comma list of algorithms, 'auto', 'all' or a hier label")
    e.add_argument("--nranks", "-N", type=int, default=None, help="ranks (default: whole system)")
    e.add_argument("--collective", default="allreduce", help=", ".join(COLLECTIVES))
    e.add_argument("-d", "--dtype", default="float32", help="sets the count column only")
    e.add_argument("--all-algorithms", action="store_true",
                   help="let auto choose among every algorithm, not only the system library's")
    e.add_argument("--format", choices=("table", "csv", "json"), default="table")
    e.add_argument("--brief", action="store_true", help="no per-term columns")
    e.add_argument("--no-check", action="store_true",
                   help="do not say how far the corpus's real runs check this estimate "
                        "(saves the ~0.1-1 s collbench validate takes for the system)")
    e.set_defaults(func=run)


def run(args) -> int:
    system = load_system(args.system)
    sizes = size_range(args.minbytes, args.maxbytes, args.stepfactor, args.stepbytes)
    dt = dtype(args.dtype)
    df = estimate(system, sizes, collective=args.collective, algorithm=args.algo,
                  nranks=args.nranks, library_only=not args.all_algorithms)
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
        return 0
    if args.format == "json":
        sys.stdout.write(df.to_json(orient="records", indent=1) + "\n")
        return 0
    redop = "sum" if COLLECTIVES[args.collective].reduces else "none"
    p = int(df["nranks"].iloc[0])
    print(f"# collbench estimate: {args.collective} on {system.name}, {p:,} ranks, "
          f"library {system.library}"
          f"{'' if not args.all_algorithms else ' (auto over every algorithm)'}")
    print(f"# model: {system.description}")
    t = estimate_table(show_terms=not args.brief)
    print("#")
    print(t.header())
    extra = (df["extrapolated"].fillna("").astype(str).tolist() if "extrapolated" in df
             else [""] * len(df))
    cols = zip(df["nbytes"], df["algorithm"].astype(str), df["variant"].astype(str),
               df["time_us"], df["algbw_gbps"], df["busbw_gbps"], df["latency_us"],
               df["bandwidth_us"], df["reduce_us"], extra)
    for nb, algo, variant, tm, algbw, busbw, lat, bw, red, why in cols:
        print(t.row({"size": nb, "count": nb // dt.itemsize, "type": dt.nccl, "redop": redop,
                     "algo": algo, "time": (tm, "*") if why else tm, "algbw": algbw,
                     "busbw": busbw, "latency": lat, "bandwidth": bw, "reduce": red,
                     "variant": variant if variant != algo else ""}))
    for req, g in df.groupby("requested", sort=False, observed=True):
        print(f"# Avg bus bandwidth ({req}) : {g['busbw_gbps'].mean():.4g}")
    reasons = sorted(set(x for x in extra if x))
    if reasons:
        print(f"# * extrapolated beyond {system.name}'s calibration data: {'; '.join(reasons)}")
    if not args.no_check:
        for line in checked(system, args.collective, p).lines():
            print(f"# {line}")
    return 0
