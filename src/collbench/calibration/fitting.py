"""``collbench calibrate``: fit a system's parameters to measured rows.

The cost of one measured row is the model's cost of its (collective, ranks, algorithm) at
its size.  For fixed plans every latency is linear in the tiers' per-step latencies, so the
plans are built once per group (with unit latencies, to read off how many steps each tier
contributes) and each evaluation of the fit only re-packs a few arrays and calls the Cython
kernel.  The fit is a robust least-squares fit of log(time) (soft-L1 loss), so 8 B and
1 GiB rows count alike and a few disturbed rows do not pull it.

Parameters, per tier: software latency per step, efficiency at small and large sizes and
the sizes where the efficiency curve bends; per implementation run by name (collbench's own
Python algorithms next to MPI_Allreduce): extra latency per step and its efficiency relative
to the tiers' curve at large and small sizes; per system: the fixed cost of a collective and
the local reduction throughput; last, a fixed cost per implementation.  Only what
the data identifies is fitted: a parameter whose effect on the measured times is nil, a
latency that is under 10% of every measured time (rows of large sizes only: left free, it
stretches to absorb the bandwidth curve's misfit), or a combination of parameters before it
(in the order above), keeps its base value, and the output says so.
"""
from __future__ import annotations

import datetime as _dt
import math
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..algorithms import COLLECTIVES, REGISTRY, check_collective
from ..algorithms.base import Geometry
from ..errors import CollbenchError, FitError, InputError
from ..model import _kernels
from ..model.engine import Compiled, kernel_args, pack_ramps
from ..model.extrapolation import LIBRARY_NAMES
from ..model.system import System, Tier, load_system
from ..units import human

SOFT_L1_SCALE = 0.2                  # residuals (log time) beyond ~20% are down-weighted
SEPARABLE = 0.03                     # a column must keep 3% of its norm after projection
NEGLIGIBLE = 1e-4                    # RMS change in log time per unit of a parameter
MIN_SHARE = 0.1                      # a latency is fitted only where it is >= 10% of a time
LATENCIES = ("lat", "step", "base", "ibase")   # additive microseconds


MAX_REDUCE_GBPS = 1e5      # no chip reduces faster than 100 TB/s of input (HBM3e: ~8 TB/s)

@dataclass
class Group:
    """Rows of one (collective, ranks, algorithm) and the plans that model them."""
    collective: str
    nranks: int
    algorithm: str                    # as measured
    impl: str | None                  # implementation entry its rows use
    rows: np.ndarray                  # positions in the data
    x: np.ndarray                     # sizes
    coef: np.ndarray
    lsc: np.ndarray
    mode: np.ndarray
    pipe_d: np.ndarray
    red0: np.ndarray                  # reduced bytes per byte (before the reduction rate)
    L0: np.ndarray                    # latency with zero tier latencies
    S: np.ndarray                     # [plans, tiers]: latency per us of tier latency
    PA0: np.ndarray
    SP: np.ndarray
    floor: np.ndarray                 # physical latency floor per plan (not fitted)
    mul: np.ndarray                   # per plan: its protocol's bandwidth factor (not fitted)
    ramps: list                       # per plan: its protocol's own size ramp or None (not fitted)
    chan: np.ndarray                  # [plans, 2]: its channel ramp (Plan.chan_full, chan_min)


@dataclass
class Param:
    name: str
    kind: str                         # lat, eff_lo, eff_hi, llo, span, base, reduce, step, bwf
    key: object                       # tier index or implementation name
    log: bool
    lo: float
    hi: float
    x0: float = 0.0
    value: float = 0.0
    fitted: bool = False
    why: str = ""


def step_deltas(system: System) -> list[float]:
    """Per tier the most negative per-step latency any protocol (or an algorithm's table
    under one) adds to it, 0 if none: its step stays at max(0, lat_sw_us + delta) in the
    model, which is linear in lat_sw_us only above -delta."""
    out = [0.0] * len(system.tiers)
    for d in system.protocols.values():
        for table in (d, *d.get("by_algorithm", {}).values()):
            for k, x in enumerate(table.get("step_us", ())):
                out[k] = min(out[k], x)
    return out


