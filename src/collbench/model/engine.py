"""Plans packed for the Cython kernel: build once per (system, ranks, collective,
algorithms), evaluate many sizes in one nogil pass (``collbench.model._kernels``).

``build`` asks the algorithm registry for the plans; ``Compiled`` packs them into the
kernel's arrays (per plan row: bandwidth coefficient per tier over line rate, the sizes where
each tier's efficiency curve bends, latency, reduction, mode, pipelining, group) and runs the
kernel or its NumPy twin, which the tests race and hold against each other.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..algorithms import AUTO, REGISTRY, for_collective
from ..algorithms.base import Geometry, Plan, PlanContext, latency_floor
from ..algorithms.hier import label_matches, parse_label
from ..errors import InputError, NotApplicable
from . import _kernels
from .system import System, plan_ramp

MAX_PLANS = 20_000        # kernel rows of one compiled grid point (hier enumerates)


def flat_plan(system: System, coll: str, algo: str, g: Geometry,
              allowed: frozenset[str] = frozenset()) -> Plan:
    """One algorithm's plan on geometry ``g`` (not hier: that one returns several)."""
    fn = REGISTRY[algo].plans.get(coll)
    if fn is None:
        raise NotApplicable(f"'{algo}' does not implement {coll}")
    ctx = PlanContext(coll, allowed, lambda c, a, gg: flat_plan(system, c, a, gg, allowed))
    out = fn(g, ctx)
    assert isinstance(out, Plan)
    return out


def build(system: System, p: int, coll: str, algo: str, allowed: frozenset[str],
          hier_labels: tuple[str, ...] = ()) -> list[Plan]:
    """Plans for one algorithm name (several for hier: one per choice of inner and outer
    algorithms, those of ``hier_labels`` if given; a hier label keeps the plans that match
    it)."""
    g = Geometry(system, p)
    label = parse_label(algo)
    name = "hier" if label is not None else algo
    fn = REGISTRY[name].plans.get(coll)
    if fn is None:
        raise NotApplicable(f"'{name}' does not implement {coll}")
    ctx = PlanContext(coll, allowed, lambda c, a, gg: flat_plan(system, c, a, gg, allowed),
                      hier_labels)
    if label is not None:     # a hier label: every inner/outer choice may be asked for
        ctx = PlanContext(coll, frozenset(REGISTRY), ctx.flat)
    out = fn(g, ctx)
    plans = out if isinstance(out, list) else [out]
    if label is not None:
        plans = [pl for pl in plans if label_matches(pl.label, algo)]
        if not plans:
            every = fn(g, ctx)
            labels = sorted({pl.label for pl in (every if isinstance(every, list) else [every])})
            raise NotApplicable(f"no plan {algo} here; hier plans for {p} ranks: "
                                f"{', '.join(labels[:12])}{' ...' if len(labels) > 12 else ''}")
    # launch cost, and the launch/synchronisation cost of the outermost tier spanned; the
    # physical floor applies to the whole latency
    fixed = system.base_lat_us + g.tiers[-1].sync_us
    for pl in plans:
        pl.lat += fixed
        pl.floor = latency_floor(REGISTRY[pl.algorithm], p)
    return plans


def candidates(system: System, collective: str, library_only: bool) -> list[str]:
    """Algorithms ``auto`` chooses among: the system library's, or every applicable one."""
    algos = for_collective(collective)
    if library_only:
        lib = [a for a in algos if a in system.library_algorithms]
        algos = lib or algos
    return algos


class Optional_(str):
    """An algorithm that came from 'all': dropped, not an error, where it does not fit."""


def with_step(system: System, step_us: float) -> System:
    """The system with ``step_us`` more software latency per step on every tier (how an
    implementation's own per-step overhead enters the plans)."""
    if not step_us:
        return system
    return replace(system, tiers=tuple(replace(t, lat_sw_us=max(0.0, t.lat_sw_us + step_us))
                                       for t in system.tiers))


