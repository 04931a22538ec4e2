"""``collbench run``: time real all-reduces under mpiexec, check every element, print the
nccl-tests table, write every completed size to the results file at once (atomically)."""
from __future__ import annotations

import datetime as _dt
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..schema import write_results
from ..sizes import size_range
from ..table import DTYPE_SIZES, NCCL_TYPE, run_table

RUN_DTYPES = ("float32", "float64", "float16", "int32", "int64")
RUN_OPS = ("sum", "prod", "min", "max", "avg")
THREAD_LEVELS = ("single", "funneled", "serialized", "multiple")
TIMING = {0: "rank0", 1: "avg", 2: "min", 3: "max"}


# ---- inputs whose reduction is exactly predictable ---------------------------------------

def make_input(rank: int, p: int, count: int, dtype: str, op: str) -> np.ndarray:
    i = np.arange(count, dtype=np.int64)
    if op == "sum":
        v = (rank + i) % 4 + 1                       # sums stay small integers: exact
    elif op == "prod":
        v = np.where((rank + i) % 8 == 0, 2, 1)      # products are powers of two
    elif op in ("min", "max"):
        v = (rank * 7 + i) % 13 - 6
    else:  # avg: the sum is a multiple of p, so sum / p is exact
        v = 2 * ((i + rank) % p) + i % 3
    return v.astype(dtype)


def expected(p: int, count: int, dtype: str, op: str) -> np.ndarray:
    i = np.arange(count, dtype=np.int64)
    if op == "avg":
        return ((p - 1) + i % 3).astype(dtype)
    acc = None
    for r in range(p):
        v = make_input(r, p, count, "int64", op)
        if acc is None:
            acc = v
        elif op == "sum":
            acc = acc + v
        elif op == "prod":
            acc = acc * v
        elif op == "min":
            acc = np.minimum(acc, v)
        else:
            acc = np.maximum(acc, v)
    return acc.astype(dtype)


# ---- checks that run before any work ------------------------------------------------------

def check_args(args, nranks: int):
    from ..algorithms import ALGORITHMS
    from .algos import IMPLEMENTATIONS
    algos = [a.strip() for a in args.algo.split(",") if a.strip()]
    if not algos:
        raise ValueError(f"no algorithm given; valid: {', '.join(IMPLEMENTATIONS)}")
    for a in algos:
        if a not in IMPLEMENTATIONS:
            kind = "has no real implementation" if a in ALGORITHMS else "is unknown"
            raise ValueError(f"algorithm {a!r} {kind} in collbench run; valid: "
                             f"{', '.join(IMPLEMENTATIONS)}")
    if args.dtype not in RUN_DTYPES:
        raise ValueError(f"unknown dtype {args.dtype!r}; valid: {', '.join(RUN_DTYPES)}")
    if args.op not in RUN_OPS:
        raise ValueError(f"unknown op {args.op!r}; valid: {', '.join(RUN_OPS)}")
    if args.op == "avg" and not args.dtype.startswith("float"):
        raise ValueError(f"op avg with {args.dtype} makes no sense (integer division truncates); "
                         "use a float dtype")
    if args.op == "prod" and nranks > 8 * 15:
        raise ValueError("op prod overflows the checkable range beyond 120 ranks")
    if args.op in ("sum", "avg") and args.dtype == "float16" and nranks > 32:
        raise ValueError("float16 sums are exact only up to 32 ranks; use float32")
    if "mpi" in algos and args.dtype == "float16":
        raise ValueError("dtype float16 is not an MPI datatype for --algo mpi; use float32 "
                         f"or another algorithm ({', '.join(a for a in IMPLEMENTATIONS if a != 'mpi')})")
    if args.average not in TIMING:
        raise ValueError(f"-a must be 0 (rank 0), 1 (average), 2 (min) or 3 (max); got {args.average}")
    if args.iters < 1 or args.warmup < 0:
        raise ValueError("-n must be at least 1 and -w at least 0")
    if args.check not in (0, 1):
        raise ValueError("-c must be 0 or 1")
    if args.timeout is not None and args.timeout <= 0:
        raise ValueError("-T must be a positive number of seconds")
    sizes = size_range(args.minbytes, args.maxbytes, args.stepfactor, args.stepbytes)
    esize = DTYPE_SIZES[args.dtype]
    if args.ranks_per_node is not None:
        k = args.ranks_per_node
        if k < 1 or nranks % k:
            raise ValueError(f"--ranks-per-node {k} does not divide {nranks} ranks; valid: "
                             + ", ".join(str(d) for d in range(1, nranks + 1) if nranks % d == 0))
    return algos, sizes, esize


