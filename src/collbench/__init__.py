"""collbench: how long does a collective take on this interconnect, and which algorithm
should run it?  Cost model (Cython kernels) and real MPI runs, one result schema."""
from .algorithms import ALGORITHMS, COLLECTIVES
from .model import estimate, sweep
from .schema import SCHEMA_COLUMNS, read_results, write_results
from .system import System, Tier, load_system, preset, systems

__version__ = "0.1.0"
__all__ = ["estimate", "sweep", "systems", "preset", "load_system", "System", "Tier",
           "ALGORITHMS", "COLLECTIVES", "SCHEMA_COLUMNS", "read_results", "write_results"]
