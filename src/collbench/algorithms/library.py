"""The MPI library's own collective (``mpi``): measured by ``collbench run``, not modelled
itself; the model predicts it as the library's choice (``auto``) with the system's ``mpi``
implementation entry when a calibration fitted one."""
from __future__ import annotations

from .base import Algorithm

mpi = Algorithm("mpi", "the MPI library's own collective call", model_as="auto")


def b(ctx, buf):
    """The buffer with its MPI datatype where NumPy's cannot name it (bfloat16)."""
    typed = getattr(ctx, "typed", None)
    return typed(buf) if typed is not None else buf


def in_place(ctx) -> bool:
    """The harness times nccl-tests' in-place layout: MPI wants MPI_IN_PLACE for it."""
    return getattr(ctx, "in_place", False)


@mpi.run("allreduce", description="the MPI library's MPI_Allreduce (MPI_IN_PLACE in place)")
def mpi_allreduce(ctx, send, recv) -> None:
    ctx.comm.Allreduce(ctx.MPI.IN_PLACE if in_place(ctx) else b(ctx, send), b(ctx, recv),
                       op=ctx.mpi_op)


@mpi.run("reduce_scatter", description="the MPI library's MPI_Reduce_scatter_block (in place: "
                                       "MPI_IN_PLACE, then block 0 copied to this rank's block)")
def mpi_reduce_scatter(ctx, send, recv) -> None:
    if in_place(ctx):
        # MPI leaves the result at the start of the buffer; nccl-tests' layout wants it in
        # this rank's block (recv is that block of send)
        ctx.comm.Reduce_scatter_block(ctx.MPI.IN_PLACE, b(ctx, send), op=ctx.mpi_op)
        if recv.size and ctx.comm.Get_rank():
            recv[...] = send[:recv.size]
        return
    ctx.comm.Reduce_scatter_block(b(ctx, send), b(ctx, recv), op=ctx.mpi_op)


@mpi.run("all_gather", description="the MPI library's MPI_Allgather (MPI_IN_PLACE in place)")
def mpi_all_gather(ctx, send, recv) -> None:
    ctx.comm.Allgather(ctx.MPI.IN_PLACE if in_place(ctx) else b(ctx, send), b(ctx, recv))


@mpi.run("broadcast", description="the MPI library's MPI_Bcast from the root (out of place: the "
                                  "root's copy into its receive buffer is part of the call)")
def mpi_broadcast(ctx, send, recv) -> None:
    root = getattr(ctx, "root", 0)
    if ctx.comm.Get_rank() == root:
        recv[...] = send
    ctx.comm.Bcast(b(ctx, recv), root=root)


@mpi.run("reduce", description="the MPI library's MPI_Reduce to the root")
def mpi_reduce(ctx, send, recv) -> None:
    root = getattr(ctx, "root", 0)
    if in_place(ctx) and ctx.comm.Get_rank() == root:
        ctx.comm.Reduce(ctx.MPI.IN_PLACE, b(ctx, recv), op=ctx.mpi_op, root=root)
        return
    ctx.comm.Reduce(b(ctx, send), b(ctx, recv), op=ctx.mpi_op, root=root)


@mpi.run("all_to_all", description="the MPI library's MPI_Alltoall")
def mpi_all_to_all(ctx, send, recv) -> None:
    ctx.comm.Alltoall(b(ctx, send), b(ctx, recv))


@mpi.run("sendrecv", description="MPI_Sendrecv to rank r+1 from rank r-1, called through mpi4py "
                                 "(nccl-tests' sendrecv_perf pattern)")
def mpi_sendrecv(ctx, send, recv) -> None:
    comm = ctx.comm
    p, r = comm.Get_size(), comm.Get_rank()
    comm.Sendrecv(b(ctx, send), dest=(r + 1) % p, sendtag=500, recvbuf=b(ctx, recv), source=(r - 1) % p,
                  recvtag=500)
