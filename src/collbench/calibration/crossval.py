"""Cross-validation of a calibration: fit on every other size (and rank count), predict
the rest; how often the predicted fastest algorithm is the measured fastest."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import FitError
from ..model.system import System
from .fitting import Model, _params, build_groups, fit, geomean_error, measured_rows


def split(df: pd.DataFrame, timing: str = "median"):
    """Half of the sizes and half of the rank counts (alternating) to fit on; the rest to
    predict."""
    d = measured_rows(df, timing)
    sizes = np.sort(d.nbytes.unique())
    ranks = np.sort(d.nranks.unique())
    fit_sizes = set(sizes[::2].tolist())
    fit_ranks = set(ranks[::2].tolist()) if len(ranks) > 1 else set(ranks.tolist())
    train = d.nbytes.isin(fit_sizes) & d.nranks.isin(fit_ranks)
    return d[train].reset_index(drop=True), d[~train].reset_index(drop=True)


def predict_rows(system: System, df: pd.DataFrame) -> np.ndarray:
    """The model's time for every measured row (NaN where the model cannot say)."""
    data = measured_rows(df) if "source" in df else df
    groups, _ = build_groups(system, data)
    out = np.full(len(data), np.nan)
    if not groups:
        return out
    params = _params(system, groups, False)
    for p in params:
        p.lo, p.hi = -np.inf, np.inf
    model = Model(system, groups, params)
    theta = np.array([p.x0 for p in params])
    order = np.concatenate([g.rows for g in groups])
    out[order] = model.predict(theta)
    return out


def fastest_agreement(df: pd.DataFrame, pred: np.ndarray, tie=0.0):
    """Share of (collective, ranks, size) points with two or more algorithms where the
    predicted fastest is the measured fastest (or, with tie>0, measured within tie of it)."""
    d = df.assign(pred=pred).dropna(subset=["pred"])
    hits = total = 0
    for _, g in d.groupby(["collective", "nranks", "nbytes"]):
        if g.algorithm.nunique() < 2:
            continue
        g = g.groupby("algorithm")[["time_us", "pred"]].median()
        total += 1
        chosen = g.pred.idxmin()
        hits += g.time_us[chosen] <= g.time_us.min() * (1 + tie)
    return (hits / total if total else float("nan")), total


def cross_validate(df: pd.DataFrame, system=None, *, min_bytes=65536, timing="median"):
    train, test = split(df, timing)
    if train.empty or test.empty:
        raise FitError("cross-validation needs at least two sizes to split")
    f = fit(train, system, timing=timing)
    pred = predict_rows(f.system, test)
    ok = ~np.isnan(pred)
    t = test[ok].assign(predicted_us=pred[ok])
    big = t[t.nbytes >= min_bytes]
    agree, npts = fastest_agreement(test, pred)
    agree_tie, _ = fastest_agreement(test, pred, tie=0.05)
    return {
        "fit": f, "train_rows": len(train), "test_rows": len(t),
        "error_all": geomean_error(t.time_us, t.predicted_us),
        "error_big": geomean_error(big.time_us, big.predicted_us), "big_rows": len(big),
        "fastest": agree, "fastest_within_5pct": agree_tie, "fastest_points": npts,
        "test": t,
    }