def _zero_lat(system: System, unit_tier=None, offset: float = 0.0) -> System:
    """The system with every tier latency at ``offset`` (1 more on ``unit_tier``): the plans'
    latencies there give the fit its linear model.  ``offset`` keeps every protocol's step
    (lat_sw_us + its delta) above 0, where the model is linear."""
    tiers = tuple(replace(t, lat_hw_us=0.0, lat_sw_us=offset + (1.0 if k == unit_tier else 0.0))
                  for k, t in enumerate(system.tiers))
    return replace(system, tiers=tiers, base_lat_us=0.0, implementations={}, calibration={})


def model_name(algorithm: str, collective: str = "allreduce") -> str:
    """The model's name for what a measured row ran: the library's own call is its choice
    (auto); a runtime algorithm is the exact plan it runs (hier -> hier(ring>rhd))."""
    spec = REGISTRY.get(algorithm)
    if spec is None:
        return algorithm                     # auto, or a hier label
    if spec.model_as:
        return spec.model_as
    return spec.run_variants.get(collective, algorithm)


def build_groups(system: System, df: pd.DataFrame):
    """Groups of fittable rows, and a list of (reason, count) for rows left out."""
    groups, skipped = [], {}
    keys = df.groupby(["collective", "nranks", "algorithm"], sort=True).indices
    T = len(system.tiers)
    # built at a latency high enough for every protocol step (a negative delta included) to
    # stay in the model's linear part; the offset is taken back out of L0 and PA0 below
    off = -min(step_deltas(system)) + 1.0
    zero = _zero_lat(system, offset=off)
    units = [_zero_lat(system, k, offset=off) for k in range(T)]
    for (coll, p, algo), idx in keys.items():
        p = int(p)
        why = None
        if coll not in COLLECTIVES:
            why = f"collective {coll!r} unknown"
        elif algo not in REGISTRY and algo != "auto" and not str(algo).startswith("hier("):
            why = f"algorithm {algo!r} unknown"
        elif p > system.max_ranks:
            why = f"{p} ranks > {system.max_ranks} of {system.name}"
        if why is None:
            name = model_name(algo, coll)
            impl = algo if algo in REGISTRY else None
            try:
                comps = [Compiled(s, p, coll, [name], library_only=True) for s in [zero] + units]
            except CollbenchError as exc:
                why = str(exc).split(";")[0]
        if why is not None:
            skipped[why] = skipped.get(why, 0) + len(idx)
            continue
        c0 = comps[0]
        members = c0.groups[0][1]
        P = len(members)
        S = np.zeros((P, T))
        SP = np.zeros((P, T))
        for k in range(T):
            ck = comps[k + 1]
            S[:, k] = ck.lat[members] - c0.lat[members]
            SP[:, k] = ck.pipe_a[members] - c0.pipe_a[members]
        L0 = c0.lat[members] - S.sum(1) * off        # at zero tier latency (may be < 0 for
        PA0 = c0.pipe_a[members] - SP.sum(1) * off   # a plan whose steps have negative deltas)
        groups.append(Group(
            coll, p, algo, impl, np.asarray(idx), df["nbytes"].to_numpy(float)[idx],
            c0.coef[members], c0.lsc[members], c0.mode[members], c0.pipe_d[members],
            np.array([c0.plans[j].red for j in members]), L0, S, PA0, SP, c0.floor[members],
            np.array([c0.plans[j].mul_hi for j in members]),
            [c0.plans[j].ramp for j in members], c0.chan[members]))
    return groups, sorted(skipped.items(), key=lambda kv: -kv[1])


