"""The grammar of OSU Micro-Benchmarks collective output (osu_allreduce, osu_allgather,
osu_reduce_scatter, osu_bcast, osu_reduce, osu_alltoall; any version, ``-f`` columns).

Text before, between and after the tables (job logs, jobspecs) is skipped; each title line
starts a block, so several runs in one file stay apart.
"""
from __future__ import annotations

import re

from .blocks import Block, Cell, RawRow, strip_prefixes

OSU_TYPES = {"MPI_FLOAT": "float32", "MPI_DOUBLE": "float64", "MPI_INT": "int32",
             "MPI_CHAR": "int8", "MPI_LONG": "int64", "MPI_SIGNED_CHAR": "int8",
             "MPI_UNSIGNED_CHAR": "uint8", "MPI_BYTE": "uint8", "MPI_SHORT": "int16"}
TITLE = re.compile(r"#\s*OSU\s+(?:MPI|NCCL|RCCL|UCC|OpenSHMEM|UPC\+*)(?:[-\w]*)\s+(.+?)\s*"
                   r"(?:Latency\s+)?Test(?:\s+v?([\w.]+))?\s*$", re.IGNORECASE)
_COLUMNS = re.compile(r"Avg|Min|Max|Iterations|Validation|P50|P90|P95|P99", re.IGNORECASE)
_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def parse(text: str) -> tuple[list[Block], int]:
    blocks: list[Block] = []
    cur: Block | None = None
    cols: list[str] | None = None
    skipped = 0
    dtype = "float32"
    for lineno, raw in enumerate(text.splitlines(), 1):
        s = strip_prefixes(raw).strip()
        if not s:
            continue
        m = TITLE.match(s)
        if m:
            cur = Block(tool="OSU" + (f" {m.group(2)}" if m.group(2) else ""), start=lineno,
                        program=m.group(1).strip(), program_line=lineno)
            if m.group(2):
                cur.versions.append(f"OSU {m.group(2)}")
            blocks.append(cur)
            cols, dtype = None, "float32"
            continue
        if s.startswith("#"):
            d = re.match(r"#\s*Datatype:\s*(\w+)", s)
            if d:
                dtype = OSU_TYPES.get(d.group(1), d.group(1).lower())
            elif re.match(r"#\s*Size\b", s):
                cols = [c.lower() for c in _COLUMNS.findall(s)]
                if cur is None:                 # a table without its title line
                    cur = Block(tool="OSU", start=lineno)
                    blocks.append(cur)
            else:
                skipped += 1
            continue
        toks = s.split()
        if cur is None or cols is None or len(toks) != 1 + len(cols) or \
                not re.fullmatch(r"\d{1,18}", toks[0]):
            skipped += 1
            continue
        vals = dict(zip(cols, toks[1:]))
        nums = {k: float(v) for k, v in vals.items() if _NUM.match(v)}
        if "avg" not in nums or any(k not in nums for k in vals if k != "validation"):
            skipped += 1
            continue
        wrong = None
        if "validation" in vals:
            wrong = 0.0 if vals["validation"].lower() == "pass" else 1.0
        it = nums.get("iterations")
        cur.rows.append(RawRow(lineno, int(toks[0]), None, dtype, None, None,
                               [Cell("out-of-place", nums["avg"], wrong=wrong,
                                     tmin=nums.get("min"), tmax=nums.get("max"))],
                               int(it) if it is not None else None))
    return [b for b in blocks if b.rows] or blocks[:1], skipped
