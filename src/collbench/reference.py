"""Plain-Python reference of every cost formula, one size at a time.

Written straight from the formulas (NCCL/HCCL/Thakur-Rabenseifner-Gropp, see README),
without the plan/kernel machinery, so the tests can hold the Cython kernel against it
and the benchmarks can race it.  Returns (time, latency, bandwidth, reduce) in us.
"""
from __future__ import annotations

import itertools
import math

from .algorithms import for_collective


def _levels(system, p):
    """[(tier, u, R)] for the tiers p ranks use: u groups of R ranks each at that level."""
    out, cap = [], 1
    R = 1
    for t in system.tiers:
        if out and cap >= p:
            break
        u = min(t.size, math.ceil(p / cap))
        out.append([t, u, R])
        R = min(p, R * u)
        cap *= t.size
    return out


def _lat(t):
    return t.lat_hw_us + t.lat_sw_us


def _rate(t, nbytes):
    """bytes per microsecond achieved on tier t for a collective of nbytes."""
    return t.bw_gbps * 1e3 / t.oversub * t.efficiency(nbytes)


def _link(t):
    return (t.size - 1) if (t.topology == "fullmesh" and t.size > 1) else 1


def _level_of(levels, p, a, b):
    """Outermost level at which ranks a and b sit in different groups."""
    lv = 0
    for i in range(len(levels)):
        R = levels[i][2]
        if a // R != b // R:
            lv = i
    return lv


def _ring_edges(levels, p):
    e = [0] * len(levels)
    if p > 1:
        for r in range(p):
            e[_level_of(levels, p, r, (r + 1) % p)] += 1
    return e


def _dist_level(levels, p, d):
    for i in range(len(levels)):
        nxt = levels[i + 1][2] if i + 1 < len(levels) else p
        if d < nxt:
            return i
    return len(levels) - 1


class NA(Exception):
    pass


def _flat(system, p, coll, algo, n, levels=None, scale=1.0):
    """(lat, bw, red_bytes) of a flat algorithm; red_bytes still to divide by the chip rate."""
    lv = levels if levels is not None else _levels(system, p)
    L = len(lv)
    m = n / scale  # data of this (sub)collective
    if p == 1:
        return 0.0, 0.0, 0.0
    f = (p - 1) / p
    top = lv[-1][0]

    def rate(i):
        return _rate(lv[i][0], m)

    def ring(rounds, per_rank, red):
        e = _ring_edges(lv, p)
        steps = [rounds * x for x in e]
        steps[-1] -= rounds
        lat = sum(s * _lat(lv[i][0]) for i, s in enumerate(steps))
        bw = max(per_rank * m * _link(lv[i][0]) / (lv[i][2] * rate(i)) for i in range(L))
        return lat, bw, red * m

    def peers(i):
        nxt = lv[i + 1][2] if i + 1 < L else p
        return nxt - lv[i][2]

    def direct(per_peer_frac, rounds, red):
        if any(x[0].topology not in ("switch", "fullmesh") for x in lv):
            raise NA(algo)
        bw = max(rounds * per_peer_frac * m * peers(i) / rate(i) for i in range(L))
        return rounds * _lat(top), bw, red * m

    def innet(c):
        t = lv[0][0]
        if L != 1 or not t.innet:
            raise NA(algo)
        return t.innet_lat_us, c * m / (rate(0) * t.innet_eff), 0.0

    def halving(frac, red_frac, extra, extra_red):
        pp = 1 << (p.bit_length() - 1)
        lat = bw = red = 0.0
        for i in range(1, pp.bit_length()):
            j = _dist_level(lv, p, 1 << (i - 1))
            lat += _lat(lv[j][0])
            bw += frac(i) * m * _link(lv[j][0]) / rate(j)
            red += red_frac(i) * m
        if pp != p:
            j = _dist_level(lv, p, 1)
            lat += 2 * _lat(lv[j][0])
            bw += extra * m * _link(lv[j][0]) / rate(j)
            red += extra_red * m
        return lat, bw, red

    if coll == "allreduce":
        if algo == "ring":
            return ring(2, 2 * f, f)
        if algo == "tree":
            lat = sum(2 * math.ceil(math.log2(u)) * _lat(t) for t, u, _ in lv if u > 1)
            bw = max(2 * m * _link(lv[i][0]) / (lv[i][2] * rate(i)) for i in range(L))
            return lat, bw, m
        if algo == "rhd":
            lat, bw, red = halving(lambda i: 2 / 2 ** i, lambda i: 1 / 2 ** i, 2, 1)
            pp = 1 << (p.bit_length() - 1)
            lat += sum(_lat(lv[_dist_level(lv, p, 1 << (i - 1))][0]) for i in range(1, pp.bit_length()))
            return lat, bw, red
        if algo == "rd":
            return halving(lambda i: 1, lambda i: 1, 2, 1)
        if algo == "mesh":
            return direct(1, 1, p - 1)
        if algo == "mesh2":
            return direct(1 / p, 2, f)
        if algo == "innet":
            return innet((p + 1) / p)
    elif coll in ("reduce_scatter", "all_gather"):
        rs = coll == "reduce_scatter"
        if algo == "ring":
            return ring(1, f, f if rs else 0.0)
        if algo == "mesh":
            return direct(1 / p, 1, f if rs else 0.0)
        if (algo == "rhd" and rs) or (algo == "rd" and not rs):
            return halving(lambda i: 1 / 2 ** i, (lambda i: 1 / 2 ** i) if rs else (lambda i: 0),
                           1 + 1 / p, 1 if rs else 0)
        if algo == "innet":
            return innet(1.0 if rs else f)
    elif coll in ("broadcast", "reduce"):
        red = coll == "reduce"
        if algo == "ring":
            e = _ring_edges(lv, p)
            e[-1] -= 1
            d = sum(e)
            a = sum(x * _lat(lv[i][0]) for i, x in enumerate(e)) / d
            nb = max(m * _link(lv[i][0]) / (lv[i][2] * rate(i)) for i in range(L))
            if d > 1 and a > 0:
                k = max(1.0, math.sqrt((d - 1) * nb / a))
                return (d - 1 + k) * a, (1 + (d - 1) / k) * nb, m if red else 0.0
            return d * a, nb, m if red else 0.0
        if algo == "tree":
            lat = bw = 0.0
            steps = math.ceil(math.log2(p))
            for j in range(steps):
                i = _dist_level(lv, p, 1 << j)
                lat += _lat(lv[i][0])
                bw += m * _link(lv[i][0]) / rate(i)
            return lat, bw, steps * m if red else 0.0
        if algo == "mesh":
            return direct(1, 1, (p - 1) if red else 0.0)
        if algo == "innet":
            return innet(1.0)
    elif coll == "all_to_all":
        if algo == "mesh":
            return direct(1 / p, 1, 0.0)
        if algo == "bruck":
            lat = bw = 0.0
            for j in range(math.ceil(math.log2(p))):
                i = _dist_level(lv, p, 1 << j)
                lat += _lat(lv[i][0])
                bw += 0.5 * m * _link(lv[i][0]) / rate(i)
            return lat, bw, 0.0
    raise NA(algo)