class Model:
    """Fast evaluation of every group for a vector of parameter values: the plan rows of all
    groups go to one kernel call over the distinct sizes (each group keeps its cheapest
    plan), and each row of data reads its group's value at its size."""

    def __init__(self, system: System, groups, params):
        self.system, self.groups, self.params = system, groups, params
        self.n = sum(len(g.x) for g in groups)
        self.overlap = int(system.overlap_reduce)
        self.lat_hw = np.array([t.lat_hw_us for t in system.tiers])
        self.bw = np.array([t.bw_gbps * 1e3 / t.oversub for t in system.tiers])
        cat = np.concatenate
        self.coef = cat([g.coef for g in groups])
        self.lsc = cat([g.lsc for g in groups])
        self.mode = cat([g.mode for g in groups])
        self.pipe_d = cat([g.pipe_d for g in groups])
        self.red0 = cat([g.red0 for g in groups])
        self.L0 = cat([g.L0 for g in groups])
        self.S = cat([g.S for g in groups])
        self.PA0 = cat([g.PA0 for g in groups])
        self.floor = cat([g.floor for g in groups])
        self.SP = cat([g.SP for g in groups])
        self.mul = cat([g.mul for g in groups])
        self.ramps = pack_ramps([r for g in groups for r in g.ramps])
        self.chan = cat([g.chan for g in groups])
        self.group = cat([np.full(len(g.L0), i, np.intc) for i, g in enumerate(groups)])
        impls = sorted({g.impl for g in groups if g.impl}, key=str)
        self.impls = impls
        self.row_impl = cat([np.full(len(g.L0), impls.index(g.impl) if g.impl else -1)
                             for g in groups])
        xs = cat([g.x for g in groups])
        self.sizes, inv = np.unique(xs, return_inverse=True)
        self.at = (cat([np.full(len(g.x), i) for i, g in enumerate(groups)]), inv.ravel())
        G, N = len(groups), len(self.sizes)
        self.bufs = [np.empty((G, N)) for _ in range(4)], np.empty((G, N), np.intc)

    def values(self, theta):
        return {(p.kind, p.key): (math.exp(th) if p.log else th)
                for p, th in zip(self.params, theta)}

    def _per_row(self, v, kind, default):
        """Per plan row: the value of an implementation parameter (default where none)."""
        vals = np.array([v.get((kind, name), default if not callable(default) else default(name))
                         for name in self.impls] + [1.0 if kind in ("bwf", "bwflo") else 0.0])
        return vals[self.row_impl]

    def predict(self, theta) -> np.ndarray:
        v = self.values(theta)
        T = len(self.system.tiers)
        lat_sw = np.array([v[("lat", k)] for k in range(T)])
        eff_lo = np.array([v[("eff_lo", k)] for k in range(T)])
        eff_hi = np.array([v[("eff_hi", k)] for k in range(T)])
        llo = np.log([v[("llo", k)] for k in range(T)])
        lhi = llo + np.array([v[("span", k)] for k in range(T)])
        base, rate = v[("base", None)], v[("reduce", None)] * 1e3
        step = self._per_row(v, "step", 0.0)
        f = self._per_row(v, "bwf", 1.0)
        flo = self._per_row(v, "bwflo", lambda name: v.get(("bwf", name), 1.0))
        b = base + self._per_row(v, "ibase", 0.0)
        a = self.lat_hw + lat_sw + step[:, None]            # [rows, tiers]
        args = kernel_args(self.coef, self.lsc, np.maximum(0.0, b + self.L0 + (self.S * a).sum(1)),
                           self.red0 / rate, self.mode, self.pipe_d,
                           self.PA0 + (self.SP * a).sum(1), self.floor, self.group,
                           (self.bw, eff_lo, eff_hi, llo, lhi), flo * self.mul, f * self.mul,
                           self.ramps, self.chan)
        out, choice = self.bufs
        _kernels.evaluate(self.sizes, *args, *out, choice, self.overlap)
        return out[0][self.at]


