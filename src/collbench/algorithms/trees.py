"""Trees: NCCL's double binary tree (``tree``, all-reduce) and the binomial tree
(``binomial``: reduce to the root, broadcast from it; all-reduce = reduce + broadcast)."""
from __future__ import annotations

import math

from .base import MAX, SUM, Algorithm, Geometry, Plan, PlanContext, RefLevels, ceil_log2

tree = Algorithm("tree", "double binary tree (NCCL's Tree): two complementary binary trees "
                         "each carry half of the data, reduce up then broadcast down")
binomial = Algorithm("binomial", "binomial tree: reduce to the root in ceil(log2 p) steps, "
                                 "broadcast back in as many (all-reduce = both)")


# ---- tree (double binary) ----------------------------------------------------------------

@tree.plan("allreduce")
def _tree_plan(g: Geometry, ctx: PlanContext) -> Plan:
    plan = g.new("tree", mode=MAX)
    if g.p == 1:
        return plan
    for i in range(g.L):
        plan.lat += 2 * ceil_log2(g.u[i]) * g.a[i]
        g.add(plan, i, 2 * g.lf[i] / g.R[i])
    plan.red += 1 / g.scale
    return plan


@tree.reference("allreduce")
def _tree_ref(r: RefLevels) -> tuple[float, float, float]:
    lat = sum(2 * math.ceil(math.log2(u)) * r.lat_of(t) for t, u, _ in r.lv if u > 1)
    bw = max(2 * r.m * r.link(i) / (r.lv[i][2] * r.rate(i)) for i in range(r.L))
    return lat, bw, r.m


# ---- binomial ----------------------------------------------------------------------------

def binomial_plan(g: Geometry, phases: int, red_per_step: float) -> Plan:
    """``phases`` (1: reduce or broadcast, 2: both) of ceil(log2 p) steps at distances
    1, 2, 4, ...; each step moves the whole buffer once."""
    plan = g.new("binomial", mode=SUM)
    for j in range(ceil_log2(g.p)):
        i = g.tier_of_distance(1 << j)
        plan.lat += phases * g.a[i]
        g.add(plan, i, phases * g.lf[i])
        plan.red += red_per_step / g.scale
    return plan


@binomial.plan("allreduce")
def _binomial_allreduce(g: Geometry, ctx: PlanContext) -> Plan:
    return binomial_plan(g, 2, 1.0)


@binomial.plan("broadcast", "reduce")
def _binomial_rooted(g: Geometry, ctx: PlanContext) -> Plan:
    return binomial_plan(g, 1, 1.0 if ctx.collective == "reduce" else 0.0)


def binomial_reference(r: RefLevels, phases: int, red: bool) -> tuple[float, float, float]:
    lat = bw = 0.0
    steps = math.ceil(math.log2(r.p))
    for j in range(steps):
        i = r.dist_level(1 << j)
        lat += phases * r.lat(i)
        bw += phases * r.m * r.link(i) / r.rate(i)
    return lat, bw, steps * r.m if red else 0.0


@binomial.reference("allreduce")
def _binomial_ref_allreduce(r: RefLevels) -> tuple[float, float, float]:
    return binomial_reference(r, 2, True)


@binomial.reference("broadcast")
def _binomial_ref_bcast(r: RefLevels) -> tuple[float, float, float]:
    return binomial_reference(r, 1, False)


@binomial.reference("reduce")
def _binomial_ref_reduce(r: RefLevels) -> tuple[float, float, float]:
    return binomial_reference(r, 1, True)


SEGMENT_BYTES = 1 << 20


def _binomial_links(p: int, r: int) -> tuple[int | None, list[int]]:
    """Rank r's parent (None at the root, rank 0) and children in the binomial tree."""
    children: list[int] = []
    mask, parent = 1, None
    while mask < p:
        if r & mask:
            parent = r - mask
            break
        if r + mask < p:
            children.append(r + mask)
        mask <<= 1
    return parent, children


def _rooted_links(p: int, r: int, root: int) -> tuple[int | None, list[int]]:
    """The binomial tree of rank ``root``: rank r's parent and children (ranks relabelled so
    that the root is 0, as MPI libraries do)."""
    parent, children = _binomial_links(p, (r - root) % p)
    return (None if parent is None else (parent + root) % p), [(c + root) % p for c in children]


def _reduce_up(ctx, acc, tmp, parent, children, tag) -> None:
    """Reduce the children's partial results into acc and pass it to the parent, segment by
    segment (pipelined); tmp holds one segment."""
    pending = []
    seg = tmp.size
    for o in range(0, acc.size, seg):
        e = min(o + seg, acc.size)
        for c in children:
            ctx.comm.Recv(tmp[:e - o], source=c, tag=tag)
            ctx.reduce_into(acc[o:e], tmp[:e - o])
        if parent is not None:
            pending.append(ctx.comm.Isend(acc[o:e], dest=parent, tag=tag))
    ctx.waitall(pending)


def _bcast_down(ctx, buf, parent, children, tag) -> None:
    """Receive buf from the parent and pass it to the children, segment by segment."""
    pending = []
    seg = max(1, SEGMENT_BYTES // buf.itemsize)
    for o in range(0, buf.size, seg):
        e = min(o + seg, buf.size)
        if parent is not None:
            ctx.comm.Recv(buf[o:e], source=parent, tag=tag)
        for c in reversed(children):
            pending.append(ctx.comm.Isend(buf[o:e], dest=c, tag=tag))
    ctx.waitall(pending)


def _segment(buf) -> int:
    return min(max(1, SEGMENT_BYTES // buf.itemsize), buf.size)


@binomial.run("allreduce", description="binomial-tree reduce to rank 0 + binomial broadcast, "
                                       "1 MiB segments pipelined")
def binomial_allreduce(ctx, send, recv) -> None:
    p, r = ctx.comm.Get_size(), ctx.comm.Get_rank()
    recv[...] = send
    if p == 1 or recv.size == 0:
        return
    parent, children = _binomial_links(p, r)
    _reduce_up(ctx, recv, ctx.tmp(_segment(recv)), parent, children, tag=1)
    _bcast_down(ctx, recv, parent, children, tag=2)


@binomial.run("reduce", description="binomial-tree reduce to the root (-r, default 0), 1 MiB "
                                    "segments pipelined")
def binomial_reduce(ctx, send, recv) -> None:
    p, r, root = ctx.comm.Get_size(), ctx.comm.Get_rank(), getattr(ctx, "root", 0)
    if p == 1 or send.size == 0:
        recv[...] = send
        return
    # the root reduces into recv; the others into scratch (their recv is not theirs to write)
    own = 0 if r == root else send.size
    work = ctx.tmp(own + _segment(send))
    acc = recv if r == root else work[:own]
    acc[...] = send
    parent, children = _rooted_links(p, r, root)
    _reduce_up(ctx, acc, work[own:], parent, children, tag=11)


@binomial.run("broadcast", description="binomial-tree broadcast from the root (-r, default 0), "
                                       "1 MiB segments pipelined")
def binomial_broadcast(ctx, send, recv) -> None:
    p, r, root = ctx.comm.Get_size(), ctx.comm.Get_rank(), getattr(ctx, "root", 0)
    if r == root:
        recv[...] = send
    if p == 1 or recv.size == 0:
        return
    parent, children = _rooted_links(p, r, root)
    _bcast_down(ctx, recv, parent, children, tag=12)
