"""Results files: CSV or JSON, run metadata once per run, written atomically, never lost.

CSV::

    # collbench results, schema 2
    # run: {"run": "20261121-143000-host-4242", "host": "host", "mpi_version": "...", ...}
    source,run,system,collective,algorithm,...

(``pandas.read_csv(path, comment="#")`` reads the rows; ``collbench.read_results`` also
joins each run's metadata back.)  JSON: ``{"collbench_results": 2, "runs": [...],
"results": [...]}``, nccl-tests' ``-J`` shape: configuration once, then the results list.

Writing to a file that exists keeps what is there: the rows of other runs are read back
and written again beside the new run's (under an exclusive lock on the folder, so
concurrent writers cannot drop each other's rows).  ``overwrite=True`` replaces the file.
"""
from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..algorithms.base import COLLECTIVES
from ..errors import ResultsFileError
from ..fileio import read_text_file, user_path
from .schema import META_COLUMNS, SCHEMA_VERSION, typed

SUFFIXES = (".csv", ".json")
MAX_RESULTS_BYTES = 1 << 30
HEADER = f"# collbench results, schema {SCHEMA_VERSION}"


def check_path(path: str | os.PathLike[str]) -> Path:
    """A results path with a valid suffix (checked before any work)."""
    p = user_path(path, "results file", ResultsFileError)
    if str(path) == "-" or p.suffix not in SUFFIXES:
        raise ResultsFileError(f"results file {str(path)[:80]!r} must end in .csv or .json")
    return p


def atomic_write(path: Path, text: str) -> None:
    """Readers see the old or the new file, never a partial one; a failure says why."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ResultsFileError(f"cannot write {path}: {exc.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)        # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        why = "disk full" if exc.errno == errno.ENOSPC else exc.strerror
        raise ResultsFileError(f"cannot write {path}: {why} (the previous file is unchanged)"
                               ) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the folder of ``path`` for a read-modify-write of it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError as exc:
        raise ResultsFileError(f"cannot write {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _split(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Rows without their run metadata, and each run's metadata once.  A metadata column
    that varies within a run (e.g. the hosts of several blocks of one imported file) stays
    a row column: nothing is lost."""
    if "run" not in df.columns:
        return df, []
    meta_cols = [c for c in df.columns if c in META_COLUMNS]
    if meta_cols:
        varies = df.groupby("run", sort=False, observed=True)[meta_cols].nunique(dropna=False).max()
        meta_cols = [c for c in meta_cols if varies[c] <= 1]
    if not meta_cols:
        return df, []
    runs = []
    for run, g in df.groupby("run", sort=False, observed=True):
        m: dict[str, Any] = {"run": str(run)}
        for c in meta_cols:
            vals = g[c].dropna().unique()
            if len(vals):
                v = vals[0]
                m[c] = v.item() if isinstance(v, np.generic) else v
        runs.append(m)
    return df.drop(columns=meta_cols), runs


def _text(df: pd.DataFrame, suffix: str) -> str:
    rows, runs = _split(df)
    if suffix == ".json":
        records = json.loads(rows.to_json(orient="records"))
        return json.dumps({"collbench_results": SCHEMA_VERSION, "runs": runs,
                           "results": records}, indent=1) + "\n"
    lines = [HEADER] + [f"# run: {json.dumps(m, default=str)}" for m in runs]
    return "\n".join(lines) + "\n" + rows.to_csv(index=False)


def write_results(df: pd.DataFrame, path: str | os.PathLike[str], *, overwrite: bool = True,
                  run: str | list[str] | None = None) -> Path:
    """Write rows to ``path`` (.csv or .json) atomically.  ``overwrite=False``: keep the
    rows already in the file (other runs), replacing only those of run(s) ``run``."""
    p = check_path(path)
    if overwrite:
        atomic_write(p, _text(df, p.suffix))
        return p
    with locked(p):
        old = _existing(p, keep_out=run)
        new = df if old is None else pd.concat([old, df], ignore_index=True)
        atomic_write(p, _text(typed(new), p.suffix))
    return p


