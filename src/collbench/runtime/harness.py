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
import sys
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
from ..results.nccl_json import NcclJson, devices, free_name, nccl_config
from ..results.table import run_table, run_table_groups
from ..units import DTYPES, human, parse_size
from ._reduce import scale_into
from .checks import Buffers, poison_value
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
    nccl_json: NcclJson | None = None                    # -J (rank 0)


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
    per_node = comm.allgather(node.Get_size())
    if "hier" in cfg.algos:
        if len(set(per_node)) != 1:
            raise InputError(f"hier needs nodes of equal size; got {sorted(set(per_node))} ranks "
                             "per node (use --ranks-per-node)")
    cross = comm.Split(color=node.Get_rank(), key=rank)
    mpi_op = {"sum": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX,
              "avg": MPI.SUM}[cfg.op]
    assert cfg.dt is not None
    ctx = Context(MPI, comm, cfg.op, mpi_op, cfg.dt.name, node, cross)
    ctx.root = cfg.root
    ctx.uniform_nodes = len(set(per_node)) == 1    # tree: a tree per tier
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


NCCL_TYPE = {d.name: d.nccl for d in DTYPES.values()}


def open_nccl_json(cfgs: list[RunConfig], MPI: Any, emit: Emit) -> NcclJson | None:
    """``-J FILE`` (every rank calls this): rank 0 claims the file's name (nccl-tests' rule:
    the next free FILE.k if FILE exists) and holds the document; one verdict on errors."""
    cfg = cfgs[0]
    if cfg.nccl_json is None:
        return None
    comm = MPI.COMM_WORLD
    idents = comm.gather((os.getpid(), socket.gethostname()), root=0)
    out, err = None, None
    if comm.Get_rank() == 0:
        def make() -> NcclJson:
            assert cfg.nccl_json is not None
            path = free_name(Path(cfg.nccl_json))
            step = parse_size(cfg.stepbytes) if cfg.stepbytes else None
            conf = nccl_config(sorted({n for c in cfgs for n in c.sizes}), cfg.stepfactor, step,
                               cfg.warmup, cfg.iters, cfg.check, comm.Get_size())
            doc = NcclJson(path, list(sys.argv), conf, devices(idents),
                           {"version": __version__, "collective": cfg.collective,
                            "nranks": comm.Get_size(),
                            "mpi_version": " ".join(MPI.Get_library_version().split()[:3])})
            doc.expect_busbw = cfg.expect_busbw
            doc.write(NCCL_TYPE)
            emit(f"# Writing Json output to {path}")
            return doc
        out, err = _local(make)
    agree(comm, err)
    return out


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


PLACES = ("out-of-place", "in-place")


@dataclass
class Measured:
    """One (algorithm, size, placement) over every rank (rank 0's view)."""
    timed: float
    median: float
    tmin: float
    tmax: float
    t0r: float
    cv_pct: float
    p99: float
    slowest: int
    wrong: int


def _measure(st: State, f: Callable[..., None], send: np.ndarray, recv: np.ndarray,
             bufs: Buffers, in_place: bool) -> Measured:
    """Warm up, time the iterations, check once; every rank calls this alike."""
    cfg, MPI, comm, p = st.cfg, st.MPI, st.comm, st.p
    assert cfg.dt is not None
    scale = cfg.op == "avg" and bufs.redop == "avg"
    st.ctx.in_place = in_place
    poison = poison_value(cfg.dt.name)

    def once() -> None:
        f(st.ctx, send, recv)
        if scale:
            scale_into(recv, p)
    for _ in range(cfg.warmup):
        once()
    comm.Barrier()
    t, tmed, cv, p99 = time_iterations(MPI, once, cfg.iters)
    nwrong = 0
    if cfg.check:
        if in_place:
            bufs.refill_in_place(poison)
        else:
            recv.fill(poison)
        once()
        if bufs.expected is not None:
            nwrong = int(np.count_nonzero(recv != bufs.expected))
    st.ctx.in_place = False
    tvec = np.array([t, tmed, cv, p99])
    tmin, tmax, tsum = np.zeros(4), np.zeros(4), np.zeros(4)
    comm.Allreduce(tvec, tmin, op=MPI.MIN)
    comm.Allreduce(tvec, tmax, op=MPI.MAX)
    comm.Allreduce(tvec, tsum, op=MPI.SUM)
    wrong = comm.allreduce(nwrong, op=MPI.SUM)
    t0r, med0 = comm.bcast((t, tmed), root=0)
    _, slowest = comm.allreduce((t, st.rank), op=MPI.MAXLOC)
    timed = {0: t0r, 1: tsum[0] / p, 2: tmin[0], 3: tmax[0]}[cfg.average]
    median = {0: med0, 1: tsum[1] / p, 2: tmin[1], 3: tmax[1]}[cfg.average]
    return Measured(timed, median, tmin[0], tmax[0], t0r, tmax[2], tmax[3], int(slowest), wrong)


