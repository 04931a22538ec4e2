"""``collbench validate``: the model against the shipped corpus of real runs, case by case."""
from __future__ import annotations

import math

import pandas as pd

from ..errors import InputError
from ..results.io import atomic_write, check_path
from ..units import human
from ..validation.cases import geomean_error, summary, validate


def add_parser(sub) -> None:
    v = sub.add_parser(
        "validate", help="hold the model against the shipped corpus of real nccl-tests runs",
        epilog="examples:\n  collbench validate\n  collbench validate --case 'xx-h100-*'\n"
               "  collbench validate --system my-cluster.toml --case 'alcf-polaris-n8-*'\n"
               "  collbench validate --corpus held-out/")
    v.add_argument("--system", default=None,
                   help="hold every case against this system (default: each case's own)")
    v.add_argument("--case", default=None, help="glob over corpus ids (index.tsv)")
    v.add_argument("--fitted", action="store_true",
                   help="each case's system as fitted to the corpus (systems/fitted/; in-sample "
                        "errors: those cases were fitted to)")
    v.add_argument("--corpus", default=None,
                   help="another corpus folder laid out as the shipped one (index.tsv with "
                        "columns id, per_node and optionally system; raw/ID.* outputs), e.g. a "
                        "held-out set; without a system column a case's gpu_or_npu column "
                        "picks it (H100 -> dgx-h100, GB200 -> gb200-nvl72, ...)")
    v.add_argument("--all", action="store_true", help="also list the cases left out, and why")
    v.add_argument("--csv", default=None, help="write the per-case table (.csv or .json)")
    v.set_defaults(func=run)


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.0%}" \
        if x < 0 else f"{x:.0%}"


def _spread(a, b) -> str:
    if b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA:
        return "-"
    return f"{_pct(a)}/{_pct(b)}"


def run(args) -> int:
    out = check_path(args.csv) if args.csv else None
    if args.fitted and args.system:
        raise InputError("--fitted picks each case's fitted system; --system names one: not both")
    t = validate(args.system, args.case, fitted=args.fitted, corpus=args.corpus)
    done = t.dropna(subset=["error_all"])
    print("# collbench validate: auto's estimates against the corpus (out-of-place rows); "
          "error = geometric mean of |predicted/measured - 1| in log terms"
          + ("; systems fitted to these cases (in-sample)" if args.fitted else ""))
    print(f"# {'case':<44s} {'system':<15s} {'collective':<14s} {'ranks':>6s} {'/node':>5s} "
          f"{'rows':>5s} {'err>=1M':>8s} {'err all':>8s} {'worst at':>9s} {'worst':>7s} "
          f"{'spread':>9s}  algo there / at the largest size")
    for r in done.itertuples():
        print(f"  {r.case:<44s} {r.system:<15s} {r.collective:<14s} {r.nranks:>6d} "
              f"{r.per_node:>5d} {r.rows:>5d} {_pct(r.error_1m):>8s} {_pct(r.error_all):>8s} "
              f"{human(r.worst_size):>9s} {_pct(r.worst_error):>7s} "
              f"{_spread(r.spread_1m, r.spread_all):>9s}  {r.worst_algorithm} / {r.algorithm}"
              + (f"  (the run of {r.same_as}, published twice)" if isinstance(r.same_as, str)
                 else ""))
    if args.all:
        for r in t[t.error_all.isna()].itertuples():
            print(f"# left out: {r.case}: {r.note}")
    print("#\n# per system and collective (targets: <= 10% from 1 MiB, <= 20% over all sizes)")
    for r in summary(t).itertuples():
        print(f"# {r.system:<15s} {r.collective:<14s} {int(r.cases):>3d} case(s)  "
              f"from 1 MiB {_pct(r.error_1m):>6s}  all sizes {_pct(r.error_all):>6s}  "
              f"within targets {int(r.within_targets)}/{int(r.cases)}")
    rep = done.dropna(subset=["spread_all"])
    if len(rep):
        print(f"# spread (from 1 MiB / all sizes): how far a run lies from the median of the "
              f"corpus's runs of its setup (system, collective, ranks, per node); {len(rep)} case "
              f"runs have repeats: mean spread {_pct(geomean_error(rep.spread_1m))} / "
              f"{_pct(geomean_error(rep.spread_all))}, the model's error on them "
              f"{_pct(geomean_error(rep.error_1m))} / {_pct(geomean_error(rep.error_all))}; no single prediction "
              "gets below the mean spread of a setup's runs")
    copies = int(done.same_as.notna().sum())
    print(f"# {len(done)} case runs compared"
          + (f" ({len(done) - copies} distinct: {copies} repeat another file's run exactly and "
             f"count once in the summary)" if copies else "")
          + f"; {int(t.error_all.isna().sum())} left out (--all says why)")
    if out:
        atomic_write(out, t.to_json(orient="records", indent=1) if out.suffix == ".json"
                     else t.to_csv(index=False))
    return 0
