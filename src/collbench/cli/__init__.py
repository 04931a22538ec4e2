"""Command line: ``collbench estimate|systems|run|sweep|plot|report|compare|import|calibrate|
validate``
(also ``python -m collbench``).  One module per command; argparse lives here only.

Any ``CollbenchError`` prints one line ``collbench: error: ...`` and exits with code 2;
anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import os
import sys

from .. import __version__
from ..errors import CollbenchError
from . import (
    calibrate,
    compare,
    compare_systems,
    estimate,
    importer,
    plot,
    report,
    run,
    sweep,
    systems,
    validate,
)
from .common import Parser

COMMANDS = (estimate, systems, compare_systems, run, sweep, plot, report, compare, importer,
            calibrate, validate)


def build_parser() -> Parser:
    p = Parser(prog="collbench", description="How long does a collective take on this "
               "interconnect, and which algorithm should run it? A cost model (Cython) and "
               "real MPI runs, one result schema.",
               epilog="examples:\n  collbench estimate --system dgx-h100 --nranks 8\n"
                      "  mpiexec -n 2 collbench run\n  collbench COMMAND --help")
    p.add_argument("--version", action="version", version=f"collbench {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    sub.required = True
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    return p


def launcher_rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except BrokenPipeError:               # `collbench estimate ... | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CollbenchError as exc:
        lines = str(exc).strip().splitlines()
        msg = lines[0] if lines else type(exc).__name__
        if launcher_rank() == 0:          # under mpiexec every rank sees it: say it once
            print(f"collbench: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("collbench: interrupted", file=sys.stderr)
        return 130
