# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cost-model kernels: evaluate cost plans (see collbench.plans) over many sizes.

One pass over the sizes.  Per (plan, tier) the caller precomputes ``cb = coef / bw`` (us
per byte at full efficiency) and the sizes where that tier's efficiency curve starts and
stops rising, so most sizes cost a compare and a multiply per term; the log of the size is
taken at most once per size, only when some term sits on a rising part of its curve.
Per plan the latency, bandwidth and reduction terms are summed and the cheapest plan of
each group is kept.  No Python objects inside the loop, GIL released.
"""
import numpy as np

from libc.math cimport log, sqrt, INFINITY


def evaluate(const double[::1] nbytes,
             const double[:, ::1] cb, const double[:, ::1] lo_n, const double[:, ::1] hi_n,
             const double[:, ::1] e_lo, const double[:, ::1] e_hi,
             const double[:, ::1] x0, const double[:, ::1] slope,
             const double[:, ::1] cb_lo, const double[:, ::1] cb_hi,
             const double[::1] lat, const double[::1] red, const int[::1] mode,
             const double[::1] pipe_d, const double[::1] pipe_a, const double[::1] floor,
             const int[::1] group, const double[::1] chan_full, const double[::1] chan_min,
             double[:, ::1] out_time, double[:, ::1] out_lat, double[:, ::1] out_bw,
             double[:, ::1] out_red, int[:, ::1] out_choice, int overlap=0):
    """Fill out_* [ngroups, nsizes] with the cheapest plan of each group for each size.

    Per plan row j and tier k: cb = coef/bw (us/byte), efficiency e_lo below lo_n bytes,
    e_hi above hi_n, and e_lo + (log(n) - x0) * slope between; cb_lo = cb / e_lo and
    cb_hi = cb / e_hi are the flat parts, precomputed.  A size of 0 costs nothing.
    floor: per plan the latency no algorithm can beat (ceil(log2 p) rounds, direct messages).
    overlap=1: the reduction runs under the transfer, time = latency + max(bw, reduce).
    chan_full/chan_min: per plan the bytes at which every channel of the library runs (0: it
    always does) and one channel's share; below chan_full the transfer runs at
    max(chan_min, n / chan_full) of its rate at chan_full's efficiency (each channel keeps
    the bytes it has there).
    """
    cdef Py_ssize_t n = nbytes.shape[0], P = lat.shape[0], T = cb.shape[1]
    cdef Py_ssize_t G = out_time.shape[0]
    cdef Py_ssize_t i, j, k, g
    cdef double x, lx, b, c, t, lt, bt, rt, kk, d, xm, xe, lxe
    cdef bint have_lx, have_lxe
    # per plan a lower bound of its bandwidth cost per byte (each tier at its better flat
    # end: the efficiency curve lies between them); a plan whose latency bound plus that bound
    # cannot beat its group's best so far is skipped (same result, fewer terms: protocol
    # variants of one algorithm lose this way at most sizes)
    bmin_arr = np.zeros(P)
    cdef double[::1] bmin = bmin_arr
    # ... and of its latency: a pipelined plan pays every hop at least once (k >= 1 segments),
    # and no plan beats its floor
    lmin_arr = np.zeros(P)
    cdef double[::1] lmin = lmin_arr
    # log of each plan's chan_full, taken once
    lcf_arr = np.log(np.maximum(np.asarray(chan_full), 1.0))
    cdef double[::1] lcf = lcf_arr
    icmin_arr = 1.0 / np.maximum(np.asarray(chan_min), 1e-300)
    cdef double[::1] icmin = icmin_arr
    for j in range(P):
        lt = lat[j] + (pipe_d[j] * pipe_a[j] if pipe_d[j] > 0.0 else 0.0)
        lmin[j] = lt if lt > floor[j] else floor[j]
        b = 0.0
        for k in range(T):
            if cb[j, k] == 0.0:
                continue
            c = cb_lo[j, k] if cb_lo[j, k] < cb_hi[j, k] else cb_hi[j, k]
            if mode[j] == 0:
                b = b + c
            elif c > b:
                b = c
        bmin[j] = b
    with nogil:
        for i in range(n):
            x = nbytes[i]
            if x <= 0.0:
                for g in range(G):
                    out_time[g, i] = 0.0
                    out_lat[g, i] = 0.0
                    out_bw[g, i] = 0.0
                    out_red[g, i] = 0.0
                    out_choice[g, i] = -1
                continue
            for g in range(G):
                out_time[g, i] = INFINITY
            have_lx = False
            lx = 0.0
            for j in range(P):
                g = group[j]
                # below chan_full the library runs fewer channels, each keeping the bytes
                # (and so the efficiency) it has there: the transfer of x at m of the rate
                # (x / m is chan_full on the proportional part, x / chan_min below it)
                xe = x
                xm = x
                if chan_full[j] > x:
                    xe = chan_full[j]
                    xm = x * icmin[j] if x < chan_min[j] * xe else xe
                if lmin[j] + xm * bmin[j] >= out_time[g, i]:
                    continue
                have_lxe = False
                lxe = 0.0
                b = 0.0
                for k in range(T):
                    c = cb[j, k]
                    if c == 0.0:
                        continue
                    if xe <= lo_n[j, k]:
                        c = cb_lo[j, k]
                    elif xe >= hi_n[j, k]:
                        c = cb_hi[j, k]
                    else:
                        if not have_lxe:
                            if xe == x:
                                if not have_lx:
                                    lx = log(x)
                                    have_lx = True
                                lxe = lx
                            else:
                                lxe = lcf[j]
                            have_lxe = True
                        c = c / (e_lo[j, k] + (lxe - x0[j, k]) * slope[j, k])
                    if mode[j] == 0:
                        b = b + c
                    elif c > b:
                        b = c
                lt = lat[j]
                bt = xm * b
                d = pipe_d[j]
                if d > 1.0 and pipe_a[j] > 0.0:
                    kk = sqrt((d - 1.0) * bt / pipe_a[j])
                    if kk < 1.0:
                        kk = 1.0
                    lt = lt + (d - 1.0 + kk) * pipe_a[j]
                    bt = bt * (1.0 + (d - 1.0) / kk)
                elif d > 0.0:
                    lt = lt + d * pipe_a[j]
                if lt < floor[j]:
                    lt = floor[j]
                rt = x * red[j]
                if overlap:
                    t = lt + (bt if bt > rt else rt)
                else:
                    t = lt + bt + rt
                if t < out_time[g, i]:
                    out_time[g, i] = t
                    out_lat[g, i] = lt
                    out_bw[g, i] = bt
                    out_red[g, i] = rt
                    out_choice[g, i] = <int>j
