"""Recursive halving-doubling (``rhd``, Rabenseifner) and recursive doubling (``rd``), for
any rank count: a non-power of two folds its extra ranks in with one more exchange."""
from __future__ import annotations

from collections.abc import Callable

from .base import SUM, Algorithm, Geometry, Plan, PlanContext, RefLevels, c_loops, log2floor

rhd = Algorithm("rhd", "recursive halving (reduce-scatter) then recursive doubling "
                       "(all-gather), Rabenseifner; any rank count")
rd = Algorithm("rd", "recursive doubling of whole buffers; any rank count")

Frac = Callable[[int], float]


def halving_plan(g: Geometry, algo: str, per_step: Frac, red_per_step: Frac, extra_coef: float,
                 extra_red: float, rounds: int = 1) -> Plan:
    """Step i (distance 2^(i-1)) moves per_step(i) x n; ``rounds`` 2: halving then doubling."""
    plan = g.new(algo, mode=SUM)
    p = g.p
    if p == 1:
        return plan
    pp = 1 << log2floor(p)
    for i in range(1, log2floor(pp) + 1):
        j = g.tier_of_distance(1 << (i - 1))
        plan.lat += rounds * g.a[j]
        g.add(plan, j, rounds * per_step(i) * g.lf[j])
        plan.red += red_per_step(i) / g.scale   # reduced once per step, whatever the rounds
    if pp != p:
        j = g.tier_of_distance(1)
        plan.lat += 2 * g.a[j]
        g.add(plan, j, extra_coef * g.lf[j])
        plan.red += extra_red / g.scale
    return plan


def halving_reference(r: RefLevels, frac: Frac, red_frac: Frac, extra: float, extra_red: float
                      ) -> tuple[float, float, float]:
    p = r.p
    pp = 1 << (p.bit_length() - 1)
    lat = bw = red = 0.0
    for i in range(1, pp.bit_length()):
        j = r.dist_level(1 << (i - 1))
        lat += r.lat(j)
        bw += frac(i) * r.m * r.link(j) / r.rate(j)
        red += red_frac(i) * r.m
    if pp != p:
        j = r.dist_level(1)
        lat += 2 * r.lat(j)
        bw += extra * r.m * r.link(j) / r.rate(j)
        red += extra_red * r.m
    return lat, bw, red


# ---- plans and references ----------------------------------------------------------------

@rhd.plan("allreduce")
def _rhd_allreduce(g: Geometry, ctx: PlanContext) -> Plan:
    return halving_plan(g, "rhd", lambda i: 1 / (1 << i), lambda i: 1 / (1 << i), 2, 1, rounds=2)


@rhd.plan("reduce_scatter")
def _rhd_rs(g: Geometry, ctx: PlanContext) -> Plan:
    return halving_plan(g, "rhd", lambda i: 1 / (1 << i), lambda i: 1 / (1 << i), 1 + 1 / g.p, 1.0)


@rd.plan("allreduce")
def _rd_allreduce(g: Geometry, ctx: PlanContext) -> Plan:
    return halving_plan(g, "rd", lambda i: 1, lambda i: 1, 2, 1)


@rd.plan("all_gather")
def _rd_ag(g: Geometry, ctx: PlanContext) -> Plan:
    return halving_plan(g, "rd", lambda i: 1 / (1 << i), lambda i: 0.0, 1 + 1 / g.p, 0.0)


@rhd.reference("allreduce")
def _rhd_ref_allreduce(r: RefLevels) -> tuple[float, float, float]:
    lat, bw, red = halving_reference(r, lambda i: 2 / 2 ** i, lambda i: 1 / 2 ** i, 2, 1)
    pp = 1 << (r.p.bit_length() - 1)      # the doubling half: one more latency per step
    lat += sum(r.lat(r.dist_level(1 << (i - 1))) for i in range(1, pp.bit_length()))
    return lat, bw, red


@rhd.reference("reduce_scatter")
def _rhd_ref_rs(r: RefLevels) -> tuple[float, float, float]:
    return halving_reference(r, lambda i: 1 / 2 ** i, lambda i: 1 / 2 ** i, 1 + 1 / r.p, 1)


@rd.reference("allreduce")
def _rd_ref_allreduce(r: RefLevels) -> tuple[float, float, float]:
    return halving_reference(r, lambda i: 1, lambda i: 1, 2, 1)