def _params(system: System, groups, free_bw: bool):
    """Every parameter the model has for these groups, in identification priority order."""
    ps = []
    effmax = 1e3 if free_bw else 1.0
    low = [max(0.0, -x) for x in step_deltas(system)]   # no protocol's step below 0
    for k, t in enumerate(system.tiers):
        ps += [Param(f"tier {k} ({t.name}) lat_sw_us", "lat", k, False, low[k], 1e5,
                     t.lat_sw_us),
               Param(f"tier {k} ({t.name}) eff_hi", "eff_hi", k, True, math.log(1e-4),
                     math.log(effmax), math.log(t.eff_hi)),
               Param(f"tier {k} ({t.name}) eff_lo", "eff_lo", k, True, math.log(1e-4),
                     math.log(effmax), math.log(t.eff_lo)),
               Param(f"tier {k} ({t.name}) eff_lo_bytes", "llo", k, True, math.log(8.0),
                     math.log(1e15), math.log(t.eff_lo_bytes)),
               Param(f"tier {k} ({t.name}) eff_hi_bytes", "span", k, False, 0.1, 40.0,
                     math.log(t.eff_hi_bytes / t.eff_lo_bytes))]
    impls = sorted({g.impl for g in groups if g.impl and g.impl not in LIBRARY_NAMES})
    for name in impls:
        spec = system.implementations.get(name, {"step_us": 0.0, "bw_factor": 1.0})
        ps.append(Param(f"{name}: step_us", "step", name, False, 0.0, 1e5, spec["step_us"]))
    for name in impls:
        spec = system.implementations.get(name, {"step_us": 0.0, "bw_factor": 1.0})
        ps.append(Param(f"{name}: bw_factor", "bwf", name, True, math.log(1e-3), math.log(1e3),
                        math.log(spec["bw_factor"])))
    for name in impls:
        spec = system.implementations.get(name, {"bw_factor": 1.0})
        ps.append(Param(f"{name}: bw_factor_lo", "bwflo", name, True, math.log(1e-3),
                        math.log(1e3), math.log(spec.get("bw_factor_lo", spec["bw_factor"]))))
    # the fixed costs last: at a single rank count they and the per-step latencies are one
    # number per algorithm, and the per-step ones are what carries over to other rank counts
    ps += [Param("base_lat_us", "base", None, False, 0.0, 1e6, system.base_lat_us),
           Param("reduce_gbps", "reduce", None, True, math.log(1e-3), math.log(MAX_REDUCE_GBPS),
                 math.log(min(system.reduce_gbps, MAX_REDUCE_GBPS)))]
    for name in impls:
        spec = system.implementations.get(name, {})
        ps.append(Param(f"{name}: base_us", "ibase", name, False, -1e4, 1e5,
                        spec.get("base_us", 0.0)))
    for p in ps:
        p.x0 = min(max(p.x0, p.lo), p.hi)
        p.value = p.x0
    return ps


def _starts(params, theta, free):
    """Starting points: the base values, and the efficiency curves turned upside down
    (a curve that falls with size, as when data leaves the caches)."""
    x0 = theta[free]
    yield x0
    flip = x0.copy()
    changed = False
    for c, j in enumerate(free):
        p = params[j]
        if p.kind in ("eff_lo", "eff_hi"):
            other = next((i for i, q in enumerate(params) if q.key == p.key and q.kind ==
                          ("eff_hi" if p.kind == "eff_lo" else "eff_lo")), None)
            if other is not None:
                flip[c] = min(max(theta[other], p.lo), p.hi)
                changed = True
    if changed:
        yield flip


def _jacobian(model: Model, theta, logy):
    r0 = np.log(model.predict(theta)) - logy
    J = np.empty((len(r0), len(theta)))
    for j in range(len(theta)):
        h = 1e-4 * max(1.0, abs(theta[j]))
        t = theta.copy()
        t[j] += h
        J[:, j] = (np.log(model.predict(t)) - logy - r0) / h
    return J


