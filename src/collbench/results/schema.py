"""The result schema: typed columns by row kind.

Model frames (``estimate``, ``sweep``) carry ``MODEL_COLUMNS`` only (plus ``extrapolated``
for a calibrated system).  Measured frames (``collbench run``, ``collbench import``) carry
``MEASURED_COLUMNS``; the metadata of each run (``META_COLUMNS``: host, MPI library,
versions, thread level, commit, command line, ...) is written once per run in a file and
joined back on reading.  Names are categorical, counts integer (nullable where a row kind
may lack them), times float: reading a file back gives the same dtypes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SCHEMA_VERSION = 2

MODEL_COLUMNS: dict[str, str] = {
    "source": "category", "system": "category", "collective": "category",
    "algorithm": "category", "variant": "category", "requested": "category",
    "nranks": "int64", "nbytes": "int64", "time_us": "float64", "algbw_gbps": "float64",
    "busbw_gbps": "float64", "latency_us": "float64", "bandwidth_us": "float64",
    "reduce_us": "float64",
}
EXTRAPOLATED: dict[str, str] = {"extrapolated": "string"}

MEASURED_COLUMNS: dict[str, str] = {
    "source": "category", "run": "category", "system": "category", "collective": "category",
    "algorithm": "category", "variant": "category", "placement": "category",
    "nranks": "int64", "nbytes": "int64", "count": "Int64", "dtype": "category",
    "redop": "category", "root": "Int64",
    "time_us": "float64", "algbw_gbps": "float64", "busbw_gbps": "float64",
    "time_min_us": "float64", "time_max_us": "float64", "time_rank0_us": "float64",
    "time_median_us": "float64", "time_p99_us": "float64", "cv_pct": "float64", "nwrong": "Int64", "slowest_rank": "Int64",
    "slowest_host": "category",
    "predicted_us": "float64", "predicted_system": "category", "ratio": "float64",
    "extrapolated": "string", "timestamp": "string", "file": "string", "line": "Int64",
}

# once per run in a file; joined onto the rows of that run when read
META_COLUMNS: dict[str, str] = {
    "host": "category", "mpi_library": "category", "mpi_version": "category",
    "mpi4py_version": "category", "thread_level": "category", "ranks_per_node": "Int64",
    "step_loops": "category", "oversubscribed": "boolean", "commit": "category", "command": "category",
    "collbench_version": "category", "iters": "Int64", "warmup": "Int64",
    "timing": "category", "started": "category", "tool": "category",
}

DTYPES: dict[str, str] = {**MODEL_COLUMNS, **EXTRAPOLATED, **MEASURED_COLUMNS, **META_COLUMNS}
SCHEMA_COLUMNS: list[str] = list(dict.fromkeys([*MODEL_COLUMNS, *EXTRAPOLATED,
                                                *MEASURED_COLUMNS, *META_COLUMNS]))


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Known columns in their schema dtypes (unknown columns kept as they are), in schema
    order; what a row kind lacks stays absent (no all-empty columns are added)."""
    out = {}
    for c in [c for c in SCHEMA_COLUMNS if c in df.columns] + \
             [c for c in df.columns if c not in DTYPES]:
        col = df[c]
        want = DTYPES.get(c)
        if want is not None and str(col.dtype) != want:
            try:
                if want in ("int64", "Int64", "float64"):
                    col = pd.to_numeric(col, errors="coerce")
                    if want == "int64" and col.isna().any():
                        want = "Int64"
                    elif want == "int64" and col.dtype.kind == "f":
                        col = col.round()
                    elif want == "Int64" and col.dtype.kind == "f":
                        col = col.round()
                elif want == "boolean" and col.dtype == object:
                    col = col.map({True: True, False: False, "True": True, "False": False,
                                   "true": True, "false": False}, na_action="ignore")
                col = col.astype(want)
            except (TypeError, ValueError):
                pass
        out[c] = col
    return pd.DataFrame(out, index=df.index)


def column(df: pd.DataFrame, name: str, default=pd.NA) -> pd.Series:
    """A column, or a series of ``default`` where the frame lacks it (mixed tables)."""
    if name in df.columns:
        return df[name]
    dtype = DTYPES.get(name, "object")
    if default is pd.NA and dtype.startswith("float"):
        default = np.nan
    return pd.Series(default, index=df.index, dtype=dtype)
