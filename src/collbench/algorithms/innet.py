"""In-network reduction and multicast (``innet``: NVLS, SHARP-like): the switch reduces."""
from __future__ import annotations

from ..errors import NotApplicable
from .base import MAX, Algorithm, Geometry, Plan, PlanContext, RefLevels, need_innet

innet = Algorithm("innet", "in-switch reduction / multicast (NVLS, SHARP-like)")


def link_bytes(coll: str, p: int) -> float:
    """Bytes through one chip's link per direction per byte of n (hier's in-switch inner
    steps use it too)."""
    f = (p - 1) / p
    return {"allreduce": (p + 1) / p, "reduce_scatter": 1.0, "all_gather": f,
            "broadcast": 1.0, "reduce": 1.0}[coll]


@innet.plan("allreduce", "reduce_scatter", "all_gather", "broadcast", "reduce")
def _plan(g: Geometry, ctx: PlanContext) -> Plan:
    plan = g.new("innet", mode=MAX)
    if g.p == 1:
        return plan
    need_innet(g, "innet")
    t = g.tiers[0]
    plan.lat += t.innet_lat_us
    g.add(plan, 0, link_bytes(ctx.collective, g.p) / t.innet_eff)
    return plan


@innet.reference("allreduce", "reduce_scatter", "all_gather", "broadcast", "reduce")
def _ref(r: RefLevels) -> tuple[float, float, float]:
    t = r.lv[0][0]
    if r.L != 1 or not t.innet:
        raise NotApplicable("innet")
    return t.innet_lat_us, link_bytes(r.collective, r.p) * r.m / (r.rate(0) * t.innet_eff), 0.0