def _identify(model: Model, theta, logy):
    """Mark which parameters the data identifies (greedy, in priority order)."""
    J = _jacobian(model, theta, logy)
    m = len(logy)
    basis = []
    for j, p in enumerate(model.params):
        col = J[:, j]
        norm = np.linalg.norm(col)
        if not np.isfinite(norm) or norm / math.sqrt(m) < NEGLIGIBLE:
            p.why = "no effect on the measured times"
            continue
        # a latency that is a sliver of every measured time (large sizes only) is not pinned
        # by them: the fit would stretch it to absorb the bandwidth curve's misfit
        if p.kind in LATENCIES and np.max(np.abs(col)) * max(abs(theta[j]), 1.0) < MIN_SHARE:
            p.why = f"under {MIN_SHARE:.0%} of every measured time"
            continue
        r = col.copy()
        for q in basis:
            r -= q * (q @ r)
        if np.linalg.norm(r) < SEPARABLE * norm:
            p.why = "not separable from the parameters fitted before it"
            continue
        basis.append(r / np.linalg.norm(r))
        p.fitted = True


@dataclass
class Fit:
    system: System
    params: list
    data: pd.DataFrame                # the fitted rows with predicted_us
    skipped: list
    seconds: float
    nfev: int


def geomean_error(meas, pred) -> float:
    """exp(mean |log(pred/meas)|) - 1: the typical relative error."""
    e = np.abs(np.log(np.asarray(pred, float) / np.asarray(meas, float)))
    return float(math.expm1(e.mean())) if len(e) else float("nan")


def measured_rows(df: pd.DataFrame, timing: str = "median") -> pd.DataFrame:
    """Measured rows with a positive size and time, one per (collective, ranks, algorithm,
    size): repeats (several files or runs) are combined by their median.  timing="median"
    uses each row's median iteration time where the run recorded one (``collbench run``
    does), which shrugs off the odd preempted iteration; "mean" uses ``time_us``."""
    if timing not in ("median", "mean"):
        raise InputError(f"unknown timing {timing!r}; valid: median, mean")
    d = df[(df["source"] == "measured")].copy()
    t = pd.to_numeric(d["time_us"], errors="coerce")
    if timing == "median" and "time_median_us" in d:
        med = pd.to_numeric(d["time_median_us"], errors="coerce")
        t = med.where(med > 0, t)
    d["time_us"] = t
    d = d[(d["time_us"] > 0) & (pd.to_numeric(d["nbytes"], errors="coerce") > 0)]
    d = d[pd.to_numeric(d["nranks"], errors="coerce") > 0]
    d["nbytes"] = d["nbytes"].astype(np.int64)
    d["nranks"] = d["nranks"].astype(np.int64)
    d["time_us"] = d["time_us"].astype(float)
    keys = ["collective", "nranks", "algorithm", "nbytes"]
    if d.duplicated(keys).any():
        med = d.groupby(keys, sort=False)["time_us"].transform("median")
        if "file" in d:       # a combined row came from every file it combines (citations)
            d["file"] = d.groupby(keys, sort=False)["file"].transform(
                lambda f: ";".join(sorted({str(x) for x in f.dropna()})) or None)
        d = d.assign(time_us=med).drop_duplicates(keys)
    d["time_median_us"] = d["time_us"]       # the time used from here on (idempotent)
    return d.reset_index(drop=True)


