"""nccl-tests' ``-J`` JSON layout, written by ``collbench run -J FILE`` beside collbench's own
results files (same rows; the CSV/JSON of :mod:`.io` stays the reference).

The layout is nccl-tests' own, key for key, so that scripts written for ``all_reduce_perf
-J`` read it unchanged: ``start_time``, ``args``, ``env``, ``nccl_version``, ``config`` (with
``devices``), ``results`` (``size``, ``count``, ``type``, ``redop``, ``root`` as nccl-tests
prints it, ``out_of_place`` / ``in_place`` with ``time`` in us, ``alg_bw``, ``bus_bw``,
``nwrong``, ``actual_iterations``, ``experiment_name``), ``out_of_bounds``,
``average_bus_bandwidith`` (nccl-tests' spelling), ``errors``, ``end_time``.  nccl-tests'
quirks are kept: booleans of ``config`` and ``okay`` are the strings ``"true"``/``"false"``, a
root is a right-aligned string (``"    -1"``), ``nccl_version`` is null here (no NCCL).

What nccl-tests has no key for goes under ``collbench`` (version, collective, ranks, MPI
library, run ids) and, per result, ``algorithm`` (``experiment_name`` is the algorithm too).
The file is rewritten atomically after every size, so a killed job leaves a complete file
with the sizes done.  As nccl-tests does, an existing file is never replaced: the next free
name ``FILE.0``, ``FILE.1``, ... is used and printed.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..algorithms.base import COLLECTIVES
from ..errors import ResultsFileError
from ..fileio import user_path
from .io import atomic_write

# environment variables that say how the run was made (nccl-tests writes the whole
# environment; tokens and paths of unrelated tools have no business in a results file)
ENV_PREFIXES = ("NCCL_", "MPICH_", "MPIR_CVAR_", "HYDRA_", "UCX_", "FI_", "OMPI_", "PMIX_",
                "MPI4PY_", "COLLBENCH_", "OMP_", "SLURM_JOB", "SLURM_NNODES", "SLURM_NTASKS")
MAX_PROBE = 1000


def check_json_path(path: str | os.PathLike[str]) -> Path:
    """``-J FILE``: a usable name whose folder can hold it (checked before any work); an
    existing FILE must be a regular file (it is kept: the next free name is used)."""
    p = user_path(path, "-J file", ResultsFileError)
    if str(path) == "-":
        raise ResultsFileError("-J wants a file name (nccl-tests' JSON is written to a file)")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ResultsFileError(f"-J file {p}: {exc.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ResultsFileError(f"-J file {p} exists and is not a regular file")
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ResultsFileError(f"-J file {p}: {parent} is not a folder")
    return p


def free_name(path: Path) -> Path:
    """nccl-tests' rule: FILE if it does not exist, else the first free FILE.0, FILE.1, ...;
    the name is claimed (created empty, exclusively) so two jobs never pick the same."""
    candidates = [path] + [Path(f"{path}.{k}") for k in range(MAX_PROBE)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsFileError(f"cannot write -J file {path}: {exc.strerror}") from None
    for c in candidates:
        try:
            fd = os.open(c, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultsFileError(f"cannot write -J file {c}: {exc.strerror}") from None
        os.close(fd)
        return c
    raise ResultsFileError(f"-J file {path}: {path}.0 to {path}.{MAX_PROBE - 1} all exist")


def _now() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _flag(x: bool) -> str:
    return "true" if x else "false"


def _root(root: Any) -> str:
    r = -1 if root is None or root != root else int(root)
    return f"{r:6d}"


def _place(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"time": float(row["time_us"]), "alg_bw": float(row["algbw_gbps"]),
            "bus_bw": float(row["busbw_gbps"]), "nwrong": float(row["nwrong"]),
            "side_comp_bw": None, "estimated_time": None}


def results_list(rows: Iterable[Mapping[str, Any]], nccl_type: Mapping[str, str]
                 ) -> list[dict[str, Any]]:
    """One nccl-tests result per (run, size, algorithm): out of place, then in place (null
    when not timed), in the order the rows were measured."""
    out: list[dict[str, Any]] = []
    index: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["run"], int(r["nbytes"]), r["algorithm"])
        rec = index.get(key)
        if rec is None:
            rec = {"size": int(r["nbytes"]), "count": int(r["count"]),
                   "type": nccl_type.get(str(r["dtype"]), str(r["dtype"])),
                   "redop": str(r["redop"]), "root": _root(r.get("root")),
                   "out_of_place": None, "in_place": None,
                   "actual_iterations": int(r["iters"]), "experiment_name": str(r["algorithm"]),
                   "algorithm": str(r["algorithm"]), "collective": str(r["collective"]),
                   "run": str(r["run"])}
            index[key] = rec
            out.append(rec)
        rec["out_of_place" if r["placement"] == "out-of-place" else "in_place"] = _place(r)
    return out


class NcclJson:
    """Rank 0's ``-J`` file: the head once, then the whole document rewritten after every
    size (atomic: readers see the previous or the new complete file)."""

    def __init__(self, path: Path, args: list[str], config: dict[str, Any],
                 devices: list[dict[str, Any]], collbench: dict[str, Any],
                 env: Mapping[str, str] | None = None) -> None:
        self.path = path
        env = os.environ if env is None else env
        self.head: dict[str, Any] = {
            "start_time": _now(), "args": list(args),
            "env": [f"{k}={v}" for k, v in sorted(env.items()) if k.startswith(ENV_PREFIXES)],
            "nccl_version": None,
            "config": dict(config, devices=devices),
        }
        self.collbench = dict(collbench)
        self.runs: dict[str, list[Mapping[str, Any]]] = {}
        self.expect_busbw: float | None = None

    def update(self, run: str, rows: list[Mapping[str, Any]], nccl_type: Mapping[str, str]
               ) -> None:
        self.runs[run] = list(rows)
        self.write(nccl_type)

    def document(self, nccl_type: Mapping[str, str]) -> dict[str, Any]:
        rows = [r for rs in self.runs.values() for r in rs]
        results = results_list(rows, nccl_type)
        wrong = int(sum(r["nwrong"] for r in rows))
        oop = [r["busbw_gbps"] for r in rows if r["placement"] == "out-of-place"]
        avg = float(sum(oop) / len(oop)) if oop else 0.0
        okay: str = "unchecked" if self.expect_busbw is None else \
            _flag(all(b >= self.expect_busbw for b in oop))
        colls = sorted({str(r["collective"]) for r in rows})
        doc = dict(self.head)
        if len(colls) == 1:
            doc["program"] = COLLECTIVES[colls[0]].nccl_program
        doc.update({
            "results": results,
            "out_of_bounds": {"count": wrong, "okay": _flag(wrong == 0)},
            "average_bus_bandwidith": {"bandwidith": avg, "okay": okay},
            "errors": [],
            "collbench": dict(self.collbench, runs=list(self.runs)),
            "end_time": _now(),
        })
        return doc

    def write(self, nccl_type: Mapping[str, str]) -> None:
        atomic_write(self.path, json.dumps(self.document(nccl_type), indent=1) + "\n")


def nccl_config(sizes: list[int], stepfactor: str | None, stepbytes: int | None, warmup: int,
                iters: int, check: int, nranks: int) -> dict[str, Any]:
    """nccl-tests' ``config`` object for a collbench run (one process per rank, no GPU)."""
    cfg: dict[str, Any] = {"nthreads": 1, "ngpus": 1,
                           "minimum_bytes": min(sizes) if sizes else 0,
                           "maximum_bytes": max(sizes) if sizes else 0}
    if stepbytes is not None:
        cfg["step_bytes"] = int(stepbytes)
    else:
        f = float(stepfactor or 2)
        cfg["step_factor"] = int(f) if f == int(f) else f
    cfg.update({"warmup_iters": warmup, "iterations": iters, "aggregated_iterations": 1,
                "validation": check, "graph": 0, "blocking_collectives": _flag(False),
                "parallel_init": _flag(False), "nranks": nranks})
    return cfg


def devices(idents: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """nccl-tests' ``devices`` list: one entry per rank (a CPU process here: device -1)."""
    return [{"rank": r, "group": 0, "pid": pid, "hostname": host, "device": -1,
             "device_hex": "", "device_info": "CPU (MPI process)"}
            for r, (pid, host) in enumerate(idents)]
