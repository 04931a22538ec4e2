"""Hierarchical (``hier``): reduce-scatter inside each inner tier, the collective across the
outermost tier on 1/R of the data, all-gather back.  The model builds one plan per choice
of inner algorithm per tier (ring, direct, in-switch) and outer algorithm and keeps the
cheapest; each plan has an exact label, e.g. ``hier(ring>rhd)`` or ``hier(innet+ring>tree)``,
that ``estimate(algorithm=...)`` accepts, so a measured ``hier(ring>rhd)`` is predicted as
exactly that."""
from __future__ import annotations

import itertools
import math
import re

import numpy as np

from ..errors import NotApplicable
from .base import MAX, SUM, Algorithm, Geometry, Plan, PlanContext, RefLevels, chain_pipeline
from .halving import rhd_allreduce
from .innet import link_bytes
from .ring import bounds, ring_all_gather, ring_reduce_scatter

hier = Algorithm("hier", "hierarchical: reduce-scatter inside, all-reduce across, all-gather "
                         "inside; the best inner and outer algorithm per tier")

INNER = ("ring", "mesh", "innet")
OUTER = ("ring", "tree", "rhd", "rd", "mesh", "mesh2", "innet")
PHASES = {"allreduce": ("rs", "ag"), "reduce_scatter": ("rs",), "all_gather": ("ag",)}
LABEL = re.compile(r"^hier\(([a-z0-9+]+)(?:>([a-z0-9]+))?\)$")


def one_kernel(inner: tuple[str, ...] | list[str], outer: str | None) -> bool:
    """NCCL's NVLSTree, ``hier(innet>tree)``: the in-switch steps inside and the tree across
    run as one pipelined kernel, chunk after chunk, so the slowest tier sets the pace (NCCL's
    tuner: NVLSTree bandwidth = channels x min(intra, inter bandwidth)), where collbench's
    own hierarchical plans run their phases one after another."""
    return outer == "tree" and all(c in ("innet", "-") for c in inner)


def outer_tree_factor(nodes: int) -> float:
    """NVLSTree's tree across ``nodes`` at full inter-node bandwidth on 2 nodes (each node
    sends its reduced part to the other and receives the other's) and at half of it on more
    (the double binary tree's busiest port moves the data twice), NCCL's tuner's
    bwInter vs bwInter / 2: the factor on the flat tree's 2 bytes per byte."""
    return 0.5 if nodes <= 2 else 1.0


def parse_label(name: str) -> tuple[list[str], str | None] | None:
    """'hier(ring>rhd)' -> (['ring'], 'rhd'); None when ``name`` is not a hier label."""
    m = LABEL.match(name)
    if not m:
        return None
    return m.group(1).split("+"), m.group(2)


def label_matches(label: str, want: str) -> bool:
    """A plan's label matches a requested one exactly, or when one inner name stands for
    the same choice on every inner tier (``hier(ring>rhd)`` = ``hier(ring+ring>rhd)``)."""
    if label == want:
        return True
    a, b = parse_label(label), parse_label(want)
    if a is None or b is None or a[1] != b[1] or len(b[0]) != 1:
        return False
    return all(x == b[0][0] for x in a[0])


def _inner_ok(t, choice: str) -> bool:
    if choice == "mesh":
        return t.topology in ("switch", "fullmesh")
    if choice == "innet":
        return bool(t.innet)
    return True


def _inner_step(plan: Plan, system, k: int, u: int, R: int, choice: str, coll: str,
                chips: int) -> None:
    """Reduce-scatter and/or all-gather among u groups on tier k, on n / R bytes; ``chips``
    of one group of the tier send at once (``Tier.shared_gbps``)."""
    t = system.tiers[k]
    f = (u - 1) / u
    lf = max(1, t.size - 1) if t.topology == "fullmesh" else 1
    per_byte = 1 / (R * t.share(chips))          # of n, on each chip's link
    if choice == "innet":
        # through the switch (NVLS): per direction, the bytes of the one-tier in-switch
        # collective (an all-reduce's reduce-scatter and all-gather use opposite directions)
        plan.lat += len(PHASES[coll]) * t.innet_lat_us
        plan.coef[k] += link_bytes(coll, u) / t.innet_eff * per_byte
        plan.logscale[k] = -math.log(R)
        return
    for ph in PHASES[coll]:
        if choice == "ring":
            plan.lat += (u - 1) * t.lat_us
            c = f * lf
        else:  # mesh
            plan.lat += t.lat_us
            c = f
        plan.coef[k] += c * per_byte
        # a ring step moves (n / R) / u bytes (ring.ring_plan); mesh moves n / R
        plan.logscale[k] = -math.log(R * u if choice == "ring" else R)
        if ph == "rs":
            plan.red += f / R


