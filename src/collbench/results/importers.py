"""``collbench import``: nccl-tests / rccl-tests (text or ``-J`` JSON) and OSU output into
result rows.

The grammars (``nccl_tests.py``, ``osu.py``) find the blocks (one table of one run) and their
rows; here each block gets its collective and rank count, and becomes rows of the common
schema (``source=measured``).  nccl-tests rows are the library's own choice of algorithm,
named ``auto`` (what the model's tuner predicts); OSU rows time the MPI library's call,
named ``mpi``.

- The collective comes from the program name (``# Collective test starting:``, a command line,
  ``-J``'s ``args[0]``, OSU's title) or ``--collective``; otherwise from the table when it
  settles the question (redop ``none``, a root, count x element size against size); otherwise
  an error asks for ``--collective``.  Never a silent default.
- The rank count comes from the device lines (max rank + 1 of those shown) and from the table's
  arithmetic (size / (count x element size) for all-gather, reduce-scatter and all-to-all;
  busbw / algbw for all-reduce).  When they disagree the arithmetic wins with a warning naming
  both.  ``--nranks`` when neither says (OSU never does).
- OSU's ``Size`` of osu_allgather and osu_alltoall is per process; rows carry nccl-tests'
  convention (the whole buffer: Size x ranks).  osu_reduce_scatter's Size is already the whole
  vector (OMB splits it over the ranks), osu_bcast's and osu_reduce's the whole buffer.
- Blocks of programs collbench does not model (sendrecv_perf, osu_latency, ...) are skipped with
  a note; a file fails only when no block has rows: one line naming the file and what was
  missing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..algorithms import COLLECTIVES, REGISTRY
from ..errors import ImportParseError, InputError
from ..fileio import read_text_file
from ..units import MAX_BYTES
from . import nccl_tests, osu
from .blocks import Block
from .schema import typed

MAX_IMPORT_BYTES = 256 << 20
MAX_RANKS = 10 ** 7

NCCL_PROGRAMS = {"all_reduce": "allreduce", "reduce_scatter": "reduce_scatter",
                 "all_gather": "all_gather", "broadcast": "broadcast", "reduce": "reduce",
                 "alltoall": "all_to_all", "all_to_all": "all_to_all", "sendrecv": "sendrecv"}
OSU_PROGRAMS = {"allreduce": "allreduce", "reduce_scatter": "reduce_scatter",
                "reduce-scatter": "reduce_scatter", "allgather": "all_gather",
                "broadcast": "broadcast", "bcast": "broadcast", "reduce": "reduce",
                "all-to-all": "all_to_all", "alltoall": "all_to_all",
                "all-to-all personalized exchange": "all_to_all"}
PER_PROCESS_OSU = {"all_gather", "all_to_all"}      # OSU Size is per process: x ranks
SPLIT_BY_RANKS = {"reduce_scatter", "all_gather", "all_to_all"}   # nccl-tests count = size/p


@dataclass
class Imported:
    """Rows of one file and what the reading found worth saying."""
    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped_lines: int = 0


def detect(text: str) -> str:
    """Which grammar reads this text (nccl-tests -J JSON is parsed once, by its reader)."""
    osu = re.search(r"^\W*#?\s*OSU\s+\S+", text, re.MULTILINE) and "# Size" in text
    nccl_text = re.search(r"out-of-place|nThread", text)
    if text.lstrip().startswith("{") and not osu and not nccl_text:
        return "nccl-json"
    if osu:
        return "osu"
    if re.search(r"out-of-place|nThread|Collective test starting|_perf\b|#\s+size\s+count\s+type",
                 text):
        return "nccl-text"
    raise ImportParseError("not nccl-tests output (nor rccl-tests, -J JSON or OSU): no "
                           "nccl-tests table header ('# nThread', '#  size  count  type'), no "
                           "'# OSU ...' title")


def _program_collective(block: Block) -> tuple[str | None, str | None]:
    """(collective, None) for a modelled program, (None, name) for one that is not,
    (None, None) when the block names none."""
    if block.program is None:
        return None, None
    name = block.program.strip()
    if block.tool.startswith("OSU"):
        c = OSU_PROGRAMS.get(name.lower())
        return (c, None) if c else (None, f"OSU {name}")
    base = Path(name).name.lower()
    base = re.sub(r"(_perf)?(_mpi)?$", "", base)
    c = NCCL_PROGRAMS.get(base)
    return (c, None) if c else (None, f"{base}_perf")


def _esize(dtype: str | None) -> int | None:
    return nccl_tests.TYPE_BYTES.get(dtype or "")


def _split_ratio(block: Block) -> int | None:
    """size / (count x element size), when it is the same whole number on every row."""
    qs = set()
    for r in block.rows:
        e = _esize(r.dtype)
        if r.count is None or e is None or r.count <= 0:
            continue
        q = r.size / (r.count * e)
        if abs(q - round(q)) > 1e-9 or round(q) < 1:
            return None
        qs.add(round(q))
    return qs.pop() if len(qs) == 1 else None


def table_candidates(block: Block) -> set[str]:
    """The collectives a nccl-tests table can be, from its own columns."""
    cands = set(NCCL_PROGRAMS.values())
    ops = {(r.redop or "").lower() for r in block.rows}
    if ops & {"sum", "prod", "min", "max", "avg", "mulsum", "premulsum"}:
        cands &= {"allreduce", "reduce_scatter", "reduce", "sendrecv"}   # sendrecv prints sum
    elif ops and ops <= {"none", ""}:
        cands &= {"all_gather", "broadcast", "all_to_all"}
    roots = {r.root for r in block.rows if r.root is not None}
    if any(x >= 0 for x in roots):
        cands &= {"broadcast", "reduce"}
    elif roots == {-1}:
        cands -= {"broadcast", "reduce"}
    q = _split_ratio(block)
    if q is not None and q > 1:
        cands &= SPLIT_BY_RANKS
    elif q == 1 and len(block.devices) > 1:
        cands -= SPLIT_BY_RANKS
    ratio = _bw_ratio(block)              # busbw / algbw: 2(n-1)/n, (n-1)/n or 1
    if ratio is not None and ratio[0] > 1.01:
        cands &= {"allreduce"}
    elif ratio is not None and 0.45 < ratio[0] and ratio[1] < 0.99:
        cands &= SPLIT_BY_RANKS
    if cands == {"all_gather", "all_to_all"}:
        # nccl-tests checks all-to-all out of place only: its in-place column says N/A
        oop = [c for r in block.rows for c in r.cells if c.placement == "out-of-place"]
        inp = [c for r in block.rows for c in r.cells if c.placement == "in-place"]
        if oop and inp and all(c.wrong is not None for c in oop):
            if all(c.wrong_na for c in inp):
                cands = {"all_to_all"}
            elif all(c.wrong is not None for c in inp):
                cands = {"all_gather"}
    return cands


def _bw_ratio(block: Block) -> tuple[float, float] | None:
    """The range of busbw / algbw over rows printed precisely enough to tell."""
    lo, hi = math.inf, -math.inf
    for r in block.rows:
        for c in r.cells:
            if c.algbw is None or c.busbw is None or c.algbw < 200 * max(c.algbw_eps, 1e-12):
                continue
            lo = min(lo, (c.busbw - c.busbw_eps) / (c.algbw + c.algbw_eps))
            hi = max(hi, (c.busbw + c.busbw_eps) / (c.algbw - c.algbw_eps))
    return (lo, hi) if lo <= hi else None


def allreduce_rank_interval(block: Block) -> tuple[float, float] | None:
    """Ranks consistent with every row's busbw / algbw = 2(n-1)/n, printed digits allowed for."""
    lo, hi = 1.0, math.inf
    used = 0
    for r in block.rows:
        for c in r.cells:
            if c.algbw is None or c.busbw is None or c.algbw < 20 * c.algbw_eps:
                continue
            r_lo = max(0.0, c.busbw - c.busbw_eps) / (c.algbw + c.algbw_eps)
            r_hi = (c.busbw + c.busbw_eps) / (c.algbw - c.algbw_eps)
            n_lo = 2 / (2 - r_lo) if r_lo < 2 else math.inf
            n_hi = 2 / (2 - r_hi) if r_hi < 2 else math.inf
            lo, hi = max(lo, n_lo), min(hi, n_hi)
            used += 1
    return (lo, hi) if used else None


