"""``collbench.estimate`` and ``collbench.sweep``: the cost model as a table."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from . import plans as _plans
from .algorithms import COLLECTIVES, check_algorithm, check_collective, for_collective
from .schema import SCHEMA_COLUMNS, finish_frame
from .sizes import check_sizes
from .system import System, load_system

try:
    from . import _kernels
except ImportError as exc:  # pragma: no cover - only when the extension was not built
    raise ImportError("collbench's Cython extension is not built; install the package "
                      "(pip install .) to compile it") from exc


def check_nranks(system: System, nranks) -> int:
    if nranks is None:
        return system.max_ranks
    if isinstance(nranks, bool) or not isinstance(nranks, (int, np.integer)) and not (
            isinstance(nranks, float) and nranks.is_integer()):
        raise ValueError(f"nranks must be a whole number from 1 to {system.max_ranks:,}; got {nranks!r}")
    nranks = int(nranks)
    if not 1 <= nranks <= system.max_ranks:
        raise ValueError(f"nranks={nranks} is outside 1..{system.max_ranks:,} for {system.name}")
    return nranks


class _Optional(str):
    """An algorithm that came from 'all': dropped, not an error, where it does not fit."""


def _algorithm_list(algorithm, collective):
    if isinstance(algorithm, str):
        names = [a.strip() for a in algorithm.split(",") if a.strip()]
    else:
        names = list(algorithm)
    if not names:
        raise ValueError("no algorithm given; valid: " + ", ".join(for_collective(collective) + ["auto", "all"]))
    out = []
    for a in names:
        if a == "all":
            out += [_Optional(x) for x in for_collective(collective) if x not in out]
            continue
        check_algorithm(a, collective)
        if a not in out:
            out.append(a)
    return out


def candidates(system: System, nranks: int, collective: str, library_only: bool) -> list:
    """Algorithms ``auto`` chooses among: the system library's, or every applicable one."""
    algos = for_collective(collective)
    if library_only:
        lib = [a for a in algos if a in system.library_algorithms]
        algos = lib or algos
    return algos


class Compiled:
    """Plans of one (system, ranks, collective) packed for the kernel."""

    def __init__(self, system: System, nranks: int, collective: str, algorithms, library_only=True,
                 implementation=None):
        self.system, self.nranks, self.collective = system, nranks, collective
        self.implementation = implementation
        allowed = set(system.library_algorithms) if library_only else set(for_collective(collective))
        self.groups = []       # (requested name, [plan indices])
        self.plans = []
        cache = {}
        for name in algorithms:
            if name == "auto":
                members = []
                for a in candidates(system, nranks, collective, library_only):
                    try:      # the library's algorithms: no per-implementation entry
                        idx = self._plans_for(a, allowed, cache, implementation)
                    except _plans.NotApplicable:
                        continue
                    members += idx
                if not members:
                    if isinstance(name, _Optional):
                        continue
                    raise ValueError(f"no algorithm applies to {collective} on {system.name} with "
                                     f"{nranks} ranks")
                self.groups.append(("auto", members))
            else:
                try:
                    impl = implementation or (name if name in system.implementations else None)
                    self.groups.append((name, self._plans_for(name, allowed, cache, impl)))
                except _plans.NotApplicable as exc:
                    if isinstance(name, _Optional):
                        continue
                    ok = [a for a in for_collective(collective) if self._applies(a, allowed)]
                    raise ValueError(f"algorithm {name!r} does not fit {system.name} with {nranks} "
                                     f"ranks: {exc}; applicable: {', '.join(ok)}") from None
        if not self.groups:
            raise ValueError(f"none of {', '.join(algorithms)} applies to {collective} on "
                             f"{system.name} with {nranks} ranks")
        self._pack()

    def _applies(self, a, allowed):
        try:
            _plans.build(self.system, self.nranks, self.collective, a, allowed)
            return True
        except _plans.NotApplicable:
            return False

    def _plans_for(self, name, allowed, cache, impl=None):
        key = (name, impl)
        if key not in cache:
            spec = self.system.implementations.get(impl) if impl else None
            pls = _plans.build(with_step(self.system, spec["step_us"] if spec else 0.0),
                               self.nranks, self.collective, name,
                               allowed if name != "hier" else allowed | {"ring"})
            if spec:                # (fresh plans: build() makes new ones each call)
                for pl in pls:
                    pl.mul_hi, pl.mul_lo = spec["bw_factor"], spec["bw_factor_lo"]
                    pl.lat = max(0.0, pl.lat + spec["base_us"])
            cache[key] = list(range(len(self.plans), len(self.plans) + len(pls)))
            self.plans += pls
        return cache[key]

    def _pack(self):
        s = self.system
        P = len(self.plans)
        T = len(s.tiers)
        self.lat = np.array([p.lat for p in self.plans])
        self.coef = np.ascontiguousarray(np.array([p.coef for p in self.plans]).reshape(P, T))
        self.lsc = np.ascontiguousarray(np.array([p.logscale for p in self.plans]).reshape(P, T))
        self.red = np.array([p.red / (s.reduce_gbps * 1e3) for p in self.plans])
        self.mode = np.array([p.mode for p in self.plans], dtype=np.intc)
        self.pipe_d = np.array([p.pipe_d for p in self.plans], dtype=float)
        self.pipe_a = np.array([p.pipe_a for p in self.plans], dtype=float)
        # a plan may belong to several groups (e.g. ring and auto): one kernel row per (plan, group)
        rows = [(j, g) for g, (_, members) in enumerate(self.groups) for j in members]
        idx = np.array([j for j, _ in rows], dtype=np.intp)
        group = np.array([g for _, g in rows], dtype=np.intc)
        self.rowplan = idx
        self.overlap = int(s.overlap_reduce)
        self.k_args = kernel_args(
            self.coef[idx], self.lsc[idx], self.lat[idx], self.red[idx], self.mode[idx],
            self.pipe_d[idx], self.pipe_a[idx], group, tier_arrays(s),
            np.array([self.plans[j].mul_lo for j in idx]),
            np.array([self.plans[j].mul_hi for j in idx]))

    def alloc(self, n: int):
        G = len(self.groups)
        return [np.empty((G, n)) for _ in range(4)], np.empty((G, n), dtype=np.intc)

    def run(self, nbytes: np.ndarray, engine: str = "cython", buffers=None):
        """(time, latency, bandwidth, reduce) arrays [groups, sizes] and the chosen plan
        rows; ``buffers`` (from alloc) are filled in place when given."""
        out, choice = buffers if buffers is not None else self.alloc(len(nbytes))
        if engine == "cython":
            _kernels.evaluate(nbytes, *self.k_args, *out, choice, self.overlap)
        elif engine == "numpy":
            evaluate_numpy(nbytes, self.k_args, out, choice, self.overlap)
        else:
            raise ValueError(f"unknown engine {engine!r}; valid: cython, numpy")
        return out, choice


