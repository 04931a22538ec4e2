"""Bruck's all-to-all: ceil(log2 p) steps at distances 1, 2, 4, ..., half the data each."""
from __future__ import annotations

import math

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