@hier.plan("allreduce", "reduce_scatter", "all_gather")
def _plans(g: Geometry, ctx: PlanContext) -> list[Plan]:
    coll = ctx.collective
    if g.L < 2:
        raise NotApplicable("'hier' needs ranks on more than one tier; these ranks fit in "
                            f"tier 0 ({g.tiers[0].name}, {g.tiers[0].size} chips)")
    system = g.system
    allowed = ctx.allowed | {"ring"}
    inner_levels = range(g.L - 1) if coll == "allreduce" else range(g.L)
    options = []
    for i in inner_levels:
        opts = [c for c in INNER if c in allowed and _inner_ok(g.tiers[i], c)] or ["ring"]
        options.append(opts if g.u[i] > 1 else ["-"])
    outer: list[Plan] = []
    if coll == "allreduce":
        og = Geometry(system, g.u[-1], tiers=[g.ks[-1]], scale=g.R[g.L - 1])
        for a in OUTER:
            if a in allowed:
                try:
                    outer.append(ctx.flat("allreduce", a, og))
                except NotApplicable:
                    pass
        if not outer:
            outer.append(ctx.flat("allreduce", "ring", og))
    plans = []
    for combo in itertools.product(*options):
        base = g.new("hier", mode=SUM)
        for i, choice in zip(inner_levels, combo):
            if choice != "-":
                _inner_step(base, system, g.ks[i], g.u[i], g.R[i], choice, coll, g.R[i + 1])
        name = "+".join(c for c in combo if c != "-")
        if coll == "allreduce":
            for o in outer:
                # an outer step that pipelines (the tree across nodes) carries the whole
                # plan through its hops: NVLSTree's chunks go through NVLS and the tree
                one = one_kernel(combo, o.algorithm)
                # (a system whose flat tree crosses 2 nodes once has halved it already)
                f = (outer_tree_factor(g.u[-1]) if one and not system.two_node_tree_once
                     else 1.0)
                plans.append(Plan("hier", f"hier({name}>{o.algorithm})", base.ntiers,
                                  lat=base.lat + o.lat, red=base.red + o.red,
                                  mode=MAX if one else SUM, pipe_d=o.pipe_d, pipe_a=o.pipe_a,
                                  coef=[a + f * b for a, b in zip(base.coef, o.coef)],
                                  logscale=[a if a else b for a, b in zip(base.logscale,
                                                                          o.logscale)]))
        else:
            base.label = f"hier({name})"
            plans.append(base)
    return library_plans(plans, ctx.hier_labels, coll, lambda pl: pl.label)


def library_plans(plans: list, labels: tuple[str, ...], coll: str, label_of) -> list:
    """The plans a library runs (``System.hier_plans``: NCCL's NVLSTree is
    ``hier(innet>tree)``; no other hierarchical plan is one of its algorithms)."""
    if not labels:
        return plans
    kept = [x for x in plans if any(label_matches(label_of(x), want) for want in labels)]
    if not kept:
        raise NotApplicable(f"the library runs no hierarchical plan for {coll} here; its "
                            f"hier plans: {', '.join(labels)}")
    return kept


# ---- reference ---------------------------------------------------------------------------

def _inner_ref(r: RefLevels, i: int, choice: str, phases) -> tuple[float, float, float]:
    t, u, R = r.lv[i]
    m = r.n / R
    f = (u - 1) / u
    rate = (t.bw_gbps * 1e3 / t.oversub * t.efficiency(m / u if choice == "ring" else m)
            * t.share(r.chips(i)))
    link = (t.size - 1) if (t.topology == "fullmesh" and t.size > 1) else 1
    lat = bw = red = 0.0
    if choice == "innet":
        if not t.innet:
            raise NotApplicable("innet")
        return (len(phases) * t.innet_lat_us,
                link_bytes(r.collective, u) * m / (rate * t.innet_eff), 0.0)
    for ph in phases:
        if choice == "ring":
            lat += (u - 1) * r.lat_of(t)
            bw += f * m * link / rate
        else:  # mesh
            if t.topology not in ("switch", "fullmesh"):
                raise NotApplicable("mesh")
            lat += r.lat_of(t)
            bw += f * m / rate
        if ph == "rs":
            red += f * m
    return lat, bw, red


