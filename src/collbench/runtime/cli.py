"""Argument parser and entry of ``collbench run`` (flags follow nccl-tests)."""
from __future__ import annotations

import os
import sys


def add_run_parser(sub):
    from ..cli import add_size_args
    from .harness import RUN_DTYPES, RUN_OPS, THREAD_LEVELS
    r = sub.add_parser("run", help="time real all-reduces under mpiexec, check every element")
    add_size_args(r, default_b="8", default_e="64M")
    r.add_argument("-n", "--iters", type=int, default=20, help="timed iterations (default 20)")
    r.add_argument("-w", "--warmup", type=int, default=5, help="warm-up iterations (default 5)")
    r.add_argument("-c", "--check", type=int, default=1, help="check results: 1 (default) or 0")
    r.add_argument("-o", "--op", default="sum", help="/".join(RUN_OPS))
    r.add_argument("-d", "--dtype", default="float32", help="/".join(RUN_DTYPES))
    r.add_argument("-a", "--average", type=int, default=1,
                   help="time over ranks: 0 rank 0, 1 average (default), 2 min, 3 max")
    r.add_argument("--algo", default="mpi,ring", help="comma list: mpi,ring,tree,rhd,rd,hier")
    r.add_argument("--ranks-per-node", type=int, default=None,
                   help="split ranks into virtual nodes of K (default: shared-memory nodes)")
    r.add_argument("--predict", default=None, help="preset or .toml system to predict with")
    r.add_argument("--csv", default=None, help="results CSV (default results/run-HOST-nN-TIME.csv)")
    r.add_argument("--json", default=None, help="results JSON (records)")
    r.add_argument("-T", "--timeout", type=float, default=None,
                   help="end the job if one collective takes longer than this (seconds)")
    r.add_argument("--thread-level", default="single", choices=THREAD_LEVELS,
                   help="MPI thread level (default single: MPICH is slower with multiple)")
    r.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    try:
        import mpi4py
    except ImportError:
        raise ValueError("collbench run needs mpi4py and an MPI: pip install 'collbench[mpi]'") from None
    mpi4py.rc.thread_level = args.thread_level
    mpi4py.rc.finalize = True
    from mpi4py import MPI
    from .harness import run
    rank = MPI.COMM_WORLD.Get_rank()
    try:
        return run(args, MPI)
    except ValueError:
        raise                          # bad input: same on every rank, one line, exit 2
    except Exception as exc:           # a failing rank ends the whole job promptly
        sys.stderr.write(f"collbench run: rank {rank}: {type(exc).__name__}: {exc}; "
                         "aborting the job (completed sizes are kept)\n")
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
        os._exit(1)
