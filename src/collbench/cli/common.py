"""What every command's parser shares."""
from __future__ import annotations

import argparse
import sys

from ..errors import InputError


class UsageError(InputError):
    """A command line argparse refused."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option; the description and examples kept as written."""


class Parser(argparse.ArgumentParser):
    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message):  # one line, exit 2 (argparse prints usage too)
        raise UsageError(f"{self.prog}: {message}")


def add_size_args(p: argparse.ArgumentParser, default_b: str = "8", default_e: str = "8G") -> None:
    p.add_argument("-b", "--minbytes", default=default_b, help="smallest size (K/M/G suffixes)")
    p.add_argument("-e", "--maxbytes", default=default_e, help="largest size")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-f", "--stepfactor", default=None, help="multiply size by this (2 if neither "
                                                             "-f nor -i)")
    g.add_argument("-i", "--stepbytes", default=None, help="add this many bytes per step")


def progress(done: int, total: int, what: str) -> None:
    sys.stderr.write(f"\r# {done}/{total} {what:<40s}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
