"""Direct algorithms over switched (or full-mesh) tiers: ``mesh`` (one shot: every rank
sends its data to every peer at once), ``mesh2`` (two shots: direct reduce-scatter, then
direct all-gather) and ``pairwise`` (all-to-all as p-1 exchanges, one peer at a time: MPI
libraries' large-message all-to-all)."""
from __future__ import annotations

import math

from ..errors import NotApplicable
from .base import (
    MAX,
    SUM,
    Algorithm,
    Geometry,
    Plan,
    PlanContext,
    RefLevels,
    c_loops,
    need_switched,
)

mesh = Algorithm("mesh", "one-shot direct: every rank sends its data to every peer at once",
                 direct_shots=1)
pairwise = Algorithm("pairwise", "pairwise exchange: p-1 steps, at step s send to r+s and receive "
                                "from r-s (one peer at a time)")
# The model's bandwidth of a pairwise step: a library's grouped send/receive (NCCL's
# all-to-all) keeps the schedule's peers across a tier in flight together over its p2p
# channels, so the c peers across tier i share it at Tier.peer_rate(c); with the default
# peer_share of 1 (collbench's own Sendrecv loop over MPI) nothing changes.
mesh2 = Algorithm("mesh2", "two-shot direct: direct reduce-scatter, then direct all-gather",
                  direct_shots=2)


def direct_plan(g: Geometry, algo: str, frac_per_peer: float, rounds: int, red: float) -> Plan:
    plan = g.new(algo, mode=MAX)
    if g.p == 1:
        return plan
    need_switched(g, algo)
    plan.lat += rounds * g.a[g.L - 1]
    for i in range(g.L):
        g.add(plan, i, rounds * frac_per_peer * g.peers[i] / g.tiers[i].peer_rate(g.peers[i]))
    plan.red += red / g.scale
    return plan


def direct_reference(r: RefLevels, frac_per_peer: float, rounds: int, red: float
                     ) -> tuple[float, float, float]:
    if not r.switched():
        raise NotApplicable("direct paths")
    bw = max(rounds * frac_per_peer * r.m * r.peers(i)
             / (r.rate(i) * r.lv[i][0].peer_rate(r.peers(i))) for i in range(r.L))
    return rounds * r.lat(r.L - 1), bw, red * r.m


def _mesh_terms(coll: str, p: int) -> tuple[float, float]:
    """(fraction of n per peer, reduced bytes per byte of n) of one-shot direct."""
    f = (p - 1) / p
    return {"allreduce": (1.0, p - 1.0), "reduce_scatter": (1 / p, f), "all_gather": (1 / p, 0.0),
            "broadcast": (1.0, 0.0), "reduce": (1.0, p - 1.0), "all_to_all": (1 / p, 0.0)}[coll]


@mesh.plan("allreduce", "reduce_scatter", "all_gather", "broadcast", "reduce", "all_to_all")
def _mesh_plan(g: Geometry, ctx: PlanContext) -> Plan:
    per, red = _mesh_terms(ctx.collective, g.p)
    return direct_plan(g, "mesh", per, 1, red)


@mesh.reference("allreduce", "reduce_scatter", "all_gather", "broadcast", "reduce", "all_to_all")
def _mesh_ref(r: RefLevels) -> tuple[float, float, float]:
    per, red = _mesh_terms(r.collective, r.p)
    return direct_reference(r, per, 1, red)


@mesh2.plan("allreduce")
def _mesh2_plan(g: Geometry, ctx: PlanContext) -> Plan:
    return direct_plan(g, "mesh2", 1 / g.p, 2, (g.p - 1) / g.p)


@mesh2.reference("allreduce")
def _mesh2_ref(r: RefLevels) -> tuple[float, float, float]:
    return direct_reference(r, 1 / r.p, 2, (r.p - 1) / r.p)


@mesh.run("all_to_all", description="one-shot direct all-to-all: every rank posts its p-1 "
                                    "receives and sends at once (Irecv/Isend, Waitall)")
def mesh_all_to_all(ctx, send, recv) -> None:
    comm = ctx.comm
    p, r = comm.Get_size(), comm.Get_rank()
    m = send.size // p
    recv[r * m:(r + 1) * m] = send[r * m:(r + 1) * m]
    reqs = []
    for s in range(1, p):
        src, dst = (r - s) % p, (r + s) % p
        reqs.append(comm.Irecv(recv[src * m:(src + 1) * m], source=src, tag=400))
        reqs.append(comm.Isend(send[dst * m:(dst + 1) * m], dest=dst, tag=400))
    ctx.waitall(reqs)


# ---- pairwise exchange -------------------------------------------------------------------

def _pairwise_counts(bounds: list[int], p: int) -> list[int]:
    """Steps per tier: step s (1..p-1) talks to the rank at distance s, whose outermost
    differing tier is the one with bounds[i] <= s < bounds[i+1]."""
    out = []
    for i in range(len(bounds) - 1):
        lo, hi = max(bounds[i], 1), min(bounds[i + 1], p)
        out.append(max(0, hi - lo))
    return out


@pairwise.plan("all_to_all")
def _pairwise_plan(g: Geometry, ctx: PlanContext) -> Plan:
    plan = g.new("pairwise", mode=SUM)
    if g.p == 1:
        return plan
    for i, c in enumerate(_pairwise_counts(g.R, g.p)):
        # the peers across a tier are in flight a few at a time: their latencies overlap
        plan.lat += g.tiers[i].peer_rounds(c) * g.a[i]
        g.add(plan, i, c * g.lf[i] / g.p / g.tiers[i].peer_rate(c))
    return plan


@pairwise.reference("all_to_all")
def _pairwise_ref(r: RefLevels) -> tuple[float, float, float]:
    lat = bw = 0.0
    bounds = [int(r.lv[i][2]) for i in range(r.L)] + [r.p]
    for i, c in enumerate(_pairwise_counts(bounds, r.p)):
        t = r.lv[i][0]
        width = 1
        while width * t.peer_share < 1.0 - 1e-9:      # peers in flight that fill the tier
            width += 1
        lat += math.ceil(c / width) * r.lat(i)
        bw += c * r.m * r.link(i) / (r.p * r.rate(i) * t.peer_rate(c))
    return lat, bw, 0.0


@pairwise.run("all_to_all", description="pairwise exchange: p-1 Sendrecv steps, to r+s from r-s")
def pairwise_all_to_all(ctx, send, recv) -> None:
    comm = ctx.comm
    if (c := c_loops(ctx)) is not None:
        c.pairwise_all_to_all(comm, send, recv)
        return
    p, r = comm.Get_size(), comm.Get_rank()
    m = send.size // p
    recv[r * m:(r + 1) * m] = send[r * m:(r + 1) * m]
    for s in range(1, p):
        dst, src = (r + s) % p, (r - s) % p
        comm.Sendrecv(send[dst * m:(dst + 1) * m], dest=dst, sendtag=400 + s,
                      recvbuf=recv[src * m:(src + 1) * m], source=src, recvtag=400 + s)
