"""The grammar of nccl-tests and rccl-tests output: the text table and the ``-J`` JSON.

A line is a table row only when it matches the row grammar after launcher prefixes are
stripped; every other line is skipped (and counted).  Rows of every generation are read:
13 fields (size count type redop root, then time algbw busbw #wrong out-of-place and in-place),
12 (no root column; or an ``error`` column instead of ``#wrong``), 11 (empty redop), 8 (one
placement), ``N/A`` where checking was off.  A row split by a ``NCCL INFO`` line is joined.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .blocks import Block, Cell, RawRow, strip_prefixes

NCCL_TYPES = {"float": "float32", "half": "float16", "double": "float64", "bfloat16": "bfloat16",
              "int32": "int32", "int64": "int64", "int8": "int8", "uint8": "uint8",
              "uint32": "uint32", "uint64": "uint64", "float32": "float32", "float16": "float16",
              "float64": "float64", "int": "int32", "char": "int8", "fp8_e4m3": "fp8_e4m3",
              "fp8_e5m2": "fp8_e5m2", "f8e4m3": "fp8_e4m3", "f8e5m2": "fp8_e5m2"}
TYPE_BYTES = {"float32": 4, "float16": 2, "float64": 8, "bfloat16": 2, "int32": 4, "int64": 8,
              "int8": 1, "uint8": 1, "uint32": 4, "uint64": 8, "fp8_e4m3": 1, "fp8_e5m2": 1}
REDOPS = {"sum", "prod", "min", "max", "avg", "mulsum", "premulsum", "none", "all"}

_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_INT = re.compile(r"[-+]?\d+$")
_UINT = re.compile(r"\d+$")
PROGRAM = re.compile(r"(?<![\w-])([a-z][a-z0-9_]*?)_perf(?:_mpi)?(?![\w.-])")
_DEVICE = re.compile(r"#?\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+\s+on\s+(\S+)\s+device")
_VERSION = re.compile(r"(NCCL version \S+|nccl-tests version \S+|rccl-tests: Version \S+|"
                      r"RCCL version \S+|nccl-library=\d+)")
_ITERS = re.compile(r"warmup iters:\s*\d+\s+iters:\s*(\d+)")


def _eps(tok: str) -> float:
    """Half a unit of the last digit printed (0.005 for '12.34', 0.5 for '1234')."""
    if "e" in tok.lower():
        mant = tok.lower().split("e")[0]
        dec = len(mant.split(".")[1]) if "." in mant else 0
        return 0.5 * 10.0 ** (-dec) * 10.0 ** int(tok.lower().split("e")[1])
    dec = len(tok.split(".")[1]) if "." in tok else 0
    return 0.5 * 10.0 ** (-dec)


def _is_num(tok: str) -> bool:
    return bool(_NUM.match(tok))


@dataclass
class Layout:
    redop: bool = True
    root: bool = True
    groups: int = 2
    group_len: int = 4            # time algbw busbw #wrong; 3 without the check column
    error_column: bool = False    # old nccl-tests: max error, not a count of wrong elements
    places: tuple[str, ...] = ("out-of-place", "in-place")

    @classmethod
    def from_header(cls, toks: list[str], places_line: str | None) -> Layout:
        low = [t.lower() for t in toks]
        groups = max(1, low.count("time"))
        checks = sum(t in ("#wrong", "wrong", "error", "#error", "errors") for t in low)
        places: tuple[str, ...] = ("out-of-place", "in-place")
        if places_line is not None and groups == 1:
            places = ("in-place",) if "out-of-place" not in places_line else ("out-of-place",)
        return cls(redop="redop" in low, root="root" in low, groups=groups,
                   group_len=4 if checks >= groups else 3,
                   error_column="error" in low or "errors" in low, places=places)


def is_header(s: str) -> bool:
    low = s.lower()
    return s.startswith("#") and " size" in low and "count" in low and "time" in low


def parse_row(toks: list[str], layout: Layout | None, line: int) -> RawRow | None:
    """A table row, or None when the tokens are not one."""
    if len(toks) < 5 or not (_UINT.match(toks[0]) and _UINT.match(toks[1])) or \
            max(len(toks[0]), len(toks[1])) > 18:          # beyond any buffer (and int64)
        return None
    dtype = NCCL_TYPES.get(toks[2])
    if dtype is None:
        return None
    i, redop = 3, None
    if toks[i].lower() in REDOPS or (not _is_num(toks[i]) and toks[i] != "N/A"
                                     and toks[i].isalpha()):
        redop = toks[i]
        i += 1
    rest = toks[i:]
    if not all(_is_num(t) or t == "N/A" for t in rest):
        return None
    tries = [layout] if layout else []
    tries += [Layout(root=len(rest) % g == 1, groups=max(1, len(rest) // g), group_len=g)
              for g in (4, 3)]
    for lay in tries:
        r = list(rest)
        root = None
        if lay.root and len(r) % lay.group_len == 1:
            if not _INT.match(r[0]) or len(r[0]) > 12:
                continue
            root = int(r[0])
            r = r[1:]
        if len(r) != lay.group_len * lay.groups or lay.groups > 2:
            continue
        cells = []
        ok = True
        for k in range(lay.groups):
            g = r[k * lay.group_len:(k + 1) * lay.group_len]
            if "N/A" in g[:3]:
                ok = False
                break
            wrong = None
            if lay.group_len == 4 and g[3] != "N/A" and not lay.error_column:
                wrong = float(g[3])
            place = lay.places[k] if k < len(lay.places) else "in-place"
            cells.append(Cell(place, float(g[0]), float(g[1]), float(g[2]), wrong,
                              wrong_na=lay.group_len == 4 and g[3] == "N/A",
                              algbw_eps=_eps(g[1]), busbw_eps=_eps(g[2])))
        if ok:
            return RawRow(line, int(toks[0]), int(toks[1]), dtype, redop, root, cells)
    return None


def _row_prefix(toks: list[str]) -> bool:
    """The start of a row (size count type) followed by something else: a row split by a
    log line."""
    return (len(toks) >= 3 and bool(_UINT.match(toks[0])) and bool(_UINT.match(toks[1]))
            and toks[2] in NCCL_TYPES)


def parse_text(text: str) -> tuple[list[Block], int]:
    """Blocks of one nccl-tests / rccl-tests log, and the number of lines skipped."""
    blocks: list[Block] = []
    tool = "rccl-tests" if re.search(r"rccl-tests|RCCL version", text) else "nccl-tests"
    cur = Block(tool=tool, start=1)
    layout: Layout | None = None
    places_line: str | None = None
    pending: tuple[list[str], int] | None = None     # a row cut by a log line
    skipped = 0
    program: tuple[str, int] | None = None

    def new_block(lineno: int) -> None:
        nonlocal cur, layout
        if cur.rows:
            blocks.append(cur)
            cur = Block(tool=tool, start=lineno)
            layout = None
            if program:
                cur.program, cur.program_line = program

    for lineno, raw in enumerate(text.splitlines(), 1):
        s = strip_prefixes(raw).strip()
        if not s:
            continue
        m = PROGRAM.search(s)
        if m and "concluded" not in s and "NCCL INFO" not in s:
            program = (m.group(1), lineno)
            new_block(lineno)
            cur.program, cur.program_line = program
            continue
        if s.startswith("#"):
            body = s.lstrip("#").strip()
            if body.startswith("nThread"):
                new_block(lineno)
                it = _ITERS.search(body)
                cur.iters = int(it.group(1)) if it else None
                continue
            d = _DEVICE.match(s)
            if d:
                if cur.rows:
                    new_block(lineno)
                cur.devices[int(d.group(1))] = d.group(2)
                cur.device_lines += 1
                continue
            v = _VERSION.search(s)
            if v:
                cur.versions.append(v.group(1))
                continue
            if "out-of-place" in body or "in-place" in body:
                places_line = body
                continue
            if is_header(s):
                if cur.rows:
                    new_block(lineno)
                layout = Layout.from_header(body.split(), places_line)
                pending = None
                continue
            if body.startswith("..."):
                cur.elided += 1
            skipped += 1
            continue
        v = _VERSION.search(s)
        if v and "NCCL INFO" not in s:
            cur.versions.append(v.group(1))
            continue
        if re.fullmatch(r"\.{3,}|…", s):
            cur.elided += 1
            continue
        toks = s.split()
        row = parse_row(toks, layout, lineno)
        if row is None and pending and all(_is_num(t) or t == "N/A" for t in toks):
            row = parse_row(pending[0] + toks, layout, pending[1])
            if row is not None:
                pending = None
        if row is not None:
            row.iters = cur.iters
            cur.rows.append(row)
            pending = None
            continue
        if _row_prefix(toks):
            head: list[str] = []
            for t in toks:
                if len(head) >= 3 and not (_is_num(t) or t == "N/A" or
                                           (len(head) == 3 and t.lower() in REDOPS)):
                    glued = re.match(r"([-+]?\d+(?:\.\d+)?)\D", t)   # "-1gcn151:..." : the log
                    if glued:                                        # line began mid-row
                        head.append(glued.group(1))
                    break
                head.append(t)
            pending = (head, lineno)
        skipped += 1
    if cur.rows or not blocks:
        blocks.append(cur)
    return blocks, skipped


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def parse_json(text: str, where: str) -> tuple[list[Block], int]:
    """Blocks of a nccl-tests ``-J`` file (one run: the program is ``args[0]``)."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ValueError("nccl-tests -J JSON needs a 'results' list")
    cfg: dict = doc["config"] if isinstance(doc.get("config"), dict) else {}
    own = isinstance(doc.get("collbench"), dict)        # written by collbench run -J
    b = Block(tool="collbench run -J" if own else "nccl-tests -J", start=1)
    args = doc.get("args")
    # the program: the first that names a *_perf (args[0], or "program" as collbench run -J
    # writes it beside its own argv), else the first given
    named = [x for x in ((args[0] if isinstance(args, list) and args else None),
                         doc.get("program"), doc.get("test")) if isinstance(x, str)]
    for x in named:
        if (m := PROGRAM.search(x)) is not None:
            b.program = m.group(1)
            break
    else:
        b.program = named[0] if named else None
    devices: list = doc["devices"] if isinstance(doc.get("devices"), list) else \
        cfg["devices"] if isinstance(cfg.get("devices"), list) else []
    for k, d in enumerate(devices):
        if isinstance(d, dict):
            r = d.get("rank", k)
            b.devices[int(r) if isinstance(r, int) else k] = str(d.get("hostname") or "?")
            b.device_lines += 1
    if isinstance(doc.get("nccl_version"), int):
        b.versions.append(f"nccl-library={doc['nccl_version']}")
    it = cfg.get("iterations")
    b.iters = it if isinstance(it, int) else None
    skipped = 0
    for i, r in enumerate(doc["results"]):
        if not isinstance(r, dict):
            skipped += 1
            continue
        size, count = r.get("size"), r.get("count")
        dtype = NCCL_TYPES.get(str(r.get("type")))
        if not isinstance(size, int) or not isinstance(count, int) or dtype is None or \
                not (0 <= size < 1 << 62 and 0 <= count < 1 << 62):
            skipped += 1
            continue
        root = r.get("root")
        try:
            root = int(str(root).strip()) if root is not None else None
        except ValueError:
            root = None
        if root is not None and not -1 <= root < 1 << 40:
            root = None
        cells = []
        for place, key in (("out-of-place", "out_of_place"), ("in-place", "in_place")):
            d = r.get(key)
            if not isinstance(d, dict):
                continue
            t = _num(d.get("time", d.get("cpu_time")))
            if t is None:
                continue
            cells.append(Cell(place, t, _num(d.get("alg_bw")), _num(d.get("bus_bw")),
                              _num(d.get("nwrong")), algbw_eps=1e-9, busbw_eps=1e-9))
        if not cells:
            skipped += 1
            continue
        redop = r.get("redop") if isinstance(r.get("redop"), str) else None
        algo = r.get("algorithm") if own and isinstance(r.get("algorithm"), str) else None
        b.rows.append(RawRow(i + 1, size, count, dtype, redop and redop.strip(), root, cells,
                             b.iters, algo))
    return [b], skipped
