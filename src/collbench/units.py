"""Units: sizes in bytes (``8``, ``64K``, ``8G``: powers of 1024, as nccl-tests), the one byte
humaniser, and the data types with their nccl-tests, MPI and NumPy names."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import InputError

MAX_BYTES = 1 << 50          # 1 PiB: anything larger is a typo, not a collective
MAX_SIZES = 100_000          # sizes one -b/-e/-f/-i range may produce
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_RE = re.compile(r"^\s*(\d{1,20}(?:\.\d{0,20})?)\s*([KMGTP]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text) -> int:
    """'8' -> 8, '64K' -> 65536, '8G' -> 8589934592, '1.5M' -> 1572864."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value = int(text)
    else:
        m = _RE.match(str(text)[:64])
        if not m:
            raise InputError(f"bad size {str(text)[:40]!r}: use bytes with an optional K, M, G, T "
                             "suffix (powers of 1024), e.g. 8, 64K, 8G")
        fvalue = float(m.group(1)) * _UNITS[m.group(2).upper()]
        if not math.isfinite(fvalue) or fvalue > MAX_BYTES:
            raise InputError(f"size {text!r} is outside 0..{MAX_BYTES} bytes (1 PiB)")
        if fvalue != int(fvalue):
            raise InputError(f"size {text!r} is not a whole number of bytes")
        value = int(fvalue)
    if value < 0 or value > MAX_BYTES:
        raise InputError(f"size {text!r} is outside 0..{MAX_BYTES} bytes (1 PiB)")
    return value


def check_sizes(nbytes) -> np.ndarray:
    """Sizes as a float64 array; InputError for negative, NaN, fractional or absurd sizes."""
    if isinstance(nbytes, str):
        nbytes = [parse_size(nbytes)]
    arr = np.atleast_1d(np.asarray(nbytes))
    if arr.dtype == object or arr.dtype.kind in "USb":
        try:
            arr = np.array([parse_size(x) for x in arr.ravel()], dtype=float)
        except TypeError:
            raise InputError("sizes must be numbers of bytes") from None
    if arr.dtype.kind not in "iuf":
        raise InputError(f"sizes must be numbers of bytes, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr.ravel(), dtype=np.float64)
    if arr.size == 0:
        raise InputError("no sizes given")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"size {arr[bad][0]!r} is not a number of bytes (NaN or infinite)")
    if (arr < 0).any():
        raise InputError(f"size {arr[arr < 0][0]:g} is negative; sizes are 0..{MAX_BYTES} bytes")
    if (arr > MAX_BYTES).any():
        raise InputError(f"size {arr[arr > MAX_BYTES][0]:g} is absurd; sizes are 0..{MAX_BYTES} "
                         "bytes (1 PiB)")
    frac = arr != np.floor(arr)
    if frac.any():
        raise InputError(f"size {arr[frac][0]:g} is not a whole number of bytes")
    return arr


def parse_factor(factor) -> float:
    try:
        f = 2.0 if factor is None else float(str(factor)[:64])
    except ValueError:
        raise InputError(f"-f factor must be a number above 1, got {str(factor)[:40]!r}") from None
    if not (f > 1.0 and math.isfinite(f)):
        raise InputError(f"-f factor must be a finite number above 1, got {str(factor)[:40]!r}")
    return f


def size_range(begin, end, factor=None, step=None) -> list[int]:
    """nccl-tests -b/-e/-f/-i: sizes from begin to end, times factor or plus step; at most
    MAX_SIZES sizes."""
    b, e = parse_size(begin), parse_size(end)
    if e < b:
        raise InputError(f"-e {end} is smaller than -b {begin}")
    if step is not None:
        s = parse_size(step)
        if s <= 0:
            raise InputError("-i step must be positive")
        if (e - b) // s >= MAX_SIZES:
            raise InputError(f"-i {step} gives more than {MAX_SIZES:,} sizes; raise -i or narrow -b/-e")
        return list(range(b, e + 1, s))
    f = parse_factor(factor)
    out: list[int] = []
    s = b
    if s == 0:
        out.append(0)
        s = 1
    while s <= e:
        out.append(int(s))
        if len(out) > MAX_SIZES:
            raise InputError(f"-f {factor} gives more than {MAX_SIZES:,} sizes from {begin} to "
                             f"{end}; raise -f or narrow -b/-e")
        nf = s * f
        if nf > e:            # also ends an infinite product (-f 1e308)
            break
        nxt = int(nf)
        s = nxt if nxt > s else s + 1
    return out


def human(n: float, *, space: bool = False) -> str:
    """64 -> '64', 65536 -> '64K', 1.5 MiB -> '1.5M' (powers of 1024); space=True: '64 KiB'."""
    n = float(n)
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div:
            v = f"{n / div:.4g}"
            return f"{v} {unit}iB" if space else f"{v}{unit}"
    return f"{n:g} B" if space else f"{n:g}"


@dataclass(frozen=True)
class DType:
    name: str            # collbench / NumPy name
    nccl: str            # nccl-tests' -d name
    mpi: str             # MPI datatype attribute name in mpi4py (MPI.<mpi>)
    itemsize: int
    kind: str            # "float" or "int"


DTYPES = {d.name: d for d in (
    DType("float32", "float", "FLOAT", 4, "float"),
    DType("float64", "double", "DOUBLE", 8, "float"),
    DType("float16", "half", "FLOAT16_T", 2, "float"),
    DType("bfloat16", "bfloat16", "BFLOAT16_T", 2, "float"),
    DType("int8", "int8", "INT8_T", 1, "int"),
    DType("uint8", "uint8", "UINT8_T", 1, "int"),
    DType("int32", "int32", "INT32_T", 4, "int"),
    DType("uint32", "uint32", "UINT32_T", 4, "int"),
    DType("int64", "int64", "INT64_T", 8, "int"),
    DType("uint64", "uint64", "UINT64_T", 8, "int"),
)}
_ALIASES = {d.nccl: d.name for d in DTYPES.values()} | {"float16": "float16", "fp16": "float16",
                                                        "bf16": "bfloat16", "int": "int32",
                                                        "char": "int8"}


def dtype(name: str) -> DType:
    """A data type by its collbench/NumPy or nccl-tests name ('float', 'half', ...)."""
    key = _ALIASES.get(name, name)
    if key not in DTYPES:
        raise InputError(f"unknown dtype {str(name)[:40]!r}; valid: "
                         f"{', '.join(DTYPES)} (or nccl-tests' {', '.join(d.nccl for d in DTYPES.values())})")
    return DTYPES[key]
