"""Tables that read like nccl-tests: '#' header lines, one row per size, fixed columns."""
from __future__ import annotations

import math

DTYPE_SIZES = {"float16": 2, "float32": 4, "float64": 8, "int32": 4, "int64": 8, "int8": 1,
               "uint8": 1, "bfloat16": 2}
NCCL_TYPE = {"float16": "half", "float32": "float", "float64": "double", "int32": "int32",
             "int64": "int64", "int8": "int8", "uint8": "uint8", "bfloat16": "bfloat16"}


def fmt_time(us: float) -> str:
    if us is None or (isinstance(us, float) and math.isnan(us)):
        return "-"
    if us >= 1e7:
        return f"{us:.4g}"
    if us >= 1e4:
        return f"{us:.0f}"
    return f"{us:.2f}"


def fmt_marked(v) -> str:
    """A time, or (time, mark) for one with a footnote (e.g. '*': extrapolated)."""
    return fmt_time(v[0]) + v[1] if isinstance(v, tuple) else fmt_time(v)


def fmt_bw(g: float) -> str:
    if g is None or (isinstance(g, float) and math.isnan(g)):
        return "-"
    return f"{g:.2f}" if g < 1e5 else f"{g:.4g}"


class Table:
    """Column spec: (header, unit, width, formatter)."""

    def __init__(self, columns):
        self.columns = columns

    def header(self) -> str:
        top = "#" + "".join(f"{h:>{w}}" for h, _, w, _ in self.columns)
        units = "#" + "".join(f"{u:>{w}}" for _, u, w, _ in self.columns)
        return top + "\n" + units

    def row(self, values: dict) -> str:
        return " " + "".join(f"{f(values.get(h))!s:>{w}}" for h, _, w, f in self.columns)


def _int(v):
    return "-" if v is None else str(int(v))


def _str(v):
    return "" if v is None else str(v)


def estimate_table(show_terms=True) -> Table:
    cols = [("size", "(B)", 13, _int), ("count", "(elements)", 13, _int),
            ("type", "", 9, _str), ("redop", "", 7, _str), ("algo", "", 9, _str),
            ("time", "(us)", 11, fmt_marked), ("algbw", "(GB/s)", 9, fmt_bw),
            ("busbw", "(GB/s)", 9, fmt_bw)]
    if show_terms:
        cols += [("latency", "(us)", 11, fmt_time), ("bandwidth", "(us)", 11, fmt_time),
                 ("reduce", "(us)", 10, fmt_time), ("variant", "", 24, _str)]
    return Table(cols)


def _na(f):
    """A formatter that prints N/A where a placement was not run (nccl-tests' habit)."""
    return lambda v: "N/A" if v == "N/A" else f(v)


def run_table(predict: bool) -> Table:
    """nccl-tests' row: size, count, type, redop, root, then out-of-place and in-place
    (time, algbw, busbw, #wrong); collbench adds the algorithm after root and, after the
    in-place group, the slowest rank, max/min time over ranks and the iterations' spread
    (coefficient of variation, worst rank) of the out-of-place timing."""
    cols = [("size", "(B)", 13, _int), ("count", "(elements)", 13, _int),
            ("type", "", 9, _str), ("redop", "", 7, _str), ("root", "", 6, _int),
            ("algo", "", 10, _str), ("time", "(us)", 10, fmt_time),
            ("algbw", "(GB/s)", 9, fmt_bw), ("busbw", "(GB/s)", 9, fmt_bw),
            ("#wrong", "", 8, _int), ("time ", "(us)", 10, _na(fmt_time)),
            ("algbw ", "(GB/s)", 9, _na(fmt_bw)), ("busbw ", "(GB/s)", 9, _na(fmt_bw)),
            ("#wrong ", "", 8, _na(_int)), ("slowest", "rank", 8, _int),
            ("max/min", "", 8, lambda v: "-" if v is None else f"{v:.2f}"),
            ("cv%", "", 7, lambda v: "-" if v is None else f"{v:.1f}")]
    if predict:     # a predicted value beyond a calibration's data comes as (value, "*")
        cols += [("predicted", "(us)", 11, fmt_marked),
                 ("meas/pred", "", 10,
                                                        lambda v: "-" if v is None else f"{v:.2f}")]
    return Table(cols)


def run_table_groups() -> str:
    """The line above run_table's header naming its two timing groups, as nccl-tests does."""
    lead = 13 + 13 + 9 + 7 + 6 + 10
    return "#" + " " * lead + f"{'out-of-place':^36}" + f"{'in-place':^36}"