def check_memory(max_bytes: int, ranks_here: int):
    """send + receive + scratch + expected per rank, for every rank on this host."""
    need = 4 * max_bytes * ranks_here
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return
    if need > 0.8 * avail:
        raise ValueError(f"-e {max_bytes} needs about {need / 2**30:.1f} GiB for {ranks_here} ranks "
                         f"on this host, more than the {avail / 2**30:.1f} GiB available; "
                         "lower -e")


def _commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here,
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


class Watchdog:
    """Ends this rank (and so the job) if one collective takes longer than -T seconds."""

    def __init__(self, seconds, rank):
        self.seconds, self.rank, self.timer = seconds, rank, None

    def arm(self, what):
        if not self.seconds:
            return
        def fire():
            sys.stderr.write(f"collbench run: rank {self.rank}: timed out after {self.seconds:g} s "
                             f"in {what}; ending the job (completed sizes are kept)\n")
            sys.stderr.flush()
            os._exit(3)
        self.timer = threading.Timer(self.seconds, fire)
        self.timer.daemon = True
        self.timer.start()

    def disarm(self):
        if self.timer:
            self.timer.cancel()
            self.timer = None


def time_iterations(MPI, once, iters):
    """Mean and median time (us) of ``iters`` calls of ``once``, each call timed."""
    stamps = [MPI.Wtime()]
    mark = stamps.append
    for _ in range(iters):
        once()
        mark(MPI.Wtime())
    if not iters:
        return 0.0, 0.0
    return (stamps[-1] - stamps[0]) / iters * 1e6, float(np.median(np.diff(stamps))) * 1e6