def _listed(block: Block) -> int | None:
    """Ranks the device lines list (a rank number beyond MAX_RANKS is a damaged line)."""
    ranks = [r for r in block.devices if r < MAX_RANKS]
    return max(ranks) + 1 if ranks else None


def settle(block: Block, where: str, collective: str | None,
           nranks: int | None) -> tuple[str, int, list[str]]:
    """(collective, ranks, warnings) of one block, or ImportParseError saying what to pass."""
    warns: list[str] = []
    prog, _ = _program_collective(block)
    osu_block = block.tool.startswith("OSU")
    cands = table_candidates(block) if not osu_block else set(COLLECTIVES)
    if collective is not None:
        coll = collective
        if prog and prog != collective:
            warns.append(f"{where}: the file says {block.program} ({prog}); using --collective "
                         f"{collective}")
    elif prog:
        coll = prog
        if coll not in cands:
            warns.append(f"{where}: {block.program} names {coll}, but the table looks like "
                         f"{' or '.join(sorted(cands)) or 'none of the collectives'}")
    elif len(cands - {"sendrecv"}) == 1:   # sendrecv only when the file names it: its table
        coll = (cands - {"sendrecv"}).pop()  # looks like all-reduce's at 2 ranks
    else:
        raise ImportParseError(
            f"{where}: the file names no program and its table fits "
            f"{', '.join(sorted(cands)) if cands else 'no collective'}: pass --collective")

    listed = _listed(block)
    exact = _split_ratio(block) if coll in SPLIT_BY_RANKS and not osu_block else None
    interval = allreduce_rank_interval(block) if coll == "allreduce" and not osu_block else None
    ints: list[int] = []
    if interval:
        a, b = interval
        lo_i = math.ceil(a - 1e-9) if math.isfinite(a) else None
        hi_i = math.floor(b + 1e-9) if math.isfinite(b) else None
        if lo_i is not None and hi_i is not None and lo_i <= hi_i:
            ints = list(range(lo_i, min(hi_i, lo_i + 2) + 1))
        elif lo_i is None or hi_i is not None:
            warns.append(f"{where}: busbw / algbw of the rows do not agree with one another "
                         "for all-reduce; rank count not checked against them")
            interval = None

    def arithmetic_allows(n: int) -> bool:
        if exact is not None:
            return n == exact
        if interval:
            return interval[0] - 1e-9 <= n <= interval[1] + 1e-9
        return True

    if nranks is not None:
        p = nranks
        if not arithmetic_allows(p):
            warns.append(f"{where}: --nranks {p}, but the table's arithmetic says "
                         f"{exact if exact is not None else _span(interval)}")
    elif exact is not None:
        p = exact
        if listed is not None and listed != exact:
            warns.append(f"{where}: the device lines show {listed} ranks, the table's sizes "
                         f"say {exact}: using {exact}")
    elif interval and listed is not None and arithmetic_allows(listed):
        p = listed
    elif interval and len(ints) == 1:
        p = ints[0]
        if listed is not None:
            warns.append(f"{where}: the device lines show {listed} ranks, the table's "
                         f"busbw/algbw say {p}: using {p}")
    elif listed is not None:
        p = listed
        if interval:
            warns.append(f"{where}: the device lines show {listed} ranks, the table's "
                         f"busbw/algbw say {_span(interval)}: using {listed}")
    else:
        hint = f" (the table says {_span(interval)})" if interval else ""
        raise ImportParseError(f"{where}: the file does not say how many ranks ran{hint}: "
                               "pass --nranks")
    if listed is not None and block.device_lines < listed and block.device_lines:
        block.notes.append(f"{where}: {block.device_lines} of {listed} device lines shown")
    return coll, p, warns


