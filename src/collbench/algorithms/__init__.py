"""The algorithm registry: one module per algorithm family, one name per algorithm.

Each module (``ring``, ``trees``, ``halving``, ``direct``, ``innet``, ``bruck``, ``hier``,
``library``) defines :class:`~collbench.algorithms.base.Algorithm` records holding the cost
plan builder, the plain-Python reference and the real implementation of each collective it
supports, side by side.  ``REGISTRY`` below lists them; which collectives an algorithm
supports in the model and in ``collbench run`` is derived from what it registered.

Adding an algorithm: a new module defining ``Algorithm(...)`` and its decorated functions,
plus one line in ``REGISTRY``.
"""
from __future__ import annotations

from ..errors import InputError
from . import bruck, direct, halving, hier, innet, library, ring, trees
from .base import COLLECTIVES, Algorithm, Collective, Geometry, Plan, PlanContext, RefLevels

REGISTRY: dict[str, Algorithm] = {a.name: a for a in (
    ring.ring,
    trees.tree,
    trees.binomial,
    halving.rhd,
    halving.rd,
    direct.mesh,
    direct.mesh2,
    direct.pairwise,
    innet.innet,
    hier.hier,
    bruck.bruck,
    library.mpi,
)}
ALGORITHMS = REGISTRY                      # the public name
AUTO = "auto"                              # the cheapest applicable algorithm (model only)

MODEL_ALGORITHMS = tuple(n for n, a in REGISTRY.items() if a.plans)
RUN_ALGORITHMS = tuple(n for n, a in REGISTRY.items() if a.runs)


def check_collective(name: str) -> Collective:
    try:
        return COLLECTIVES[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown collective {str(name)[:40]!r}; valid: "
                         f"{', '.join(COLLECTIVES)}") from None


def for_collective(collective: str) -> list[str]:
    """Algorithms the model has for a collective (registry order)."""
    return [n for n in MODEL_ALGORITHMS if collective in REGISTRY[n].plans]


def runnable(collective: str) -> list[str]:
    """Algorithms ``collbench run`` has for a collective."""
    return [n for n in RUN_ALGORITHMS if collective in REGISTRY[n].runs]


def check_algorithm(name: str, collective: str = "allreduce", *, model: bool = True) -> str:
    """The algorithm's name if the model (or ``collbench run``) has it for ``collective``;
    hier plans may be named by their exact label, e.g. ``hier(ring>rhd)``."""
    check_collective(collective)
    valid = for_collective(collective) + [AUTO] if model else runnable(collective)
    if model and isinstance(name, str) and hier.parse_label(name) is not None:
        if collective in hier.hier.plans:
            return name
    if name in valid:
        return name
    if name in REGISTRY or name == AUTO:
        where = "" if model else " in collbench run"
        raise InputError(f"algorithm {name!r} does not implement {collective}{where}; valid: "
                         f"{', '.join(valid)}")
    raise InputError(f"unknown algorithm {str(name)[:40]!r}; valid for {collective}: "
                     f"{', '.join(valid)}" + (" (or a hier label such as hier(ring>rhd))"
                                              if model and collective in hier.hier.plans else ""))


__all__ = ["REGISTRY", "ALGORITHMS", "COLLECTIVES", "AUTO", "Algorithm", "Collective", "Geometry",
           "Plan", "PlanContext", "RefLevels", "MODEL_ALGORITHMS", "RUN_ALGORITHMS",
           "check_collective", "check_algorithm", "for_collective", "runnable"]
