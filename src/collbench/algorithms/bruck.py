"""Bruck's all-to-all: ceil(log2 p) steps at distances 1, 2, 4, ..., half the data each."""
from __future__ import annotations

import math

import numpy as np

from .base import SUM, Algorithm, Geometry, Plan, PlanContext, RefLevels, ceil_log2

bruck = Algorithm("bruck", "Bruck's log-step all-to-all")


@bruck.plan("all_to_all")
def _plan(g: Geometry, ctx: PlanContext) -> Plan:
    plan = g.new("bruck", mode=SUM)
    for j in range(ceil_log2(g.p)):
        i = g.tier_of_distance(1 << j)
        plan.lat += g.a[i]
        g.add(plan, i, 0.5 * g.lf[i])
    return plan


@bruck.reference("all_to_all")
def _ref(r: RefLevels) -> tuple[float, float, float]:
    lat = bw = 0.0
    for j in range(math.ceil(math.log2(r.p))):
        i = r.dist_level(1 << j)
        lat += r.lat(i)
        bw += 0.5 * r.m * r.link(i) / r.rate(i)
    return lat, bw, 0.0


@bruck.run("all_to_all", description="Bruck: rotate, ceil(log2 p) Sendrecv steps at distance 2^k "
                                     "carrying the blocks whose index has bit k, rotate back")
def bruck_all_to_all(ctx, send, recv) -> None:
    comm = ctx.comm
    p, r = comm.Get_size(), comm.Get_rank()
    m = send.size // p
    if p == 1:
        recv[...] = send
        return
    # work[j] = the block for rank (r + j) % p; after step k it holds, at index j, what has
    # travelled j's low k bits of distance so far
    work = np.roll(send.reshape(p, m), -r, axis=0).copy()
    k = 1
    step = 0
    while k < p:
        idx = np.array([j for j in range(p) if j & k])
        out = np.ascontiguousarray(work[idx])
        inc = np.empty_like(out)
        comm.Sendrecv(out, dest=(r + k) % p, sendtag=600 + step, recvbuf=inc,
                      source=(r - k) % p, recvtag=600 + step)
        work[idx] = inc
        k <<= 1
        step += 1
    # work[j] now holds the block rank (r - j) % p sent to this rank
    src = (r - np.arange(p)) % p
    recv.reshape(p, m)[src] = work
