# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Local reduction for the real collectives, called from Python: dst = op(a, src), GIL released.

The element loops are C (``cb_reduce.h``), shared with the step loops of ``_steps.pyx``:
float32/float64/int32/int64/int8/uint8 and float16 (GCC's _Float16).  Ops: 0 sum, 1 prod,
2 min, 3 max (avg is sum, then scale).
"""
cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef extern from "cb_reduce.h":
    void cb_reduce(void *d, const void *a, const void *s, Py_ssize_t n, int dt, int op) nogil
    void cb_scale_f16(void *dst, Py_ssize_t n, double f) nogil
    void cb_scale_bf16(void *dst, Py_ssize_t n, double f) nogil

OPS = {"sum": 0, "prod": 1, "min": 2, "max": 3, "avg": 0}
# numpy dtype name -> code of cb_reduce.h; bfloat16 (no NumPy type) lives in uint16 storage,
# so uint16 arrays reduce as bfloat16 (collbench runs no uint16)
DTYPE_CODES = {"float32": 0, "float64": 1, "int32": 2, "int64": 3, "int8": 4, "uint8": 5,
               "float16": 6, "uint16": 7, "uint32": 8, "uint64": 9}

ctypedef fused num:
    float
    double
    cnp.int32_t
    cnp.int64_t
    cnp.int8_t
    cnp.uint8_t
    cnp.uint32_t
    cnp.uint64_t


cdef int _code(cnp.ndarray x) except -1:
    code = DTYPE_CODES.get(x.dtype.name)
    if code is None:
        raise ValueError(f"reduce: no reduction for {x.dtype.name}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(x) or cnp.PyArray_NDIM(x) != 1:
        raise ValueError("reduce: arrays must be 1-D and contiguous")
    return code


def reduce_out(cnp.ndarray dst, cnp.ndarray a, cnp.ndarray src, int op):
    """dst = op(a, src) element-wise (out of place: saves a copy of a into dst)."""
    cdef int dt = _code(dst)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dst)
    if _code(a) != dt or _code(src) != dt:
        raise ValueError("reduce: dtype mismatch")
    if cnp.PyArray_SIZE(a) != n or cnp.PyArray_SIZE(src) != n:
        raise ValueError("reduce: length mismatch")
    cdef void *d = cnp.PyArray_DATA(dst)
    cdef void *x = cnp.PyArray_DATA(a)
    cdef void *s = cnp.PyArray_DATA(src)
    if n:
        with nogil:
            cb_reduce(d, x, s, n, dt, op)


def reduce_into(cnp.ndarray dst, cnp.ndarray src, int op):
    """dst = op(dst, src) element-wise, in place.  dst and src: 1-D contiguous arrays."""
    reduce_out(dst, dst, src, op)


def _scale_typed(num[::1] dst, double f):
    cdef Py_ssize_t i, n = dst.shape[0]
    with nogil:
        for i in range(n):
            dst[i] = <num>(dst[i] / f)


def scale_into(dst, double f):
    """dst /= f in place (the 'avg' op divides the sum by the number of ranks)."""
    cdef cnp.uint16_t[::1] h
    cdef bint half
    if dst.dtype == np.float16 or dst.dtype == np.uint16:     # uint16: bfloat16 storage
        half = dst.dtype == np.float16
        h = dst.view(np.uint16)
        if h.shape[0]:
            with nogil:
                if half:
                    cb_scale_f16(&h[0], h.shape[0], f)
                else:
                    cb_scale_bf16(&h[0], h.shape[0], f)
    else:
        _scale_typed(dst, f)