def execute(st: State, emit: Emit) -> int:
    """Sizes in order; at each size every algorithm in turn (interleaved, so a change of
    machine load hits them alike), out of place then in place."""
    cfg, comm, rank, p = st.cfg, st.comm, st.rank, st.p
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
             f"{TIMING[cfg.average]} over ranks; algorithms interleaved at each size"
             + (f", predicted by {st.predict.name}" if st.predict else ""))
        if st.meta["oversubscribed"]:
            emit("# WARNING: more ranks than cores on a host (oversubscribed): times measure "
                 "the scheduler as much as the algorithms")
        for algo in cfg.algos:
            emit(f"# algo {algo}: {REGISTRY[algo].run_descriptions[coll]}")
        emit("#")
        emit(run_table_groups())
        emit(table.header())
    total_wrong, busbws = 0, []
    dog = Watchdog(cfg.timeout, rank)
    factor = COLLECTIVES[coll].busbw(p)
    for nbytes in cfg.sizes:
        bufs = Buffers(coll, rank, p, nbytes, cfg.dt.name, cfg.op, cfg.root)
        inplace = bufs.in_place() if cfg.in_place else None
        for algo in cfg.algos:
            f = REGISTRY[algo].runs[coll]
            got: dict[str, Measured] = {}
            for place, (send, recv) in ((PLACES[0], (bufs.send, bufs.recv)),
                                        (PLACES[1], inplace)) if inplace else \
                    ((PLACES[0], (bufs.send, bufs.recv)),):
                dog.arm(f"{algo} {coll} of {bufs.nbytes} bytes {place}")
                got[place] = _measure(st, f, send, recv, bufs, place == PLACES[1])
                total_wrong += got[place].wrong
            dog.arm(f"saving {algo} {coll} of {bufs.nbytes} bytes")
            if rank == 0:
                busbws.append(_report(st, algo, bufs, got, factor, table, emit))
            comm.Barrier()      # nobody starts the next one before rank 0 has saved this one
    # the watchdog stays armed from the first size to the end: no gap between sizes
    dog.arm("finishing the run")
    expect_failed = False
    if rank == 0:
        emit(f"# Out of bounds values : {total_wrong} {'OK' if total_wrong == 0 else 'FAILED'}")
        avg = sum(busbws) / len(busbws) if busbws else 0.0
        emit(f"# Avg bus bandwidth    : {avg:.4g}")
        if cfg.min_busbw is not None:
            for algo in cfg.algos:
                last = [r for r in st.rows if r["algorithm"] == algo
                        and r["placement"] == PLACES[0]][-1:]
                if last:
                    verdict = "OK" if last[0]["busbw_gbps"] >= cfg.min_busbw else "FAILED"
                    st.low_busbw.append(f"{algo} {last[0]['busbw_gbps']:.2f} GB/s at "
                                        f"{human(last[0]['nbytes'])} {verdict}")
            emit(f"# busbw check (--min-busbw {cfg.min_busbw:g} GB/s at the largest size): "
                 + ", ".join(st.low_busbw))
        expect_failed = _expectations(st, emit)
        marked = sorted({r["extrapolated"] for r in st.rows if r.get("extrapolated")})
        if marked and st.predict:
            emit(f"# * predicted beyond {st.predict.name}'s calibration data: {'; '.join(marked)}")
        files = [str(x) for x in st.paths] + ([str(st.nccl_json.path)] if st.nccl_json else [])
        emit(f"# Results: {', '.join(files)} (run {st.run_id})")
    failed, expect_failed = comm.bcast(
        (any(x.endswith("FAILED") for x in st.low_busbw), expect_failed), root=0)
    comm.Barrier()
    dog.disarm()
    return 1 if total_wrong or failed else 3 if expect_failed else 0


