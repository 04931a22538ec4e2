"""``collbench calibrate``: fit a system to measured rows and say how well it fits."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..calibration import cross_validate, fit, geomean_error, measured_rows
from ..calibration.fitting import Fit, rank_span
from ..errors import InputError
from ..model.system import load_system
from ..results.io import atomic_write, read_results, write_results
from ..units import human


def _describe_fit(f: Fit, out=print):
    d = f.data
    out(f"# {'parameter':<40s}{'value':>14s}  status")
    lo_bytes = {p.key: p.value for p in f.params if p.kind == "llo"}
    for p in f.params:
        val = f"{p.value:.4g}" if p.kind != "span" else f"{lo_bytes[p.key] * math.exp(p.value):.4g}"
        out(f"  {p.name:<40s}{val:>14s}  {'fitted' if p.fitted else 'kept: ' + p.why}")
    out(f"# fit: {len(d)} rows in {f.seconds:.3f} s ({f.nfev} model evaluations)")
    err_all = geomean_error(d.time_us, d.predicted_us)
    big = d[d.nbytes >= 65536]
    line = f"# geomean error {err_all:.1%} over all sizes"
    if len(big):
        line += f", {geomean_error(big.time_us, big.predicted_us):.1%} from 64 KiB up ({len(big)} rows)"
    out(line)
    e = np.log(d.predicted_us / d.time_us)
    w = d.iloc[int(np.argmax(np.abs(e.to_numpy())))]
    out(f"# worst: {w['algorithm']} {human(w['nbytes'], space=True)} on {int(w['nranks'])} ranks: measured "
        f"{w['time_us']:.4g} us, predicted {w['predicted_us']:.4g} us "
        f"({w['predicted_us'] / w['time_us'] - 1:+.0%})")
    by = d.assign(e=np.abs(e)).groupby("nbytes", observed=True)["e"].mean()
    out(f"# worst size: {human(by.idxmax(), space=True)} (geomean error {math.expm1(by.max()):.1%} over "
        f"its {int((d.nbytes == by.idxmax()).sum())} rows)")
    parts = [f"{a} {geomean_error(g.time_us, g.predicted_us):.1%}"
             for a, g in d.groupby("algorithm", observed=True)]
    out("# per algorithm: " + ", ".join(parts))


def run(args) -> int:
    if not args.results:
        raise InputError("give one or more results files (.csv/.json from collbench run or import)")
    frames = [read_results(path) for path in args.results]
    df = pd.concat(frames, ignore_index=True)
    system = load_system(args.system) if args.system else None
    out_path = Path(args.output or "calibrated.toml")
    if out_path.suffix != ".toml":
        raise InputError(f"the fitted system is written as TOML: {out_path} must end in .toml")
    name = args.name or (system.name + "-fitted" if system else out_path.stem)
    data = measured_rows(df, args.timing)
    if data.empty:
        raise InputError(f"no measured rows in {', '.join(args.results)} "
                         "(model rows are not fitted to)")
    print(f"# collbench calibrate: {len(data)} measured rows from {', '.join(args.results)}: "
          f"{', '.join(sorted(data.collective.unique()))}, {human(data.nbytes.min(), space=True)}.."
          f"{human(data.nbytes.max(), space=True)}, {rank_span(data.nranks)} ranks, algorithms "
          f"{', '.join(sorted(data.algorithm.unique()))}")
    sizes = None
    if args.tiers:
        if system is not None:
            raise InputError("--tiers sizes the default system; with --system the base's tiers are used")
        try:
            sizes = [int(x) for x in args.tiers.split(",")]
        except ValueError:
            raise InputError(f"--tiers wants tier sizes like 8,16; got {args.tiers!r}") from None
        if not sizes or min(sizes) < 1 or math.prod(sizes) > 10 ** 9:
            raise InputError(f"--tiers wants tier sizes from 1 up (at most 1e9 ranks); got {args.tiers!r}")
    f = fit(df, system, files=args.results, name=name, timing=args.timing, tier_sizes=sizes)
    base = system.name if system else "starting values sized to the data"
    tiers = ", ".join(f"{t.name} x{t.size}" for t in f.system.tiers)
    print(f"# base: {base}; tiers: {tiers}")
    for why, n in f.skipped:
        print(f"# skipped {n} rows: {why}")
    _describe_fit(f)
    cal = f.system.calibration
    print(f"# covers {human(cal['min_bytes'], space=True)}..{human(cal['max_bytes'], space=True)}, ranks "
          f"{rank_span(cal['nranks'])}, {cal['tiers_measured']} tier(s) of {len(f.system.tiers)}: "
          "estimates beyond that are labelled as extrapolation")
    atomic_write(out_path, f.system.to_toml())
    print(f"# wrote {out_path}: collbench estimate --system {out_path} ... ; "
          f"mpiexec -n N collbench run --predict {out_path}")
    if args.csv:
        write_results(f.data, args.csv)
        print(f"# wrote the fitted rows with their predictions to {args.csv}")
    if args.cross_validate:
        cv = cross_validate(df, system, timing=args.timing)
        print("#")
        print(f"# cross-validation: fit on {cv['train_rows']} rows (every other size and rank "
              f"count), predict {cv['test_rows']} held-out rows")
        print(f"# held-out geomean error: {cv['error_all']:.1%} over all sizes, "
              f"{cv['error_big']:.1%} from 64 KiB up ({cv['big_rows']} rows)")
        print(f"# fastest algorithm predicted correctly at {cv['fastest']:.0%} of "
              f"{cv['fastest_points']} held-out (size, ranks) points "
              f"({cv['fastest_within_5pct']:.0%} within 5% of the measured fastest)")
    return 0


def add_parser(sub) -> None:
    c = sub.add_parser("calibrate", help="fit a system to measured rows (run/import output)",
                       epilog="examples:\n  collbench calibrate run1.csv run2.csv -o local.toml "
                              "--cross-validate\n  collbench calibrate h100.csv --system dgx-h100 "
                              "-o h100-fitted.toml")
    c.add_argument("results", nargs="*", help="results files (.csv or .json)")
    c.add_argument("--system", "-s", default=None,
                   help="preset or .toml to start from (default: one tier sized to the data)")
    c.add_argument("-o", "--output", default=None, help="fitted system (default calibrated.toml)")
    c.add_argument("--name", default=None, help="name of the fitted system")
    c.add_argument("--csv", default=None, help="also write the rows with their fitted predictions")
    c.add_argument("--tiers", default=None,
                   help="tier sizes of the default system, innermost first (e.g. 8 or 8,64); "
                        "default: sized to the data")
    c.add_argument("--timing", default="median", choices=("median", "mean"),
                   help="fit each row's median iteration time where recorded (default) or "
                        "its mean (time_us, what the table prints)")
    c.add_argument("--cross-validate", action="store_true",
                   help="also fit on half of the sizes and rank counts and predict the other half")
    c.set_defaults(func=run)
