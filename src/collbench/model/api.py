"""The model as an API: ``estimate`` (a typed DataFrame), ``sweep`` (a grid) and
``planner`` (the array path: compile once, evaluate sizes as NumPy arrays, no DataFrame)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..algorithms import AUTO, COLLECTIVES, check_algorithm, check_collective, for_collective
from ..algorithms.hier import parse_label
from ..errors import InputError, NotApplicable
from ..results.schema import EXTRAPOLATED, MODEL_COLUMNS, typed
from ..units import check_sizes
from .engine import Compiled, Optional_, compile_plans
from .extrapolation import extrapolation
from .system import PRESETS, System, load_system

MAX_ESTIMATE_CELLS = 10_000_000     # sizes x algorithms of one estimate (about 1 GB of frame)

def check_nranks(system: System, nranks: Any) -> int:
    if nranks is None:
        return system.max_ranks
    if isinstance(nranks, bool) or not isinstance(nranks, (int, np.integer)) and not (
            isinstance(nranks, float) and nranks.is_integer()):
        raise InputError(f"nranks must be a whole number from 1 to {system.max_ranks:,}; "
                         f"got {str(nranks)[:40]!r}")
    nranks = int(nranks)
    if not 1 <= nranks <= system.max_ranks:
        raise InputError(f"nranks={nranks} is outside 1..{system.max_ranks:,} for {system.name}")
    return nranks


def algorithm_list(algorithm: str | Iterable[str], collective: str) -> list[str]:
    """Names from 'ring,tree', a list, 'auto' or 'all' (every algorithm, optional each)."""
    if isinstance(algorithm, str):
        names = [a.strip() for a in algorithm.split(",") if a.strip()]
    else:
        names = list(algorithm)
    if not names:
        raise InputError("no algorithm given; valid: "
                         + ", ".join(for_collective(collective) + [AUTO, "all"]))
    out: list[str] = []
    for a in names:
        if a == "all":
            out += [Optional_(x) for x in for_collective(collective) if x not in out]
            continue
        check_algorithm(a, collective)
        if a not in out:
            out.append(a)
    return out


@dataclass(frozen=True)
class Estimates:
    """The array path's answer: per requested algorithm (``names``) and size, the time and
    its latency, bandwidth and reduction terms in microseconds, and the plan chosen
    (``labels[plan]``; -1 for a size of 0)."""
    names: list[str]
    nbytes: np.ndarray
    time_us: np.ndarray          # [algorithms, sizes]
    latency_us: np.ndarray
    bandwidth_us: np.ndarray
    reduce_us: np.ndarray
    plan: np.ndarray             # [algorithms, sizes] index into labels / algorithms
    labels: list[str]
    algorithms: list[str]
    busbw_factor: float

    @property
    def busbw_gbps(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.where(self.time_us > 0, self.nbytes / (self.time_us * 1e3), 0.0) \
                * self.busbw_factor


class Planner:
    """Compile once, evaluate cheaply: the plans of one (system, ranks, collective,
    algorithms), evaluated for any array of sizes by the Cython kernel in one nogil pass.

    >>> pl = collbench.planner("dgx-h100", nranks=64, algorithm="ring,tree,auto")
    >>> pl.time_us(sizes)            # ndarray [3, len(sizes)]
    """

    def __init__(self, system: System | str, *, nranks: int | None = None,
                 collective: str = "allreduce", algorithm: str | Iterable[str] = AUTO,
                 library_only: bool = True, implementation: str | None = None) -> None:
        sys_ = load_system(system)
        check_collective(collective)
        self.system = sys_
        self.nranks = check_nranks(sys_, nranks)
        self.collective = collective
        self.compiled: Compiled = compile_plans(sys_, self.nranks, collective,
                                                algorithm_list(algorithm, collective),
                                                library_only, implementation)
        rowplan = self.compiled.rowplan
        self._labels = [self.compiled.plan_labels[j] for j in rowplan]
        self._algos = [self.compiled.plan_algorithms[j] for j in rowplan]
        self.names = [g[0] for g in self.compiled.groups]

    def evaluate(self, nbytes: Any, *, engine: str = "cython") -> Estimates:
        sizes = check_sizes(nbytes)
        out, choice = self.compiled.run(sizes, engine)
        return Estimates(self.names, sizes, out[0], out[1], out[2], out[3], choice,
                         self._labels, self._algos, COLLECTIVES[self.collective].busbw(self.nranks))

    def time_us(self, nbytes: Any) -> np.ndarray:
        """Time [algorithms, sizes] in microseconds (sizes checked once, no frame)."""
        sizes = check_sizes(nbytes)
        return self.compiled.run(sizes)[0][0]


def planner(system: System | str, **kw: Any) -> Planner:
    """A :class:`Planner`: the documented array path for loops of what-if queries."""
    return Planner(system, **kw)


@dataclass
class _FrameMeta:
    """Per compiled plan set: the categorical dtypes and code maps of its frames (built once;
    a frame of one size then costs little more than pandas' own constructor)."""
    source: pd.CategoricalDtype
    system: pd.CategoricalDtype
    collective: pd.CategoricalDtype
    algorithm: pd.CategoricalDtype
    variant: pd.CategoricalDtype
    requested: pd.CategoricalDtype
    row_algo: np.ndarray          # per kernel row (+1 for "none": size 0): algorithm code
    row_label: np.ndarray
    group_algo: np.ndarray        # per group: the code a size of 0 (or a named group) shows
    group_label: np.ndarray
    named: np.ndarray             # per group: asked for by name (its algorithm is the name)
    busbw: float


def _frame_meta(comp: Compiled) -> _FrameMeta:
    meta = getattr(comp, "_frame_meta", None)
    if meta is not None:
        return meta
    names = [g[0] for g in comp.groups]
    bases = ["hier" if parse_label(nm) else nm for nm in names]
    algo_cats = list(dict.fromkeys(comp.plan_algorithms + bases))
    label_cats = list(dict.fromkeys(comp.plan_labels + names))
    rows = comp.rowplan
    meta = _FrameMeta(
        pd.CategoricalDtype(["model"]), pd.CategoricalDtype([comp.system.name]),
        pd.CategoricalDtype([comp.collective]), pd.CategoricalDtype(algo_cats),
        pd.CategoricalDtype(label_cats), pd.CategoricalDtype(names),
        np.array([algo_cats.index(comp.plan_algorithms[j]) for j in rows] + [0], np.int16),
        np.array([label_cats.index(comp.plan_labels[j]) for j in rows] + [0], np.int16),
        np.array([algo_cats.index(a) for a in bases], np.int16),
        np.array([label_cats.index(a) for a in names], np.int16),
        np.array([nm != AUTO for nm in names]),
        COLLECTIVES[comp.collective].busbw(comp.nranks))
    comp._frame_meta = meta            # type: ignore[attr-defined]
    return meta


def _frame(comp: Compiled, nbytes: np.ndarray, out: list[np.ndarray], choice: np.ndarray,
           extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """Rows size-major (for each size, each requested algorithm), model columns only."""
    m = _frame_meta(comp)
    G, n = choice.shape
    N = G * n
    if G == 1:
        time, lat, bw, red, ch = out[0][0], out[1][0], out[2][0], out[3][0], choice[0]
        x = nbytes
        group_of_row = np.zeros(N, dtype=np.int16)
    else:
        time, lat, bw, red = (a.T.ravel() for a in out)
        ch = choice.T.ravel()
        x = np.repeat(nbytes, G)
        group_of_row = np.tile(np.arange(G, dtype=np.int16), n)
    if m.named.all():
        a_codes = m.group_algo[group_of_row]
    else:
        a_codes = m.row_algo[ch]                # ch = -1 (size 0) reads the extra entry
        a_codes = np.where(m.named[group_of_row], m.group_algo[group_of_row], a_codes)
    l_codes = m.row_label[ch]
    zero = ch < 0
    if zero.any():
        a_codes = np.where(zero, m.group_algo[group_of_row], a_codes)
        l_codes = np.where(zero, m.group_label[group_of_row], l_codes)
    with np.errstate(all="ignore"):        # sub-picosecond times of degenerate systems
        algbw = np.where(time > 0, x / (time * 1e3), 0.0)
        busbw = algbw * m.busbw
    cat = pd.Categorical.from_codes
    const = np.zeros(N, dtype=np.int8)
    cols = {
        "source": cat(const, dtype=m.source), "system": cat(const, dtype=m.system),
        "collective": cat(const, dtype=m.collective),
        "algorithm": cat(a_codes, dtype=m.algorithm), "variant": cat(l_codes, dtype=m.variant),
        "requested": cat(group_of_row, dtype=m.requested),
        "nranks": np.full(N, comp.nranks, dtype=np.int64), "nbytes": x.astype(np.int64),
        "time_us": time, "algbw_gbps": algbw, "busbw_gbps": busbw,
        "latency_us": lat, "bandwidth_us": bw, "reduce_us": red,
    }
    if extra:
        cols.update(extra)
    return pd.DataFrame(cols, copy=False)


def estimate(system: System | str, nbytes: Any, *, collective: str = "allreduce",
             algorithm: str | Iterable[str] = AUTO, nranks: int | None = None,
             library_only: bool = True, engine: str = "cython",
             implementation: str | None = None) -> pd.DataFrame:
    """Model time of a collective: one row per (size, algorithm), model columns only.

    system: preset name, TOML path or System.  nbytes: scalar or array of sizes in bytes.
    algorithm: a name, a comma-separated list, a list, ``"auto"`` (the cheapest; the
    ``algorithm`` column names the one chosen, ``variant`` the exact plan), ``"all"``, or a
    hier plan's exact label (``"hier(ring>rhd)"``).  nranks=None: the whole system.
    library_only: ``auto`` chooses among the algorithms the system's library really runs.
    implementation: whose per-implementation entry (``system.implementations``, from
    ``collbench calibrate``) applies to every algorithm, e.g. ``"mpi"`` for MPI_Allreduce
    modelled as ``auto``; by default an algorithm asked for by name uses its own entry.
    A calibrated system adds ``extrapolated``: why a row lies beyond its data ('' if not).
    """
    sys_ = load_system(system)
    check_collective(collective)
    p = check_nranks(sys_, nranks)
    sizes = check_sizes(nbytes)
    algos = algorithm_list(algorithm, collective)
    if len(sizes) * len(algos) > MAX_ESTIMATE_CELLS:
        raise InputError(f"{len(sizes):,} sizes x {len(algos)} algorithms is more than "
                         f"{MAX_ESTIMATE_CELLS:,} rows; use collbench.planner() for arrays")
    comp = compile_plans(sys_, p, collective, algos, library_only, implementation)
    out, choice = comp.run(sizes, engine)
    extra = None
    if sys_.calibration:
        G = len(comp.groups)
        req = np.tile(np.array([g[0] for g in comp.groups], dtype=object), len(sizes))
        why = extrapolation(sys_, np.repeat(sizes, G), p, collective, req, implementation)
        extra = {"extrapolated": pd.array(why, dtype=EXTRAPOLATED["extrapolated"])}
    return _frame(comp, sizes, out, choice, extra)


def sweep(systems: Sequence[System | str] | System | str | None = None, nbytes: Any = None, *,
          algorithms: str | Iterable[str] = AUTO, nranks: Any = None,
          collectives: str | Iterable[str] = "allreduce", library_only: bool = True,
          progress: Callable[[int, int, str], None] | None = None) -> pd.DataFrame:
    """Evaluate a grid: systems x collectives x rank counts x algorithms x sizes.

    systems: names/paths/Systems (default every preset).  nranks: None (whole system), an
    int, or a list of ints and the words "full" (whole system) and "domain" (the innermost
    tier, e.g. one 8-GPU box); counts above a system's size are skipped for that system.
    Algorithms that do not fit a (system, ranks) are skipped rather than raising.
    """
    names = list(PRESETS) if systems is None else (
        [systems] if isinstance(systems, (str, System)) else list(systems))
    sizes = check_sizes(2.0 ** np.arange(3, 35) if nbytes is None else nbytes)
    colls = [collectives] if isinstance(collectives, str) else list(collectives)
    for c in colls:
        check_collective(c)
    frames = []
    rows = 0
    todo = [(s, c) for s in names for c in colls]
    for idx, (sname, coll) in enumerate(todo):
        s = load_system(sname)
        algos: list[str] = [Optional_(a) for a in algorithm_list(algorithms, coll)]
        asked = [s.max_ranks] if nranks is None else (
            [nranks] if isinstance(nranks, (int, np.integer, str)) else list(nranks))
        for a in asked:
            if isinstance(a, str) and a not in ("full", "domain"):
                raise InputError(f"rank count {a!r}: use numbers, 'full' or 'domain'")
        counts = [s.max_ranks if a == "full" else s.tiers[0].size if a == "domain" else int(a)
                  for a in asked]
        for p in dict.fromkeys(counts):
            if p > s.max_ranks:
                continue
            p = check_nranks(s, p)
            try:      # in a grid, algorithms that do not fit are left out, not errors
                comp = compile_plans(s, p, coll, algos, library_only)
            except NotApplicable:
                continue
            rows += len(sizes) * len(comp.groups)
            if rows > MAX_ESTIMATE_CELLS:
                raise InputError(f"this sweep is more than {MAX_ESTIMATE_CELLS:,} rows; use fewer "
                                 "sizes, systems or algorithms, or collbench.planner() for arrays")
            out, choice = comp.run(sizes)
            frames.append(_frame(comp, sizes, out, choice))
        if progress:
            progress(idx + 1, len(todo), f"{s.name} {coll}")
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in MODEL_COLUMNS.items()})
    return typed(pd.concat(frames, ignore_index=True))
