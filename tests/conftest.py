import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=120, env=None, cwd=None):
    """Run `python -m collbench ARGS` in a subprocess; returns CompletedProcess."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "collbench", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)


@pytest.fixture
def cli():
    return run_cli
