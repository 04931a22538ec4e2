"""Trees: NCCL's double binary tree (``tree``, all-reduce) and the binomial tree
(``binomial``: reduce to the root, broadcast from it; all-reduce = reduce + broadcast)."""
from __future__ import annotations

import functools
import math

from .base import (
    MAX,
    SUM,
    Algorithm,
    Geometry,
    Plan,
    PlanContext,
    RefLevels,
    c_loops,
    ceil_log2,
    chain_pipeline,
)

tree = Algorithm("tree", "double binary tree (NCCL's Tree): two complementary binary trees "
                         "each carry half of the data, reduce up then broadcast down")
binomial = Algorithm("binomial", "binomial tree: reduce to the root in ceil(log2 p) steps, "
                                 "broadcast back in as many (all-reduce = both)")


# ---- tree (double binary) ----------------------------------------------------------------

@tree.plan("allreduce")
def _tree_plan(g: Geometry, ctx: PlanContext) -> Plan:
    """Across nodes the data goes up the tree and back down in segments, one after another
    through the 2 ceil(log2 u) hops of every outer tier: a pipelined chain of that depth (the
    kernel's pipelining step, as the ring's broadcast chain) whose segments each pay a hop's
    latency, at the best segment count.  NCCL's tuner charges the hops' latency once and
    patches the medium sizes with its tree correction table (kept as the protocols' ramps),
    but the fill grows with the depth, log2 of the nodes, which one table cannot follow.
    The innermost tier's hops (NVLink, 0.6-4 us a step against the network's 5-14) are
    charged once, as before: a tree inside one node is unchanged."""
    plan = g.new("tree", mode=MAX)
    if g.p == 1:
        return plan
    for i in range(g.L):
        hops = 2 * ceil_log2(g.u[i])
        if g.ks[i] == 0:        # the innermost tier's hops: latency once (see the docstring)
            plan.lat += hops * g.a[i]
        else:
            plan.pipe_d += hops
            plan.pipe_a += hops * g.a[i]
        # reduce up, then broadcast down: in each phase the busiest rank moves the whole data
        # through one port (two children's halves in, or out), NCCL's tree model at every
        # rank count.  With 2 ranks collbench's exact tree moves half that; the model keeps
        # NCCL's figure (measured NCCL runs on 2 nodes are slower than either, see
        # collbench validate); test_real_tree_is_the_modelled_double_binary_tree checks both
        # on a system whose tree runs across exactly 2 nodes once (System.two_node_tree_once)
        # each node sends the other its part and receives the other's: 1 byte per byte
        once = g.system.two_node_tree_once and g.ks[i] != 0 and g.u[i] == 2
        g.add(plan, i, (1 if once else 2) * g.lfc[i] / g.R[i])
    if plan.pipe_d:
        plan.pipe_a /= plan.pipe_d          # mean latency per hop
    plan.red += 1 / g.scale
    return plan


@tree.reference("allreduce")
def _tree_ref(r: RefLevels) -> tuple[float, float, float]:
    inner = d = lat = 0.0
    for i, (t, u, _) in enumerate(r.lv):
        hops = 2 * math.ceil(math.log2(u))
        if r.innermost(i):                  # the innermost tier: its hops' latency once
            inner += hops * r.lat_of(t)
        else:
            d += hops
            lat += hops * r.lat_of(t)
    # busiest port of a double binary tree, up then down: 2 bytes per byte (NCCL's tree model);
    # 1 across exactly 2 nodes where the system's tree crosses them once
    def per_byte(i: int) -> int:
        once = r.system.two_node_tree_once and not r.innermost(i) and r.lv[i][1] == 2
        return 1 if once else 2
    bw = max(per_byte(i) * r.m * r.link(i, True) / (r.lv[i][2] * r.rate(i)) for i in range(r.L))
    if d == 0:
        return inner, bw, r.m
    if not r.pipelined:                     # the enclosing algorithm pipelines (hier)
        r.pipe = (d, lat / d)
        return inner, bw, r.m
    pl, pb = chain_pipeline(d, lat / d, bw)
    return inner + pl, pb, r.m


# the real double binary tree ---------------------------------------------------------------

TREE_SEGMENT_BYTES = 256 << 10
WINDOW = 4            # segments a leaf tree runs ahead of / behind the inner one


