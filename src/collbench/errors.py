"""Every error collbench raises on purpose, under one base class.

``CollbenchError`` derives from ``ValueError`` so ``except ValueError`` keeps working.  The
command line catches ``CollbenchError`` only and prints it as one line with exit code 2;
anything else is a bug and shows its traceback.
"""
from __future__ import annotations


class CollbenchError(ValueError):
    """Base of every error collbench raises for bad input or a failed step."""


class InputError(CollbenchError):
    """A size, name, flag, count or dtype that is not valid (says what is)."""


class NotApplicable(InputError):
    """An algorithm that does not fit this system, rank count or collective."""


class SystemFileError(CollbenchError):
    """A system TOML that cannot be read or does not describe a valid system."""


class ResultsFileError(CollbenchError):
    """A results file that cannot be read or written."""


class ImportParseError(CollbenchError):
    """A benchmark output file that ``collbench import`` cannot read."""


class FitError(CollbenchError):
    """``collbench calibrate`` could not produce a physically sound, loadable system."""


class RunError(CollbenchError):
    """A real run (``collbench run``) that cannot start or continue."""


__all__ = ["CollbenchError", "InputError", "NotApplicable", "SystemFileError",
           "ResultsFileError", "ImportParseError", "FitError", "RunError"]
