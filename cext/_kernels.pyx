# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cost-model kernels: evaluate cost plans (see collbench.plans) over many sizes.

One pass over the sizes; per size the log of the size is taken once and shared by every
plan and tier; per plan the latency, bandwidth and reduction terms are summed and the
cheapest plan of each group is kept.  No Python objects inside the loop, GIL released.
"""
from libc.math cimport log, sqrt, INFINITY

cdef inline double _eff(double x, double lo, double hi, double llo, double lhi) noexcept nogil:
    # log-linear efficiency between (exp(llo), lo) and (exp(lhi), hi), flat outside
    if x <= llo:
        return lo
    if x >= lhi:
        return hi
    return lo + (x - llo) * (hi - lo) / (lhi - llo)


def evaluate(const double[::1] nbytes,
             const double[::1] bw, const double[::1] eff_lo, const double[::1] eff_hi,
             const double[::1] llo, const double[::1] lhi,
             const double[::1] lat, const double[:, ::1] coef, const double[:, ::1] lsc,
             const double[::1] red, const int[::1] mode,
             const double[::1] pipe_d, const double[::1] pipe_a,
             const int[::1] group,
             double[:, ::1] out_time, double[:, ::1] out_lat, double[:, ::1] out_bw,
             double[:, ::1] out_red, int[:, ::1] out_choice, int overlap=0):
    """Fill out_* [ngroups, nsizes] with the cheapest plan of each group for each size.

    bw is in bytes per microsecond (already divided by oversubscription), red in us per
    byte, lat in us.  A size of 0 costs nothing.  overlap=1: the reduction runs under the
    transfer (NCCL fuses it into its copy loops), so time = latency + max(bandwidth, reduce).
    """
    cdef Py_ssize_t n = nbytes.shape[0], P = lat.shape[0], T = bw.shape[0]
    cdef Py_ssize_t G = out_time.shape[0]
    cdef Py_ssize_t i, j, k, g
    cdef double x, lx, b, c, e, t, lt, bt, rt, kk, d
    with nogil:
        for i in range(n):
            x = nbytes[i]
            for g in range(G):
                out_time[g, i] = INFINITY
            if x <= 0.0:
                for g in range(G):
                    out_time[g, i] = 0.0
                    out_lat[g, i] = 0.0
                    out_bw[g, i] = 0.0
                    out_red[g, i] = 0.0
                    out_choice[g, i] = -1
                continue
            lx = log(x)
            for j in range(P):
                b = 0.0
                for k in range(T):
                    c = coef[j, k]
                    if c != 0.0:
                        e = _eff(lx + lsc[j, k], eff_lo[k], eff_hi[k], llo[k], lhi[k])
                        c = c / (bw[k] * e)
                        if mode[j] == 0:
                            b = b + c
                        elif c > b:
                            b = c
                lt = lat[j]
                bt = x * b
                d = pipe_d[j]
                if d > 1.0 and pipe_a[j] > 0.0:
                    kk = sqrt((d - 1.0) * bt / pipe_a[j])
                    if kk < 1.0:
                        kk = 1.0
                    lt = lt + (d - 1.0 + kk) * pipe_a[j]
                    bt = bt * (1.0 + (d - 1.0) / kk)
                elif d > 0.0:
                    lt = lt + d * pipe_a[j]
                rt = x * red[j]
                if overlap:
                    t = lt + (bt if bt > rt else rt)
                else:
                    t = lt + bt + rt
                g = group[j]
                if t < out_time[g, i]:
                    out_time[g, i] = t
                    out_lat[g, i] = lt
                    out_bw[g, i] = bt
                    out_red[g, i] = rt
                    out_choice[g, i] = <int>j
