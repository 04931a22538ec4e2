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
the data identifies is fitted: a parameter whose effect on the measured times is nil, or
is a combination of parameters before it (in the order above), keeps its base value, and
the output says so.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import _kernels
from .algorithms import ALGORITHMS, check_collective
from .model import Compiled, kernel_args
from .plans import Geometry, NotApplicable
from .system import System, Tier, load_system

LIBRARY_NAMES = ("mpi", "auto")      # rows of a library's own choice: modelled as auto
SOFT_L1_SCALE = 0.2                  # residuals (log time) beyond ~20% are down-weighted
SEPARABLE = 0.03                     # a column must keep 3% of its norm after projection
NEGLIGIBLE = 1e-4                    # RMS change in log time per unit of a parameter


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


def _zero_lat(system: System, unit_tier=None) -> System:
    tiers = tuple(replace(t, lat_hw_us=0.0, lat_sw_us=1.0 if k == unit_tier else 0.0)
                  for k, t in enumerate(system.tiers))
    return replace(system, tiers=tiers, base_lat_us=0.0, implementations={}, calibration={})


def model_name(algorithm: str) -> str:
    return "auto" if algorithm in LIBRARY_NAMES else algorithm


def build_groups(system: System, df: pd.DataFrame):
    """Groups of fittable rows, and a list of (reason, count) for rows left out."""
    groups, skipped = [], {}
    keys = df.groupby(["collective", "nranks", "algorithm"], sort=True).indices
    T = len(system.tiers)
    zero = _zero_lat(system)
    units = [_zero_lat(system, k) for k in range(T)]
    for (coll, p, algo), idx in keys.items():
        p = int(p)
        why = None
        if coll not in ALGORITHMS["auto"].collectives:
            why = f"collective {coll!r} unknown"
        elif algo not in ALGORITHMS:
            why = f"algorithm {algo!r} unknown"
        elif p > system.max_ranks:
            why = f"{p} ranks > {system.max_ranks} of {system.name}"
        if why is None:
            name = model_name(algo)
            impl = algo if algo not in ("auto",) else None
            try:
                comps = [Compiled(s, p, coll, [name], library_only=True) for s in [zero] + units]
            except (NotApplicable, ValueError) as exc:
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
        groups.append(Group(
            coll, p, algo, impl, np.asarray(idx), df["nbytes"].to_numpy(float)[idx],
            c0.coef[members], c0.lsc[members], c0.mode[members], c0.pipe_d[members],
            np.array([c0.plans[j].red for j in members]), c0.lat[members], S,
            c0.pipe_a[members], SP))
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
        self.SP = cat([g.SP for g in groups])
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
                           self.PA0 + (self.SP * a).sum(1), self.group,
                           (self.bw, eff_lo, eff_hi, llo, lhi), flo, f)
        out, choice = self.bufs
        _kernels.evaluate(self.sizes, *args, *out, choice, self.overlap)
        return out[0][self.at]