def default_system(df: pd.DataFrame, name="local", sizes=None) -> System:
    """A one-tier system sized to the data (two tiers when rows say ranks span nodes),
    with starting values that the fit replaces; the library is guessed from the rows.
    ``sizes`` (innermost first) sets the tiers' sizes instead, e.g. to estimate beyond the
    measured rank counts."""
    pmax = int(df["nranks"].max())
    rpn = pd.to_numeric(df["ranks_per_node"], errors="coerce") if "ranks_per_node" in df else None
    rpn = int(rpn.min()) if rpn is not None and rpn.notna().any() else pmax
    big = df[df["nbytes"] >= df["nbytes"].quantile(0.75)]
    bw = float(np.nanmedian(pd.to_numeric(big["busbw_gbps"], errors="coerce"))) if len(big) else 1.0
    bw = bw if np.isfinite(bw) and bw > 0 else 1.0
    nccl = bool((df["algorithm"] == "auto").all())
    start = dict(bw_gbps=bw, lat_sw_us=1.0, eff_lo=0.5, eff_hi=1.0, eff_lo_bytes=65536.0,
                 eff_hi_bytes=16777216.0, topology="switch")
    src = {"bw_gbps": "starting value from the measured busbw of the largest sizes"}
    if sizes:
        if math.prod(sizes) < pmax:
            raise InputError(f"--tiers {','.join(map(str, sizes))} holds {math.prod(sizes)} ranks; "
                             f"the data has {pmax}")
        names = ["local"] if len(sizes) == 1 else ["node"] + [f"net{i}" for i in range(1, len(sizes))]
        tiers = tuple(Tier(n, int(z), sources=dict(src), **start) for n, z in zip(names, sizes))
    elif 1 < rpn < pmax:
        tiers = (Tier("node", rpn, sources=dict(src), **start),
                 Tier("net", -(-pmax // rpn), sources=dict(src), **start))
    else:
        tiers = (Tier("local", max(pmax, 1), sources=dict(src), **start),)
    return System(name, tiers, library="nccl" if nccl else "mpi",
                  library_algorithms=("ring", "tree") if nccl else ("rd", "rhd", "ring"),
                  base_lat_us=1.0, reduce_gbps=4 * bw, overlap_reduce=nccl,
                  description="fitted by collbench calibrate")


def fit(df: pd.DataFrame, system: System | None = None, *, files=(), name=None,
        timing: str = "median", tier_sizes=None) -> Fit:
    """Fit ``system`` (default: a one-tier system sized to the data) to the measured rows
    of ``df``; returns the fitted system and the rows with their fitted predictions."""
    from scipy.optimize import least_squares  # optional at import: only fits need scipy
    t0 = time.perf_counter()
    data = measured_rows(df, timing)
    if data.empty:
        raise FitError("no measured rows with a positive size and time to calibrate from")
    for c in data["collective"].unique():
        check_collective(c)
    free_bw = system is None
    base = (default_system(data, name or "local", tier_sizes) if system is None
            else load_system(system))
    groups, skipped = build_groups(base, data)
    if not groups:
        why = "; ".join(f"{n} rows: {w}" for w, n in skipped)
        raise FitError(f"none of the measured rows fits {base.name}: {why}")
    order = np.concatenate([g.rows for g in groups])
    logy = np.log(data["time_us"].to_numpy()[order])
    params = _params(base, groups, free_bw)
    model = Model(base, groups, params)
    theta = np.array([p.x0 for p in params])
    _identify(model, theta, logy)
    free = [j for j, p in enumerate(params) if p.fitted]
    nfev = 0
    if free:
        lo = np.array([params[j].lo for j in free])
        hi = np.array([params[j].hi for j in free])

        def resid(x):
            t = theta.copy()
            t[free] = x
            return np.log(model.predict(t)) - logy

        best = None
        for x0 in _starts(params, theta, free):   # the curve may rise or fall: try both
            res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1",
                                f_scale=SOFT_L1_SCALE, x_scale="jac", method="trf",
                                max_nfev=400)
            nfev += res.nfev
            if best is None or res.cost < best.cost:
                best = res
        theta[free] = best.x
    for p, th in zip(params, theta):
        p.value = float(math.exp(th) if p.log else th)
    pred = np.empty(len(data))
    pred[order] = model.predict(theta)
    fitted_rows = data.iloc[order].copy()
    fitted_rows["predicted_us"] = pred[order]
    fitted_rows = fitted_rows.sort_values(["collective", "nranks", "algorithm", "nbytes"])
    out = _fitted_system(base, params, data.loc[order], fitted_rows, files, free_bw, name)
    check_physical(out, fitted_rows)
    fitted_rows["predicted_system"] = out.name
    fitted_rows["ratio"] = fitted_rows["time_us"] / fitted_rows["predicted_us"]
    return Fit(out, params, fitted_rows.reset_index(drop=True), skipped,
               time.perf_counter() - t0, nfev)


def check_physical(system: System, rows: pd.DataFrame) -> None:
    """Refuse a fit that is not physically sound or that collbench could not load back."""
    err = system.calibration.get("geomean_error")
    pred = rows["predicted_us"].to_numpy(float)
    if err is None or not np.isfinite(err) or not np.isfinite(pred).all() or (pred <= 0).any():
        raise FitError("the fit did not converge to finite times; check the rows "
                       "(collbench calibrate -v) or start from a system (--system)")
    for t in system.tiers:
        if not (0 < t.eff_lo <= 1 and 0 < t.eff_hi <= 1):
            raise FitError(f"tier {t.name}: fitted efficiency {max(t.eff_lo, t.eff_hi):.3g} is "
                           "above 1 (faster than the line rate); the base system's bandwidth is "
                           "too low for these measurements")
        if max(t.eff_lo_bytes, t.eff_hi_bytes) > 1e18:
            raise FitError(f"tier {t.name}: the efficiency curve was pushed beyond any real "
                           f"message size ({t.eff_hi_bytes:.3g} B) to follow rows that are faster "
                           "than the line rate allows; the base system's bandwidth is too low "
                           "for these measurements")
    # a fit that stayed far slower than the rows where bandwidth rules (the largest sizes)
    # could not follow them: they are faster than the system's line rates allow
    big = rows[rows["nbytes"] >= rows["nbytes"].max() / 16]
    slow = float(np.median(big["time_us"] / big["predicted_us"]))
    if slow < 0.5:
        raise FitError(f"the rows at the largest sizes are {1 / slow:.3g}x faster than the fitted "
                       "system at full efficiency (faster than the line rate allows); the base "
                       "system's bandwidth is too low for these measurements")
    if system.reduce_gbps > MAX_REDUCE_GBPS * (1 + 1e-9):
        raise FitError(f"fitted reduction rate {system.reduce_gbps:.3g} GB/s is faster than any "
                       f"memory ({MAX_REDUCE_GBPS:g} GB/s); the rows do not identify it")
    try:
        System.from_dict(tomllib.loads(system.to_toml()), where=f"fitted {system.name}")
    except (CollbenchError, tomllib.TOMLDecodeError) as exc:
        raise FitError(f"the fitted system would not load back: {exc}") from None


def _fitted_system(base, params, data, rows, files, free_bw, name) -> System:
    v = {(p.kind, p.key): p for p in params}
    today = _dt.date.today().isoformat()
    # imported rows name the benchmark outputs they came from (e.g. corpus files): cite those
    origin = sorted({Path(x).name for f in data["file"].dropna() for x in str(f).split(";")
                     if x}) if "file" in data else []
    cite = (f" (from {', '.join(origin[:3])}" + (f" and {len(origin) - 3} more" if len(origin) > 3
                                                 else "") + ")") if origin else ""
    where = (f"{len(data)} measured rows" + (f" of {', '.join(map(str, files))}" if files else "")
             + cite
             + f", {human(data.nbytes.min(), space=True)}..{human(data.nbytes.max(), space=True)}, "
             f"{rank_span(data.nranks)} ranks")
    err = geomean_error(rows.time_us, rows.predicted_us)
    note = f"fitted by collbench calibrate on {today} to {where} (geomean error {err:.1%})"

    def src(p):
        return note if p.fitted else None

    tiers = []
    for k, t in enumerate(base.tiers):
        e_lo, e_hi = v[("eff_lo", k)].value, v[("eff_hi", k)].value
        bw = t.bw_gbps
        sources = dict(t.sources)
        if free_bw:               # no published line rate: bandwidth = the curve's peak
            m = max(e_lo, e_hi)
            bw, e_lo, e_hi = bw * m, e_lo / m, e_hi / m
            if v[("eff_lo", k)].fitted or v[("eff_hi", k)].fitted:
                sources["bw_gbps"] = note + "; peak of the fitted efficiency curve"
        lo_b = v[("llo", k)].value
        hi_b = lo_b * math.exp(v[("span", k)].value)
        flat = lo_b > data.nbytes.max()
        if flat:    # the curve starts rising past every measured size: flat at eff_lo over
            e_hi, hi_b = e_lo, lo_b * 1.1   # them, and not left to run beyond real sizes
        new = replace(t, bw_gbps=float(bw), lat_sw_us=v[("lat", k)].value, eff_lo=e_lo, eff_hi=e_hi,
                      eff_lo_bytes=float(round(lo_b)), eff_hi_bytes=float(round(hi_b)))
        for kind, field in (("lat", "lat_sw_us"), ("eff_lo", "eff_lo"), ("eff_hi", "eff_hi"),
                            ("llo", "eff_lo_bytes"), ("span", "eff_hi_bytes")):
            p = v[(kind, k)]
            if p.fitted:
                sources[field] = note
            elif field == "eff_hi_bytes" and v[("llo", k)].fitted:
                # the span was kept, but it is counted from the fitted eff_lo_bytes
                sources[field] = (f"eff_lo_bytes ({note}) x the starting ratio "
                                  f"{math.exp(p.value):.4g}, not fitted: {p.why}")
            elif field not in sources:
                sources[field] = f"collbench starting value, not fitted: {p.why}"
        for field in ("size", "topology", "lat_hw_us", "oversub", "innet", "innet_eff",
                      "innet_lat_us"):
            sources.setdefault(field, "collbench default for a system fitted to measurements")
        if flat:
            sources["eff_hi"] = (f"eff_lo: the fitted curve starts rising at "
                                 f"{human(lo_b, space=True)}, past every measured size ({note})")
        if new.eff_hi_bytes <= new.eff_lo_bytes:
            new = replace(new, eff_hi_bytes=new.eff_lo_bytes * 1.1)
        tiers.append(replace(new, sources=sources))
    sources = dict(base.sources)
    for kind, field in (("base", "base_lat_us"), ("reduce", "reduce_gbps")):
        p = v[(kind, None)]
        if p.fitted:
            sources[field] = note
        elif field not in sources:
            sources[field] = f"collbench starting value, not fitted: {p.why}"
    impls = dict(base.implementations)
    fields_ = {"step": "step_us", "bwf": "bw_factor", "bwflo": "bw_factor_lo", "ibase": "base_us"}
    for (kind, key), p in v.items():
        if kind in fields_:
            d = dict(impls.get(key, {"step_us": 0.0, "bw_factor": 1.0, "base_us": 0.0}))
            d[fields_[kind]] = p.value
            impls[key] = d
            sources[f"implementations.{key}.{fields_[kind]}"] = (
                note if p.fitted else f"not fitted: {p.why}")
    tiers_spanned = max(Geometry(base, int(n)).L for n in data.nranks.unique())
    cal = {"date": today, "files": [str(f) for f in files], "rows": int(len(data)),
           "min_bytes": int(data.nbytes.min()), "max_bytes": int(data.nbytes.max()),
           "nranks": sorted(int(n) for n in data.nranks.unique()),
           "tiers_measured": int(tiers_spanned),
           "collectives": sorted(data.collective.unique().tolist()),
           "algorithms": sorted(data.algorithm.unique().tolist()),
           "geomean_error": round(err, 4),
           "fitted": [p.name for p in params if p.fitted]}
    if origin:
        cal["source_files"] = origin
    host = sorted({h.strip() for hs in (data["host"].dropna() if "host" in data else [])
                   for h in str(hs).split(",") if h.strip()})
    hosts = (", ".join(host) if len(host) <= 4 else
             f"{len(host)} hosts ({', '.join(host[:2])}, ...)") if host else ""
    desc = (f"fitted by collbench calibrate to {where}" + (f" on {hosts}" if hosts else "")
            + f"; base: {base.name}")
    return replace(base, name=name or (base.name if not free_bw else "local"),
                   base_lat_us=float(v[("base", None)].value),
                   reduce_gbps=float(v[("reduce", None)].value), tiers=tuple(tiers), implementations=impls, calibration=cal,
                   description=desc, sources=sources, path="")


def rank_span(s) -> str:
    """'2' or '2..8': the rank counts of some rows."""
    u = sorted({int(x) for x in s})
    return str(u[0]) if len(u) == 1 else f"{u[0]}..{u[-1]}"