def _existing(path: Path, keep_out: str | list[str] | None) -> pd.DataFrame | None:
    if not path.exists():
        return None
    old = read_results(path)
    if keep_out is not None and "run" in old.columns:
        drop = [keep_out] if isinstance(keep_out, str) else list(keep_out)
        old = old[~old["run"].astype("string").isin(drop).fillna(False)]
    return old


def check_existing(path: Path) -> None:
    """An existing file at ``path`` must be a readable results file (else it would be
    replaced): checked before a run starts."""
    if path.exists():
        read_results(path)


def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Rows of a results file (schema 2, or the plain CSV/JSON records of schema 1) with
    their run metadata joined back, in the schema's dtypes."""
    p = check_path(path)
    text = read_text_file(p, "results file", ResultsFileError, MAX_RESULTS_BYTES)
    try:
        if p.suffix == ".json":
            doc = json.loads(text)
            if isinstance(doc, dict) and "results" in doc:
                runs = doc.get("runs") or []
                df = pd.DataFrame(doc["results"])
            elif isinstance(doc, list):
                runs, df = [], pd.DataFrame(doc)
            else:
                raise ValueError("not a results document")
        else:
            runs = [json.loads(line.split(":", 1)[1]) for line in text.splitlines()
                    if line.startswith("# run:")]
            df = pd.read_csv(io.StringIO(text), comment="#", dtype={"run": str},
                             keep_default_na=True)
    except (ValueError, TypeError, RecursionError, pd.errors.ParserError) as exc:
        msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ResultsFileError(f"{p} is not a collbench results file: {msg}") from None
    if not isinstance(runs, list) or not all(isinstance(m, dict) and "run" in m for m in runs):
        raise ResultsFileError(f"{p}: malformed run metadata")
    required = {"source", "collective", "algorithm", "nranks", "nbytes", "time_us"}
    if len(df) and not required <= set(df.columns):
        raise ResultsFileError(f"{p} is not a collbench results file: it lacks "
                               f"{', '.join(sorted(required - set(df.columns)))}")
    if runs and "run" in df.columns:
        meta = pd.DataFrame(runs)
        meta["run"] = meta["run"].astype(str)
        meta = meta[[c for c in meta.columns if c == "run" or c in META_COLUMNS]]
        df = df.assign(run=df["run"].astype(str)).merge(meta, on="run", how="left")
    if len(df):
        df = _checked(p, df)
    return typed(df)


def _checked(p: Path, df: pd.DataFrame) -> pd.DataFrame:
    """Rows a reader can trust: known collectives, sizes >= 0, ranks >= 1, times finite and
    positive (else one line naming the first bad row); bandwidths derived when absent."""
    def bad(mask, what):
        mask = np.asarray(mask, bool)
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ResultsFileError(f"{p}: row {i + 1} has {what}")

    coll = df["collective"].astype(str)
    unknown = ~coll.isin(list(COLLECTIVES))
    if unknown.any():
        bad(unknown, f"collective {coll[unknown].iloc[0]!r}; valid: {', '.join(COLLECTIVES)}")
    num = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(float)
           for c in ("nranks", "nbytes", "time_us")}
    bad(~np.isfinite(num["nbytes"]) | (num["nbytes"] < 0) | (num["nbytes"] != np.floor(num["nbytes"])),
        "a size that is not a whole number of bytes >= 0")
    bad(~np.isfinite(num["nranks"]) | (num["nranks"] < 1) | (num["nranks"] != np.floor(num["nranks"])),
        "a rank count that is not a whole number >= 1")
    bad(~np.isfinite(num["time_us"]) | (num["time_us"] <= 0), "a time that is not finite and > 0 us")
    if "algbw_gbps" not in df.columns or "busbw_gbps" not in df.columns:
        algbw = num["nbytes"] / (num["time_us"] * 1e3)
        factor = np.array([COLLECTIVES[c].busbw(int(n)) for c, n in zip(coll, num["nranks"])])
        df = df.assign(**{k: v for k, v in (("algbw_gbps", algbw), ("busbw_gbps", algbw * factor))
                          if k not in df.columns})
    return df
