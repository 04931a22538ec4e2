"""Direct algorithms over switched (or full-mesh) tiers: ``mesh`` (one shot: every rank
sends its data to every peer at once) and ``mesh2`` (two shots: direct reduce-scatter, then
direct all-gather)."""
from __future__ import annotations

from ..errors import NotApplicable
from .base import MAX, Algorithm, Geometry, Plan, PlanContext, RefLevels, need_switched

mesh = Algorithm("mesh", "one-shot direct: every rank sends its data to every peer at once",
                 direct_shots=1)
mesh2 = Algorithm("mesh2", "two-shot direct: direct reduce-scatter, then direct all-gather",
                  direct_shots=2)


def direct_plan(g: Geometry, algo: str, frac_per_peer: float, rounds: int, red: float) -> Plan:
    plan = g.new(algo, mode=MAX)
    if g.p == 1:
        return plan
    need_switched(g, algo)
    plan.lat += rounds * g.a[g.L - 1]
    for i in range(g.L):
        g.add(plan, i, rounds * frac_per_peer * g.peers[i])
    plan.red += red / g.scale
    return plan


def direct_reference(r: RefLevels, frac_per_peer: float, rounds: int, red: float
                     ) -> tuple[float, float, float]:
    if not r.switched():
        raise NotApplicable("direct paths")
    bw = max(rounds * frac_per_peer * r.m * r.peers(i) / r.rate(i) for i in range(r.L))
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
