"""Ring: reduce-scatter then all-gather around a ring (NCCL's Ring); for broadcast and
reduce a pipelined chain with the best segment count."""
from __future__ import annotations

import math

from .base import MAX, Algorithm, Geometry, Plan, PlanContext, RefLevels, c_loops, chain_pipeline

ring = Algorithm("ring", "reduce-scatter then all-gather around a ring (a pipelined chain for "
                         "broadcast/reduce)")

SEGMENT_BYTES = 1 << 20     # pipelining unit of the real ring


# ---- plan --------------------------------------------------------------------------------

def ring_plan(g: Geometry, rounds: int, bytes_per_rank: float, red: float) -> Plan:
    """``rounds`` trips around the ring moving ``bytes_per_rank`` x n, reducing ``red`` x n.
    Each step moves a block of n / p and waits for the step before, so every tier's
    efficiency is that of n / p bytes.  A chip's link of each tier carries its share of
    what the chip sends (``Geometry.ring_shares``): an inner tier the share of the ring's
    hops that stay inside it (NCCL's intra-node steps; the library rotates which chip leaves
    the group over its channels), the outermost one boundary every R ranks."""
    plan = g.new("ring", mode=MAX)
    if g.p == 1:
        return plan
    for i, s in enumerate(g.ring_steps(rounds)):
        plan.lat += s * g.a[i]
    for i, share in enumerate(g.ring_shares()):
        g.add(plan, i, bytes_per_rank * g.lfc[i] * share)
        plan.logscale[g.ks[i]] -= math.log(g.p)
    plan.red += red / g.scale
    return plan


@ring.plan("allreduce")
def _plan_allreduce(g: Geometry, ctx: PlanContext) -> Plan:
    f = (g.p - 1) / g.p
    return ring_plan(g, 2, 2 * f, f)


@ring.plan("reduce_scatter", "all_gather")
def _plan_rs_ag(g: Geometry, ctx: PlanContext) -> Plan:
    f = (g.p - 1) / g.p
    return ring_plan(g, 1, f, f if ctx.collective == "reduce_scatter" else 0.0)


@ring.plan("broadcast", "reduce")
def _plan_chain(g: Geometry, ctx: PlanContext) -> Plan:
    plan = g.new("ring", mode=MAX)
    if g.p == 1:
        return plan
    steps = g.ring_steps(1)
    hops = sum(steps)
    plan.pipe_d = hops
    plan.pipe_a = sum(s * a for s, a in zip(steps, g.a)) / hops if hops else 0.0
    for i, share in enumerate(g.ring_shares()):
        # every chip sends but the chain's last: one fewer sender in the outermost group;
        # an inner tier carries its share of the hops (ring_plan)
        g.add(plan, i, g.lfc[i] * share, senders=g.R[i + 1] - (i == g.L - 1))
    plan.red += (1.0 if ctx.collective == "reduce" else 0.0) / g.scale
    return plan


@ring.plan("sendrecv")
def _plan_sendrecv(g: Geometry, ctx: PlanContext) -> Plan:
    """One neighbour exchange: every rank r sends n bytes to r+1.  The outermost tier crossed
    sets the latency; at each tier boundary one chip sends over its own link (unlike a ring's
    channels, a single exchange cannot spread over the group's other links) to one peer, at
    the share of the tier one point-to-point peer gets (``Tier.peer_share``)."""
    plan = g.new("ring", mode=MAX)
    if g.p == 1:
        return plan
    plan.lat += g.a[g.L - 1]
    for i in range(g.L):
        g.add(plan, i, g.lf[i] / g.tiers[i].peer_rate(1))
    return plan


# ---- reference ---------------------------------------------------------------------------

def ring_reference(r: RefLevels, rounds: int, per_rank: float, red: float
                   ) -> tuple[float, float, float]:
    e = r.ring_edges()
    steps = [rounds * x for x in e]
    steps[-1] -= rounds
    lat = sum(s * r.lat(i) for i, s in enumerate(steps))
    # a step moves n / p: each tier runs at the efficiency of n / p bytes; an inner tier
    # carries the share of the hops that cross it, the outermost one boundary per group
    share = r.ring_shares()
    bw = max(per_rank * r.m * r.link(i, True) * share[i] / r.rate(i, r.p)
             for i in range(r.L))
    return lat, bw, red * r.m


