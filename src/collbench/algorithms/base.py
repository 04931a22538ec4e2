"""What every algorithm module builds on.

An :class:`Algorithm` holds, per collective, three things that must describe the same
algorithm: the **plan** builder (the cost formula reduced to coefficients for the Cython
kernel), the plain-Python **reference** transcription of that formula (one size at a time,
written without the plan machinery, so the tests can hold the two against each other), and
the **real implementation** run by ``collbench run``.  Each algorithm module registers
them with decorators::

    ring = Algorithm("ring", "reduce-scatter then all-gather around a ring")

    @ring.plan("allreduce")
    def _(g: Geometry, ctx: PlanContext) -> Plan: ...

    @ring.reference("allreduce")
    def _(r: RefLevels) -> tuple[float, float, float]: ...

    @ring.run("allreduce")
    def _(ctx, send, recv): ...

A cost plan for a fixed (system, ranks, collective) has the shape

    time(n) = latency + B(n) + n * red
    B(n)    = SUM or MAX over tiers k of  coef[k] * n / (bw[k] * eff_k(n * exp(logscale[k])))

with an optional pipelining step (chains: best segment count).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotApplicable

SUM, MAX = 0, 1


# ---- collectives -------------------------------------------------------------------------

@dataclass(frozen=True)
class Collective:
    name: str
    busbw: Callable[[int], float]   # p -> nccl-tests bus bandwidth factor
    reduces: bool
    rooted: bool
    description: str
    nccl_program: str               # nccl-tests' program name


COLLECTIVES = {c.name: c for c in (
    Collective("allreduce", lambda p: 2 * (p - 1) / p, True, False,
               "every rank gets the element-wise reduction of all inputs", "all_reduce_perf"),
    Collective("reduce_scatter", lambda p: (p - 1) / p, True, False,
               "rank i gets block i of the reduction (size = whole array)", "reduce_scatter_perf"),
    Collective("all_gather", lambda p: (p - 1) / p, False, False,
               "every rank gets every rank's block (size = whole array)", "all_gather_perf"),
    Collective("broadcast", lambda p: 1.0, False, True, "root's buffer to every rank",
               "broadcast_perf"),
    Collective("reduce", lambda p: 1.0, True, True, "reduction of all inputs at the root",
               "reduce_perf"),
    Collective("all_to_all", lambda p: (p - 1) / p, False, False,
               "rank i sends block j to rank j (size = bytes sent per rank)", "alltoall_perf"),
    Collective("sendrecv", lambda p: 1.0, False, False,
               "rank i sends its buffer to rank i+1 while receiving from rank i-1",
               "sendrecv_perf"),
)}


# ---- plans -------------------------------------------------------------------------------

@dataclass
class Plan:
    algorithm: str
    label: str
    ntiers: int
    lat: float = 0.0                  # us, constant part
    red: float = 0.0                  # reduced bytes per byte of n (divided by reduce rate later)
    mode: int = SUM
    pipe_d: float = 0.0               # chain hops for pipelined plans (0: not pipelined)
    pipe_a: float = 0.0               # mean latency per hop for pipelined plans
    mul_lo: float = 1.0               # implementation's efficiency relative to the tiers'
    mul_hi: float = 1.0               # curves, at small / large sizes
    floor: float = 0.0                # us: the latency no algorithm can beat (latency_floor)
    # the library's channel count follows the size (System.protocol_channels): bytes of n at
    # which every channel runs (0: always all) and the fraction one channel carries
    chan_full: float = 0.0
    chan_min: float = 1.0
    # the protocol's own size ramp (eff_lo_factor, eff_lo_bytes, eff_hi_bytes) in place of
    # the tiers' (NCCL's tree correction table; NaN factor: none) and how many innermost
    # tiers run with no ramp at all (system.plan_ramp); None: the tiers' ramps
    ramp: tuple[float, float, float, int] | None = None
    coef: list[float] = field(default_factory=list)
    logscale: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.coef:
            self.coef = [0.0] * self.ntiers
            self.logscale = [0.0] * self.ntiers


class Geometry:
    """How ``p`` ranks fill a system's tiers (inner tiers first, whole groups)."""

    def __init__(self, system: Any, p: int, *, tiers: list[int] | None = None,
                 scale: float = 1.0) -> None:
        self.system = system
        self.p = p
        self.scale = scale           # data of this (sub)collective = n / scale
        all_tiers = system.tiers
        ks = list(range(len(all_tiers))) if tiers is None else list(tiers)
        self.ks: list[int] = []
        self.u: list[int] = []
        cap = 1
        for k in ks:
            if cap >= p and self.ks:
                break
            self.ks.append(k)
            size = all_tiers[k].size
            self.u.append(min(size, -(-p // cap)))
            cap *= size
        # R[i]: ranks inside one group of the tier below ks[i]; R[L] = p
        self.R = [1]
        for uu in self.u[:-1]:
            self.R.append(min(p, self.R[-1] * uu))
        self.R.append(p)
        self.L = len(self.ks)
        self.tiers = [all_tiers[k] for k in self.ks]
        self.a = [x.lat_us for x in self.tiers]
        # single-partner algorithms use one link of a full mesh
        self.lf = [max(1, x.size - 1) if x.topology == "fullmesh" else 1 for x in self.tiers]
        # ...but a library that lays its rings and trees over several channels on different
        # links (NCCL, RCCL: ``System.channels_span_mesh``) uses every link of the mesh
        self.lfc = [1] * len(self.tiers) if system.channels_span_mesh else self.lf
        # peers whose outermost differing tier is i
        self.peers = [self.R[i + 1] - self.R[i] for i in range(self.L)]
        # number of groups of the tier below i spanned by the ranks (G[0] = p)
        self.G = [-(-p // self.R[i]) for i in range(self.L)]

    def tier_of_distance(self, d: int) -> int:
        for i in range(self.L):
            if d < self.R[i + 1]:
                return i
        return self.L - 1

    def ring_hops(self) -> list[int]:
        """Hops of a ring of p ranks whose outermost boundary is each tier: p - G1 inside
        the innermost groups, G_i - G_i+1 at tier i (NCCL's intra-/inter-node steps)."""
        c = [(self.p if self.p > 1 else 0)] + [g if g > 1 else 0 for g in self.G[1:]] + [0]
        return [c[i] - c[i + 1] for i in range(self.L)]

    def ring_shares(self) -> list[float]:
        """Per level, the share of what a chip sends in a ring (or chain) that its link of
        that tier carries: an inner tier the hops that stay inside it (the library rotates
        which chip leaves a group over its channels), the outermost one boundary every R
        ranks."""
        hops = self.ring_hops()
        return [1 / self.R[i] if i == self.L - 1 else hops[i] / self.p for i in range(self.L)]

    def ring_steps(self, rounds: int) -> list[int]:
        """Steps per tier for ``rounds`` trips around the ring (NCCL's split of ring
        latency into intra- and inter-node steps, generalised to any number of tiers)."""
        steps = [rounds * x for x in self.ring_hops()]
        if self.p > 1:
            steps[self.L - 1] -= rounds
        return steps

    def switched(self) -> bool:
        return all(t.topology in ("switch", "fullmesh") for t in self.tiers)

    def new(self, algo: str, label: str | None = None, mode: int = SUM) -> Plan:
        return Plan(algo, label or algo, len(self.system.tiers), mode=mode)

    def add(self, plan: Plan, i: int, coef: float, senders: int | None = None) -> None:
        """Add ``coef`` bytes per byte of this (sub)collective's data on level i, where
        ``senders`` chips of one group of the tier send at once (default: all R[i+1] of
        them), which matters where the group shares a capacity (``Tier.shared_gbps``)."""
        k = self.ks[i]
        share = self.tiers[i].share(self.R[i + 1] if senders is None else senders)
        plan.coef[k] += coef / self.scale / share
        plan.logscale[k] = -math.log(self.scale)


@dataclass
class PlanContext:
    """What a plan builder may need beyond the geometry: the algorithms the library allows
    (hier chooses among them), a way to build another algorithm's flat plan, and the
    hierarchical plans the library runs (``System.hier_plans``; empty: any)."""
    collective: str
    allowed: frozenset[str]
    flat: Callable[[str, str, Geometry], Plan]
    hier_labels: tuple[str, ...] = ()   # the library's hierarchical plans (empty: every one)


# Physical floor of any collective's latency (issue 12: no algorithm may beat it at any scale).
# A message between two chips takes at least MIN_ROUND_US (the lowest one-hop latencies
# published for NVLink/UB are above it; NCCL's LL per-step NVLink constant is 0.6 us), and a chip
# injects at most 200 M messages per second (MSG_US per message).
MIN_ROUND_US = 0.3
MSG_US = 0.005


def latency_floor(algorithm: Algorithm, p: int) -> float:
    """At least ceil(log2 p) rounds for any algorithm; a direct one also sends p-1 messages
    per shot."""
    if p <= 1:
        return 0.0
    rounds = ceil_log2(p) * MIN_ROUND_US
    direct = algorithm.direct_shots * (MIN_ROUND_US + (p - 1) * MSG_US)
    return max(rounds, direct)


def log2floor(p: int) -> int:
    return p.bit_length() - 1


def ceil_log2(p: int) -> int:
    return (p - 1).bit_length()


def chain_pipeline(d: float, a: float, nb: float) -> tuple[float, float]:
    """(latency, bandwidth) of moving data through a chain of ``d`` hops in segments, each
    segment paying ``a`` per hop, ``nb`` the bandwidth time of the whole data over the
    slowest hop, at the best segment count k = sqrt((d - 1) nb / a) (at least 1): the
    plain-Python twin of the kernel's pipelining step (``Plan.pipe_d``, ``Plan.pipe_a``)."""
    if d > 1 and a > 0:
        k = max(1.0, math.sqrt((d - 1) * nb / a))
        return (d - 1 + k) * a, (1 + (d - 1) / k) * nb
    return d * a, nb


def need_switched(g: Geometry, algo: str) -> None:
    if not g.switched():
        raise NotApplicable(f"'{algo}' needs direct paths between all ranks (switch or full-mesh "
                            "tiers), and a tier used here is a ring or torus")


def need_innet(g: Geometry, algo: str) -> None:
    if g.L != 1 or not g.tiers[0].innet:
        if any(t.innet for t in g.system.tiers):
            raise NotApplicable(f"'{algo}' needs all ranks under one reducing switch tier; "
                                "these ranks span several tiers: use 'hier'")
        raise NotApplicable(f"'{algo}' needs a tier with in-switch reduction, and "
                            f"{g.system.name} has none")


@dataclass
class RefContext:
    """What a reference may need beyond its levels: the allowed algorithms, another
    algorithm's flat reference, the total of (lat, bw, red bytes), a hier label asked for,
    the library's hierarchical plans (empty: any)."""
    allowed: frozenset[str]
    flat: Callable[[str, RefLevels], tuple[float, float, float]]
    total: Callable[[tuple[float, float, float]], float]
    label: str = ""
    hier_labels: tuple[str, ...] = ()


# ---- the plain-Python reference's view of a system ---------------------------------------

class RefLevels:
    """The reference's own, loop-by-loop view of ``p`` ranks on a system for data of ``m``
    bytes (= n / scale): ``lv`` is [(tier, u, R)], u groups of R ranks at each level."""

    def __init__(self, system: Any, p: int, n: float, *, levels: list | None = None,
                 scale: float = 1.0, ctx: Any = None, collective: str = "",
                 pipelined: bool = True) -> None:
        self.system, self.p, self.n, self.ctx = system, p, n, ctx
        self.collective = collective
        # False: a sub-collective inside an enclosing algorithm (hier's outer step), which
        # pipelines the whole: the reference leaves its hops out of the latency and puts
        # them in ``pipe`` (hops, mean latency per hop), as a plan's pipe_d / pipe_a
        self.pipelined = pipelined
        self.pipe: tuple[float, float] = (0.0, 0.0)
        self.m = n / scale
        self.lv = levels if levels is not None else self.levels(system, p)
        self.L = len(self.lv)

    @staticmethod
    def levels(system: Any, p: int) -> list:
        out: list = []
        cap = R = 1
        for t in system.tiers:
            if out and cap >= p:
                break
            u = min(t.size, math.ceil(p / cap))
            out.append([t, u, R])
            R = min(p, R * u)
            cap *= t.size
        return out

    @staticmethod
    def lat_of(t: Any) -> float:
        return float(t.lat_hw_us + t.lat_sw_us)

    def lat(self, i: int) -> float:
        return self.lat_of(self.lv[i][0])

    def innermost(self, i: int) -> bool:
        """Level i is the system's innermost tier (a sub-collective's levels may start
        further out: hier's outer step)."""
        return self.lv[i][0] is self.system.tiers[0]

    def rate(self, i: int, per: float = 1.0, senders: int | None = None) -> float:
        """bytes per microsecond achieved on level i for this (sub)collective's data, moved
        in pieces of ``m / per`` bytes (a ring step moves m / p), with ``senders`` chips of
        one group of the tier sending at once (default: the whole group, u x R of them)."""
        t = self.lv[i][0]
        return float(t.bw_gbps * 1e3 / t.oversub * t.efficiency(self.m / per)
                     * t.share(self.chips(i) if senders is None else senders))

    def chips(self, i: int) -> int:
        """Chips in one group of level i's tier (u groups of R, at most p)."""
        return int(min(self.p, self.lv[i][1] * self.lv[i][2]))

    def link(self, i: int, channels: bool = False) -> int:
        """Links of a full mesh one partner's traffic is confined to (1 of size-1 are used);
        ``channels``: a ring or tree of a library whose channels span the mesh uses them all."""
        t = self.lv[i][0]
        if channels and self.system.channels_span_mesh:
            return 1
        return (t.size - 1) if (t.topology == "fullmesh" and t.size > 1) else 1

    def level_of(self, a: int, b: int) -> int:
        """Outermost level at which ranks a and b sit in different groups."""
        lv = 0
        for i in range(self.L):
            if a // self.lv[i][2] != b // self.lv[i][2]:
                lv = i
        return lv

    def ring_shares(self) -> list[float]:
        """Per level, the share of a chip's ring (or chain) traffic its tier link carries
        (``Geometry.ring_shares``, from the ring's edges)."""
        e = self.ring_edges()
        return [1 / self.lv[i][2] if i == self.L - 1 else e[i] / self.p for i in range(self.L)]

    def ring_edges(self) -> list[int]:
        e = [0] * self.L
        if self.p > 1:
            for r in range(self.p):
                e[self.level_of(r, (r + 1) % self.p)] += 1
        return e

    def dist_level(self, d: int) -> int:
        for i in range(self.L):
            nxt = self.lv[i + 1][2] if i + 1 < self.L else self.p
            if d < nxt:
                return i
        return self.L - 1

    def peers(self, i: int) -> int:
        nxt = self.lv[i + 1][2] if i + 1 < self.L else self.p
        return int(nxt - self.lv[i][2])

    def switched(self) -> bool:
        return all(x[0].topology in ("switch", "fullmesh") for x in self.lv)


# ---- the algorithm record ----------------------------------------------------------------

PlanFn = Callable[[Geometry, PlanContext], "Plan | list[Plan]"]
RefFn = Callable[[RefLevels], tuple[float, float, float]]
RunFn = Callable[..., None]


@dataclass
class Algorithm:
    """One algorithm: its name, what it is, and per collective its plan builder, reference
    transcription and real implementation.  ``model_as`` (the MPI library's own call): not
    modelled itself; the model predicts it as that algorithm (the library's choice)."""
    name: str
    description: str
    model_as: str | None = None
    plans: dict[str, PlanFn] = field(default_factory=dict)
    references: dict[str, RefFn] = field(default_factory=dict)
    runs: dict[str, RunFn] = field(default_factory=dict)
    run_descriptions: dict[str, str] = field(default_factory=dict)
    run_variants: dict[str, str] = field(default_factory=dict)
    direct_shots: int = 0       # a direct algorithm: rounds in which every rank sends p-1 messages

    def plan(self, *collectives: str) -> Callable[[PlanFn], PlanFn]:
        def deco(fn: PlanFn) -> PlanFn:
            for c in collectives:
                self.plans[c] = fn
            return fn
        return deco

    def reference(self, *collectives: str) -> Callable[[RefFn], RefFn]:
        def deco(fn: RefFn) -> RefFn:
            for c in collectives:
                self.references[c] = fn
            return fn
        return deco

    def run(self, *collectives: str, description: str, variant: str | None = None
            ) -> Callable[[RunFn], RunFn]:
        """Register the real implementation; ``variant``: the exact model plan it runs (the
        label ``estimate(algorithm=...)`` accepts, e.g. ``hier(ring>rhd)``)."""
        def deco(fn: RunFn) -> RunFn:
            for c in collectives:
                self.runs[c] = fn
                self.run_descriptions[c] = description
                if variant:
                    self.run_variants[c] = variant
            return fn
        return deco

    @property
    def modelled(self) -> tuple[str, ...]:
        return tuple(c for c in COLLECTIVES if c in self.plans)

    @property
    def runnable(self) -> tuple[str, ...]:
        return tuple(c for c in COLLECTIVES if c in self.runs)


def c_loops(ctx: Any) -> Any:
    """The run context's C step loops (``collbench.runtime._steps``), or None: then the
    Python loops beside the algorithm run (the tests' simulated communicator, an MPI library
    the loops were not built for, ``COLLBENCH_STEPS=python``)."""
    return getattr(ctx, "steps", None)