def with_step(system: System, step_us: float) -> System:
    """The system with ``step_us`` more software latency per step on every tier (how an
    implementation's own per-step overhead enters the plans)."""
    if not step_us:
        return system
    return replace(system, tiers=tuple(replace(t, lat_sw_us=max(0.0, t.lat_sw_us + step_us))
                                       for t in system.tiers))


def tier_arrays(system: System):
    """Per-tier (bytes/us, eff_lo, eff_hi, log eff_lo_bytes, log eff_hi_bytes) of a system."""
    t = system.tiers
    return (np.array([x.bw_gbps * 1e3 / x.oversub for x in t]),
            np.array([x.eff_lo for x in t]), np.array([x.eff_hi for x in t]),
            np.log([x.eff_lo_bytes for x in t]), np.log([x.eff_hi_bytes for x in t]))


def kernel_args(coef, lsc, lat, red, mode, pipe_d, pipe_a, group, tiers, mul_lo=1.0, mul_hi=1.0):
    """The kernel's arguments for plan rows (coef/logscale [rows, tiers], per-row latency,
    reduction us/byte, mode, pipelining, group) on tiers given by ``tier_arrays``;
    ``mul_lo``/``mul_hi`` (scalars or per row) scale the ends of each row's efficiency curve."""
    bw, eff_lo, eff_hi, llo, lhi = tiers
    R, T = coef.shape
    scale = np.exp(-lsc)                         # data of the sub-collective = n / scale
    cb = coef / bw
    e_lo = np.multiply.outer(np.broadcast_to(mul_lo, (R,)), eff_lo)
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
        c(pipe_d, dtype=float), c(pipe_a, dtype=float), c(group, dtype=np.intc))


def evaluate_numpy(nbytes, k_args, out, choice, overlap=0):
    """The kernel's formula vectorised with NumPy (used to check and to race the kernel)."""
    (cb, lo_n, hi_n, e_lo, e_hi, x0, slope, _, _, lat, red, mode, pipe_d, pipe_a, group) = k_args
    x = np.asarray(nbytes, dtype=float)
    pos = x > 0
    lx = np.log(np.where(pos, x, 1.0))
    ot, ol, ob, orr = out
    ot.fill(np.inf)
    for j in range(len(lat)):
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
        d, a = pipe_d[j], pipe_a[j]
        if d > 1.0 and a > 0.0:
            kk = np.maximum(1.0, np.sqrt((d - 1.0) * bt / a))
            lt = lt + (d - 1.0 + kk) * a
            bt = bt * (1.0 + (d - 1.0) / kk)
        elif d > 0.0:
            lt = lt + d * a
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


_compiled_cache: dict = {}


def compile_plans(system, nranks, collective, algorithms, library_only=True,
                  implementation=None) -> Compiled:
    key = (id(system), system.name, nranks, collective,
           tuple((a, isinstance(a, _Optional)) for a in algorithms), library_only, implementation)
    c = _compiled_cache.get(key)
    if c is None or c.system is not system:
        if len(_compiled_cache) > 4096:
            _compiled_cache.clear()
        c = _compiled_cache[key] = Compiled(system, nranks, collective, algorithms, library_only,
                                            implementation)
    return c