def _btree_parent(p: int, q: int) -> int | None:
    """Parent of position q in a binary tree over positions 0..p-1 rooted at 0: the lowest
    set bit of a position says its height; a node's parent has the next bit set (the node
    one level up on its side), or, past the end, the node with q's lowest bit cleared.  Every
    step up clears or raises the lowest bit, so the height is ceil(log2 p)."""
    if q == 0:
        return None
    lb = q & -q
    up = (q ^ lb) | (lb << 1)
    return up if up < p else q ^ lb


@functools.lru_cache(maxsize=512)
def btree(p: int, second: bool) -> tuple[tuple[int | None, ...], tuple[tuple[int, ...], ...]]:
    """Parent and children of every rank in the first or the second tree of a double binary
    tree over p ranks.  The second tree lays the same shape on the ranks mirrored (p even) or
    shifted by one (p odd), so that a rank that is a leaf in one tree is inside the other and
    the two trees together load every rank about evenly."""
    def rank(q: int) -> int:
        if not second:
            return q
        return p - 1 - q if p % 2 == 0 else (q + 1) % p
    parents: list[int | None] = [None] * p
    children: list[list[int]] = [[] for _ in range(p)]
    for q in range(1, p):
        up = _btree_parent(p, q)
        assert up is not None
        parents[rank(q)] = rank(up)
        children[rank(up)].append(rank(q))
    return tuple(parents), tuple(tuple(c) for c in children)