@ring.reference("allreduce")
def _ref_allreduce(r: RefLevels) -> tuple[float, float, float]:
    f = (r.p - 1) / r.p
    return ring_reference(r, 2, 2 * f, f)


@ring.reference("reduce_scatter")
def _ref_rs(r: RefLevels) -> tuple[float, float, float]:
    f = (r.p - 1) / r.p
    return ring_reference(r, 1, f, f)


@ring.reference("all_gather")
def _ref_ag(r: RefLevels) -> tuple[float, float, float]:
    return ring_reference(r, 1, (r.p - 1) / r.p, 0.0)


def _ref_chain(r: RefLevels, red: bool) -> tuple[float, float, float]:
    e = r.ring_edges()
    e[-1] -= 1
    d = sum(e)
    a = sum(x * r.lat(i) for i, x in enumerate(e)) / d
    # the chain's last chip does not send: the outermost group has one sender fewer; an
    # inner tier carries its share of the hops
    share = r.ring_shares()
    nb = max(r.m * r.link(i, True) * share[i] / r.rate(i, senders=r.chips(i) - (i == r.L - 1))
             for i in range(r.L))
    return (*chain_pipeline(d, a, nb), r.m if red else 0.0)


@ring.reference("broadcast")
def _ref_bcast(r: RefLevels) -> tuple[float, float, float]:
    return _ref_chain(r, False)


@ring.reference("reduce")
def _ref_reduce(r: RefLevels) -> tuple[float, float, float]:
    return _ref_chain(r, True)


@ring.reference("sendrecv")
def _ref_sendrecv(r: RefLevels) -> tuple[float, float, float]:
    nb = max(r.m * r.link(i) / (r.rate(i) * r.lv[i][0].peer_rate(1)) for i in range(r.L))
    return r.lat(r.L - 1), nb, 0.0


# ---- real implementation -----------------------------------------------------------------

def bounds(count: int, parts: int) -> list[int]:
    """Split count elements into `parts` nearly equal blocks: block i is [b[i], b[i+1])."""
    q, rem = divmod(count, parts)
    b = [0]
    for i in range(parts):
        b.append(b[-1] + q + (1 if i < rem else 0))
    return b