def _expectations(st: State, emit: Emit) -> bool:
    """Rank 0: --expect-busbw / --expect-ratio, one line per row that falls short; True if
    any does (exit code 3, for acceptance scripts)."""
    cfg, short = st.cfg, []
    for r in st.rows:
        where = f"{r['algorithm']} {r['nbytes']} B {r['placement']}"
        if cfg.expect_busbw is not None and r["busbw_gbps"] < cfg.expect_busbw:
            short.append(f"{where}: busbw {r['busbw_gbps']:.3g} GB/s < --expect-busbw "
                         f"{cfg.expect_busbw:g}")
        if cfg.expect_ratio is not None and r.get("ratio") is not None \
                and r["ratio"] > cfg.expect_ratio:
            short.append(f"{where}: {r['ratio']:.2f}x the predicted time > --expect-ratio "
                         f"{cfg.expect_ratio:g}")
    for line in short:
        emit(f"# EXPECTATION FAILED {line}")
    if cfg.expect_busbw is not None or cfg.expect_ratio is not None:
        emit(f"# expectations: {len(short)} of {len(st.rows)} rows fall short"
             + (" (exit code 3)" if short else ""))
    return bool(short)


def _report(st: State, algo: str, bufs: Buffers, got: dict[str, Measured], factor: float,
            table: Any, emit: Emit) -> float:
    """Rank 0: print the (size, algorithm) row, keep a results row per placement and save
    every completed row of this run; returns the out-of-place busbw."""
    cfg = st.cfg
    assert cfg.dt is not None
    nb = bufs.nbytes
    pred = ratio = None
    extra = ""
    if st.predict is not None:
        pred, extra = predict_time(st.predict, nb, algo, st.p, cfg.collective)
    shown: dict[str, Any] = {"size": nb, "count": bufs.count, "type": cfg.dt.nccl,
                             "redop": bufs.redop, "root": bufs.root, "algo": algo}
    for place, m in got.items():
        algbw = nb / m.timed / 1e3 if m.timed > 0 else 0.0
        ratio = m.timed / pred if pred else None
        st.rows.append(dict(
            st.meta, source="measured", system="local", collective=cfg.collective,
            algorithm=algo, variant=_variant(algo, cfg.collective), placement=place,
            nranks=st.p, nbytes=nb, count=bufs.count, dtype=cfg.dt.name, redop=bufs.redop,
            root=bufs.root if bufs.root >= 0 else None, time_us=m.timed, algbw_gbps=algbw,
            busbw_gbps=algbw * factor, time_min_us=m.tmin, time_max_us=m.tmax,
            time_rank0_us=m.t0r, time_median_us=m.median, time_p99_us=m.p99, cv_pct=m.cv_pct,
            nwrong=m.wrong, slowest_rank=m.slowest,
            slowest_host=st.hosts[m.slowest] if st.hosts else None,
            predicted_us=pred, predicted_system=st.predict.name if st.predict else None,
            ratio=ratio, extrapolated=extra or None,
            timestamp=_dt.datetime.now().isoformat(timespec="seconds")))
        sfx = "" if place == PLACES[0] else " "
        shown.update({"time" + sfx: m.timed, "algbw" + sfx: algbw,
                      "busbw" + sfx: algbw * factor, "#wrong" + sfx: m.wrong})
    if PLACES[1] not in got:
        shown.update({"time ": "N/A", "algbw ": "N/A", "busbw ": "N/A", "#wrong ": "N/A"})
    out = got[PLACES[0]]
    shown.update({"slowest": out.slowest, "max/min": out.tmax / out.tmin if out.tmin > 0 else None,
                  "cv%": out.cv_pct, "predicted": pred if not extra else (pred, "*"),
                  "meas/pred": out.timed / pred if pred else None})
    emit(table.row(shown))
    df = pd.DataFrame(st.rows)
    for path in st.paths:
        write_results(df, path, overwrite=False, run=st.run_id)
    if st.nccl_json is not None:
        st.nccl_json.update(st.run_id, st.rows, NCCL_TYPE)
    return nb / out.timed / 1e3 * factor if out.timed > 0 else 0.0