def _span(interval) -> str:
    if not interval:
        return "nothing"
    a, b = interval
    return f"{math.ceil(a - 1e-9)}..{math.floor(b + 1e-9)}" if math.isfinite(b) else \
        f"at least {math.ceil(a - 1e-9)}"


def block_rows(block: Block, coll: str, p: int, run: str, path: Path) -> tuple[list[dict], int]:
    """Schema rows of one block; cells with impossible numbers are left out (counted)."""
    osu_block = block.tool.startswith("OSU")
    factor = COLLECTIVES[coll].busbw(p)
    hosts = ",".join(sorted(set(block.devices.values()))) or None
    lib = "MPI (OSU)" if osu_block else ("RCCL" if block.tool.startswith("rccl") else
                                         "MPI (collbench run)" if block.tool.startswith(
                                             "collbench") else "NCCL")
    algo = "mpi" if osu_block else "auto"
    out, dropped = [], 0
    for r in block.rows:
        size, count = r.size, r.count
        if osu_block:
            e = _esize(r.dtype) or 1
            count = size // e
            if coll in PER_PROCESS_OSU:
                size = size * p
        if not 0 <= size <= MAX_BYTES:
            dropped += len(r.cells)
            continue
        for c in r.cells:
            t = c.time_us
            if not (math.isfinite(t) and t > 0):
                dropped += 1
                continue
            algbw = c.algbw if c.algbw is not None and not osu_block else size / t / 1e3
            busbw = c.busbw if c.busbw is not None and not osu_block else algbw * factor
            redop = r.redop if r.redop not in (None, "") else None
            if osu_block and COLLECTIVES[coll].reduces:
                redop = "sum"
            out.append(dict(
                source="measured", system="imported", collective=coll,
                algorithm=_known(r.algorithm) or algo, variant=_known(r.algorithm) or algo,
                placement=c.placement, nranks=p, nbytes=size, count=count,
                dtype=r.dtype, redop=redop, root=r.root if r.root is not None and r.root >= 0
                else None, time_us=t, algbw_gbps=algbw, busbw_gbps=busbw,
                nwrong=c.wrong if c.wrong is not None and 0 <= c.wrong < 2 ** 53 else None,
                time_min_us=c.tmin, time_max_us=c.tmax, iters=r.iters or block.iters,
                host=hosts, mpi_library=lib,
                mpi_version="; ".join(dict.fromkeys(block.versions)) or None,
                tool=block.tool, run=run, file=str(path), line=r.line))
    return out, dropped


