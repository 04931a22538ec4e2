"""``--predict local``: a calibrated description of this host for this rank count, from the
cache or from a short probe (every rank times a few sizes; rank 0 fits and caches it)."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..algorithms import REGISTRY, runnable
from ..calibration import cache_path, fit
from ..errors import CollbenchError
from ..model.system import System
from ..results.io import atomic_write
from .collective import agree, time_iterations
from .config import RunConfig

PROBE_SIZES = (8, 64, 512, 4096, 32768, 262144, 2097152, 16777216)


def local_system(cfg: RunConfig, MPI: Any, comm: Any, ctx: Any, ranks_per_node: int,
                 emit: Any) -> System | None:
    """The system on rank 0 (the only rank that predicts), None on the others."""
    rank, p = comm.Get_rank(), comm.Get_size()
    host = socket.gethostname()
    path = cache_path(host, p) if rank == 0 else None
    cached = comm.bcast(path is not None and os.path.exists(path), root=0)
    if cached:
        system = error = None
        if rank == 0:
            try:
                system = System.from_toml(path)
            except CollbenchError as exc:
                error = f"{exc} (delete the file to re-probe)"
        agree(comm, error)       # every rank stops alike, none is left waiting
        if rank == 0:
            assert system is not None
            emit(f"# predict: local = {path} (fitted {system.calibration.get('date', '?')} to "
                 f"{system.calibration.get('rows', '?')} rows; delete it to re-probe)")
        return system
    # every implementation, so that the cached calibration serves later runs too (hier only
    # where ranks span nodes: on one node the model has no second tier for it)
    probe = [a for a in runnable("allreduce") if a != "hier" or ranks_per_node < p]
    if rank == 0:
        emit(f"# predict: no calibration of {host} for {p} ranks cached; probing "
             f"{', '.join(probe)} at {len(PROBE_SIZES)} sizes first ...")
    rows = []
    t_start = time.perf_counter()
    for algo in probe:
        f = REGISTRY[algo].runs["allreduce"]
        for nbytes in PROBE_SIZES:
            count = max(1, nbytes // ctx.dtype.itemsize)
            send = np.ones(count, dtype=ctx.dtype)
            recv = np.empty_like(send)
            iters = 20 if nbytes <= 262144 else 5
            for _ in range(2):
                f(ctx, send, recv)
            comm.Barrier()
            _, med, _, _ = time_iterations(MPI, lambda: f(ctx, send, recv), iters)
            med = comm.allreduce(med) / p
            nb = count * ctx.dtype.itemsize
            rows.append(dict(source="measured", system="local", collective="allreduce",
                             algorithm=algo, nranks=p, nbytes=nb, time_us=med,
                             time_median_us=med, ranks_per_node=ranks_per_node,
                             busbw_gbps=nb / med / 1e3 * 2 * (p - 1) / p, host=host))
    system = error = None
    if rank == 0:
        try:
            fitted = fit(pd.DataFrame(rows), None, files=[f"probe by collbench run on {host}"],
                         name=f"local-{host}-n{p}")
            system = fitted.system
            atomic_write(Path(path), system.to_toml())      # type: ignore[arg-type]
        except CollbenchError as exc:
            error = f"--predict local: {exc}"
        else:
            err = system.calibration["geomean_error"]
            emit(f"# predict: probed {len(rows)} points in {time.perf_counter() - t_start:.1f} s, "
                 f"fit geomean error {err:.1%}; cached as {path}")
    agree(comm, error)
    return system
