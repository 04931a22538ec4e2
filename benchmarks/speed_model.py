"""Speed of the cost-model kernel, measured side by side in one run (ratios, not seconds).

    python benchmarks/speed_model.py [--sizes 1000000] [--repeat 5]

1. One algorithm (ring all-reduce, DGX H100, 64 ranks) on N sizes: Cython kernel vs the same
   formula vectorised in NumPy vs the plain-Python reference (on a subset, scaled to N).
2. `auto` over every algorithm (each size evaluates every plan): estimates per second.
3. A sweep of every preset at its full size, every applicable algorithm, 64 sizes.
"""
import argparse
import time

import numpy as np

import collbench
from collbench.model import reference
from collbench.model.engine import compile_plans


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, default=1_000_000)
    ap.add_argument("--python-sizes", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    # sorted, like any -b/-e/-f sweep; log-uniform from 1 B to 16 GiB
    sizes = np.sort(np.floor(2.0 ** rng.uniform(0, 34, args.sizes)))
    system = collbench.preset("dgx-h100")
    p = 64

    rows = []
    for algo in ("ring", "auto"):
        comp = compile_plans(system, p, "allreduce", [algo], True)
        nplans = len(comp.rowplan)
        t_cy = best_of(lambda: comp.run(sizes, "cython"), args.repeat)
        t_np = best_of(lambda: comp.run(sizes, "numpy"), args.repeat)
        buf = comp.alloc(len(sizes))
        k_cy = best_of(lambda: comp.run(sizes, "cython", buf), args.repeat)
        k_np = best_of(lambda: comp.run(sizes, "numpy", buf), args.repeat)
        sub = sizes[:args.python_sizes]
        t0 = time.perf_counter()
        for n in sub:
            reference.cost(system, p, n, algorithm=algo)
        t_py = (time.perf_counter() - t0) * len(sizes) / len(sub)
        rows.append((algo, nplans, t_cy, t_np, t_py, k_cy, k_np))
        # same answers from both fast paths
        a, _ = comp.run(sizes[:1000], "cython")
        b, _ = comp.run(sizes[:1000], "numpy")
        assert np.allclose(a[0], b[0], rtol=1e-12)

    print(f"# cost-model kernel, {args.sizes:,} sizes, dgx-h100 x {p} ranks, allreduce "
          f"(best of {args.repeat}; Python on {args.python_sizes:,} sizes, scaled)")
    print("# 'call': fresh output arrays each call (page faults included); 'kernel': outputs reused")
    print(f"# {'algorithm':9s} {'plans':>5s} {'python ms':>10s} {'numpy ms':>9s} {'cython ms':>10s}"
          f" {'py/cy':>7s} {'np/cy':>6s} | {'numpy ms':>9s} {'cython ms':>10s} {'np/cy':>6s}"
          f" {'estimates/s':>13s}")
    print(f"# {'':9s} {'':5s} {'call':>10s} {'call':>9s} {'call':>10s} {'call':>7s} {'call':>6s} |"
          f" {'kernel':>9s} {'kernel':>10s} {'kernel':>6s} {'kernel':>13s}")
    for algo, nplans, t_cy, t_np, t_py, k_cy, k_np in rows:
        print(f"  {algo:9s} {nplans:5d} {t_py * 1e3:10.0f} {t_np * 1e3:9.2f} {t_cy * 1e3:10.2f}"
              f" {t_py / t_cy:6.0f}x {t_np / t_cy:5.1f}x | {k_np * 1e3:9.2f} {k_cy * 1e3:10.2f}"
              f" {k_np / k_cy:5.1f}x {nplans * args.sizes / k_cy:13,.0f}")

    sweep_sizes = np.floor(2.0 ** np.arange(3, 35, 0.5))   # 64 sizes, 8 B .. 16 GiB
    collbench.model.engine._compiled_cache.clear()
    t0 = time.perf_counter()
    df = collbench.sweep(None, sweep_sizes, algorithms="all")
    cold = time.perf_counter() - t0
    warm = best_of(lambda: collbench.sweep(None, sweep_sizes, algorithms="all"), args.repeat)
    print(f"# sweep: every preset at full size ({df.nranks.max():,} ranks max), every applicable "
          f"algorithm, 64 sizes: {len(df):,} rows in {cold * 1e3:.1f} ms cold, "
          f"{warm * 1e3:.1f} ms warm (target < 50 ms)")


if __name__ == "__main__":
    main()