def run(args, MPI) -> int:
    from .algos import DESCRIPTIONS, IMPLEMENTATIONS, Context

    comm = MPI.COMM_WORLD
    rank, p = comm.Get_rank(), comm.Get_size()
    algos, sizes, esize = check_args(args, p)
    if args.ranks_per_node:
        node = comm.Split(color=rank // args.ranks_per_node, key=rank)
    else:
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    shared = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    check_memory(max(sizes) if sizes else 0, shared.Get_size())
    if "hier" in algos:
        sizes_ok = comm.allgather(node.Get_size())
        if len(set(sizes_ok)) != 1:
            raise ValueError(f"hier needs nodes of equal size; got {sorted(set(sizes_ok))} ranks "
                             "per node (use --ranks-per-node)")
    cross = comm.Split(color=node.Get_rank(), key=rank)
    mpi_op = {"sum": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX, "avg": MPI.SUM}[args.op]
    from .._reduce import OPS, scale_into
    ctx = Context(MPI, comm, OPS[args.op], mpi_op, args.dtype, node, cross)
    predict = None
    if args.predict == "local":
        predict = local_system(args, MPI, comm, ctx, node.Get_size())
    elif args.predict:
        from ..system import load_system
        predict = load_system(args.predict)
    lib = " ".join(MPI.Get_library_version().strip().splitlines()[0].split())
    import mpi4py
    meta = {
        "source": "measured", "system": "local", "collective": "allreduce",
        "dtype": args.dtype, "redop": args.op, "root": 0, "nranks": p,
        "iters": args.iters, "warmup": args.warmup, "timing": TIMING[args.average],
        "host": socket.gethostname(), "mpi_library": lib.split()[0] if lib else "",
        "mpi_version": lib, "mpi4py_version": mpi4py.__version__,
        "thread_level": {MPI.THREAD_SINGLE: "single", MPI.THREAD_FUNNELED: "funneled",
                         MPI.THREAD_SERIALIZED: "serialized",
                         MPI.THREAD_MULTIPLE: "multiple"}[MPI.Query_thread()],
        "ranks_per_node": node.Get_size(), "commit": _commit() if rank == 0 else "",
        "collbench_version": __version__,
    }
    out_paths = []
    if rank == 0:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        if args.csv:
            out_paths.append(Path(args.csv))
        if args.json:
            out_paths.append(Path(args.json))
        if not out_paths:
            out_paths.append(Path("results") / f"run-{meta['host']}-n{p}-{stamp}.csv")
        for path in out_paths:
            if path.suffix not in (".csv", ".json"):
                raise ValueError(f"results file {path} must end in .csv or .json")
    table = run_table(predict is not None)
    nodes = p // node.Get_size() if p % node.Get_size() == 0 else "?"
    if rank == 0:
        print(f"# collbench run: allreduce, {p} ranks ({node.Get_size()} per node, {nodes} "
              f"node{'s' if nodes != 1 else ''}), {lib}, mpi4py {mpi4py.__version__}, "
              f"thread level {meta['thread_level']}")
        print(f"# iters {args.iters}, warmup {args.warmup}, check {args.check}, time = "
              f"{TIMING[args.average]} over ranks, out-of-place"
              + (f", predicted by {predict.name}" if predict else ""))
        sys.stdout.flush()
    rows, total_wrong, busbws = [], 0, []
    dog = Watchdog(args.timeout, rank)
    factor = 2 * (p - 1) / p
    tvec = np.zeros(2)                       # [mean, median] of this rank's iterations
    for algo in algos:
        f = IMPLEMENTATIONS[algo]
        if rank == 0:
            print("#")
            print(f"# algo {algo}: {DESCRIPTIONS[algo]}")
            print(table.header())
            sys.stdout.flush()
        for nbytes in sizes:
            count = nbytes // esize
            nb = count * esize
            send = make_input(rank, p, count, args.dtype, args.op)
            recv = np.zeros(count, dtype=args.dtype)
            dog.arm(f"{algo} allreduce of {nb} bytes")

            def once():
                f(ctx, send, recv)
                if args.op == "avg":
                    scale_into(recv, p)
            for _ in range(args.warmup):
                once()
            comm.Barrier()
            t, tmed = time_iterations(MPI, once, args.iters)
            nwrong = 0
            if args.check:
                recv.fill(-12345 if args.dtype.startswith("int") else np.nan)  # poison
                once()
                nwrong = int(np.count_nonzero(recv != expected(p, count, args.dtype, args.op)))
            dog.disarm()
            tvec[0], tvec[1] = t, tmed
            tmin, tmax, tsum = np.zeros(2), np.zeros(2), np.zeros(2)
            comm.Allreduce(tvec, tmin, op=MPI.MIN)
            comm.Allreduce(tvec, tmax, op=MPI.MAX)
            comm.Allreduce(tvec, tsum, op=MPI.SUM)
            wrong = comm.allreduce(nwrong, op=MPI.SUM)
            t0r, med0 = comm.bcast((t, tmed), root=0)
            timed = {0: t0r, 1: tsum[0] / p, 2: tmin[0], 3: tmax[0]}[args.average]
            median = {0: med0, 1: tsum[1] / p, 2: tmin[1], 3: tmax[1]}[args.average]
            total_wrong += wrong
            if rank == 0:
                busbws.append(_report(
                    meta=meta, algo=algo, nb=nb, count=count, timed=timed, tmin=tmin[0],
                    tmax=tmax[0], t0r=t0r, median=median, wrong=wrong, predict=predict, p=p, factor=factor,
                    args=args, table=table, rows=rows, out_paths=out_paths))
            # nobody starts the next size before rank 0 has saved this one
            comm.Barrier()
    if rank == 0:
        print(f"# Out of bounds values : {total_wrong} {'OK' if total_wrong == 0 else 'FAILED'}")
        avg = sum(busbws) / len(busbws) if busbws else 0.0
        print(f"# Avg bus bandwidth    : {avg:.4g}")
        marked = sorted({r["extrapolated"] for r in rows if r.get("extrapolated")})
        if marked:
            print(f"# * predicted beyond {predict.name}'s calibration data: {'; '.join(marked)}")
        print(f"# Results: {', '.join(str(x) for x in out_paths)}")
        sys.stdout.flush()
    return 1 if total_wrong else 0


def _report(*, meta, algo, nb, count, timed, tmin, tmax, t0r, median, wrong, predict, p, factor,
            args, table, rows, out_paths) -> float:
    """Rank 0: print the row and save every completed row (atomically); returns busbw."""
    import pandas as pd
    algbw = nb / timed / 1e3 if timed > 0 else 0.0
    pred = ratio = None
    extra = ""
    if predict is not None:
        pred, extra = _predict(predict, nb, algo, p)
        ratio = timed / pred if pred else None
    row = dict(meta, algorithm=algo, requested=algo, variant=algo, nbytes=nb, count=count,
               time_us=timed, algbw_gbps=algbw, busbw_gbps=algbw * factor,
               time_min_us=tmin, time_max_us=tmax, time_rank0_us=t0r, time_median_us=median,
               nwrong=wrong, predicted_us=pred,
               predicted_system=predict.name if predict else None, ratio=ratio,
               extrapolated=extra or None,
               timestamp=_dt.datetime.now().isoformat(timespec="seconds"))
    rows.append(row)
    print(table.row({"size": nb, "count": count, "type": NCCL_TYPE[args.dtype],
                     "redop": args.op, "root": 0, "algo": algo, "time": timed,
                     "algbw": algbw, "busbw": algbw * factor, "#wrong": wrong,
                     "predicted": pred if not extra else (pred, "*"), "meas/pred": ratio}))
    sys.stdout.flush()
    for path in out_paths:
        write_results(pd.DataFrame(rows), path)
    return algbw * factor


def _predict(system, nbytes, algo, p):
    """(predicted time, why it is an extrapolation or ''); (None, '') where the model
    cannot say.  MPI_Allreduce is modelled as the library's own choice (auto) with the
    system's "mpi" implementation entry, if it has one."""
    from ..model import estimate
    if p > system.max_ranks:
        return None, ""
    name, impl = ("auto", "mpi") if algo == "mpi" else (algo, None)
    try:
        df = estimate(system, [nbytes], algorithm=name, nranks=p, implementation=impl)
    except ValueError:
        return None, ""
    extra = df["extrapolated"].iloc[0] if "extrapolated" in df else ""
    return float(df.time_us.iloc[0]), (extra if isinstance(extra, str) else "")


# ---- --predict local: a calibrated description of this host -------------------------------

PROBE_SIZES = (8, 64, 512, 4096, 32768, 262144, 2097152, 16777216)


def local_system(args, MPI, comm, ctx, ranks_per_node):
    """The calibration of this host for this rank count from the cache, or one made now
    from a short probe (every rank times a few sizes; rank 0 fits and caches it)."""
    from ..calibrate import cache_path, fit
    from ..system import System
    from .algos import IMPLEMENTATIONS
    rank, p = comm.Get_rank(), comm.Get_size()
    host = socket.gethostname()
    path = cache_path(host, p) if rank == 0 else None
    cached = comm.bcast(path is not None and os.path.exists(path), root=0)
    if cached:
        system = error = None
        if rank == 0:
            try:
                system = System.from_toml(path)
            except ValueError as exc:
                error = f"{exc} (delete the file to re-probe)"
        error = comm.bcast(error, root=0)       # every rank stops alike, none is left waiting
        if error:
            raise ValueError(error)
        if rank == 0:
            print(f"# predict: local = {path} (fitted {system.calibration.get('date', '?')} to "
                  f"{system.calibration.get('rows', '?')} rows; delete it to re-probe)")
        return system
    # every implementation, so that the cached calibration serves later runs too (hier only
    # where ranks span nodes: on one node the model has no second tier for it)
    probe = [a for a in IMPLEMENTATIONS if a != "hier" or ranks_per_node < p]
    if rank == 0:
        print(f"# predict: no calibration of {host} for {p} ranks cached; probing "
              f"{', '.join(probe)} at {len(PROBE_SIZES)} sizes first ...")
        sys.stdout.flush()
    rows = []
    t_start = time.perf_counter()
    for algo in probe:
        f = IMPLEMENTATIONS[algo]
        for nbytes in PROBE_SIZES:
            count = max(1, nbytes // ctx.dtype.itemsize)
            send = np.ones(count, dtype=ctx.dtype)
            recv = np.empty_like(send)
            iters = 20 if nbytes <= 262144 else 5
            for _ in range(2):
                f(ctx, send, recv)
            comm.Barrier()
            _, med = time_iterations(MPI, lambda: f(ctx, send, recv), iters)
            med = comm.allreduce(med) / p
            rows.append(dict(source="measured", system="local", collective="allreduce",
                             algorithm=algo, nranks=p, nbytes=count * ctx.dtype.itemsize,
                             time_us=med, time_median_us=med, ranks_per_node=ranks_per_node,
                             busbw_gbps=count * ctx.dtype.itemsize / med / 1e3 * 2 * (p - 1) / p,
                             host=host))
    system = error = None
    if rank == 0:
        import pandas as pd
        from ..schema import _atomic_write
        try:
            fitted = fit(pd.DataFrame(rows), None, files=[f"probe by collbench run on {host}"],
                         name=f"local-{host}-n{p}")
            system = fitted.system
            _atomic_write(Path(path), system.to_toml())
        except (ValueError, OSError) as exc:
            error = f"--predict local: {exc}"
        else:
            err = system.calibration["geomean_error"]
            print(f"# predict: probed {len(rows)} points in {time.perf_counter() - t_start:.1f} s, "
                  f"fit geomean error {err:.1%}; cached as {path}")
            sys.stdout.flush()
    error = comm.bcast(error, root=0)
    if error:
        raise ValueError(error)
    return system
