"""Speed of `collbench calibrate`, measured side by side in one run.

    python benchmarks/speed_calibrate.py [--rows 1000] [--repeat 5]

Rows: a one-tier 8-rank host (a system like the one calibrate fits here) timed by the model
for mpi/ring/rd/rhd/binomial at 2..8 ranks and log-spaced sizes, with 3% noise.
1. The whole fit of those rows (identification, both starting points, robust fit).
2. One evaluation of the model at every row: calibrate's path (plans built once, the kernel
   called per group) vs asking `collbench.estimate` for every group (what a fit built on the
   public API would pay per evaluation).
"""
import argparse
import timeit

import numpy as np
import pandas as pd

from collbench import calibration as C
from collbench import estimate
from collbench.calibration import fitting as CF
from collbench.model.system import System, Tier

ALGOS = ("mpi", "ring", "rd", "rhd", "binomial")


def host():
    return System("host", (Tier("local", 8, bw_gbps=9.0, lat_sw_us=0.4, eff_lo=0.3, eff_hi=0.8,
                                eff_lo_bytes=32768.0, eff_hi_bytes=2097152.0),),
                  library="mpi", library_algorithms=("rd", "rhd", "ring"), base_lat_us=0.6,
                  reduce_gbps=20.0,
                  implementations={a: {"step_us": 3.0, "base_us": 0.0, "bw_factor": 1.2,
                                       "bw_factor_lo": 0.5} for a in ALGOS[1:]})


def rows(n, seed=0):
    s = host()
    ranks = range(2, 9)
    per = -(-n // (len(ranks) * len(ALGOS)))
    sizes = np.unique(np.round(np.logspace(3, 28, per, base=2)).astype(np.int64))
    out = []
    for p in ranks:
        for a in ALGOS:
            name, impl = ("auto", "mpi") if a == "mpi" else (a, None)
            df = estimate(s, sizes, algorithm=name, nranks=p, implementation=impl)
            out.append(pd.DataFrame(dict(source="measured", collective="allreduce", algorithm=a,
                                         nranks=p, nbytes=df.nbytes, time_us=df.time_us,
                                         busbw_gbps=df.busbw_gbps)))
    df = pd.concat(out, ignore_index=True).iloc[:n]
    df["time_us"] *= np.exp(np.random.default_rng(seed).normal(0, 0.03, len(df)))
    return df


def best_of(fn, repeat):
    times = timeit.repeat(fn, number=1, repeat=repeat)
    return min(times), float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    df = rows(args.rows)
    f = C.fit(df)
    best, med = best_of(lambda: C.fit(df), args.repeat)
    print(f"fit of {len(df)} rows ({df.groupby(['nranks', 'algorithm']).ngroups} groups): "
          f"best {best:.3f} s, median {med:.3f} s ({f.nfev} model evaluations, "
          f"{sum(p.fitted for p in f.params)} parameters fitted, geomean error "
          f"{C.geomean_error(f.data.time_us, f.data.predicted_us):.1%})")
    print(f"  = {med:.2f} of the 1 s budget")

    data = C.measured_rows(df)
    groups, _ = C.build_groups(f.system, data)
    params = CF._params(f.system, groups, False)
    model = CF.Model(f.system, groups, params)
    theta = np.array([p.x0 for p in params])
    fast, _ = best_of(lambda: model.predict(theta), args.repeat * 4)
    keys = data.groupby(["nranks", "algorithm"])["nbytes"].apply(lambda s: s.to_numpy())

    def public():
        for (p, a), sizes in keys.items():
            name, impl = ("auto", "mpi") if a == "mpi" else (a, None)
            estimate(f.system, sizes, algorithm=name, nranks=int(p), implementation=impl)
    slow, _ = best_of(public, args.repeat)
    print(f"one evaluation at every row: calibrate's path {fast * 1e3:.2f} ms, "
          f"estimate() per group {slow * 1e3:.1f} ms: {slow / fast:.0f}x")


if __name__ == "__main__":
    main()
