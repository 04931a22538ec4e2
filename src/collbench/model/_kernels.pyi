"""Stub of the Cython cost-model kernel (cext/model/_kernels.pyx)."""
import numpy as np
import numpy.typing as npt

def evaluate(nbytes: npt.NDArray[np.float64],
             cb: npt.NDArray[np.float64], lo_n: npt.NDArray[np.float64],
             hi_n: npt.NDArray[np.float64], e_lo: npt.NDArray[np.float64],
             e_hi: npt.NDArray[np.float64], x0: npt.NDArray[np.float64],
             slope: npt.NDArray[np.float64], cb_lo: npt.NDArray[np.float64],
             cb_hi: npt.NDArray[np.float64], lat: npt.NDArray[np.float64],
             red: npt.NDArray[np.float64], mode: npt.NDArray[np.intc],
             pipe_d: npt.NDArray[np.float64], pipe_a: npt.NDArray[np.float64],
             group: npt.NDArray[np.intc], out_time: npt.NDArray[np.float64],
             out_lat: npt.NDArray[np.float64], out_bw: npt.NDArray[np.float64],
             out_red: npt.NDArray[np.float64], out_choice: npt.NDArray[np.intc],
             overlap: int = 0) -> None: ...
