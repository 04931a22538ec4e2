"""The planner's API against its targets, measured side by side in one run:

    python benchmarks/speed_api.py [--sizes 1000000] [--repeat 5]

- one single-size ``collbench.estimate()`` (median of many calls)      target <= 1 ms
- ``estimate()`` of 1M sizes against a plain-Python loop of the ring formula, one size at a
  time, timed on 20,000 sizes and scaled: the project's plain-Python reference
  (``collbench.model.reference.cost``)                                  >= 20x
  and, harsher, a hand-inlined one-tier ring loop body (``ring_python`` below)
- the deep memory of that 1M-size frame                               <= 250 MB
- the array path (``collbench.planner(...).time_us``) and the kernel alone, for reference
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

import collbench
from collbench.model import reference
from collbench.model.system import Tier
from speed_model import best_of  # the benchmarks' one timing helper (same folder)


def ring_python(tiers: list[Tier], base: float, p: int, n: float,
                protocols: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 1.0),)) -> float:
    """NCCL's ring all-reduce on one tier, written as a plain loop body: the cheapest of
    its protocols, each (extra base latency, extra step latency, bandwidth factor)."""
    t = tiers[0]
    if n <= t.eff_lo_bytes:
        eff = t.eff_lo
    elif n >= t.eff_hi_bytes:
        eff = t.eff_hi
    else:
        x = (math.log(n) - math.log(t.eff_lo_bytes)) / (math.log(t.eff_hi_bytes)
                                                         - math.log(t.eff_lo_bytes))
        eff = t.eff_lo + x * (t.eff_hi - t.eff_lo)
    best = math.inf
    for db, ds, f in protocols:
        lat = base + db + 2 * (p - 1) * (t.lat_hw_us + t.lat_sw_us + ds)
        best = min(best, lat + 2 * (p - 1) / p * n / (t.bw_gbps * 1e3 * eff * f))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sizes = np.sort(np.floor(2.0 ** rng.uniform(3, 34, args.sizes)))
    system = collbench.preset("dgx-h100")
    p = 8
    collbench.estimate(system, 1 << 20, nranks=p, algorithm="ring")     # warm the plan cache

    single = []
    for _ in range(300):
        t0 = time.perf_counter()
        collbench.estimate(system, 1 << 20, nranks=p, algorithm="ring")
        single.append(time.perf_counter() - t0)
    single_ms = statistics.median(single) * 1e3

    t_est = best_of(lambda: collbench.estimate(system, sizes, nranks=p, algorithm="ring"),
                 args.repeat)
    df = collbench.estimate(system, sizes, nranks=p, algorithm="ring")
    deep_mb = df.memory_usage(deep=True).sum() / 1e6
    protos = tuple((d["base_us"], d["step_us"][0], d["bw_factor"])
                   for d in system.protocols.values() if "ring" in d["algorithms"])
    tiers, base = list(system.tiers), system.base_lat_us
    for i in (12345, len(sizes) // 2, len(sizes) - 1):
        ref = reference.cost(system, p, float(sizes[i]), algorithm="ring")
        assert abs(ring_python(tiers, base, p, float(sizes[i]), protos) - ref[0]) < 1e-9 * ref[0], \
            "the plain loop must compute the model's ring cost"
        assert abs(df.time_us.iloc[i] - ref[0]) < 1e-9 * ref[0]
    m = 20_000
    sub = sizes[:: max(1, len(sizes) // m)][:m].tolist()
    t_py = best_of(lambda: [ring_python(tiers, base, p, x, protos) for x in sub], args.repeat) \
        * len(sizes) / len(sub)
    sub_ref = sub[:2000]
    t_ref = best_of(lambda: [reference.cost(system, p, x, algorithm="ring") for x in sub_ref],
                 max(1, args.repeat // 2)) * len(sizes) / len(sub_ref)
    pl = collbench.planner(system, nranks=p, algorithm="ring")
    t_arr = best_of(lambda: pl.time_us(sizes), args.repeat)
    buf = pl.compiled.alloc(len(sizes))
    t_kern = best_of(lambda: pl.compiled.run(sizes, "cython", buf), args.repeat)

    print(f"# collbench API speed: dgx-h100, {p} ranks, ring all-reduce, "
          f"{len(sizes):,} log-uniform sizes, best of {args.repeat}")
    print(f"  estimate() of one size        {single_ms:8.3f} ms (median of 300)   target <= 1 ms"
          f"   {'OK' if single_ms <= 1 else 'MISSED'}")
    print(f"  estimate() of {len(sizes):,} sizes {t_est * 1e3:8.1f} ms; reference loop "
          f"{t_ref * 1e3:8.0f} ms: {t_ref / t_est:6.1f}x   target >= 20x   "
          f"{'OK' if t_ref / t_est >= 20 else 'MISSED'}")
    print(f"  the same against a hand-inlined one-tier loop over its {len(protos)} protocols "
          f"({t_py * 1e3:.0f} ms): "
          f"{t_py / t_est:.1f}x")
    print(f"  its frame, deep               {deep_mb:8.1f} MB, {df.shape[1]} columns, no empty ones"
          f"   target <= 250 MB   {'OK' if deep_mb <= 250 else 'MISSED'}")
    print(f"  planner().time_us (arrays)    {t_arr * 1e3:8.1f} ms: {t_py / t_arr:6.1f}x the loop")
    print(f"  kernel on preallocated arrays {t_kern * 1e3:8.1f} ms: {t_py / t_kern:6.1f}x the loop")


if __name__ == "__main__":
    main()
