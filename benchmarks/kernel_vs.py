"""This build's cost-model kernel against another build's, side by side in one process.

    python benchmarks/kernel_vs.py OTHER/_kernels.cpython-311-x86_64-linux-gnu.so [--calls 15]

Build the other commit's extension first (``git worktree add /tmp/wt COMMIT && cd /tmp/wt &&
python setup.py build_ext --inplace``).  Both kernels get the same plans (this build's; the
arguments an older kernel does not take are left off), alternating call by call over one
million sorted log-uniform sizes on DGX H100 x 64 ranks; prints best and median per kernel
and the ratio of the bests (this / other).  A ratio, not seconds: the machine is shared.
"""
import argparse
import importlib.util
import time

import numpy as np

import collbench
from collbench.model import _kernels as this
from collbench.model.engine import compile_plans


def load(path):
    spec = importlib.util.spec_from_file_location("_kernels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def nargs(mod, k_args, out, choice, overlap) -> int:
    """How many of this build's plan arrays the other kernel takes: the most it accepts on a
    one-size call (an older kernel takes a prefix of them)."""
    tiny = np.ones(1)
    o = [a[:, :1].copy() for a in out]
    ch = choice[:, :1].copy()
    for k in range(len(k_args), 0, -1):
        try:
            mod.evaluate(tiny, *k_args[:k], *o, ch, overlap)
            return k
        except (TypeError, ValueError):
            continue
    raise SystemExit("the other kernel takes none of this build's argument lists")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", help="the other build's _kernels*.so")
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--sizes", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    other = load(args.other)
    rng = np.random.default_rng(0)
    sizes = np.sort(np.floor(2.0 ** rng.uniform(0, 34, args.sizes)))
    system = collbench.preset("dgx-h100")
    print("# algorithm   other best/median ms   this best/median ms   this/other (best)")
    for algo in ("ring", "auto"):
        c = compile_plans(system, 64, "allreduce", [algo])
        out, choice = c.alloc(len(sizes))
        ka_other = c.k_args[:nargs(other, c.k_args, out, choice, c.overlap)]
        t_this, t_other = [], []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            other.evaluate(sizes, *ka_other, *out, choice, c.overlap)
            t_other.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            this.evaluate(sizes, *c.k_args, *out, choice, c.overlap)
            t_this.append(time.perf_counter() - t0)
        print(f"  {algo:10} {min(t_other) * 1e3:8.1f} / {np.median(t_other) * 1e3:6.1f}"
              f"      {min(t_this) * 1e3:8.1f} / {np.median(t_this) * 1e3:6.1f}"
              f"      {min(t_this) / min(t_other):5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