def reference_candidates(r: RefLevels, allowed) -> list[tuple[str, tuple[float, float, float]]]:
    """Every (label, (lat, bw, red bytes)) the reference finds for hier; the driver keeps
    the cheapest (or the one asked for by label)."""
    coll = r.collective
    if r.L < 2:
        raise NotApplicable("hier")
    allowed = set(allowed) | {"ring"}
    phases = PHASES[coll]
    inner_lv = r.lv[:-1] if coll == "allreduce" else r.lv
    inner_choices = [[c for c in INNER if c in allowed] if u > 1 else ["-"]
                     for (_, u, _) in inner_lv]
    out = []
    for combo in itertools.product(*inner_choices):
        try:
            parts = [_inner_ref(r, i, c, phases) if c != "-" else (0.0, 0.0, 0.0)
                     for i, c in enumerate(combo)]
        except NotApplicable:
            continue
        name = "+".join(c for c in combo if c != "-")
        outs: list[tuple[str, tuple[float, float, float], tuple[float, float]]] = [
            ("", (0.0, 0.0, 0.0), (0.0, 0.0))]
        if coll == "allreduce":
            t, u, R = r.lv[-1]
            sub = RefLevels(r.system, u, r.n, levels=[[t, u, 1]], scale=R, ctx=r.ctx,
                            collective="allreduce", pipelined=False)
            outs = []
            for a in [x for x in OUTER if x in allowed] or ["ring"]:
                try:
                    outs.append((a, r.ctx.flat(a, sub), sub.pipe))
                except NotApplicable:
                    pass
                sub.pipe = (0.0, 0.0)
        for oname, o, (d, pa) in outs:
            label = f"hier({name}>{oname})" if coll == "allreduce" else f"hier({name})"
            lat = sum(x[0] for x in parts) + o[0]
            if coll == "allreduce" and one_kernel(combo, oname):
                # NVLSTree: one pipelined kernel, the slowest tier sets the pace; its tree
                # moves the data once across 2 nodes, twice across more
                half = r.lv[-1][1] <= 2 and not r.system.two_node_tree_once
                bw = max([x[1] for x in parts] + [o[1] * (0.5 if half else 1.0)])
            else:
                bw = sum(x[1] for x in parts) + o[1]
            if d:                       # the outer step's hops carry the whole plan
                pl, bw = chain_pipeline(d, pa, bw)
                lat += pl
            out.append((label, (lat, bw, sum(x[2] for x in parts) + o[2])))
    if not out:
        raise NotApplicable("hier")
    return library_plans(out, r.ctx.hier_labels, coll, lambda c: c[0])


@hier.reference("allreduce", "reduce_scatter", "all_gather")
def _ref(r: RefLevels) -> tuple[float, float, float]:
    cands = reference_candidates(r, r.ctx.allowed)
    if r.ctx.label:
        cands = [c for c in cands if label_matches(c[0], r.ctx.label)]
        if not cands:
            raise NotApplicable(r.ctx.label)
    return min(cands, key=lambda c: r.ctx.total(c[1]))[1]


# ---- real implementation -----------------------------------------------------------------

@hier.run("allreduce", variant="hier(ring>rhd)",
          description="ring reduce-scatter in the node, rhd all-reduce across nodes, ring "
                      "all-gather in the node")
def hier_allreduce(ctx, send, recv) -> None:
    node, cross = ctx.node_comm, ctx.cross_comm
    recv[...] = send
    q = node.Get_size()
    b = bounds(recv.size, q)
    if q > 1:
        ring_reduce_scatter(ctx, node, recv, b)
    mine = (node.Get_rank() + 1) % q
    block = recv[b[mine]:b[mine + 1]]
    if cross.Get_size() > 1:
        tmp = np.empty_like(block)
        tmp[...] = block
        rhd_allreduce(ctx, tmp, block, comm=cross)
    if q > 1:
        ring_all_gather(ctx, node, recv, b)
