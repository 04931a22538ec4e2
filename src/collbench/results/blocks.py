"""What a benchmark output holds before collbench interprets it: blocks (one table of one run)
of raw rows, with what the text around them said (program, devices, versions, iterations).

The grammars (``nccl_tests.py``, ``osu.py``) only recognise; ``importers.py`` decides the
collective and the rank count and turns a block into result rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# launcher prefixes: srun --label ("12: "), Open MPI --tag-output ("[1,0]<stdout>:"), and
# Open MPI's --timestamp-output / pdsh-like "host: " are not stripped (they are not known)
SRUN_LABEL = re.compile(r"^\s*\d+:\s")
OMPI_TAG = re.compile(r"\[\d+,\d+\]<std(?:out|err)>:")


def strip_prefixes(line: str) -> str:
    """A line without launcher prefixes, wherever Open MPI's tag was inserted."""
    line = OMPI_TAG.sub(" ", line)
    return SRUN_LABEL.sub("", line, count=1)


@dataclass
class Cell:
    """One placement's measurement of one row."""
    placement: str                # out-of-place | in-place | osu
    time_us: float
    algbw: float | None = None
    busbw: float | None = None
    wrong: float | None = None    # None: not checked (N/A) or not printed
    wrong_na: bool = False        # the check column printed N/A
    algbw_eps: float = 0.0        # half a unit of the last printed digit
    busbw_eps: float = 0.0
    tmin: float | None = None
    tmax: float | None = None


@dataclass
class RawRow:
    line: int
    size: int
    count: int | None
    dtype: str | None
    redop: str | None
    root: int | None
    cells: list[Cell]
    iters: int | None = None
    algorithm: str | None = None            # collbench run -J: the algorithm of the row


@dataclass
class Block:
    """One table of one run, with what the text said about it."""
    tool: str                               # nccl-tests | rccl-tests | nccl-tests -J | OSU
    start: int                              # first line of the block (1-based)
    program: str | None = None              # e.g. all_reduce_perf, osu_allgather
    program_line: int | None = None
    devices: dict[int, str] = field(default_factory=dict)   # rank -> host, as listed
    device_lines: int = 0
    versions: list[str] = field(default_factory=list)
    iters: int | None = None
    rows: list[RawRow] = field(default_factory=list)
    elided: int = 0                         # "..." lines inside the table
    notes: list[str] = field(default_factory=list)