@functools.lru_cache(maxsize=512)
def btree_reach(p: int, second: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Every rank's height (hops to its deepest leaf) and depth (hops from the root)."""
    parents, children = btree(p, second)

    def height(r: int) -> int:
        return 1 + max(height(c) for c in children[r]) if children[r] else 0

    def depth(r: int) -> int:
        par = parents[r]
        return 0 if par is None else 1 + depth(par)
    return tuple(height(r) for r in range(p)), tuple(depth(r) for r in range(p))


def _tree_levels(ctx, second: bool) -> tuple[list[tuple], int, int]:
    """This rank's (communicator, parent, children) per level, bottom up, with its height
    and depth over all levels: one level over the whole communicator, or, on nodes of equal
    size, a tree inside the node whose root (the node's leader for this tree) joins a tree
    across the nodes, as the model's tree is one binary tree per tier."""
    comm, node, cross = ctx.comm, ctx.node_comm, ctx.cross_comm
    p = comm.Get_size()
    if node is None or cross is None or not 1 < node.Get_size() < p \
            or not getattr(ctx, "uniform_nodes", False):
        parents, children = btree(p, second)
        heights, depths = btree_reach(p, second)
        r = comm.Get_rank()
        return [(comm, parents[r], children[r])], heights[r], depths[r]
    q, lr = node.Get_size(), node.Get_rank()
    parents, children = btree(q, second)
    heights, depths = btree_reach(q, second)
    levels = [(node, parents[lr], children[lr])]
    height, depth = heights[lr], depths[lr]
    nodes, cr = cross.Get_size(), cross.Get_rank()        # cr: this node's index
    if nodes > 1:
        nheights, ndepths = btree_reach(nodes, second)
        depth += ndepths[cr]
        if parents[lr] is None:                            # this tree's leader in the node
            nparents, nchildren = btree(nodes, second)
            levels.append((cross, nparents[cr], nchildren[cr]))
            height += nheights[cr]
    return levels, height, depth


@tree.run("allreduce", description="double binary tree: each half of the data reduced up one "
                                   "of two complementary binary trees and broadcast back down, "
                                   "256 KiB segments pipelined; a tree per tier on equal nodes")
def tree_allreduce(ctx, send, recv) -> None:
    p = ctx.comm.Get_size()
    recv[...] = send
    if p == 1 or recv.size == 0:
        return
    h = (recv.size + 1) // 2
    halves = (recv[:h], recv[h:])
    shapes = [_tree_levels(ctx, False), _tree_levels(ctx, True)]
    levels = [shapes[0][0], shapes[1][0]]
    # A rank serves its two trees from one thread of control.  Where it is a leaf it only
    # sends going up and only receives coming down: those segments go out first and come in
    # last, so that they never wait behind the other tree.  Where it is inside both trees
    # (odd p), the tree whose data is ready first goes first (the lower subtree going up,
    # the nearer root coming down).
    leaf = [all(not c for _, _, c in levels[t]) for t in (0, 1)]
    inner_up = sorted((t for t in (0, 1) if not leaf[t]), key=lambda t: shapes[t][1])
    inner_down = sorted((t for t in (0, 1) if not leaf[t]), key=lambda t: shapes[t][2])
    seg = min(max(1, TREE_SEGMENT_BYTES // recv.itemsize), h)
    nseg = -(-h // seg)
    width = max(len(c) for lv in levels for _, _, c in lv)
    tmp = ctx.tmp(max(2, width) * seg)
    if (c := c_loops(ctx)) is not None:          # the same schedule, step for step, in C
        c.tree(levels, leaf, inner_up, inner_down, recv, tmp, ctx.dtcode, ctx.op, seg, WINDOW)
        return

    def parts(t: int):
        for k in range(nseg):
            part = halves[t][k * seg:(k + 1) * seg]
            if part.size:
                yield k, part
    pending: list = []
    # a leaf tree's segments run up to WINDOW segments ahead of (going up) or behind (coming
    # down) the inner tree's: they share the rank's ports fairly, and neither tree waits on
    # the other's progress
    leaf_parts = [list(parts(t)) if leaf[t] else [] for t in (0, 1)]
    sent = [0, 0]

    def leaf_sends(upto: int) -> None:
        for t in (0, 1):
            comm, parent, _ = levels[t][0]
            while sent[t] < len(leaf_parts[t]) and leaf_parts[t][sent[t]][0] <= upto:
                pending.append(comm.Isend(leaf_parts[t][sent[t]][1], dest=parent, tag=40 + t))
                sent[t] += 1
    # up: each rank adds its children's partial sums, segment by segment, and passes its own
    for k in range(nseg):
        leaf_sends(k + WINDOW)
        for t in inner_up:
            part = halves[t][k * seg:(k + 1) * seg]
            if part.size == 0:
                continue
            for comm, parent, children in levels[t]:
                reqs = [comm.Irecv(tmp[j * seg:j * seg + part.size], source=c, tag=40 + t)
                        for j, c in enumerate(children)]
                for j, req in enumerate(reqs):
                    req.Wait()
                    ctx.reduce_into(part, tmp[j * seg:j * seg + part.size])
                if parent is not None:
                    pending.append(comm.Isend(part, dest=parent, tag=40 + t))
    leaf_sends(nseg)
    ctx.waitall(pending)
    pending = []
    # down: the roots hold the sums; each segment goes back down both trees
    incoming = [(k, levels[t][0][0].Irecv(part, source=levels[t][0][1], tag=42 + t))
                for t in (0, 1) for k, part in leaf_parts[t]]
    incoming.sort(key=lambda x: x[0])
    for k in range(nseg):
        for t in inner_down:
            part = halves[t][k * seg:(k + 1) * seg]
            if part.size == 0:
                continue
            for comm, parent, children in reversed(levels[t]):
                if parent is not None:
                    comm.Recv(part, source=parent, tag=42 + t)
                for c in children:
                    pending.append(comm.Isend(part, dest=c, tag=42 + t))
        while incoming and incoming[0][0] <= k - WINDOW:
            incoming.pop(0)[1].Wait()
    ctx.waitall([req for _, req in incoming])
    ctx.waitall(pending)


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
    if (c := c_loops(ctx)) is not None:
        seg = _segment(recv)
        c.binomial(ctx.comm, recv, ctx.tmp(seg), ctx.dtcode, ctx.op, 0, seg, True, True, 1)
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
    if (c := c_loops(ctx)) is not None:
        c.binomial(ctx.comm, acc, work[own:], ctx.dtcode, ctx.op, root, _segment(send), True,
                   False, 11)
        return
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
    if (c := c_loops(ctx)) is not None:
        c.binomial(ctx.comm, recv, recv[:1], ctx.dtcode, ctx.op, root, _segment(recv), False,
                   True, 11)
        return
    parent, children = _rooted_links(p, r, root)
    _bcast_down(ctx, recv, parent, children, tag=12)
