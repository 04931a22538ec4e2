"""How far the model has been checked against real runs: the corpus of public measurements
(``corpus/``: 92 nccl-tests, rccl-tests and OSU outputs with ``index.tsv`` giving each one's
hardware, ranks and source), systems written from the specs of the corpus hardware that is not a
preset (``systems/``), and ``validate``: every matching case against a system, per collective.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def corpus_dir() -> Path:
    """The shipped corpus: ``raw/`` outputs, ``index.tsv``, ``README.md``."""
    return HERE / "corpus"


def systems_dir() -> Path:
    return HERE / "systems"
