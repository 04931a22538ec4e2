"""How much each asv benchmark's recorded value moves by noise alone on this machine, and the
regression threshold that follows (written into asv.conf.json's regressions_thresholds with
--write).

For the in-process benchmarks, ROUNDS independent rounds each record what asv records (the
median of SAMPLES timings); the noise is (90th - 10th percentile) / median over the rounds
(one outlying round on a shared machine is not the noise a step detector sees).  For the measured
runs, the spread over repeated jobs of the same build comes from results files of identical runs
(results/calib-2ranks-{1,2,3}.csv, made by results/regenerate.sh).  Threshold = max(10%, 2 x noise),
rounded up to 5%.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "benchmarks"))
sys.path.insert(0, str(HERE))

ROUNDS, SAMPLES = 9, 7


def recorded(fn) -> float:
    times = []
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def noise_of(make) -> float:
    vals = []
    for _ in range(ROUNDS):
        fn = make()
        fn()                                   # warm
        vals.append(recorded(fn))
    q = statistics.quantiles(vals, n=10)            # deciles: q[0] = 10%, q[-1] = 90%
    return (q[-1] - q[0]) / statistics.median(vals)


def families():
    import bench_calibrate as bc
    import bench_kernels as bk

    def method(cls, name, *params):
        def make():
            obj = cls()
            obj.setup(*params)
            return lambda: getattr(obj, name)(*params)
        return make

    return {
        r"bench_kernels\.Kernel\..*": [method(bk.Kernel, "time_cython", "auto", 1000),
                                      method(bk.Kernel, "time_cython", "ring", 1_000_000),
                                      method(bk.Kernel, "time_numpy", "hier", 1000)],
        r"bench_kernels\.Frame\..*": [method(bk.Frame, "time_frame", 1),
                                     method(bk.Frame, "time_frame", 1_000_000)],
        r"bench_kernels\.API\..*": [method(bk.API, "time_estimate_one_size"),
                                   method(bk.API, "time_planner_million_sizes")],
        r"bench_kernels\.PythonReference\..*": [method(bk.PythonReference, "time_python",
                                                       "ring")],
        r"bench_calibrate\..*": [method(bc.Calibrate, "time_fit", 200)],
    }


def measured_noise(root: Path) -> float | None:
    import pandas as pd
    files = sorted(root.glob("results/calib-2ranks-*.csv"))
    if len(files) < 2:
        return None
    frames = [pd.read_csv(f, comment="#") for f in files]
    col = "time_median_us" if "time_median_us" in frames[0] else "time_us"
    keys = ["algorithm", "nbytes"]
    joined = pd.concat([f[keys + [col]].assign(job=i) for i, f in enumerate(frames)])
    g = joined.groupby(keys)[col]
    spread = (g.max() - g.min()) / g.median()
    return float(spread.quantile(0.9))


FIDELITY_THRESHOLD = 0.01


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="update asv.conf.json")
    args = ap.parse_args(argv)
    thresholds = {}
    print(f"# noise of the value asv records (median of {SAMPLES}), 10th-90th percentile over "
          f"{ROUNDS} rounds")
    for regex, makers in families().items():
        n = max(noise_of(m) for m in makers)
        thresholds[regex] = max(0.10, math.ceil(2 * n * 20) / 20)
        print(f"{regex:<40s} noise {n:6.1%}  threshold {thresholds[regex]:.0%}")
    m = measured_noise(HERE.parent)
    if m is not None:
        key = r"bench_run\.MeasuredAllreduce\.track_time_us.*"
        thresholds[key] = max(0.10, math.ceil(2 * m * 20) / 20)
        print(f"{'bench_run.MeasuredAllreduce.track_time_us':<40s} noise {m:6.1%} (p90 over "
              f"points, 3 identical jobs)  threshold {thresholds[key]:.0%}")
    thresholds[r"bench_run\.MeasuredAllreduce\.track_spread_pct.*"] = 100.0   # never a regression
    # the model's errors against the corpus: no timing, no noise; any growth past 1% is the
    # model's (bench_fidelity)
    thresholds[r"bench_fidelity\..*"] = FIDELITY_THRESHOLD
    if args.write:
        conf_path = HERE / "asv.conf.json"
        conf = json.loads(conf_path.read_text())
        conf["regressions_thresholds"] = thresholds
        conf_path.write_text(json.dumps(conf, indent=4) + "\n")
        print(f"# wrote regressions_thresholds to {conf_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
