"""``collbench run``: time real collectives under mpiexec, check every element, print the
nccl-tests table, save every completed size at once (atomically, beside earlier runs).

Two phases.  ``setup`` validates and agrees: every check that could differ between ranks
(memory on this host, node sizes, the results file, the system to predict with) is
gathered, so every rank raises the same one-line error and exits 2: no rank is left
waiting.  ``execute`` does the work; an exception there on any rank is reported by the
caller with the rank and host, and aborts the job.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..algorithms import COLLECTIVES, REGISTRY
from ..errors import CollbenchError, InputError
from ..model.api import estimate
from ..model.system import System, load_system
from ..results.io import check_existing, write_results
from ..results.table import run_table
from ..units import human
from ._reduce import scale_into
from .checks import Buffers
from .collective import agree, time_iterations
from .config import TIMING, RunConfig, validate, validate_ranks
from .context import Context
from .watchdog import Watchdog

Emit = Callable[[str], None]


def _local(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    try:
        return fn(), None
    except CollbenchError as exc:
        return None, str(exc)


def available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        return None


def check_memory(max_bytes: int, ranks_here: int) -> None:
    """send + receive + scratch + expected per rank, for every rank on this host."""
    need = 4 * max_bytes * ranks_here
    avail = available_memory()
    if avail is not None and need > 0.8 * avail:
        raise InputError(f"-e {max_bytes} needs about {need / 2**30:.1f} GiB for {ranks_here} "
                         f"ranks on this host, more than the {avail / 2**30:.1f} GiB available; "
                         "lower -e")


def _commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here,
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


@dataclass
class State:
    cfg: RunConfig
    MPI: Any
    comm: Any
    rank: int
    p: int
    node: Any
    ctx: Context
    predict: System | None           # on rank 0 (the only rank that predicts)
    meta: dict[str, Any]
    run_id: str
    paths: list[Path]
    rows: list[dict[str, Any]] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)      # host of every rank (slowest rank)
    low_busbw: list[str] = field(default_factory=list)  # --min-busbw failures (rank 0)


def setup(cfg: RunConfig, MPI: Any, emit: Emit) -> State:
    validate(cfg)
    comm = MPI.COMM_WORLD
    rank, p = comm.Get_rank(), comm.Get_size()
    validate_ranks(cfg, p)
    if cfg.ranks_per_node:
        node = comm.Split(color=rank // cfg.ranks_per_node, key=rank)
    else:
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    shared = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    host = socket.gethostname()
    _, err = _local(lambda: check_memory(max(cfg.sizes) if cfg.sizes else 0, shared.Get_size()))
    agree(comm, err)
    if "hier" in cfg.algos:
        per_node = comm.allgather(node.Get_size())
        if len(set(per_node)) != 1:
            raise InputError(f"hier needs nodes of equal size; got {sorted(set(per_node))} ranks "
                             "per node (use --ranks-per-node)")
    cross = comm.Split(color=node.Get_rank(), key=rank)
    mpi_op = {"sum": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX,
              "avg": MPI.SUM}[cfg.op]
    assert cfg.dt is not None
    ctx = Context(MPI, comm, cfg.op, mpi_op, cfg.dt.name, node, cross)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = comm.bcast(f"{stamp}-{host}-{os.getpid()}{cfg.run_suffix}", root=0)
    paths = cfg.paths or [Path("results") / f"run-{host}-n{p}-{stamp}.csv"]
    # the results files: an existing one must be a results file (its rows are kept)
    err = None
    if rank == 0:
        _, err = _local(lambda: [check_existing(x) for x in paths])
    agree(comm, err)
    predict = None
    if cfg.predict == "local":
        from .probe import local_system  # the probe needs calibration (scipy)
        predict = local_system(cfg, MPI, comm, ctx, node.Get_size(), emit)
    elif cfg.predict:
        predict, err = _local(lambda: load_system(cfg.predict))
        agree(comm, err)
    lib = " ".join(MPI.Get_library_version().strip().splitlines()[0].split())
    import mpi4py  # already imported by the caller (MPI is initialised): its version
    per_host = shared.Get_size()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    oversub = comm.allreduce(int(per_host > (cores or per_host)), op=MPI.MAX) > 0
    meta = {
        "run": run_id, "host": host, "mpi_library": lib.split()[0] if lib else "",
        "mpi_version": lib, "mpi4py_version": mpi4py.__version__,
        "thread_level": {MPI.THREAD_SINGLE: "single", MPI.THREAD_FUNNELED: "funneled",
                         MPI.THREAD_SERIALIZED: "serialized",
                         MPI.THREAD_MULTIPLE: "multiple"}[MPI.Query_thread()],
        "ranks_per_node": node.Get_size(),
        "step_loops": "C (mpi4py libmpi)" if ctx.steps is not None else "Python (mpi4py)",
        "oversubscribed": bool(oversub),
        "commit": _commit() if rank == 0 else "", "command": cfg.command,
        "collbench_version": __version__, "iters": cfg.iters, "warmup": cfg.warmup,
        "timing": TIMING[cfg.average], "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "tool": "collbench run",
    }
    st = State(cfg, MPI, comm, rank, p, node, ctx, predict, meta, run_id, paths)
    st.hosts = comm.allgather(host)
    return st


def _variant(algo: str, collective: str) -> str:
    return REGISTRY[algo].run_variants.get(collective, algo)


def predict_time(system: System, nbytes: int, algo: str, p: int, collective: str
                 ) -> tuple[float | None, str]:
    """(predicted time, why it is an extrapolation or ''); (None, '') where the model
    cannot say.  The MPI library's own call is modelled as the library's choice (auto) with
    the system's ``mpi`` implementation entry, if any; hier as its exact plan label."""
    if p > system.max_ranks:
        return None, ""
    spec = REGISTRY[algo]
    name, impl = (spec.model_as, algo) if spec.model_as else (_variant(algo, collective), None)
    try:
        df = estimate(system, [nbytes], collective=collective, algorithm=name, nranks=p,
                      implementation=impl)
    except CollbenchError:
        return None, ""
    extra = df["extrapolated"].iloc[0] if "extrapolated" in df else ""
    return float(df.time_us.iloc[0]), (extra if isinstance(extra, str) else "")