def _known(name: str | None) -> str | None:
    """An algorithm a collbench -J row names, if it is one (never a free string)."""
    return name if name in REGISTRY else None


def read_output(path, *, collective: str | None = None, nranks: int | None = None) -> Imported:
    """Every block of one benchmark output file, as schema rows with their notes."""
    path = Path(path)
    text = read_text_file(path, "file", ImportParseError, MAX_IMPORT_BYTES)
    if collective is not None and collective not in COLLECTIVES:
        raise InputError(f"unknown collective {collective!r}; valid: {', '.join(COLLECTIVES)}")
    if nranks is not None and not (isinstance(nranks, int) and 1 <= nranks <= MAX_RANKS):
        raise InputError(f"--nranks must be a whole number from 1 to {MAX_RANKS:,}; got {nranks}")
    try:
        kind = detect(text)
    except ImportParseError as exc:
        raise ImportParseError(f"{path}: {exc}") from None
    try:
        if kind == "nccl-json":
            blocks, skipped = nccl_tests.parse_json(text, str(path))
        elif kind == "osu":
            blocks, skipped = osu.parse(text)
        else:
            blocks, skipped = nccl_tests.parse_text(text)
    except RecursionError:
        raise ImportParseError(f"{path}: JSON nested too deeply") from None
    except ValueError as exc:     # json.JSONDecodeError and the -J shape check
        line = getattr(exc, "lineno", None)
        msg = getattr(exc, "msg", str(exc))
        raise ImportParseError(f"{path}{f':{line}' if line else ''}: broken JSON: {msg}") from None
    res = Imported(pd.DataFrame(), skipped_lines=skipped)
    rows: list[dict] = []
    errors: list[str] = []
    with_rows = [b for b in blocks if b.rows]
    for k, b in enumerate(with_rows, 1):
        where = f"{path}:{b.rows[0].line}"
        _, not_modelled = _program_collective(b)
        if not_modelled and collective is None:
            res.notes.append(f"{where}: {len(b.rows)} rows of {not_modelled} skipped (not a "
                             "collective collbench models)")
            continue
        if b.elided:
            res.notes.append(f"{where}: {b.elided} elided line(s) ('...') inside the table")
        try:
            coll, p, warns = settle(b, where, collective, nranks)
        except ImportParseError as exc:
            errors.append(str(exc))
            continue
        res.warnings += warns
        run = f"import:{path.name}" + (f"#{k}" if len(with_rows) > 1 else "")
        got, dropped = block_rows(b, coll, p, run, path)
        if dropped:
            res.warnings.append(f"{where}: {dropped} measurement(s) with a time that is not "
                                "finite and > 0, or a size beyond 1 PiB, left out")
        res.notes += b.notes
        rows += got
    if errors and not rows:
        raise ImportParseError(errors[0])
    res.warnings += errors                   # blocks that could not be settled, others kept
    if not rows:
        what = ("only blocks collbench does not model" if res.notes and with_rows else
                "no table rows")
        raise ImportParseError(f"{path}: {what} ({kind}; {skipped} other lines skipped)")
    res.frame = typed(pd.DataFrame(rows))
    return res


def import_file(path, *, collective: str | None = None, nranks: int | None = None) -> pd.DataFrame:
    """Rows of one nccl-tests / OSU output file (see ``read_output`` for its notes)."""
    return read_output(path, collective=collective, nranks=nranks).frame
