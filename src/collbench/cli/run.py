"""``collbench run``: real collectives under mpiexec (flags follow nccl-tests)."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import shlex
import socket
import sys
import time

from ..algorithms import COLLECTIVES, runnable
from ..errors import CollbenchError, InputError, RunError
from ..runtime import joblink
from ..runtime.config import (
    RUN_DTYPES,
    RUN_OPS,
    THREAD_LEVELS,
    RunConfig,
    combinations,
    mpi_lacks,
    validate,
    validate_mpi,
    validate_ranks,
)
from ..runtime.harness import NcclJson, execute, open_nccl_json, setup
from ..runtime.watchdog import exit_on_signals
from .common import add_size_args

MAX_CYCLES = 10_000
ABORT_GRACE_S = 0.3

EXAMPLES = """examples:
  mpiexec -n 2 collbench run
  mpiexec -n 8 collbench run -b 8 -e 256M -f 2 --algo mpi,ring,rhd --predict dgx-h100
  mpiexec -n 4 collbench run --algo hier --ranks-per-node 2 --csv sweep.csv -T 60

A results file that exists keeps its rows: each run is added as a new run (its own run id).
"""


def add_parser(sub) -> None:
    r = sub.add_parser("run", help="time real collectives under mpiexec, check every element",
                       description="Time real collectives under mpiexec and check every "
                                   "element; prints nccl-tests' table.", epilog=EXAMPLES)
    add_size_args(r, default_b="8", default_e="64M")
    r.add_argument("-n", "--iters", type=int, default=20, help="timed iterations")
    r.add_argument("-w", "--warmup", type=int, default=5, help="warm-up iterations")
    r.add_argument("-N", "--run-cycles", type=int, default=1,
                   help="run the whole sweep this many times, each cycle its own run in the "
                        "file (nccl-tests' -N; repeats give collbench compare its spread)")
    r.add_argument("-c", "--check", type=int, default=1, help="check results: 1 or 0")
    r.add_argument("-o", "--op", default="sum", help="/".join(RUN_OPS) + " or all")
    r.add_argument("-d", "--dtype", default="float32",
                   help="/".join(RUN_DTYPES) + " (or nccl-tests' names: float, double, half) "
                        "or all; with all, each dtype/op pair is its own run in the file")
    r.add_argument("-r", "--root", type=int, default=0,
                   help="root rank of broadcast and reduce (nccl-tests' -r)")
    r.add_argument("-a", "--average", type=int, default=1,
                   help="time over ranks: 0 rank 0, 1 average, 2 min, 3 max")
    r.add_argument("--collective", default="allreduce",
                   help=", ".join(COLLECTIVES) + " (or nccl-tests' names: all_reduce, alltoall, "
                        "...)")
    r.add_argument("--algo", default=None,
                   help="comma list of mpi and collbench's own: " + "; ".join(
                       f"{c} {','.join(runnable(c))}" for c in COLLECTIVES if runnable(c))
                   + " (default: mpi and ring, or mpi and every own algorithm)")
    r.add_argument("--ranks-per-node", type=int, default=None,
                   help="split ranks into virtual nodes of K (default: shared-memory nodes)")
    r.add_argument("--predict", default=None,
                   help="preset, .toml system, or 'local' (a cached fit of this host)")
    r.add_argument("--csv", default=None, help="results CSV (default results/run-HOST-nN-TIME.csv)")
    r.add_argument("--json", default=None, help="results JSON")
    r.add_argument("-J", "--nccl-json", default=None, metavar="FILE",
                   help="also write nccl-tests' -J JSON layout (an existing FILE is kept: "
                        "FILE.0, FILE.1, ... as nccl-tests does)")
    r.add_argument("-T", "--timeout", type=float, default=None,
                   help="end the job if one step (a size, its save) takes longer (seconds)")
    r.add_argument("--min-busbw", type=float, default=None, metavar="GBPS",
                   help="acceptance check: exit 1 if an algorithm's busbw at the largest size "
                        "is below this")
    r.add_argument("--expect-busbw", type=float, default=None, metavar="GBPS",
                   help="acceptance check: a line for every row whose busbw is below this, "
                        "exit code 3")
    r.add_argument("--expect-ratio", type=float, default=None, metavar="R",
                   help="acceptance check with --predict: a line for every row slower than R "
                        "x the predicted time, exit code 3")
    r.add_argument("--no-in-place", dest="in_place", action="store_false",
                   help="time out of place only (default: both, as nccl-tests prints them)")
    r.add_argument("--thread-level", default="single", choices=THREAD_LEVELS,
                   help="MPI thread level (MPICH is slower with multiple)")
    r.set_defaults(func=run)


def config(args) -> RunConfig:
    return RunConfig(collective=args.collective, algo=args.algo, minbytes=args.minbytes, maxbytes=args.maxbytes,
                     stepfactor=args.stepfactor, stepbytes=args.stepbytes, iters=args.iters,
                     warmup=args.warmup, check=args.check, op=args.op, dtype=args.dtype,
                     average=args.average, ranks_per_node=args.ranks_per_node,
                     predict=args.predict, csv=args.csv, json=args.json, nccl_json=args.nccl_json,
                     timeout=args.timeout,
                     thread_level=args.thread_level, min_busbw=args.min_busbw,
                     expect_busbw=args.expect_busbw, expect_ratio=args.expect_ratio,
                     in_place=args.in_place, root=args.root,
                     command=shlex.join(["collbench", *sys.argv[1:]]))


def emit(line: str) -> None:
    print(line, flush=True)


def run(args) -> int:
    base = config(args)
    pairs, notes = combinations(base.dtype, base.op, base.collective)
    cycles = args.run_cycles
    if not 1 <= cycles <= MAX_CYCLES:
        raise InputError(f"-N must be from 1 to {MAX_CYCLES:,} cycles; got {cycles}")
    many = len(pairs) > 1 or cycles > 1
    # every pair is checked before MPI starts: bad input ends every rank alike, before work
    cfgs = [validate(dataclasses.replace(
                base, dtype=d, op=o, run_suffix=(f"-{d}-{o}" if len(pairs) > 1 else "")
                + (f"-cycle{k + 1}" if cycles > 1 else "")))
            for k in range(cycles) for d, o in pairs]
    try:
        # mpi4py is optional (pip install 'collbench[mpi]'), and its rc must be set first
        import mpi4py
    except ImportError:
        raise RunError("collbench run needs mpi4py and an MPI: pip install 'collbench[mpi]'"
                       ) from None
    mpi4py.rc.thread_level = base.thread_level
    mpi4py.rc.finalize = True
    from mpi4py import MPI  # after mpi4py.rc: importing it initialises MPI
    comm = MPI.COMM_WORLD
    rank, host = comm.Get_rank(), socket.gethostname()
    exit_on_signals(rank, host)
    unlinked = joblink.connect(comm, rank, host)
    if unlinked and rank == 0:
        emit(f"# collbench run: no job link ({unlinked}): a rank that ends leaves the others "
             "to mpiexec")
    if base.dtype == "all" and any(mpi_lacks(c, MPI) for c in cfgs):
        cfgs = [c for c in cfgs if not mpi_lacks(c, MPI)]
        notes.append("bfloat16 left out: this MPI library has no MPI_BFLOAT16_T for --algo mpi")
        pairs = [(d, o) for d, o in pairs if d != "bfloat16"]
    for c in cfgs:                   # checks of every pair that need MPI, before any work
        validate_ranks(c, comm.Get_size())
        validate_mpi(c, MPI)
    if many and not base.csv and not base.json:      # one default file for all the pairs
        stamp = comm.bcast(_dt.datetime.now().strftime("%Y%m%d-%H%M%S"), root=0)
        cfgs = [validate(dataclasses.replace(
            c, csv=f"results/run-{host}-n{comm.Get_size()}-{stamp}.csv")) for c in cfgs]
    if len(pairs) > 1 and rank == 0:
        emit(f"# collbench run: {len(pairs)} dtype/op pairs: "
             + ", ".join(f"{c.dt.name if c.dt else c.dtype} {c.op}" for c in cfgs[:len(pairs)])
             + "".join(f"; {n}" for n in notes))
    if cycles > 1 and rank == 0:
        emit(f"# collbench run: {cycles} cycles of the sweep (-N), each its own run")
    doc = open_nccl_json(cfgs, MPI, emit)   # one verdict on every rank, like setup's
    codes = [_run_one(cfg, MPI, rank, host, doc, not unlinked) for cfg in cfgs]
    # wrong results (1) outrank expectations that fell short (3)
    return 1 if 1 in codes else max(codes)


def _run_one(cfg: RunConfig, MPI, rank: int, host: str, doc: NcclJson | None,
             linked: bool) -> int:
    state = setup(cfg, MPI, emit)    # collective verdicts: one error, every rank, exit 2
    state.nccl_json = doc
    try:
        return execute(state, emit)
    except BaseException as exc:     # any rank, after setup: name it and end the whole job
        code = 2 if isinstance(exc, CollbenchError) else 1
        sys.stderr.write(f"collbench run: rank {rank} ({host}): {type(exc).__name__}: {exc}; "
                         "aborting the job (completed sizes are kept)\n")
        sys.stderr.flush()
        if linked:                   # every rank ends on its own, with this code
            joblink.end_job(code)
        # MPI_Abort tears the job down at once; give the launcher a moment to forward the
        # line first (under load, mpiexec lost it once in a CI run: exit 2, empty stderr)
        time.sleep(ABORT_GRACE_S)
        MPI.COMM_WORLD.Abort(code)
        os._exit(code)