def _frame(comp: Compiled, nbytes, out, choice):
    s, p, coll = comp.system, comp.nranks, comp.collective
    factor = COLLECTIVES[coll].busbw(p)
    n = len(nbytes)
    time, lat, bw, red = out
    frames = []
    for g, (name, _) in enumerate(comp.groups):
        ch = choice[g]
        planidx = np.where(ch >= 0, comp.rowplan[np.maximum(ch, 0)], -1)
        labels = np.array([pl.label for pl in comp.plans] + [""], dtype=object)
        algos = np.array([pl.algorithm for pl in comp.plans] + [name if name != "auto" else ""],
                         dtype=object)
        t = time[g]
        with np.errstate(all="ignore"):        # sub-picosecond times of degenerate systems
            algbw = np.where(t > 0, nbytes / (t * 1e3), 0.0)
            busbw = algbw * factor
        algo_col = algos[planidx]
        if name != "auto":
            algo_col = np.full(n, name, dtype=object)
        else:
            algo_col = np.where(planidx >= 0, algo_col, comp.groups[g][0])
        frames.append(pd.DataFrame({
            "source": "model", "system": s.name, "collective": coll,
            "algorithm": algo_col, "variant": labels[planidx], "requested": name,
            "nranks": p, "nbytes": nbytes.astype(np.int64), "time_us": t,
            "algbw_gbps": algbw, "busbw_gbps": busbw,
            "latency_us": lat[g], "bandwidth_us": bw[g], "reduce_us": red[g],
        }))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return df


def estimate(system, nbytes, *, collective: str = "allreduce", algorithm="auto", nranks=None,
             library_only: bool = True, engine: str = "cython",
             implementation: str | None = None) -> pd.DataFrame:
    """Model time of a collective: one row per (size, algorithm).

    system: preset name, TOML path or System.  nbytes: scalar or array of sizes in bytes.
    algorithm: a name, a comma-separated list, a list, ``"auto"`` (the cheapest; the
    ``algorithm`` column names the one chosen) or ``"all"``.  nranks=None: the whole system.
    library_only: ``auto`` chooses among the algorithms the system's library really runs.
    implementation: whose per-implementation entry (``system.implementations``, from
    ``collbench calibrate``) applies to every algorithm, e.g. ``"mpi"`` for MPI_Allreduce
    modelled as ``auto``; by default an algorithm asked for by name uses its own entry.
    Rows outside the data a calibrated system was fitted to say so in ``extrapolated``.
    """
    sys_ = load_system(system)
    check_collective(collective)
    p = check_nranks(sys_, nranks)
    sizes = check_sizes(nbytes)
    algos = _algorithm_list(algorithm, collective)
    comp = compile_plans(sys_, p, collective, algos, library_only, implementation)
    out, choice = comp.run(sizes, engine)
    df = _frame(comp, sizes, out, choice)
    if sys_.calibration:
        from .calibrate import extrapolation
        df["extrapolated"] = extrapolation(sys_, df["nbytes"], p, collective, df["requested"],
                                           implementation)
    order = np.argsort(np.tile(np.arange(len(sizes)), len(comp.groups)), kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    return finish_frame(df)


def sweep(systems=None, nbytes=None, *, algorithms="auto", nranks=None, collectives="allreduce",
          library_only: bool = True, progress=None) -> pd.DataFrame:
    """Evaluate a grid: systems x collectives x rank counts x algorithms x sizes.

    systems: names/paths/Systems (default every preset).  nranks: None (whole system), an
    int, or a list of ints and the words "full" (whole system) and "domain" (the innermost
    tier, e.g. one 8-GPU box); counts above a system's size are skipped for that system.  algorithms
    that do not fit a (system, ranks) are skipped rather than raising.
    """
    from .system import PRESETS
    systems = list(PRESETS) if systems is None else (
        [systems] if isinstance(systems, (str, System)) else list(systems))
    if nbytes is None:
        nbytes = 2.0 ** np.arange(3, 35)
    sizes = check_sizes(nbytes)
    collectives = [collectives] if isinstance(collectives, str) else list(collectives)
    frames = []
    todo = [(s, c) for s in systems for c in collectives]
    for idx, (sname, coll) in enumerate(todo):
        s = load_system(sname)
        check_collective(coll)
        algos = _algorithm_list(algorithms, coll)
        counts = [s.max_ranks] if nranks is None else (
            [nranks] if isinstance(nranks, (int, np.integer, str)) else list(nranks))
        counts = [s.max_ranks if c == "full" else s.tiers[0].size if c == "domain" else c
                  for c in counts]
        for p in dict.fromkeys(counts):
            if p > s.max_ranks:
                continue
            p = check_nranks(s, p)
            try:      # in a grid, algorithms that do not fit are left out, not errors
                comp = compile_plans(s, p, coll, [_Optional(a) for a in algos], library_only)
            except ValueError:
                continue
            out, choice = comp.run(sizes)
            frames.append(_frame(comp, sizes, out, choice))
        if progress:
            progress(idx + 1, len(todo), f"{s.name} {coll}")
    if not frames:
        return finish_frame(pd.DataFrame(columns=SCHEMA_COLUMNS))
    return finish_frame(pd.concat(frames, ignore_index=True))