def execute(st: State, emit: Emit) -> int:
    cfg, MPI, comm, rank, p = st.cfg, st.MPI, st.comm, st.rank, st.p
    assert cfg.dt is not None
    coll = cfg.collective
    table = run_table(st.predict is not None)
    nodes = p // st.node.Get_size() if p % st.node.Get_size() == 0 else "?"
    if rank == 0:
        emit(f"# collbench run: {coll}, {p} ranks ({st.node.Get_size()} per node, {nodes} "
             f"node{'s' if nodes != 1 else ''}), {st.meta['mpi_version']}, mpi4py "
             f"{st.meta['mpi4py_version']}, thread level {st.meta['thread_level']}, own "
             f"algorithms' step loops in {st.meta['step_loops']}")
        emit(f"# iters {cfg.iters}, warmup {cfg.warmup}, check {cfg.check}, time = "
             f"{TIMING[cfg.average]} over ranks, out-of-place"
             + (f", predicted by {st.predict.name}" if st.predict else ""))
        if st.meta["oversubscribed"]:
            emit("# WARNING: more ranks than cores on a host (oversubscribed): times measure "
                 "the scheduler as much as the algorithms")
    total_wrong, busbws = 0, []
    dog = Watchdog(cfg.timeout, rank)
    factor = COLLECTIVES[coll].busbw(p)
    tvec = np.zeros(2)                       # [mean, median] of this rank's iterations
    for algo in cfg.algos:
        f = REGISTRY[algo].runs[coll]
        if rank == 0:
            emit("#")
            emit(f"# algo {algo}: {REGISTRY[algo].run_descriptions[coll]}")
            emit(table.header())
        for nbytes in cfg.sizes:
            bufs = Buffers(coll, rank, p, nbytes, cfg.dt.name, cfg.op)
            send, recv, count, nb = bufs.send, bufs.recv, bufs.count, bufs.nbytes
            dog.arm(f"{algo} {coll} of {nb} bytes")
            scale = cfg.op == "avg" and bufs.redop == "avg"

            def once() -> None:
                f(st.ctx, send, recv)
                if scale:
                    scale_into(recv, p)
            for _ in range(cfg.warmup):
                once()
            comm.Barrier()
            t, tmed = time_iterations(MPI, once, cfg.iters)
            nwrong = 0
            if cfg.check:
                recv.fill(np.iinfo(recv.dtype).max if cfg.dt.kind == "int" else np.nan)  # poison
                once()
                if bufs.expected is not None:
                    nwrong = int(np.count_nonzero(recv != bufs.expected))
            tvec[0], tvec[1] = t, tmed
            tmin, tmax, tsum = np.zeros(2), np.zeros(2), np.zeros(2)
            comm.Allreduce(tvec, tmin, op=MPI.MIN)
            comm.Allreduce(tvec, tmax, op=MPI.MAX)
            comm.Allreduce(tvec, tsum, op=MPI.SUM)
            wrong = comm.allreduce(nwrong, op=MPI.SUM)
            t0r, med0 = comm.bcast((t, tmed), root=0)
            _, slowest = comm.allreduce((t, rank), op=MPI.MAXLOC)
            timed = {0: t0r, 1: tsum[0] / p, 2: tmin[0], 3: tmax[0]}[cfg.average]
            median = {0: med0, 1: tsum[1] / p, 2: tmin[1], 3: tmax[1]}[cfg.average]
            total_wrong += wrong
            dog.arm(f"saving {algo} {coll} of {nb} bytes")
            if rank == 0:
                busbws.append(_report(st, algo=algo, nb=nb, count=count, bufs=bufs,
                                      slowest=int(slowest), timed=timed,
                                      tmin=tmin[0], tmax=tmax[0], t0r=t0r, median=median,
                                      wrong=wrong, factor=factor, table=table, emit=emit))
            comm.Barrier()      # nobody starts the next size before rank 0 has saved this one
        if rank == 0 and cfg.min_busbw is not None and st.rows:
            last = st.rows[-1]
            verdict = "OK" if last["busbw_gbps"] >= cfg.min_busbw else "FAILED"
            st.low_busbw.append(f"{algo} {last['busbw_gbps']:.2f} GB/s at "
                                f"{human(last['nbytes'])} {verdict}")
    # the watchdog stays armed from the first size to the end: no gap between sizes
    dog.arm("finishing the run")
    if rank == 0:
        emit(f"# Out of bounds values : {total_wrong} {'OK' if total_wrong == 0 else 'FAILED'}")
        avg = sum(busbws) / len(busbws) if busbws else 0.0
        emit(f"# Avg bus bandwidth    : {avg:.4g}")
        if cfg.min_busbw is not None:
            emit(f"# busbw check (--min-busbw {cfg.min_busbw:g} GB/s at the largest size): "
                 + ", ".join(st.low_busbw))
        marked = sorted({r["extrapolated"] for r in st.rows if r.get("extrapolated")})
        if marked and st.predict:
            emit(f"# * predicted beyond {st.predict.name}'s calibration data: {'; '.join(marked)}")
        emit(f"# Results: {', '.join(str(x) for x in st.paths)} (run {st.run_id})")
    failed = comm.bcast(any(x.endswith("FAILED") for x in st.low_busbw), root=0)
    comm.Barrier()
    dog.disarm()
    return 1 if total_wrong or failed else 0