def _inner(t, u, R, choice, n, phases):
    m = n / R
    f = (u - 1) / u
    rate = _rate(t, m)
    lat = bw = red = 0.0
    for ph in phases:
        if choice == "ring":
            lat += (u - 1) * _lat(t)
            bw += f * m * _link(t) / rate
        elif choice == "mesh":
            if t.topology not in ("switch", "fullmesh"):
                raise NA("mesh")
            lat += _lat(t)
            bw += f * m / rate
        else:
            if not t.innet:
                raise NA("innet")
            lat += t.innet_lat_us
            bw += (1.0 if ph == "rs" else f) * m / (rate * t.innet_eff)
        if ph == "rs" and choice != "innet":
            red += f * m
    return lat, bw, red


def _hier(system, p, coll, n, allowed):
    lv = _levels(system, p)
    if len(lv) < 2:
        raise NA("hier")
    phases = {"allreduce": ("rs", "ag"), "reduce_scatter": ("rs",), "all_gather": ("ag",)}[coll]
    inner_lv = lv[:-1] if coll == "allreduce" else lv
    best = None
    inner_choices = [[c for c in ("ring", "mesh", "innet") if c in allowed] or ["ring"]
                     for _ in inner_lv]
    outer_choices = [a for a in ("ring", "tree", "rhd", "rd", "mesh", "mesh2", "innet")
                     if a in allowed] or ["ring"]
    for combo in itertools.product(*inner_choices):
        try:
            parts = [_inner(t, u, R, c, n, phases) if u > 1 else (0.0, 0.0, 0.0)
                     for (t, u, R), c in zip(inner_lv, combo)]
        except NA:
            continue
        outs = [(0.0, 0.0, 0.0)]
        if coll == "allreduce":
            t, u, R = lv[-1]
            outs = []
            sub = [[t, u, 1]]
            for a in outer_choices:
                try:
                    outs.append(_flat(system, u, "allreduce", a, n, levels=sub, scale=R))
                except NA:
                    pass
            if not outs:
                outs = [_flat(system, u, "allreduce", "ring", n, levels=sub, scale=R)]
        for o in outs:
            lat = sum(x[0] for x in parts) + o[0]
            bw = sum(x[1] for x in parts) + o[1]
            red = sum(x[2] for x in parts) + o[2]
            cand = (lat, bw, red)
            if best is None or _total(system, cand) < _total(system, best):
                best = cand
    if best is None:
        raise NA("hier")
    return best


def _total(system, c):
    lat, bw, redb = c
    r = redb / (system.reduce_gbps * 1e3)
    return lat + (max(bw, r) if system.overlap_reduce else bw + r)


def cost(system, nranks, nbytes, *, collective="allreduce", algorithm="ring", allowed=None,
         library_only=True):
    """(time, latency, bandwidth, reduce) in us for one size, or None if not applicable.

    algorithm='auto' returns the cheapest applicable one as (time, lat, bw, red, name)."""
    if allowed is None:
        allowed = set(system.library_algorithms) if library_only else set(for_collective(collective))
    if algorithm == "auto":
        cands = [a for a in for_collective(collective) if a in allowed] or for_collective(collective)
        best = None
        for a in cands:
            c = cost(system, nranks, nbytes, collective=collective, algorithm=a, allowed=allowed)
            if c is not None and (best is None or c[0] < best[0]):
                best = c + (a,)
        return best
    if nbytes == 0:
        return (0.0, 0.0, 0.0, 0.0)
    try:
        if algorithm == "hier":
            lat, bw, redb = _hier(system, nranks, collective, nbytes, allowed | {"ring"})
        else:
            lat, bw, redb = _flat(system, nranks, collective, algorithm, nbytes)
    except NA:
        return None
    lat += system.base_lat_us
    red = redb / (system.reduce_gbps * 1e3)
    t = lat + (max(bw, red) if system.overlap_reduce else bw + red)
    return (t, lat, bw, red)
