"""Sizes in bytes: parsing ``8``, ``64K``, ``8G`` (powers of 1024, as nccl-tests) and checks."""
from __future__ import annotations

import math
import re

import numpy as np

MAX_BYTES = 1 << 50          # 1 PiB: anything larger is a typo, not a collective
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([KMGTP]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text) -> int:
    """'8' -> 8, '64K' -> 65536, '8G' -> 8589934592, '1.5M' -> 1572864."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value = int(text)
    else:
        m = _RE.match(str(text))
        if not m:
            raise ValueError(f"bad size {text!r}: use bytes with an optional K, M, G, T suffix "
                             "(powers of 1024), e.g. 8, 64K, 8G")
        value = float(m.group(1)) * _UNITS[m.group(2).upper()]
        if value != int(value):
            raise ValueError(f"size {text!r} is not a whole number of bytes")
        value = int(value)
    if value < 0 or value > MAX_BYTES:
        raise ValueError(f"size {text!r} is outside 0..{MAX_BYTES} bytes (1 PiB)")
    return value


def check_sizes(nbytes) -> np.ndarray:
    """Sizes as a float64 array; ValueError for negative, NaN, fractional or absurd sizes."""
    if isinstance(nbytes, str):
        nbytes = [parse_size(nbytes)]
    arr = np.atleast_1d(np.asarray(nbytes))
    if arr.dtype == object or arr.dtype.kind in "USb":
        try:
            arr = np.array([parse_size(x) for x in arr.ravel()], dtype=float)
        except TypeError:
            raise ValueError("sizes must be numbers of bytes") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"sizes must be numbers of bytes, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr.ravel(), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no sizes given")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"size {arr[bad][0]!r} is not a number of bytes (NaN or infinite)")
    if (arr < 0).any():
        raise ValueError(f"size {arr[arr < 0][0]:g} is negative; sizes are 0..{MAX_BYTES} bytes")
    if (arr > MAX_BYTES).any():
        raise ValueError(f"size {arr[arr > MAX_BYTES][0]:g} is absurd; sizes are 0..{MAX_BYTES} bytes (1 PiB)")
    frac = arr != np.floor(arr)
    if frac.any():
        raise ValueError(f"size {arr[frac][0]:g} is not a whole number of bytes")
    return arr


def size_range(begin, end, factor=None, step=None) -> list:
    """nccl-tests -b/-e/-f/-i: sizes from begin to end, times factor or plus step."""
    b, e = parse_size(begin), parse_size(end)
    if e < b:
        raise ValueError(f"-e {end} is smaller than -b {begin}")
    if step is not None:
        s = parse_size(step)
        if s <= 0:
            raise ValueError("-i step must be positive")
        if (e - b) // s > 100000:
            raise ValueError("-i step gives more than 100000 sizes")
        return list(range(b, e + 1, s))
    f = 2.0 if factor is None else float(factor)
    if not (f > 1.0 and math.isfinite(f)):
        raise ValueError(f"-f factor must be a number above 1, got {factor!r}")
    out, s = [], b
    if s == 0:
        out.append(0)
        s = 1
    while s <= e:
        out.append(int(s))
        nxt = int(s * f)
        s = nxt if nxt > s else s + 1
    return out


def human(n: float) -> str:
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{int(n // div)}{unit}"
    return str(int(n))
