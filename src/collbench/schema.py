"""The one result schema: model estimates and measurements are rows of the same table.

``source`` is ``model`` or ``measured``; measurement columns are empty (NA) on model rows
and vice versa.  Files are CSV or JSON (records), written atomically.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

SCHEMA_COLUMNS = [
    # what was estimated or measured
    "source", "system", "collective", "algorithm", "variant", "requested", "nranks", "nbytes",
    "count", "dtype", "redop", "root",
    # results
    "time_us", "algbw_gbps", "busbw_gbps", "latency_us", "bandwidth_us", "reduce_us",
    "extrapolated",          # model rows of a calibrated system: why this is beyond its data
    # measurement details
    "time_min_us", "time_max_us", "time_rank0_us", "time_median_us", "timing", "nwrong", "iters", "warmup",
    "predicted_us", "predicted_system", "ratio",
    "host", "mpi_library", "mpi_version", "mpi4py_version", "thread_level", "ranks_per_node",
    "commit", "timestamp", "collbench_version",
]


def finish_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every schema column present, in schema order (extra columns kept at the end)."""
    for c in SCHEMA_COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    extra = [c for c in df.columns if c not in SCHEMA_COLUMNS]
    return df[SCHEMA_COLUMNS + extra]


def _atomic_write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)        # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_results(df: pd.DataFrame, path) -> Path:
    """Write rows to ``path`` (.csv or .json) atomically: readers see the old or the new file."""
    path = Path(path)
    df = finish_frame(df.copy())
    if path.suffix == ".json":
        text = df.to_json(orient="records", indent=1)
    elif path.suffix == ".csv":
        text = df.to_csv(index=False)
    else:
        raise ValueError(f"results file {path} must end in .csv or .json")
    _atomic_write(path, text)
    return path


def read_results(path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".json":
        df = pd.DataFrame(json.loads(path.read_text()))
    elif path.suffix == ".csv":
        df = pd.read_csv(path)
    else:
        raise ValueError(f"results file {path} must end in .csv or .json")
    return finish_frame(df)