class Compiled:
    """Plans of one (system, ranks, collective) packed for the kernel; ``groups`` are the
    requested names with the plan rows each chooses among."""

    def __init__(self, system: System, nranks: int, collective: str, algorithms: list[str],
                 library_only: bool = True, implementation: str | None = None) -> None:
        self.system, self.nranks, self.collective = system, nranks, collective
        self.implementation = implementation
        allowed = frozenset(system.library_algorithms if library_only
                            else for_collective(collective))
        # the library's own hierarchical plans only (NCCL: NVLSTree), unless every
        # algorithm is asked for
        self.hier_labels = system.hier_plans if library_only else ()
        self.groups: list[tuple[str, list[int]]] = []
        self.plans: list[Plan] = []
        cache: dict[tuple[str, str | None], list[int]] = {}
        for name in algorithms:
            if name == AUTO:
                members: list[int] = []
                for a in candidates(system, collective, library_only):
                    try:      # the library's algorithms: no per-implementation entry
                        members += self._plans_for(a, allowed, cache, implementation)
                    except NotApplicable:
                        continue
                if not members:
                    if isinstance(name, Optional_):
                        continue
                    raise NotApplicable(f"no algorithm applies to {collective} on {system.name} "
                                        f"with {nranks} ranks")
                self.groups.append((AUTO, members))
            else:
                base = "hier" if parse_label(name) else name
                impl = implementation or (base if base in system.implementations else None)
                try:
                    self.groups.append((name, self._plans_for(name, allowed, cache, impl)))
                except NotApplicable as exc:
                    if isinstance(name, Optional_):
                        continue
                    ok = [a for a in for_collective(collective) if self._applies(a, allowed)]
                    raise NotApplicable(f"algorithm {name!r} does not fit {system.name} with "
                                        f"{nranks} ranks: {exc}; applicable: {', '.join(ok)}"
                                        ) from None
            if len(self.plans) > MAX_PLANS:
                raise InputError(f"more than {MAX_PLANS:,} plans for one grid point; use fewer "
                                 "tiers or algorithms")
        if not self.groups:
            raise NotApplicable(f"none of {', '.join(algorithms)} applies to {collective} on "
                                f"{system.name} with {nranks} ranks")
        self._pack()

    def _applies(self, a: str, allowed: frozenset[str]) -> bool:
        try:
            build(self.system, self.nranks, self.collective, a, allowed, self.hier_labels)
            return True
        except NotApplicable:
            return False

    def _plans_for(self, name: str, allowed: frozenset[str],
                   cache: dict[tuple[str, str | None], list[int]], impl: str | None = None
                   ) -> list[int]:
        key = (name, impl)
        if key not in cache:
            spec = self.system.implementations.get(impl) if impl else None
            system = with_step(self.system, spec["step_us"] if spec else 0.0)
            pls = []
            # one plan per protocol the algorithm runs with (NCCL: LL, LL128, Simple): its
            # latencies and bandwidth factor; the group keeps the cheapest at each size
            for proto in system.protocol_variants(name, self.nranks):
                got = build(system.with_protocol(proto, name) if proto else system,
                            self.nranks, self.collective, name, allowed, self.hier_labels)
                if proto:           # (fresh plans: build() makes new ones each call)
                    d = system.protocol(proto, name)
                    f = system.protocol_bw_factor(proto, name, self.nranks)
                    ramp = plan_ramp(d)
                    for pl in got:
                        pl.label = f"{pl.label}/{proto}"
                        pl.mul_hi, pl.mul_lo = pl.mul_hi * f, pl.mul_lo * f
                        pl.ramp = ramp
                        pl.chan_full, pl.chan_min = system.protocol_channels(proto, name,
                                                                             self.nranks)
                pls += got
            if spec:
                for pl in pls:
                    pl.mul_hi, pl.mul_lo = pl.mul_hi * spec["bw_factor"], pl.mul_lo * spec["bw_factor_lo"]
                    pl.lat = max(0.0, pl.lat + spec["base_us"])
            cache[key] = list(range(len(self.plans), len(self.plans) + len(pls)))
            self.plans += pls
        return cache[key]

    def _pack(self) -> None:
        s = self.system
        P, T = len(self.plans), len(s.tiers)
        self.lat = np.array([p.lat for p in self.plans])
        self.coef = np.ascontiguousarray(np.array([p.coef for p in self.plans]).reshape(P, T))
        self.lsc = np.ascontiguousarray(np.array([p.logscale for p in self.plans]).reshape(P, T))
        self.red = np.array([p.red / (s.reduce_gbps * 1e3) for p in self.plans])
        self.mode = np.array([p.mode for p in self.plans], dtype=np.intc)
        self.pipe_d = np.array([p.pipe_d for p in self.plans], dtype=float)
        self.pipe_a = np.array([p.pipe_a for p in self.plans], dtype=float)
        self.floor = np.array([p.floor for p in self.plans], dtype=float)
        self.chan = np.array([(p.chan_full, p.chan_min) for p in self.plans], dtype=float)
        # a plan may belong to several groups (e.g. ring and auto): one kernel row per (plan, group)
        rows = [(j, g) for g, (_, members) in enumerate(self.groups) for j in members]
        idx = np.array([j for j, _ in rows], dtype=np.intp)
        group = np.array([g for _, g in rows], dtype=np.intc)
        self.rowplan = idx
        self.overlap = int(s.overlap_reduce)
        self.k_args = kernel_args(
            self.coef[idx], self.lsc[idx], self.lat[idx], self.red[idx], self.mode[idx],
            self.pipe_d[idx], self.pipe_a[idx], self.floor[idx], group, tier_arrays(s),
            np.array([self.plans[j].mul_lo for j in idx]),
            np.array([self.plans[j].mul_hi for j in idx]),
            pack_ramps([self.plans[j].ramp for j in idx]), self.chan[idx])
        # names for frames: per plan its algorithm and label
        self.plan_algorithms = [p.algorithm for p in self.plans]
        self.plan_labels = [p.label for p in self.plans]

    def alloc(self, n: int) -> tuple[list[np.ndarray], np.ndarray]:
        G = len(self.groups)
        return [np.empty((G, n)) for _ in range(4)], np.empty((G, n), dtype=np.intc)

    def run(self, nbytes: np.ndarray, engine: str = "cython",
            buffers: tuple[list[np.ndarray], np.ndarray] | None = None
            ) -> tuple[list[np.ndarray], np.ndarray]:
        """(time, latency, bandwidth, reduce) arrays [groups, sizes] and the chosen kernel
        rows; ``buffers`` (from alloc) are filled in place when given."""
        out, choice = buffers if buffers is not None else self.alloc(len(nbytes))
        if engine == "cython":
            _kernels.evaluate(nbytes, *self.k_args, *out, choice, self.overlap)
        elif engine == "numpy":
            evaluate_numpy(nbytes, self.k_args, out, choice, self.overlap)
        else:
            raise InputError(f"unknown engine {engine!r}; valid: cython, numpy")
        return out, choice


