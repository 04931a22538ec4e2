"""Inputs whose reduction is exactly predictable in every dtype, and the expected result."""
from __future__ import annotations

import numpy as np


def make_input(rank: int, p: int, count: int, dtype: str, op: str) -> np.ndarray:
    i = np.arange(count, dtype=np.int64)
    if op == "sum":
        v = (rank + i) % 4 + 1                       # sums stay small integers: exact
    elif op == "prod":
        v = np.where((rank + i) % 8 == 0, 2, 1)      # products are powers of two
    elif op in ("min", "max"):
        v = (rank * 7 + i) % 13 - 6
    else:  # avg: the sum is a multiple of p, so sum / p is exact
        v = 2 * ((i + rank) % p) + i % 3
    return v.astype(dtype)


def expected(p: int, count: int, dtype: str, op: str) -> np.ndarray:
    i = np.arange(count, dtype=np.int64)
    if op == "avg":
        return ((p - 1) + i % 3).astype(dtype)
    acc = make_input(0, p, count, "int64", op)
    for r in range(1, p):
        v = make_input(r, p, count, "int64", op)
        if op == "sum":
            acc = acc + v
        elif op == "prod":
            acc = acc * v
        elif op == "min":
            acc = np.minimum(acc, v)
        else:
            acc = np.maximum(acc, v)
    return acc.astype(dtype)
