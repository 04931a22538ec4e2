"""The MPI library's own collective (``mpi``): measured by ``collbench run``, not modelled
itself; the model predicts it as the library's choice (``auto``) with the system's ``mpi``
implementation entry when a calibration fitted one."""
from __future__ import annotations

from .base import Algorithm

mpi = Algorithm("mpi", "the MPI library's own collective call", model_as="auto")


@mpi.run("allreduce", description="the MPI library's MPI_Allreduce")
def mpi_allreduce(ctx, send, recv) -> None:
    ctx.comm.Allreduce(send, recv, op=ctx.mpi_op)
