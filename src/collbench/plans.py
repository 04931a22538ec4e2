"""Cost plans: what an algorithm costs on a system, reduced to coefficients.

Every algorithm's cost for a fixed (system, ranks, collective) has the shape

    time(n) = latency + B(n) + n * red
    B(n)    = SUM or MAX over tiers k of  coef[k] * n / (bw[k] * eff_k(n * exp(logscale[k])))

with an optional pipelining step (broadcast/reduce along a chain, best segment count).
The plan builder below turns the formulas (ring, tree, rhd, ...) into those numbers once;
the Cython kernel (``collbench._kernels``) then evaluates millions of sizes with them.
``collbench.reference`` computes the same formulas directly, one size at a time, and the
tests hold the two against each other.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

SUM, MAX = 0, 1


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
    coef: list = field(default_factory=list)
    logscale: list = field(default_factory=list)

    def __post_init__(self):
        if not self.coef:
            self.coef = [0.0] * self.ntiers
            self.logscale = [0.0] * self.ntiers


class Geometry:
    """How ``p`` ranks fill a system's tiers (inner tiers first, whole groups)."""

    def __init__(self, system, p: int, *, tiers=None, scale: float = 1.0):
        self.system = system
        self.p = p
        self.scale = scale           # data of this (sub)collective = n / scale
        all_tiers = system.tiers
        ks = list(range(len(all_tiers))) if tiers is None else list(tiers)
        self.ks = []
        self.u = []
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
        t = [all_tiers[k] for k in self.ks]
        self.tiers = t
        self.a = [x.lat_us for x in t]
        # single-partner algorithms use one link of a full mesh
        self.lf = [max(1, x.size - 1) if x.topology == "fullmesh" else 1 for x in t]
        # peers whose outermost differing tier is i
        self.peers = [self.R[i + 1] - self.R[i] for i in range(self.L)]
        # number of groups of the tier below i spanned by the ranks (G[0] = p)
        self.G = [-(-p // self.R[i]) for i in range(self.L)]

    def tier_of_distance(self, d: int) -> int:
        for i in range(self.L):
            if d < self.R[i + 1]:
                return i
        return self.L - 1

    def ring_steps(self, rounds: int):
        """Steps per tier for ``rounds`` trips around the ring (NCCL's split of ring
        latency into intra- and inter-node steps, generalised to any number of tiers)."""
        c = [(self.p if self.p > 1 else 0)] + [g if g > 1 else 0 for g in self.G[1:]] + [0]
        e = [c[i] - c[i + 1] for i in range(self.L)]
        steps = [rounds * x for x in e]
        if self.p > 1:
            steps[self.L - 1] -= rounds
        return steps

    def switched(self) -> bool:
        return all(t.topology in ("switch", "fullmesh") for t in self.tiers)


class NotApplicable(ValueError):
    pass


def _new(g: Geometry, algo: str, label: str | None = None, mode=SUM) -> Plan:
    return Plan(algo, label or algo, len(g.system.tiers), mode=mode)


def _add(plan: Plan, g: Geometry, i: int, coef: float):
    k = g.ks[i]
    plan.coef[k] += coef / g.scale
    plan.logscale[k] = -math.log(g.scale)


def _log2floor(p):
    return p.bit_length() - 1


def _ceil_log2(p):
    return (p - 1).bit_length()


# ---- building blocks, all relative to a Geometry ---------------------------------------

def _ring(plan, g, rounds, bytes_per_rank, red):
    for i, s in enumerate(g.ring_steps(rounds)):
        plan.lat += s * g.a[i]
    for i in range(g.L):
        _add(plan, g, i, bytes_per_rank * g.lf[i] / g.R[i])
    plan.red += red / g.scale
    plan.mode = MAX


def _halving(plan, g, per_step_fraction, red_per_step, extra_coef, extra_red, rounds=1):
    """Recursive halving/doubling: step i (distance 2^(i-1)) moves per_step_fraction(i) * n."""
    p = g.p
    pp = 1 << _log2floor(p)
    for i in range(1, _log2floor(pp) + 1):
        j = g.tier_of_distance(1 << (i - 1))
        plan.lat += rounds * g.a[j]
        _add(plan, g, j, rounds * per_step_fraction(i) * g.lf[j])
        plan.red += red_per_step(i) / g.scale  # reduced once per step, whatever the rounds
    if pp != p:
        j = g.tier_of_distance(1)
        plan.lat += 2 * g.a[j]
        _add(plan, g, j, extra_coef * g.lf[j])
        plan.red += extra_red / g.scale
    plan.mode = SUM


def _direct(plan, g, frac_per_peer, rounds, red):
    plan.lat += rounds * g.a[g.L - 1]
    for i in range(g.L):
        _add(plan, g, i, rounds * frac_per_peer * g.peers[i])
    plan.red += red / g.scale
    plan.mode = MAX


def _innet(plan, g, coef):
    t = g.tiers[0]
    plan.lat += t.innet_lat_us
    _add(plan, g, 0, coef / t.innet_eff)
    plan.mode = MAX


def _chain(plan, g, red):
    steps = g.ring_steps(1)
    hops = sum(steps)
    plan.pipe_d = hops
    plan.pipe_a = sum(s * a for s, a in zip(steps, g.a)) / hops if hops else 0.0
    for i in range(g.L):
        _add(plan, g, i, g.lf[i] / g.R[i])
    plan.red += red / g.scale
    plan.mode = MAX


def _binomial(plan, g, red_per_step):
    for j in range(_ceil_log2(g.p)):
        i = g.tier_of_distance(1 << j)
        plan.lat += g.a[i]
        _add(plan, g, i, g.lf[i])
        plan.red += red_per_step / g.scale
    plan.mode = SUM


def _need_switched(g, algo):
    if not g.switched():
        raise NotApplicable(f"'{algo}' needs direct paths between all ranks (switch or full-mesh "
                            "tiers), and a tier used here is a ring or torus")


def _need_innet(g, algo):
    if g.L != 1 or not g.tiers[0].innet:
        if any(t.innet for t in g.system.tiers):
            raise NotApplicable(f"'{algo}' needs all ranks under one reducing switch tier; "
                                "these ranks span several tiers: use 'hier'")
        raise NotApplicable(f"'{algo}' needs a tier with in-switch reduction, and "
                            f"{g.system.name} has none")


# ---- flat algorithms per collective ----------------------------------------------------

def flat(coll: str, algo: str, g: Geometry) -> Plan:
    p = g.p
    plan = _new(g, algo)
    if p == 1:
        return plan
    f = (p - 1) / p
    if coll == "allreduce":
        if algo == "ring":
            _ring(plan, g, 2, 2 * f, f)
        elif algo == "tree":
            for i in range(g.L):
                plan.lat += 2 * _ceil_log2(g.u[i]) * g.a[i]
                _add(plan, g, i, 2 * g.lf[i] / g.R[i])
            plan.red += 1 / g.scale
            plan.mode = MAX
        elif algo == "rhd":
            _halving(plan, g, lambda i: 1 / (1 << i), lambda i: 1 / (1 << i), 2, 1, rounds=2)
        elif algo == "rd":
            _halving(plan, g, lambda i: 1, lambda i: 1, 2, 1)
        elif algo == "mesh":
            _need_switched(g, algo)
            _direct(plan, g, 1, 1, p - 1)
        elif algo == "mesh2":
            _need_switched(g, algo)
            _direct(plan, g, 1 / p, 2, f)
        elif algo == "innet":
            _need_innet(g, algo)
            _innet(plan, g, (p + 1) / p)
        else:
            raise KeyError(algo)
    elif coll in ("reduce_scatter", "all_gather"):
        red = f if coll == "reduce_scatter" else 0.0
        if algo == "ring":
            _ring(plan, g, 1, f, red)
        elif algo == "mesh":
            _need_switched(g, algo)
            _direct(plan, g, 1 / p, 1, red)
        elif algo in ("rhd", "rd"):
            _halving(plan, g, lambda i: 1 / (1 << i),
                     (lambda i: 1 / (1 << i)) if red else (lambda i: 0.0),
                     1 + 1 / p, 1.0 if red else 0.0)
        elif algo == "innet":
            _need_innet(g, algo)
            _innet(plan, g, 1.0 if red else f)
        else:
            raise KeyError(algo)
    elif coll in ("broadcast", "reduce"):
        is_red = coll == "reduce"
        if algo == "ring":
            _chain(plan, g, 1.0 if is_red else 0.0)
        elif algo == "tree":
            _binomial(plan, g, 1.0 if is_red else 0.0)
        elif algo == "mesh":
            _need_switched(g, algo)
            _direct(plan, g, 1, 1, (p - 1) if is_red else 0.0)
        elif algo == "innet":
            _need_innet(g, algo)
            _innet(plan, g, 1.0)
        else:
            raise KeyError(algo)
    elif coll == "all_to_all":
        if algo == "mesh":
            _need_switched(g, algo)
            _direct(plan, g, 1 / p, 1, 0.0)
        elif algo == "bruck":
            for j in range(_ceil_log2(p)):
                i = g.tier_of_distance(1 << j)
                plan.lat += g.a[i]
                _add(plan, g, i, 0.5 * g.lf[i])
            plan.mode = SUM
        else:
            raise KeyError(algo)
    else:
        raise KeyError(coll)
    return plan


# ---- hierarchical ----------------------------------------------------------------------

INNER = ("ring", "mesh", "innet")
OUTER = ("ring", "tree", "rhd", "rd", "mesh", "mesh2", "innet")


def _inner_step(plan, system, k, u, R, choice, coll):
    """Reduce-scatter and/or all-gather among u groups on tier k, on n / R bytes."""
    t = system.tiers[k]
    f = (u - 1) / u
    lf = max(1, t.size - 1) if t.topology == "fullmesh" else 1
    phases = {"allreduce": ("rs", "ag"), "reduce_scatter": ("rs",), "all_gather": ("ag",)}[coll]
    for ph in phases:
        if choice == "ring":
            plan.lat += (u - 1) * t.lat_us
            c = f * lf
        elif choice == "mesh":
            plan.lat += t.lat_us
            c = f
        else:  # innet
            plan.lat += t.innet_lat_us
            c = (1.0 if ph == "rs" else f) / t.innet_eff
        plan.coef[k] += c / R
        plan.logscale[k] = -math.log(R)
        if ph == "rs" and choice != "innet":
            plan.red += f / R


def _inner_ok(t, choice):
    if choice == "mesh":
        return t.topology in ("switch", "fullmesh")
    if choice == "innet":
        return t.innet
    return True


def hier(coll: str, g: Geometry, allowed) -> list:
    if g.L < 2:
        raise NotApplicable("'hier' needs ranks on more than one tier; these ranks fit in "
                            f"tier 0 ({g.tiers[0].name}, {g.tiers[0].size} chips)")
    system = g.system
    inner_levels = range(g.L - 1) if coll == "allreduce" else range(g.L)
    options = []
    for i in inner_levels:
        t = g.tiers[i]
        opts = [c for c in INNER if c in allowed and _inner_ok(t, c)] or ["ring"]
        options.append(opts if g.u[i] > 1 else ["-"])
    outer = []
    if coll == "allreduce":
        og = Geometry(system, g.u[-1], tiers=[g.ks[-1]], scale=g.R[g.L - 1])
        for a in OUTER:
            if a not in allowed:
                continue
            try:
                outer.append(flat("allreduce", a, og))
            except NotApplicable:
                pass
        if not outer:
            outer.append(flat("allreduce", "ring", og))
    plans = []
    for combo in itertools.product(*options):
        base = _new(g, "hier")
        base.lat = 0.0
        for i, choice in zip(inner_levels, combo):
            if choice != "-":
                _inner_step(base, system, g.ks[i], g.u[i], g.R[i], choice, coll)
        name = "+".join(c for c in combo if c != "-")
        if coll == "allreduce":
            for o in outer:
                pl = Plan("hier", f"hier({name}>{o.algorithm})", base.ntiers, lat=base.lat + o.lat,
                          red=base.red + o.red, mode=SUM,
                          coef=[a + b for a, b in zip(base.coef, o.coef)],
                          logscale=[a if a else b for a, b in zip(base.logscale, o.logscale)])
                plans.append(pl)
        else:
            base.label = f"hier({name})"
            plans.append(base)
    return plans


def build(system, p: int, coll: str, algo: str, allowed) -> list:
    """Plans for one algorithm (several for hier: one per choice of inner algorithms)."""
    g = Geometry(system, p)
    if algo == "hier":
        plans = hier(coll, g, allowed)
    else:
        plans = [flat(coll, algo, g)]
    for pl in plans:
        pl.lat += system.base_lat_us
    return plans
