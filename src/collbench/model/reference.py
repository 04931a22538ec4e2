"""The plain-Python reference: every algorithm's registered reference transcription, one
size at a time, without the plan/kernel machinery.  The tests hold the Cython kernel and its
NumPy twin against it; the benchmarks race it.  Returns (time, latency, bandwidth, reduce)
in microseconds."""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from ..algorithms import REGISTRY, for_collective
from ..algorithms.base import RefContext, RefLevels, latency_floor
from ..algorithms.hier import parse_label
from ..errors import NotApplicable


def _total(system: Any, c: tuple[float, float, float]) -> float:
    lat, bw, redb = c
    r = redb / (system.reduce_gbps * 1e3)
    return float(lat + (max(bw, r) if system.overlap_reduce else bw + r))


def _flat(algo: str, r: RefLevels) -> tuple[float, float, float]:
    fn = REGISTRY[algo].references.get(r.collective)
    if fn is None:
        raise NotApplicable(algo)
    if r.p == 1 and algo != "hier":    # one rank moves nothing (hier needs two tiers)
        return 0.0, 0.0, 0.0
    return fn(r)


def cost(system: Any, nranks: int, nbytes: float, *, collective: str = "allreduce",
         algorithm: str = "ring", allowed: set[str] | None = None, library_only: bool = True
         ) -> tuple | None:
    """(time, latency, bandwidth, reduce) in us for one size, or None if not applicable.

    algorithm='auto' returns the cheapest applicable one as (time, lat, bw, red, name)."""
    if allowed is None:
        allowed = set(system.library_algorithms) if library_only else set(for_collective(collective))
    hier_labels = system.hier_plans if library_only else ()
    if algorithm == "auto":
        cands = [a for a in for_collective(collective) if a in allowed] or for_collective(collective)
        best = None
        for a in cands:
            c = cost(system, nranks, nbytes, collective=collective, algorithm=a, allowed=allowed,
                     library_only=library_only)
            if c is not None and (best is None or c[0] < best[0]):
                best = c + (a,)
        return best
    if nbytes == 0:
        return (0.0, 0.0, 0.0, 0.0)
    label = algorithm if parse_label(algorithm) else ""
    name = "hier" if label else algorithm
    best = None
    # each protocol the algorithm runs with is a system with its latencies and its bandwidth
    # factor on every tier's line rate; the cheapest wins (no protocols: the system as it is)
    try:
        protos = system.protocol_variants(name, nranks)
    except NotApplicable:           # none of its protocols runs across this many tiers
        return None
    for proto in protos:
        s = system
        at = nbytes             # the size the transfer is evaluated at
        if proto:
            d = system.protocol(proto, name)
            f = d["bw_factor"]
            if "bw_factor_across" in d and len(RefLevels.levels(system, nranks)) > 1:
                f = d["bw_factor_across"]
            # fewer channels below their full size, each keeping the bytes it has there:
            # the transfer of `full` bytes at n / (full x that share) of every link's rate
            full, one = system.protocol_channels(proto, name, nranks)
            if full > 0 and nbytes < full:
                f *= max(one, nbytes / full) * full / nbytes
                at = full
            s = system.with_protocol(proto, name)
            # the protocol's factor is on the data a link carries, not on the link: a shared
            # capacity keeps its ratio to the line rate
            s = replace(s, tiers=tuple(replace(t, bw_gbps=t.bw_gbps * f,
                                               shared_gbps=t.shared_gbps * f) for t in s.tiers))
        ctx = RefContext(frozenset(REGISTRY) if label else frozenset(allowed), _flat,
                         partial(_total, s), label, () if label else hier_labels)
        r = RefLevels(s, nranks, nbytes, ctx=ctx, collective=collective)
        try:
            lat, bw, redb = _flat(name, r)
            if at != nbytes:        # latency (with its pipelining) and transfer from there
                lat, bw, _ = _flat(name, RefLevels(s, nranks, at, ctx=ctx,
                                                   collective=collective))
        except NotApplicable:
            return None
        # launch cost and the outermost spanned tier's synchronisation cost
        lat = max(lat + s.base_lat_us + r.lv[-1][0].sync_us, latency_floor(REGISTRY[name], nranks))
        red = redb / (s.reduce_gbps * 1e3)
        t = lat + (max(bw, red) if s.overlap_reduce else bw + red)
        if best is None or t < best[0]:
            best = (t, lat, bw, red)
    return best