@rd.reference("all_gather")
def _rd_ref_ag(r: RefLevels) -> tuple[float, float, float]:
    return halving_reference(r, lambda i: 1 / 2 ** i, lambda i: 0, 1 + 1 / r.p, 0)


# ---- real implementations ----------------------------------------------------------------

def _fold_in(ctx, comm, buf) -> tuple[int, int]:
    """Fold p ranks onto the largest power of two: returns (newrank, pof2)."""
    p, r = comm.Get_size(), comm.Get_rank()
    pof2 = 1 << (p.bit_length() - 1)
    rem = p - pof2
    if r < 2 * rem:
        if r % 2 == 0:
            comm.Send(buf, dest=r + 1, tag=7)
            return -1, pof2
        tmp = ctx.tmp(buf.size)
        comm.Recv(tmp, source=r - 1, tag=7)
        ctx.reduce_into(buf, tmp)
        return r // 2, pof2
    return r - rem, pof2


def _real(newrank: int, p: int, pof2: int) -> int:
    rem = p - pof2
    return newrank * 2 + 1 if newrank < rem else newrank + rem


def _fold_out(comm, buf) -> None:
    p, r = comm.Get_size(), comm.Get_rank()
    rem = p - (1 << (p.bit_length() - 1))
    if r < 2 * rem:
        if r % 2 == 0:
            comm.Recv(buf, source=r + 1, tag=8)
        else:
            comm.Send(buf, dest=r - 1, tag=8)


def _folded(ctx, comm, send, recv, core) -> None:
    """recv = send; fold a non-power-of-two rank count onto the largest power of two, run
    core(newrank, pof2) on the ranks that stay, and hand the result back to the others."""
    recv[...] = send
    if comm.Get_size() == 1:
        return
    newrank, pof2 = _fold_in(ctx, comm, recv)
    if newrank >= 0:
        core(newrank, pof2)
    _fold_out(comm, recv)


@rhd.run("allreduce", description="recursive halving (reduce-scatter) + recursive doubling "
                                  "(all-gather), non-powers of two folded in")
def rhd_allreduce(ctx, send, recv, comm=None) -> None:
    comm = comm or ctx.comm
    if (c := c_loops(ctx)) is not None:
        c.folded_allreduce(comm, send, recv, ctx.tmp(recv.size), ctx.dtcode, ctx.op, True)
        return
    p = comm.Get_size()

    def core(newrank: int, pof2: int) -> None:
        lo, hi = 0, recv.size
        stack = []
        mask = 1
        while mask < pof2:                       # reduce-scatter by recursive halving
            partner = _real(newrank ^ mask, p, pof2)
            mid = lo + (hi - lo) // 2
            if newrank & mask:
                keep, give = (mid, hi), (lo, mid)
            else:
                keep, give = (lo, mid), (mid, hi)
            tmp = ctx.tmp(keep[1] - keep[0])
            comm.Sendrecv(recv[give[0]:give[1]], dest=partner, sendtag=mask,
                          recvbuf=tmp, source=partner, recvtag=mask)
            ctx.reduce_into(recv[keep[0]:keep[1]], tmp)
            stack.append((lo, hi, partner))
            lo, hi = keep
            mask <<= 1
        while stack:                             # all-gather by recursive doubling
            plo, phi, partner = stack.pop()
            olo, ohi = (hi, phi) if lo == plo else (plo, lo)   # the partner's half
            tag = 1000 + len(stack)
            comm.Sendrecv(recv[lo:hi], dest=partner, sendtag=tag,
                          recvbuf=recv[olo:ohi], source=partner, recvtag=tag)
            lo, hi = plo, phi

    _folded(ctx, comm, send, recv, core)


@rd.run("allreduce", description="recursive doubling of whole buffers, non-powers of two "
                                 "folded in")
def rd_allreduce(ctx, send, recv) -> None:
    comm = ctx.comm
    if (c := c_loops(ctx)) is not None:
        c.folded_allreduce(comm, send, recv, ctx.tmp(recv.size), ctx.dtcode, ctx.op, False)
        return
    p = comm.Get_size()

    def core(newrank: int, pof2: int) -> None:
        tmp = ctx.tmp(recv.size)
        mask = 1
        while mask < pof2:
            partner = _real(newrank ^ mask, p, pof2)
            comm.Sendrecv(recv, dest=partner, sendtag=mask, recvbuf=tmp, source=partner,
                          recvtag=mask)
            ctx.reduce_into(recv, tmp)
            mask <<= 1

    _folded(ctx, comm, send, recv, core)
