"""The one algorithm registry, shared by the model and by ``collbench run``.

An algorithm is a small record: its name, the collectives it implements, a line saying
what it is, and where its real implementation lives (``collbench.runtime``).  The cost
formulas are in ``collbench.plans`` (turned into coefficients) and evaluated by the Cython
kernel; busbw factors belong to the collective, as in nccl-tests.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Collective:
    name: str
    busbw: object          # f(p) -> nccl-tests bus bandwidth factor
    reduces: bool
    description: str


COLLECTIVES = {
    "allreduce": Collective("allreduce", lambda p: 2 * (p - 1) / p, True,
                            "every rank gets the element-wise reduction of all inputs"),
    "reduce_scatter": Collective("reduce_scatter", lambda p: (p - 1) / p, True,
                                 "rank i gets block i of the reduction (size = whole array)"),
    "all_gather": Collective("all_gather", lambda p: (p - 1) / p, False,
                             "every rank gets every rank's block (size = whole array)"),
    "broadcast": Collective("broadcast", lambda p: 1.0, False, "root's buffer to every rank"),
    "reduce": Collective("reduce", lambda p: 1.0, True, "reduction of all inputs at the root"),
    "all_to_all": Collective("all_to_all", lambda p: (p - 1) / p, False,
                             "rank i sends block j to rank j (size = bytes sent per rank)"),
}


@dataclass(frozen=True)
class Algorithm:
    name: str
    collectives: tuple
    description: str
    model: bool = True           # has a cost model
    runtime: bool = False        # has a real MPI implementation (collbench run)


ALGORITHMS = {a.name: a for a in (
    Algorithm("ring", ("allreduce", "reduce_scatter", "all_gather", "broadcast", "reduce"),
              "ring: reduce-scatter then all-gather around a ring (pipelined chain for "
              "broadcast/reduce)", runtime=True),
    Algorithm("tree", ("allreduce", "broadcast", "reduce"),
              "double binary tree for all-reduce (binomial tree for broadcast/reduce)",
              runtime=True),
    Algorithm("rhd", ("allreduce", "reduce_scatter"),
              "recursive halving-doubling (Rabenseifner), any rank count", runtime=True),
    Algorithm("rd", ("allreduce", "all_gather"), "recursive doubling, any rank count",
              runtime=True),
    Algorithm("mesh", ("allreduce", "reduce_scatter", "all_gather", "broadcast", "reduce",
                       "all_to_all"),
              "one-shot direct: every rank sends its data to every peer at once"),
    Algorithm("mesh2", ("allreduce",),
              "two-shot direct: direct reduce-scatter then direct all-gather"),
    Algorithm("innet", ("allreduce", "reduce_scatter", "all_gather", "broadcast", "reduce"),
              "in-switch reduction / multicast (NVLS, SHARP-like)"),
    Algorithm("hier", ("allreduce", "reduce_scatter", "all_gather"),
              "hierarchical: reduce-scatter inside, all-reduce across, all-gather inside, "
              "best inner algorithm per tier", runtime=True),
    Algorithm("bruck", ("all_to_all",), "Bruck's log-step all-to-all"),
    Algorithm("auto", tuple(COLLECTIVES),
              "the cheapest applicable algorithm (among the system library's by default)"),
    Algorithm("mpi", ("allreduce",), "the MPI library's own MPI_Allreduce (measured only)",
              model=False, runtime=True),
)}

MODEL_ALGORITHMS = tuple(n for n, a in ALGORITHMS.items() if a.model and n != "auto")


def check_collective(name: str) -> Collective:
    try:
        return COLLECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown collective {name!r}; valid: {', '.join(COLLECTIVES)}") from None


def check_algorithm(name: str, collective: str = "allreduce", *, model: bool = True) -> Algorithm:
    a = ALGORITHMS.get(name)
    valid = [n for n, x in ALGORITHMS.items()
             if collective in x.collectives and (x.model if model else x.runtime)]
    if a is None:
        raise ValueError(f"unknown algorithm {name!r}; valid for {collective}: {', '.join(valid)}")
    if name not in valid:
        raise ValueError(f"algorithm {name!r} does not implement {collective}"
                         f"{'' if model else ' in collbench run'}; valid: {', '.join(valid)}")
    return a


def for_collective(collective: str) -> list:
    return [n for n in MODEL_ALGORITHMS if collective in ALGORITHMS[n].collectives]
