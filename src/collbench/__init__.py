"""collbench: how long does a collective take on this interconnect, and which algorithm
should run it?  A cost model (Cython kernels) and real MPI runs, one result schema."""
__version__ = "0.2.0"

from . import errors  # noqa: E402
from .algorithms import ALGORITHMS, COLLECTIVES  # noqa: E402
from .errors import CollbenchError  # noqa: E402
from .model import (  # noqa: E402
                    Estimates,
                    Planner,
                    System,
                    Tier,
                    estimate,
                    load_system,
                    planner,
                    preset,
                    sweep,
                    systems,
                    versus,
)
from .results import SCHEMA_COLUMNS, read_results, write_results  # noqa: E402
from .validation.checked import Checked, checked  # noqa: E402

__all__ = ["estimate", "sweep", "planner", "versus", "Planner", "Estimates", "systems", "preset",
           "load_system", "System", "Tier", "ALGORITHMS", "COLLECTIVES", "SCHEMA_COLUMNS",
           "read_results", "write_results", "checked", "Checked", "CollbenchError", "errors",
           "__version__"]