def _params(system: System, groups, free_bw: bool):
    """Every parameter the model has for these groups, in identification priority order."""
    ps = []
    effmax = 1e3 if free_bw else 1.0
    for k, t in enumerate(system.tiers):
        ps += [Param(f"tier {k} ({t.name}) lat_sw_us", "lat", k, False, 0.0, 1e5, t.lat_sw_us),
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
           Param("reduce_gbps", "reduce", None, True, math.log(1e-3), math.log(1e6),
                 math.log(system.reduce_gbps))]
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
        raise ValueError(f"unknown timing {timing!r}; valid: median, mean")
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
            raise ValueError(f"--tiers {','.join(map(str, sizes))} holds {math.prod(sizes)} ranks; "
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
    import time

    from scipy.optimize import least_squares
    t0 = time.perf_counter()
    data = measured_rows(df, timing)
    if data.empty:
        raise ValueError("no measured rows with a positive size and time to calibrate from")
    for c in data["collective"].unique():
        check_collective(c)
    free_bw = system is None
    base = (default_system(data, name or "local", tier_sizes) if system is None
            else load_system(system))
    groups, skipped = build_groups(base, data)
    if not groups:
        why = "; ".join(f"{n} rows: {w}" for w, n in skipped)
        raise ValueError(f"none of the measured rows fits {base.name}: {why}")
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
    fitted_rows["predicted_system"] = out.name
    fitted_rows["ratio"] = fitted_rows["time_us"] / fitted_rows["predicted_us"]
    return Fit(out, params, fitted_rows.reset_index(drop=True), skipped,
               time.perf_counter() - t0, nfev)


def _fitted_system(base, params, data, rows, files, free_bw, name) -> System:
    v = {(p.kind, p.key): p for p in params}
    today = _dt.date.today().isoformat()
    where = (f"{len(data)} measured rows" + (f" of {', '.join(map(str, files))}" if files else "")
             + f", {_human(data.nbytes.min())}..{_human(data.nbytes.max())}, "
             f"{_ranks(data.nranks)} ranks")
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
        new = replace(t, bw_gbps=float(bw), lat_sw_us=v[("lat", k)].value, eff_lo=e_lo, eff_hi=e_hi,
                      eff_lo_bytes=float(round(lo_b)), eff_hi_bytes=float(round(hi_b)))
        for kind, field in (("lat", "lat_sw_us"), ("eff_lo", "eff_lo"), ("eff_hi", "eff_hi"),
                            ("llo", "eff_lo_bytes"), ("span", "eff_hi_bytes")):
            p = v[(kind, k)]
            if p.fitted:
                sources[field] = note
            elif field not in sources:
                sources[field] = f"collbench starting value, not fitted: {p.why}"
        for field in ("size", "topology", "lat_hw_us", "oversub", "innet", "innet_eff",
                      "innet_lat_us"):
            sources.setdefault(field, "collbench default for a system fitted to measurements")
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
    host = data["host"].dropna().unique().tolist() if "host" in data else []
    desc = (f"fitted by collbench calibrate to {where}"
            + (f" on {', '.join(map(str, host))}" if host else "") + f"; base: {base.name}")
    return replace(base, name=name or (base.name if not free_bw else "local"),
                   base_lat_us=float(v[("base", None)].value),
                   reduce_gbps=float(v[("reduce", None)].value), tiers=tuple(tiers), implementations=impls, calibration=cal,
                   description=desc, sources=sources, path="")


def _ranks(s):
    u = sorted({int(x) for x in s})
    return str(u[0]) if len(u) == 1 else f"{u[0]}..{u[-1]}"


def _human(n):
    n = float(n)
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:g} {unit}"
    return f"{n:g} B"


# ---- extrapolation labels ---------------------------------------------------------------

def _fixed_reasons(system: System, nranks, collective, name) -> list:
    """Reasons beyond the data that do not depend on the size."""
    cal = system.calibration
    why = []
    ranks = cal.get("nranks") or []
    if ranks and not (min(ranks) <= nranks <= max(ranks)):
        why.append(f"ranks outside {min(ranks)}..{max(ranks)}")
    tiers = cal.get("tiers_measured")
    if tiers:
        L = Geometry(system, int(nranks)).L
        if L > tiers:
            why.append(f"tier {L - 1} ({system.tiers[L - 1].name}) not in the data")
    colls = cal.get("collectives") or []
    if colls and collective not in colls:
        why.append(f"{collective} not measured")
    algos = cal.get("algorithms") or []
    if algos and name not in algos and not (name == "auto" and set(algos) & set(LIBRARY_NAMES)):
        why.append(f"{name} not measured")
    return why


