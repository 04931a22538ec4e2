# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Local reduction for the real collectives: dst[i] = op(dst[i], src[i]), GIL released.

Typed memoryviews for float32/float64/int32/int64/int8/uint8; float16 goes through GCC's _Float16 on
the raw 16-bit storage.  Ops: 0 sum, 1 prod, 2 min, 3 max (avg is sum, then scale).
"""
cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef extern from *:
    """
    static void cb_reduce_f16(void *dst_, const void *src_, Py_ssize_t n, int op) {
        _Float16 *d = (_Float16 *)dst_;
        const _Float16 *s = (const _Float16 *)src_;
        Py_ssize_t i;
        switch (op) {
        case 0: for (i = 0; i < n; i++) d[i] = d[i] + s[i]; break;
        case 1: for (i = 0; i < n; i++) d[i] = d[i] * s[i]; break;
        case 2: for (i = 0; i < n; i++) d[i] = s[i] < d[i] ? s[i] : d[i]; break;
        default: for (i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i]; break;
        }
    }
    static void cb_scale_f16(void *dst_, Py_ssize_t n, double f) {
        _Float16 *d = (_Float16 *)dst_;
        Py_ssize_t i;
        for (i = 0; i < n; i++) d[i] = (_Float16)((float)d[i] / (float)f);
    }
    """
    void cb_reduce_f16(void *dst, const void *src, Py_ssize_t n, int op) nogil
    void cb_scale_f16(void *dst, Py_ssize_t n, double f) nogil

ctypedef fused num:
    float
    double
    cnp.int32_t
    cnp.int64_t
    cnp.int8_t
    cnp.uint8_t

OPS = {"sum": 0, "prod": 1, "min": 2, "max": 3, "avg": 0}


cdef void _reduce3(num *d, const num *a, const num *s, Py_ssize_t n, int op) noexcept nogil:
    cdef Py_ssize_t i
    if op == 0:
        for i in range(n):
            d[i] = a[i] + s[i]
    elif op == 1:
        for i in range(n):
            d[i] = a[i] * s[i]
    elif op == 2:
        for i in range(n):
            d[i] = s[i] if s[i] < a[i] else a[i]
    else:
        for i in range(n):
            d[i] = s[i] if s[i] > a[i] else a[i]


cdef inline bint _work(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k) except -1:
    """True when there is something to reduce; ValueError when the lengths differ."""
    if m != n or k != n:
        raise ValueError("reduce: length mismatch")
    return n > 0


def _reduce3_typed(num[::1] dst, const num[::1] a, const num[::1] src, int op):
    cdef Py_ssize_t n = dst.shape[0]
    if not _work(n, a.shape[0], src.shape[0]):
        return
    with nogil:
        _reduce3(&dst[0], &a[0], &src[0], n, op)


def reduce_out(dst, a, src, int op):
    """dst = op(a, src) element-wise (out of place: saves a copy of a into dst)."""
    if dst.dtype == np.float16:
        dst[...] = a
        _reduce_f16(dst.view(np.uint16), src.view(np.uint16), op)
    else:
        _reduce3_typed(dst, a, src, op)


def _reduce_typed(num[::1] dst, const num[::1] src, int op):
    cdef Py_ssize_t n = dst.shape[0]
    if not _work(n, n, src.shape[0]):
        return
    with nogil:
        _reduce3(&dst[0], &dst[0], &src[0], n, op)     # in place: dst = op(dst, src)


def _reduce_f16(cnp.uint16_t[::1] dst, const cnp.uint16_t[::1] src, int op):
    cdef Py_ssize_t n = dst.shape[0]
    if not _work(n, n, src.shape[0]):
        return
    with nogil:
        cb_reduce_f16(&dst[0], &src[0], n, op)


def reduce_into(dst, src, int op):
    """dst = op(dst, src) element-wise, in place.  dst and src: 1-D contiguous arrays."""
    if dst.dtype == np.float16:
        _reduce_f16(dst.view(np.uint16), src.view(np.uint16), op)
    else:
        _reduce_typed(dst, src, op)


def _scale_typed(num[::1] dst, double f):
    cdef Py_ssize_t i, n = dst.shape[0]
    with nogil:
        for i in range(n):
            dst[i] = <num>(dst[i] / f)


def scale_into(dst, double f):
    """dst /= f in place (the 'avg' op divides the sum by the number of ranks)."""
    cdef cnp.uint16_t[::1] h
    if dst.dtype == np.float16:
        h = dst.view(np.uint16)
        if h.shape[0]:
            with nogil:
                cb_scale_f16(&h[0], h.shape[0], f)
    else:
        _scale_typed(dst, f)
