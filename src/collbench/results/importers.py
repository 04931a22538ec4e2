"""``collbench import``: nccl-tests (text table or -J JSON) and OSU output into result rows.

Rows come out in the common schema with ``source=measured``.  nccl-tests rows are the
library's own choice of algorithm, so they are named ``auto`` (what the model's tuner
predicts); OSU rows time MPI_Allreduce and friends, so they are named ``mpi``.  Anything the
parser does not understand is an error naming the file and line; nothing is written then.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..algorithms import COLLECTIVES
from ..errors import ImportParseError, InputError
from ..fileio import read_text_file
from ..units import MAX_BYTES
from .schema import typed

MAX_IMPORT_BYTES = 256 << 20

NCCL_TYPES = {"float": "float32", "half": "float16", "double": "float64", "bfloat16": "bfloat16",
              "int32": "int32", "int64": "int64", "int8": "int8", "uint8": "uint8",
              "uint32": "uint32", "uint64": "uint64", "float32": "float32", "float16": "float16",
              "float64": "float64", "int": "int32", "char": "int8", "fp8_e4m3": "fp8_e4m3",
              "fp8_e5m2": "fp8_e5m2"}
NCCL_COLLECTIVES = {"all_reduce": "allreduce", "reduce_scatter": "reduce_scatter",
                    "all_gather": "all_gather", "broadcast": "broadcast", "reduce": "reduce",
                    "alltoall": "all_to_all"}
OSU_COLLECTIVES = {"allreduce": "allreduce", "reduce_scatter": "reduce_scatter",
                   "allgather": "all_gather", "broadcast": "broadcast", "bcast": "broadcast",
                   "reduce": "reduce", "all-to-all": "all_to_all", "alltoall": "all_to_all"}
OSU_TYPES = {"MPI_FLOAT": "float32", "MPI_DOUBLE": "float64", "MPI_INT": "int32",
             "MPI_CHAR": "int8", "MPI_LONG": "int64"}


def _err(path, lineno, msg):
    return ImportParseError(f"{path}:{lineno}: {msg}")


def detect(text: str) -> str:
    s = text.lstrip()
    if s.startswith("{"):
        return "nccl-json"
    if re.search(r"^#\s*OSU MPI", text, re.MULTILINE):
        return "osu"
    if re.search(r"out-of-place|nThread|Collective test starting", text):
        return "nccl-text"
    raise ImportParseError("not nccl-tests output (text or -J JSON) nor OSU output: no nccl-tests "
                     "header ('# nThread', 'out-of-place') and no '# OSU MPI' line")


def _coll_from_program(name: str, path, lineno):
    base = Path(name.strip()).name.replace("_perf", "").replace("_mpi", "")
    if base not in NCCL_COLLECTIVES:
        raise _err(path, lineno, f"nccl-tests program {name.strip()!r} is not one collbench "
                   f"models; known: {', '.join(p + '_perf' for p in NCCL_COLLECTIVES)}")
    return NCCL_COLLECTIVES[base]


def _num(tok, path, lineno, what, kind=float):
    try:
        return kind(tok)
    except ValueError:
        raise _err(path, lineno, f"{what} {tok!r} is not a number") from None


def parse_nccl_text(text: str, path="<text>", collective=None, nranks=None) -> list:
    rows = []
    coll = collective
    ranks = 0
    hosts = set()
    iters = None
    in_block = False
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = re.match(r"#\s*Collective test starting:\s*(\S+)", s)
            if m:
                coll = collective or _coll_from_program(m.group(1), path, lineno)
            if re.match(r"#\s*nThread\b", s):
                m = re.search(r"\biters:\s*(\d+)\s+agg", s)      # not "warmup iters"
                iters = int(m.group(1)) if m else None
                if in_block:          # a new run in the same file: its own ranks
                    ranks, hosts, in_block = 0, set(), False
            m = re.match(r"#\s*Rank\s+\d+\s+Group\s+\d+\s+Pid\s+\d+\s+on\s+(\S+)", s)
            if m:
                ranks += 1
                hosts.add(m.group(1))
            continue
        if re.search(r"NCCL (INFO|WARN)", s):     # NCCL_DEBUG lines interleaved with the table
            continue
        f = s.split()
        if len(f) not in (13, 14, 15):
            raise _err(path, lineno, f"expected a table row of 13 fields (size count type redop "
                       f"root, then time algbw busbw #wrong out-of-place and in-place), got "
                       f"{len(f)}")
        in_block = True
        p = nranks or ranks
        if not p:
            raise _err(path, lineno, "no '#  Rank ...' lines before the table: pass --nranks")
        if coll is None:
            coll = "allreduce"
        size = _num(f[0], path, lineno, "size", int)
        count = _num(f[1], path, lineno, "count", int)
        dtype = NCCL_TYPES.get(f[2])
        if dtype is None:
            raise _err(path, lineno, f"unknown nccl-tests type {f[2]!r}; known: "
                       f"{', '.join(NCCL_TYPES)}")
        for place, off in (("out-of-place", 5), ("in-place", 9)):
            t = _num(f[off], path, lineno, "time", float)
            algbw = _num(f[off + 1], path, lineno, "algbw", float)
            busbw = _num(f[off + 2], path, lineno, "busbw", float)
            wrong = None if f[off + 3] == "N/A" else _num(f[off + 3], path, lineno, "#wrong", float)
            rows.append(_row(coll, p, size, count, dtype, f[3], f[4], t, algbw, busbw, wrong,
                             place, iters, ",".join(sorted(hosts)), "NCCL"))
    if not rows:
        raise ImportParseError(f"{path}: no nccl-tests table rows found")
    return rows


def _row(coll, p, size, count, dtype, redop, root, t, algbw, busbw, wrong, variant, iters, host,
         lib, tmin=None, tmax=None):
    return dict(source="measured", system="imported", collective=coll,
                algorithm="auto" if lib == "NCCL" else "mpi",
                variant="auto" if lib == "NCCL" else "mpi", placement=variant,
                nranks=p, nbytes=size, count=count, dtype=dtype, redop=redop,
                root=None if str(root) == "-1" else root, time_us=t, algbw_gbps=algbw,
                busbw_gbps=busbw, nwrong=wrong, iters=iters, host=host or None, mpi_library=lib,
                time_min_us=tmin, time_max_us=tmax)


def parse_nccl_json(text: str, path="<json>", collective=None, nranks=None) -> list:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _err(path, exc.lineno, f"broken JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or "results" not in doc:
        raise ImportParseError(f"{path}: nccl-tests -J JSON needs a 'results' list")
    cfg = doc.get("config") or {}
    devices = cfg.get("devices") or []
    p = nranks or len(devices)
    if not p:
        raise ImportParseError(f"{path}: the JSON lists no devices: pass --nranks")
    coll = collective
    if coll is None:
        prog = doc.get("program") or doc.get("test") or cfg.get("program") or ""
        coll = _coll_from_program(prog, path, 1) if prog else "allreduce"
    hosts = ",".join(sorted({str(d.get("hostname") or d.get("host") or "") for d in devices
                             if isinstance(d, dict)} - {""}))
    rows = []
    for i, r in enumerate(doc["results"]):
        if not isinstance(r, dict) or "size" not in r:
            raise ImportParseError(f"{path}: results[{i}] has no 'size'")
        dtype = NCCL_TYPES.get(str(r.get("type", "float")))
        if dtype is None:
            raise ImportParseError(f"{path}: results[{i}]: unknown type {r.get('type')!r}")
        for place, key in (("out-of-place", "out_of_place"), ("in-place", "in_place")):
            d = r.get(key)
            if not d:
                continue
            t = d.get("time", d.get("cpu_time"))
            if t is None or "alg_bw" not in d or "bus_bw" not in d:
                raise ImportParseError(f"{path}: results[{i}].{key} needs time, alg_bw and bus_bw")
            rows.append(_row(coll, p, int(r["size"]), int(r.get("count", 0)), dtype,
                             r.get("redop"), r.get("root"), float(t), float(d["alg_bw"]),
                             float(d["bus_bw"]), d.get("nwrong"), place,
                             cfg.get("iterations"), hosts, "NCCL"))
    if not rows:
        raise ImportParseError(f"{path}: no results in the JSON")
    return rows


def parse_osu(text: str, path="<osu>", collective=None, nranks=None) -> list:
    coll, dtype, cols = collective, "float32", None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = re.match(r"#\s*OSU MPI(?:-\w+)?\s+(\S+)\s+Latency Test", s)
            if m and collective is None:
                name = m.group(1).lower()
                if name not in OSU_COLLECTIVES:
                    raise _err(path, lineno, f"OSU test {m.group(1)!r} is not one collbench "
                               f"models; known: {', '.join(OSU_COLLECTIVES)}")
                coll = OSU_COLLECTIVES[name]
            m = re.match(r"#\s*Datatype:\s*(\w+)", s)
            if m:
                dtype = OSU_TYPES.get(m.group(1), m.group(1))
            if re.match(r"#\s*Size", s):
                cols = re.findall(r"Avg|Min|Max|Iterations|Validation|P50|P90|P99", s)
            continue
        if cols is None:
            raise _err(path, lineno, "a data row before the '# Size ...' header")
        f = s.split()
        if len(f) != 1 + len(cols):
            raise _err(path, lineno, f"expected {1 + len(cols)} fields (Size "
                       f"{' '.join(cols)}), got {len(f)}")
        if not nranks:
            raise _err(path, lineno, "OSU output does not say how many ranks ran: pass --nranks")
        vals = dict(zip(cols, f[1:]))
        size = _num(f[0], path, lineno, "size", int)
        t = _num(vals["Avg"], path, lineno, "latency", float)
        tmin = _num(vals["Min"], path, lineno, "latency", float) if "Min" in vals else None
        tmax = _num(vals["Max"], path, lineno, "latency", float) if "Max" in vals else None
        iters = _num(vals["Iterations"], path, lineno, "iterations", int) if "Iterations" in vals else None
        wrong = None
        if "Validation" in vals:
            wrong = 0 if vals["Validation"].lower() == "pass" else 1
        c = coll or "allreduce"
        algbw = size / t / 1e3 if t > 0 else 0.0
        busbw = algbw * COLLECTIVES[c].busbw(nranks)
        esize = {"float32": 4, "float64": 8, "int32": 4, "int8": 1, "int64": 8}.get(dtype, 4)
        rows.append(_row(c, nranks, size, size // esize, dtype, "sum" if COLLECTIVES[c].reduces
                         else None, None, t, algbw, busbw, wrong, "osu", iters, None, "MPI (OSU)",
                         tmin, tmax))
    if not rows:
        raise ImportParseError(f"{path}: no OSU data rows found")
    return rows


def import_file(path, *, collective=None, nranks=None) -> pd.DataFrame:
    """Rows of one nccl-tests / OSU output file (one run: ``run`` = import:FILE)."""
    path = Path(path)
    text = read_text_file(path, "file", ImportParseError, MAX_IMPORT_BYTES)
    if collective is not None and collective not in COLLECTIVES:
        raise InputError(f"unknown collective {collective!r}; valid: {', '.join(COLLECTIVES)}")
    if nranks is not None and not (isinstance(nranks, int) and 1 <= nranks <= 10 ** 7):
        raise InputError(f"--nranks must be a whole number from 1 to 10,000,000; got {nranks}")
    kind = detect(text)
    parser = {"nccl-json": parse_nccl_json, "nccl-text": parse_nccl_text, "osu": parse_osu}[kind]
    try:
        rows = parser(text, str(path), collective, nranks)
    except RecursionError:
        raise ImportParseError(f"{path}: JSON nested too deeply") from None
    df = pd.DataFrame(rows)
    size = pd.to_numeric(df["nbytes"], errors="coerce")
    bad = ~((size >= 0) & (size <= MAX_BYTES) & (df["time_us"].map(_finite_positive)))
    if bad.any():
        r = df[bad].iloc[0]
        raise ImportParseError(f"{path}: row of size {r['nbytes']} has time {r['time_us']} us; "
                               f"sizes must be 0..{MAX_BYTES} (1 PiB) and times finite and positive")
    tool = {"nccl-json": "nccl-tests -J", "nccl-text": "nccl-tests", "osu": "OSU"}[kind]
    df = df.assign(run=f"import:{path.name}", tool=tool, file=str(path))
    return typed(df)


def _finite_positive(x) -> bool:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return False
    return v == v and 0 < v < float("inf")