def extrapolation(system: System, nbytes, nranks, collective, requested,
                  implementation=None) -> np.ndarray:
    """Per row (sizes ``nbytes``, algorithms ``requested``): why an estimate of a calibrated
    system lies beyond the data it was fitted to ('' when it does not, or when the system was
    not calibrated).  Each distinct (algorithm, below, above) case is worded once."""
    n = np.asarray(nbytes, dtype=float)
    req = np.asarray(requested, dtype=object)
    out = np.full(len(n), "", dtype=object)
    cal = system.calibration
    if not cal:
        return out
    below = (n > 0) & (n < cal.get("min_bytes", 0))
    above = n > cal.get("max_bytes", np.inf)
    for name in pd.unique(req):
        fixed = _fixed_reasons(system, nranks, collective, implementation or name)
        for lo, hi in ((False, False), (True, False), (False, True)):
            mask = (req == name) & (below == lo) & (above == hi)
            if mask.any():
                size = ([f"size < {_human(cal['min_bytes'])}"] if lo else []) + (
                    [f"size > {_human(cal['max_bytes'])}"] if hi else [])
                out[mask] = "; ".join(size + fixed)
    return out


# ---- cross-validation -------------------------------------------------------------------

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
        raise ValueError("cross-validation needs at least two sizes to split")
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


def cache_path(host: str, nranks: int):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "collbench", f"local-{host}-n{nranks}.toml")


# ---- command line -----------------------------------------------------------------------

def _describe_fit(f: Fit, out=print):
    d = f.data
    out(f"# {'parameter':<40s}{'value':>14s}  status")
    lo_bytes = {p.key: p.value for p in f.params if p.kind == "llo"}
    for p in f.params:
        val = f"{p.value:.4g}" if p.kind != "span" else f"{lo_bytes[p.key] * math.exp(p.value):.4g}"
        out(f"  {p.name:<40s}{val:>14s}  {'fitted' if p.fitted else 'kept: ' + p.why}")
    out(f"# fit: {len(d)} rows in {f.seconds:.3f} s ({f.nfev} model evaluations)")
    err_all = geomean_error(d.time_us, d.predicted_us)
    big = d[d.nbytes >= 65536]
    line = f"# geomean error {err_all:.1%} over all sizes"
    if len(big):
        line += f", {geomean_error(big.time_us, big.predicted_us):.1%} from 64 KiB up ({len(big)} rows)"
    out(line)
    e = np.log(d.predicted_us / d.time_us)
    w = d.iloc[int(np.argmax(np.abs(e.to_numpy())))]
    out(f"# worst: {w['algorithm']} {_human(w['nbytes'])} on {int(w['nranks'])} ranks: measured "
        f"{w['time_us']:.4g} us, predicted {w['predicted_us']:.4g} us "
        f"({w['predicted_us'] / w['time_us'] - 1:+.0%})")
    by = d.assign(e=np.abs(e)).groupby("nbytes")["e"].mean()
    out(f"# worst size: {_human(by.idxmax())} (geomean error {math.expm1(by.max()):.1%} over "
        f"its {int((d.nbytes == by.idxmax()).sum())} rows)")
    parts = [f"{a} {geomean_error(g.time_us, g.predicted_us):.1%}"
             for a, g in d.groupby("algorithm")]
    out("# per algorithm: " + ", ".join(parts))