def _report(st: State, *, algo: str, nb: int, count: int, bufs: Buffers, slowest: int,
            timed: float, tmin: float,
            tmax: float, t0r: float, median: float, wrong: int, factor: float,
            table: Any, emit: Emit) -> float:
    """Rank 0: print the row and save every completed row of this run; returns busbw."""
    cfg = st.cfg
    assert cfg.dt is not None
    algbw = nb / timed / 1e3 if timed > 0 else 0.0
    pred = ratio = None
    extra = ""
    if st.predict is not None:
        pred, extra = predict_time(st.predict, nb, algo, st.p, cfg.collective)
        ratio = timed / pred if pred else None
    row = dict(st.meta, source="measured", system="local", collective=cfg.collective,
               algorithm=algo, variant=_variant(algo, cfg.collective), placement="out-of-place",
               nranks=st.p, nbytes=nb, count=count, dtype=cfg.dt.name, redop=bufs.redop,
               root=bufs.root if bufs.root >= 0 else None,
               time_us=timed, algbw_gbps=algbw, busbw_gbps=algbw * factor, time_min_us=tmin,
               time_max_us=tmax, time_rank0_us=t0r, time_median_us=median, nwrong=wrong,
               slowest_rank=slowest, slowest_host=st.hosts[slowest] if st.hosts else None,
               predicted_us=pred, predicted_system=st.predict.name if st.predict else None,
               ratio=ratio, extrapolated=extra or None,
               timestamp=_dt.datetime.now().isoformat(timespec="seconds"))
    st.rows.append(row)
    emit(table.row({"size": nb, "count": count, "type": cfg.dt.nccl, "redop": bufs.redop,
                    "root": bufs.root, "algo": algo, "time": timed, "algbw": algbw,
                    "busbw": algbw * factor, "#wrong": wrong, "slowest": slowest,
                    "max/min": tmax / tmin if tmin > 0 else None,
                    "predicted": pred if not extra else (pred, "*"), "meas/pred": ratio}))
    df = pd.DataFrame(st.rows)
    for path in st.paths:
        write_results(df, path, overwrite=False, run=st.run_id)
    return algbw * factor
