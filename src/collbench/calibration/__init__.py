"""Calibration: fit a system's parameters to measured rows (``collbench calibrate``),
cross-validate the fit, and the cache of ``collbench run --predict local``."""
from __future__ import annotations

import os

from .crossval import cross_validate, fastest_agreement, predict_rows, split
from .fitting import Fit, build_groups, default_system, fit, geomean_error, measured_rows


def cache_path(host: str, nranks: int):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "collbench", f"local-{host}-n{nranks}.toml")




__all__ = ["fit", "Fit", "cross_validate", "predict_rows", "fastest_agreement", "split",
           "measured_rows", "geomean_error", "default_system", "build_groups", "cache_path"]
