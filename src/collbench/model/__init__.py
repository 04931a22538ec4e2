"""The cost model: systems as data, plans through the algorithm registry, the Cython kernel
(``_kernels``, built from ``cext/model/_kernels.pyx``), and the API over it."""
from .api import Estimates, Planner, check_nranks, estimate, planner, sweep
from .system import PRESETS, System, Tier, load_system, preset, systems
from .versus import Versus, versus

__all__ = ["estimate", "sweep", "planner", "Planner", "Estimates", "check_nranks", "System",
           "Tier", "load_system", "preset", "systems", "PRESETS", "versus", "Versus"]
