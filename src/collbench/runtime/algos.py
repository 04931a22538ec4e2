"""Real all-reduce algorithms over MPI point-to-point (mpi4py buffer methods, NumPy arrays).

Every function has the signature ``f(ctx, send, recv)``: ``recv`` gets the reduction of all
ranks' ``send`` (out-of-place).  ``ctx`` carries the communicator(s), the op code for the
Cython reduction kernel and scratch space.  Names match the model's algorithm registry.
"""
from __future__ import annotations

import numpy as np

from .._reduce import reduce_into, reduce_out

SEGMENT_BYTES = 1 << 20     # pipelining unit of ring and tree


class Context:
    def __init__(self, MPI, comm, op_code, mpi_op, dtype, node_comm=None, cross_comm=None):
        self.MPI = MPI
        self.comm = comm
        self.op = op_code
        self.mpi_op = mpi_op
        self.dtype = np.dtype(dtype)
        self.node_comm = node_comm
        self.cross_comm = cross_comm
        self._tmp = np.empty(0, dtype=self.dtype)

    def tmp(self, n):
        if self._tmp.size < n:
            self._tmp = np.empty(n, dtype=self.dtype)
        return self._tmp[:n]

    @property
    def seg(self):
        return max(1, SEGMENT_BYTES // self.dtype.itemsize)


def _bounds(count, parts):
    """Split count elements into `parts` nearly equal blocks: block i is [b[i], b[i+1])."""
    q, r = divmod(count, parts)
    b = [0]
    for i in range(parts):
        b.append(b[-1] + q + (1 if i < r else 0))
    return b


# ---- mpi ---------------------------------------------------------------------------------

def mpi_allreduce(ctx, send, recv):
    ctx.comm.Allreduce(send, recv, op=ctx.mpi_op)


# ---- ring --------------------------------------------------------------------------------

def _ring_rs(ctx, comm, buf, b, src=None):
    """Reduce-scatter around the ring into buf; rank r ends owning block (r + 1) % p.
    With src, the input is read from src (out of place) and buf needs no copy of it."""
    p, r = comm.Get_size(), comm.Get_rank()
    right, left = (r + 1) % p, (r - 1) % p
    seg = ctx.seg
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
                    reduce_out(buf[r0 + o:r0 + e], src[r0 + o:r0 + e], tmp[o:e], ctx.op)
                else:
                    reduce_into(buf[r0 + o:r0 + e], tmp[o:e], ctx.op)
        ctx.MPI.Request.Waitall(sreqs)


def _ring_ag(ctx, comm, buf, b):
    """All-gather in place; rank r starts owning block (r + 1) % p."""
    p, r = comm.Get_size(), comm.Get_rank()
    right, left = (r + 1) % p, (r - 1) % p
    for step in range(p - 1):
        sb = (r + 1 - step) % p
        rb = (r - step) % p
        comm.Sendrecv(buf[b[sb]:b[sb + 1]], dest=right, sendtag=100 + step,
                      recvbuf=buf[b[rb]:b[rb + 1]], source=left, recvtag=100 + step)


def ring_allreduce(ctx, send, recv, comm=None):
    comm = comm or ctx.comm
    p = comm.Get_size()
    if p == 1:
        recv[...] = send
        return
    b = _bounds(recv.size, p)
    # every block of recv is written once by the reduce-scatter (reading send) or the
    # all-gather, except block r, which the all-gather fills: no up-front copy needed
    _ring_rs(ctx, comm, recv, b, src=send)
    _ring_ag(ctx, comm, recv, b)


# ---- tree (pipelined binomial reduce to rank 0, then binomial broadcast) -------------------

def tree_allreduce(ctx, send, recv):
    comm, MPI = ctx.comm, ctx.MPI
    p, r = comm.Get_size(), comm.Get_rank()
    recv[...] = send
    if p == 1 or recv.size == 0:
        return
    children, mask = [], 1
    while mask < p:
        if r & mask:
            parent = r - mask
            break
        if r + mask < p:
            children.append(r + mask)
        mask <<= 1
    else:
        parent = None
    seg = ctx.seg
    tmp = ctx.tmp(min(seg, recv.size))
    pending = []
    for o in range(0, recv.size, seg):         # reduce, segment by segment (pipelined)
        e = min(o + seg, recv.size)
        for c in children:
            comm.Recv(tmp[:e - o], source=c, tag=1)
            reduce_into(recv[o:e], tmp[:e - o], ctx.op)
        if parent is not None:
            pending.append(comm.Isend(recv[o:e], dest=parent, tag=1))
    MPI.Request.Waitall(pending)
    pending = []
    for o in range(0, recv.size, seg):         # broadcast back down, segment by segment
        e = min(o + seg, recv.size)
        if parent is not None:
            comm.Recv(recv[o:e], source=parent, tag=2)
        for c in reversed(children):
            pending.append(comm.Isend(recv[o:e], dest=c, tag=2))
    MPI.Request.Waitall(pending)


# ---- recursive halving-doubling and recursive doubling (any rank count) -------------------

def _fold_in(ctx, comm, buf):
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
        reduce_into(buf, tmp, ctx.op)
        return r // 2, pof2
    return r - rem, pof2


def _real(newrank, p, pof2):
    rem = p - pof2
    return newrank * 2 + 1 if newrank < rem else newrank + rem


def _fold_out(comm, buf):
    p, r = comm.Get_size(), comm.Get_rank()
    rem = p - (1 << (p.bit_length() - 1))
    if r < 2 * rem:
        if r % 2 == 0:
            comm.Recv(buf, source=r + 1, tag=8)
        else:
            comm.Send(buf, dest=r - 1, tag=8)


def _folded(ctx, comm, send, recv, core):
    """recv = send; fold a non-power-of-two rank count onto the largest power of two, run
    core(newrank, pof2) on the ranks that stay, and hand the result back to the others."""
    recv[...] = send
    p = comm.Get_size()
    if p == 1:
        return
    newrank, pof2 = _fold_in(ctx, comm, recv)
    if newrank >= 0:
        core(newrank, pof2)
    _fold_out(comm, recv)


def rhd_allreduce(ctx, send, recv, comm=None):
    comm = comm or ctx.comm
    p = comm.Get_size()

    def core(newrank, pof2):
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
            reduce_into(recv[keep[0]:keep[1]], tmp, ctx.op)
            stack.append((lo, hi, partner))
            lo, hi = keep
            mask <<= 1
        while stack:                             # all-gather by recursive doubling
            plo, phi, partner = stack.pop()
            # the partner holds the other half of [plo, phi)
            olo, ohi = (hi, phi) if lo == plo else (plo, lo)
            tag = 1000 + len(stack)
            comm.Sendrecv(recv[lo:hi], dest=partner, sendtag=tag,
                          recvbuf=recv[olo:ohi], source=partner, recvtag=tag)
            lo, hi = plo, phi

    _folded(ctx, comm, send, recv, core)


def rd_allreduce(ctx, send, recv):
    comm = ctx.comm
    p = comm.Get_size()

    def core(newrank, pof2):
        tmp = ctx.tmp(recv.size)
        mask = 1
        while mask < pof2:
            partner = _real(newrank ^ mask, p, pof2)
            comm.Sendrecv(recv, dest=partner, sendtag=mask, recvbuf=tmp, source=partner,
                          recvtag=mask)
            reduce_into(recv, tmp, ctx.op)
            mask <<= 1

    _folded(ctx, comm, send, recv, core)


# ---- hierarchical: reduce-scatter inside the node, all-reduce across, all-gather inside ----

def hier_allreduce(ctx, send, recv):
    node, cross = ctx.node_comm, ctx.cross_comm
    recv[...] = send
    q = node.Get_size()
    b = _bounds(recv.size, q)
    if q > 1:
        _ring_rs(ctx, node, recv, b)
    mine = (node.Get_rank() + 1) % q
    block = recv[b[mine]:b[mine + 1]]
    if cross.Get_size() > 1:
        tmp = np.empty_like(block)
        tmp[...] = block
        rhd_allreduce(ctx, tmp, block, comm=cross)
    if q > 1:
        _ring_ag(ctx, node, recv, b)


IMPLEMENTATIONS = {
    "mpi": mpi_allreduce,
    "ring": ring_allreduce,
    "tree": tree_allreduce,
    "rhd": rhd_allreduce,
    "rd": rd_allreduce,
    "hier": hier_allreduce,
}

DESCRIPTIONS = {
    "mpi": "the MPI library's MPI_Allreduce",
    "ring": "ring reduce-scatter + all-gather, 1 MiB segments pipelined (Isend/Irecv)",
    "tree": "pipelined binomial-tree reduce to rank 0 + binomial broadcast (1 MiB segments)",
    "rhd": "recursive halving (reduce-scatter) + recursive doubling (all-gather), "
           "non-powers of two folded in",
    "rd": "recursive doubling of whole buffers, non-powers of two folded in",
    "hier": "ring reduce-scatter in the node, rhd all-reduce across nodes, ring all-gather",
}