def cmd_calibrate(args) -> int:
    from pathlib import Path

    from .schema import read_results, write_results
    if not args.results:
        raise ValueError("give one or more results files (.csv/.json from collbench run or import)")
    frames = []
    for path in args.results:
        if not Path(path).is_file():
            raise ValueError(f"results file {path} not found")
        frames.append(read_results(path))
    df = pd.concat(frames, ignore_index=True)
    system = load_system(args.system) if args.system else None
    out_path = Path(args.output or "calibrated.toml")
    if out_path.suffix != ".toml":
        raise ValueError(f"the fitted system is written as TOML: {out_path} must end in .toml")
    name = args.name or (system.name + "-fitted" if system else out_path.stem)
    data = measured_rows(df, args.timing)
    if data.empty:
        raise ValueError(f"no measured rows in {', '.join(args.results)} "
                         "(model rows are not fitted to)")
    print(f"# collbench calibrate: {len(data)} measured rows from {', '.join(args.results)}: "
          f"{', '.join(sorted(data.collective.unique()))}, {_human(data.nbytes.min())}.."
          f"{_human(data.nbytes.max())}, {_ranks(data.nranks)} ranks, algorithms "
          f"{', '.join(sorted(data.algorithm.unique()))}")
    sizes = None
    if args.tiers:
        if system is not None:
            raise ValueError("--tiers sizes the default system; with --system the base's tiers are used")
        try:
            sizes = [int(x) for x in args.tiers.split(",")]
        except ValueError:
            raise ValueError(f"--tiers wants tier sizes like 8,16; got {args.tiers!r}") from None
        if not sizes or min(sizes) < 1 or math.prod(sizes) > 10 ** 9:
            raise ValueError(f"--tiers wants tier sizes from 1 up (at most 1e9 ranks); got {args.tiers!r}")
    f = fit(df, system, files=args.results, name=name, timing=args.timing, tier_sizes=sizes)
    base = system.name if system else "starting values sized to the data"
    tiers = ", ".join(f"{t.name} x{t.size}" for t in f.system.tiers)
    print(f"# base: {base}; tiers: {tiers}")
    for why, n in f.skipped:
        print(f"# skipped {n} rows: {why}")
    _describe_fit(f)
    cal = f.system.calibration
    print(f"# covers {_human(cal['min_bytes'])}..{_human(cal['max_bytes'])}, ranks "
          f"{_ranks(cal['nranks'])}, {cal['tiers_measured']} tier(s) of {len(f.system.tiers)}: "
          "estimates beyond that are labelled as extrapolation")
    text = f.system.to_toml()
    from .schema import _atomic_write
    _atomic_write(out_path, text)
    print(f"# wrote {out_path}: collbench estimate --system {out_path} ... ; "
          f"mpiexec -n N collbench run --predict {out_path}")
    if args.csv:
        write_results(f.data, args.csv)
        print(f"# wrote the fitted rows with their predictions to {args.csv}")
    if args.cross_validate:
        cv = cross_validate(df, system, timing=args.timing)
        print("#")
        print(f"# cross-validation: fit on {cv['train_rows']} rows (every other size and rank "
              f"count), predict {cv['test_rows']} held-out rows")
        print(f"# held-out geomean error: {cv['error_all']:.1%} over all sizes, "
              f"{cv['error_big']:.1%} from 64 KiB up ({cv['big_rows']} rows)")
        print(f"# fastest algorithm predicted correctly at {cv['fastest']:.0%} of "
              f"{cv['fastest_points']} held-out (size, ranks) points "
              f"({cv['fastest_within_5pct']:.0%} within 5% of the measured fastest)")
    return 0


def add_parser(sub):
    c = sub.add_parser("calibrate", help="fit a system to measured rows (run/import output)")
    c.add_argument("results", nargs="*", help="results files (.csv or .json)")
    c.add_argument("--system", "-s", default=None,
                   help="preset or .toml to start from (default: one tier sized to the data)")
    c.add_argument("-o", "--output", default=None, help="fitted system (default calibrated.toml)")
    c.add_argument("--name", default=None, help="name of the fitted system")
    c.add_argument("--csv", default=None, help="also write the rows with their fitted predictions")
    c.add_argument("--tiers", default=None,
                   help="tier sizes of the default system, innermost first (e.g. 8 or 8,64); "
                        "default: sized to the data")
    c.add_argument("--timing", default="median", choices=("median", "mean"),
                   help="fit each row's median iteration time where recorded (default) or "
                        "its mean (time_us, what the table prints)")
    c.add_argument("--cross-validate", action="store_true",
                   help="also fit on half of the sizes and rank counts and predict the other half")
    c.set_defaults(func=cmd_calibrate)
