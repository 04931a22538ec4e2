"""Stub of the Cython cost-model kernel (cext/model/_kernels.pyx)."""
from typing import Any

import numpy as np
import numpy.typing as npt

def evaluate(nbytes: npt.NDArray[np.float64], *arrays: npt.NDArray[Any] | int) -> None:
    """evaluate(nbytes, cb, lo_n, hi_n, e_lo, e_hi, x0, slope, cb_lo, cb_hi, lat, red, mode,
    pipe_d, pipe_a, floor, group, chan_full, chan_min, out_time, out_lat, out_bw, out_red,
    out_choice, overlap=0): fill
    out_* [groups, sizes] with the cheapest plan row of each group for each size (nogil)."""
