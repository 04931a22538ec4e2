"""The MPI library's own collective (``mpi``): measured by ``collbench run``, not modelled
itself; the model predicts it as the library's choice (``auto``) with the system's ``mpi``
implementation entry when a calibration fitted one."""
from __future__ import annotations

from .base import Algorithm

mpi = Algorithm("mpi", "the MPI library's own collective call", model_as="auto")


@mpi.run("allreduce", description="the MPI library's MPI_Allreduce")
def mpi_allreduce(ctx, send, recv) -> None:
    ctx.comm.Allreduce(send, recv, op=ctx.mpi_op)


@mpi.run("reduce_scatter", description="the MPI library's MPI_Reduce_scatter_block")
def mpi_reduce_scatter(ctx, send, recv) -> None:
    ctx.comm.Reduce_scatter_block(send, recv, op=ctx.mpi_op)


@mpi.run("all_gather", description="the MPI library's MPI_Allgather")
def mpi_all_gather(ctx, send, recv) -> None:
    ctx.comm.Allgather(send, recv)


@mpi.run("broadcast", description="the MPI library's MPI_Bcast from rank 0 (out of place: the "
                                  "root's copy into its receive buffer is part of the call)")
def mpi_broadcast(ctx, send, recv) -> None:
    if ctx.comm.Get_rank() == 0:
        recv[...] = send
    ctx.comm.Bcast(recv, root=0)


@mpi.run("reduce", description="the MPI library's MPI_Reduce to rank 0")
def mpi_reduce(ctx, send, recv) -> None:
    ctx.comm.Reduce(send, recv, op=ctx.mpi_op, root=0)


@mpi.run("all_to_all", description="the MPI library's MPI_Alltoall")
def mpi_all_to_all(ctx, send, recv) -> None:
    ctx.comm.Alltoall(send, recv)


@mpi.run("sendrecv", description="MPI_Sendrecv to rank r+1 from rank r-1, called through mpi4py "
                                 "(nccl-tests' sendrecv_perf pattern)")
def mpi_sendrecv(ctx, send, recv) -> None:
    comm = ctx.comm
    p, r = comm.Get_size(), comm.Get_rank()
    comm.Sendrecv(send, dest=(r + 1) % p, sendtag=500, recvbuf=recv, source=(r - 1) % p,
                  recvtag=500)