def tier_arrays(system: System) -> tuple[np.ndarray, ...]:
    """Per-tier (bytes/us, eff_lo, eff_hi, log eff_lo_bytes, log eff_hi_bytes) of a system."""
    t = system.tiers
    return (np.array([x.bw_gbps * 1e3 / x.oversub for x in t]),
            np.array([x.eff_lo for x in t]), np.array([x.eff_hi for x in t]),
            np.log([x.eff_lo_bytes for x in t]), np.log([x.eff_hi_bytes for x in t]))


def pack_ramps(ramps: Sequence[tuple[float, float, float, int] | None]
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per plan row its protocol's own ramp or None (``system.plan_ramp``), packed once for
    ``kernel_args``: the rows that have one, and per such row (eff_lo_factor or NaN, log
    eff_lo_bytes, log eff_hi_bytes, innermost tiers with no ramp)."""
    rows = [r for r, x in enumerate(ramps) if x is not None]
    if not rows:
        return None
    v = np.array([ramps[r] for r in rows], dtype=float)
    v[:, 1:3] = np.log(v[:, 1:3])
    return np.array(rows, dtype=np.intp), v


def kernel_args(coef: np.ndarray, lsc: np.ndarray, lat: Any, red: Any, mode: Any, pipe_d: Any,
                pipe_a: Any, floor: Any, group: Any, tiers: tuple[np.ndarray, ...],
                mul_lo: Any = 1.0,
                mul_hi: Any = 1.0,
                ramps: tuple[np.ndarray, np.ndarray] | None = None,
                chan: np.ndarray | None = None
                ) -> tuple[np.ndarray, ...]:
    """The kernel's arguments for plan rows (coef/logscale [rows, tiers], per-row latency,
    reduction us/byte, mode, pipelining, group) on tiers given by ``tier_arrays``;
    ``mul_lo``/``mul_hi`` (scalars or per row) scale the ends of each row's efficiency curve;
    ``ramps`` (``pack_ramps``) puts a protocol's own ramp in place of the tiers' on its rows;
    ``chan`` [rows, 2]: per row the bytes at which every channel runs (0: always) and the
    fraction one channel carries (``Plan.chan_full``, ``chan_min``)."""
    bw, eff_lo, eff_hi, llo, lhi = tiers
    R, T = coef.shape
    scale = np.exp(-lsc)                         # data of the sub-collective = n / scale
    cb = coef / bw
    llo, lhi = np.tile(llo, (R, 1)), np.tile(lhi, (R, 1))
    eff_lo = np.tile(eff_lo, (R, 1))
    if ramps is not None:
        rows, v = ramps
        own = np.isfinite(v[:, 0])              # a ramp of its own in place of the tiers'
        r = rows[own]
        eff_lo[r] = v[own, :1] * eff_hi
        llo[r], lhi[r] = v[own, 1:2], v[own, 2:3]
        flat = np.arange(T)[None, :] < v[:, 3:4]     # ... and no ramp on the innermost tiers
        eff_lo[rows] = np.where(flat, eff_hi[None, :], eff_lo[rows])
    e_lo = np.broadcast_to(mul_lo, (R,))[:, None] * eff_lo
    e_hi = np.multiply.outer(np.broadcast_to(mul_hi, (R,)), eff_hi)
    c = np.ascontiguousarray
    return (
        c(cb),                                                   # cb: us per byte at eff 1
        c(np.exp(llo) * scale),                                  # lo_n
        c(np.exp(lhi) * scale),                                  # hi_n
        c(e_lo), c(e_hi),
        c(llo - lsc),                                            # x0: log n where ramp starts
        c((e_hi - e_lo) / (lhi - llo)),                          # slope per unit of log n
        c(cb / e_lo),                                            # cb_lo
        c(cb / e_hi),                                            # cb_hi
        c(lat, dtype=float), c(red, dtype=float), c(mode, dtype=np.intc),
        c(pipe_d, dtype=float), c(pipe_a, dtype=float), c(floor, dtype=float),
        c(group, dtype=np.intc),
        c(chan[:, 0] if chan is not None else np.zeros(R)),              # chan_full
        c(chan[:, 1] if chan is not None else np.ones(R)))               # chan_min


def evaluate_numpy(nbytes: np.ndarray, k_args: tuple[np.ndarray, ...], out: list[np.ndarray],
                   choice: np.ndarray, overlap: int = 0) -> None:
    """The kernel's formula vectorised with NumPy (used to check and to race the kernel)."""
    (cb, lo_n, hi_n, e_lo, e_hi, x0, slope, _, _, lat, red, mode, pipe_d, pipe_a, floor,
     group, cfull, cmin) = k_args
    x = np.asarray(nbytes, dtype=float)
    pos = x > 0
    lx0 = np.log(np.where(pos, x, 1.0))
    ot, ol, ob, orr = out
    ot.fill(np.inf)
    for j in range(len(lat)):
        # below cfull every channel keeps the bytes (and efficiency) it has there
        lx = np.maximum(lx0, np.log(cfull[j])) if cfull[j] > 0.0 else lx0
        b = np.zeros_like(x)
        for k in range(cb.shape[1]):
            c = cb[j, k]
            if c == 0.0:
                continue
            x1 = x0[j, k] + (e_hi[j, k] - e_lo[j, k]) / slope[j, k] if slope[j, k] else x0[j, k]
            e = e_lo[j, k] + (np.clip(lx, x0[j, k], x1) - x0[j, k]) * slope[j, k]
            term = c / e
            b = b + term if mode[j] == 0 else np.maximum(b, term)
        lt = np.full_like(x, lat[j])
        bt = x * b
        if cfull[j] > 0.0:      # fewer channels below cfull: each carries the same bytes
            bt = bt / np.clip(x / cfull[j], cmin[j], 1.0)
        d, a = pipe_d[j], pipe_a[j]
        if d > 1.0 and a > 0.0:
            kk = np.maximum(1.0, np.sqrt((d - 1.0) * bt / a))
            lt = lt + (d - 1.0 + kk) * a
            bt = bt * (1.0 + (d - 1.0) / kk)
        elif d > 0.0:
            lt = lt + d * a
        lt = np.maximum(lt, floor[j])
        rt = x * red[j]
        t = lt + (np.maximum(bt, rt) if overlap else bt + rt)
        g = group[j]
        better = t < ot[g]
        ot[g] = np.where(better, t, ot[g])
        ol[g] = np.where(better, lt, ol[g])
        ob[g] = np.where(better, bt, ob[g])
        orr[g] = np.where(better, rt, orr[g])
        choice[g] = np.where(better, j, choice[g])
    zero = ~pos
    for arr in out:
        arr[:, zero] = 0.0
    choice[:, zero] = -1


_compiled_cache: dict[tuple, Compiled] = {}


def compile_plans(system: System, nranks: int, collective: str, algorithms: list[str],
                  library_only: bool = True, implementation: str | None = None) -> Compiled:
    key = (id(system), system.name, nranks, collective,
           tuple((a, isinstance(a, Optional_)) for a in algorithms), library_only, implementation)
    c = _compiled_cache.get(key)
    if c is None or c.system is not system:
        if len(_compiled_cache) > 4096:
            _compiled_cache.clear()
        c = _compiled_cache[key] = Compiled(system, nranks, collective, algorithms, library_only,
                                            implementation)
    return c