def ring_reduce_scatter(ctx, comm, buf, b, src=None) -> None:
    """Reduce-scatter around the ring into buf; rank r ends owning block (r + 1) % p.
    With src, the input is read from src (out of place) and buf needs no copy of it."""
    p, r = comm.Get_size(), comm.Get_rank()
    right, left = (r + 1) % p, (r - 1) % p
    seg = max(1, SEGMENT_BYTES // buf.itemsize)
    for step in range(p - 1):
        sb = (r - step) % p
        rb = (r - step - 1) % p
        s0, s1 = b[sb], b[sb + 1]
        r0, r1 = b[rb], b[rb + 1]
        tmp = ctx.tmp(r1 - r0)
        # segments: post every receive and send, reduce each segment as it lands
        reqs, segs = [], []
        for o in range(0, max(r1 - r0, 1), seg):
            e = min(o + seg, r1 - r0)
            reqs.append(comm.Irecv(tmp[o:e], source=left, tag=step))
            segs.append((o, e))
        out = src if (src is not None and step == 0) else buf
        sreqs = [comm.Isend(out[o:min(o + seg, s1)], dest=right, tag=step)
                 for o in range(s0, max(s1, s0 + 1), seg)]
        for req, (o, e) in zip(reqs, segs):
            req.Wait()
            if e > o:
                if src is not None:      # first touch of this block: read the input
                    ctx.reduce_out(buf[r0 + o:r0 + e], src[r0 + o:r0 + e], tmp[o:e])
                else:
                    ctx.reduce_into(buf[r0 + o:r0 + e], tmp[o:e])
        ctx.waitall(sreqs)


def ring_all_gather(ctx, comm, buf, b) -> None:
    """All-gather in place; rank r starts owning block (r + 1) % p."""
    p, r = comm.Get_size(), comm.Get_rank()
    right, left = (r + 1) % p, (r - 1) % p
    for step in range(p - 1):
        sb = (r + 1 - step) % p
        rb = (r - step) % p
        comm.Sendrecv(buf[b[sb]:b[sb + 1]], dest=right, sendtag=100 + step,
                      recvbuf=buf[b[rb]:b[rb + 1]], source=left, recvtag=100 + step)


@ring.run("allreduce", description="ring reduce-scatter + all-gather, 1 MiB segments pipelined "
                                   "(Isend/Irecv)")
def ring_allreduce(ctx, send, recv, comm=None) -> None:
    comm = comm or ctx.comm
    p = comm.Get_size()
    if (c := c_loops(ctx)) is not None:
        c.ring_allreduce(comm, send, recv, ctx.tmp(recv.size // p + 1), ctx.dtcode, ctx.op,
                         SEGMENT_BYTES // recv.itemsize)
        return
    if p == 1:
        recv[...] = send
        return
    b = bounds(recv.size, p)
    # every block of recv is written once by the reduce-scatter (reading send) or the
    # all-gather, except block r, which the all-gather fills: no up-front copy needed
    ring_reduce_scatter(ctx, comm, recv, b, src=send)
    ring_all_gather(ctx, comm, recv, b)


@ring.run("reduce_scatter", description="ring reduce-scatter, p-1 Sendrecv steps; rank r ends "
                                        "with block r (MPI_Reduce_scatter_block's layout)")
def ring_reduce_scatter_block(ctx, send, recv, comm=None) -> None:
    comm = comm or ctx.comm
    if (c := c_loops(ctx)) is not None:
        c.ring_reduce_scatter(comm, send, recv, ctx.tmp(2 * recv.size), ctx.dtcode, ctx.op)
        return
    p, r = comm.Get_size(), comm.Get_rank()
    m = recv.size
    if p == 1:
        recv[...] = send[:m]
        return
    right, left = (r + 1) % p, (r - 1) % p
    work = ctx.tmp(2 * m)
    acc, inc = work[:m], work[m:]
    # step s sends the partial sum of block (r - s - 1) and adds the left neighbour's partial
    # sum of block (r - s - 2) to this rank's own input: after p-1 steps block r is complete
    blk = (r - 1) % p
    acc[...] = send[blk * m:(blk + 1) * m]
    for s in range(p - 1):
        rb = (r - s - 2) % p
        comm.Sendrecv(acc, dest=right, sendtag=200 + s, recvbuf=inc, source=left,
                      recvtag=200 + s)
        ctx.reduce_out(acc, send[rb * m:(rb + 1) * m], inc)
    recv[...] = acc


@ring.run("all_gather", description="ring all-gather, p-1 Sendrecv steps into the receive buffer")
def ring_all_gather_block(ctx, send, recv, comm=None) -> None:
    comm = comm or ctx.comm
    if (c := c_loops(ctx)) is not None:
        c.ring_all_gather(comm, send, recv)
        return
    p, r = comm.Get_size(), comm.Get_rank()
    m = send.size
    recv[r * m:(r + 1) * m] = send
    right, left = (r + 1) % p, (r - 1) % p
    for s in range(p - 1):
        sb, rb = (r - s) % p, (r - s - 1) % p
        comm.Sendrecv(recv[sb * m:(sb + 1) * m], dest=right, sendtag=300 + s,
                      recvbuf=recv[rb * m:(rb + 1) * m], source=left, recvtag=300 + s)


@ring.run("sendrecv", description="one neighbour exchange: send to rank r+1 while receiving from "
                                  "r-1 (MPI_Sendrecv from collbench's step loop)")
def ring_sendrecv(ctx, send, recv, comm=None) -> None:
    comm = comm or ctx.comm
    if (c := c_loops(ctx)) is not None:
        c.sendrecv(comm, send, recv)
        return
    p, r = comm.Get_size(), comm.Get_rank()
    comm.Sendrecv(send, dest=(r + 1) % p, sendtag=500, recvbuf=recv, source=(r - 1) % p,
                  recvtag=500)
