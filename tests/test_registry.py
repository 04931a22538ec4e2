"""One name, one algorithm: the registry's plan, reference and real implementation agree.

1. The support matrix is derived from what each algorithm registered: plan and reference
   cover the same collectives; whatever runs for real is modelled (or modelled as another).
2. Each real implementation runs in-process on p threads over a simulated communicator
   with logical clocks: every rank has one send and one receive port (single-port, full
   duplex), a message costs its link's tier latency (latency clock) and bytes x the tier's
   weight (byte clock).  The largest clocks at the end are the critical path's steps and
   bytes; they must equal the plan's latency and bandwidth coefficients on the same
   system.  A binomial tree run under the name
   ``tree`` (or a ring under ``rhd``) fails here.
"""
from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

import collbench
from collbench.algorithms import (
    AUTO,
    COLLECTIVES,
    MODEL_ALGORITHMS,
    REGISTRY,
    check_algorithm,
    for_collective,
    runnable,
)
from collbench.errors import CollbenchError
from collbench.model.engine import build
from collbench.model.system import System, Tier


def test_support_matrix_is_derived_and_consistent():
    for name, a in REGISTRY.items():
        assert set(a.plans) == set(a.references), name            # plan <=> reference
        if a.model_as:
            assert not a.plans and a.model_as == AUTO, name        # measured, modelled as auto
        else:
            assert set(a.runs) <= set(a.plans), name               # what runs is modelled
        assert set(a.runs) == set(a.run_descriptions), name
    for c in COLLECTIVES:
        assert for_collective(c) == [n for n in MODEL_ALGORITHMS if c in REGISTRY[n].plans]
        assert runnable(c) == [n for n in REGISTRY if c in REGISTRY[n].runs]
        for name, a in REGISTRY.items():
            if c in a.plans:
                assert check_algorithm(name, c) == name
            else:
                with pytest.raises(CollbenchError, match="valid"):
                    check_algorithm(name, c)


def test_runtime_variants_are_model_plans():
    """A measured variant (e.g. hier's hier(ring>rhd)) is predicted as exactly that plan."""
    s = two_tiers(4, 4)
    for name, a in REGISTRY.items():
        for coll, label in a.run_variants.items():
            df = collbench.estimate(s, [1 << 20], collective=coll, algorithm=label, nranks=16)
            assert list(df.variant) == [label] and list(df.algorithm) == [name]


# ---- a simulated communicator with logical clocks -------------------------------------------

class World:
    def __init__(self, p: int, node: int, lat: tuple[float, float], weight: tuple[float, float]):
        self.p, self.node, self.lat, self.weight = p, node, lat, weight
        self.lock = threading.Lock()
        self.queues: dict[tuple[int, int, int, int], queue.Queue] = {}
        # per world rank and metric (0 latency, 1 bytes, 2 hops): [data ready, send port,
        # recv port]; hops are latencies that overlap (no port is busy for a latency)
        self.clock = [[[0.0, 0.0, 0.0] for _ in range(3)] for _ in range(p)]

    def cost(self, a: int, b: int, nbytes: int) -> tuple[float, float, float]:
        k = self.tier(a, b)
        return self.lat[k], nbytes * self.weight[k], self.lat[k]

    def q(self, key):
        with self.lock:
            return self.queues.setdefault(key, queue.Queue())

    def tier(self, a: int, b: int) -> int:
        return 0 if a // self.node == b // self.node else 1


class Req:
    def __init__(self, fn=None):
        self.fn = fn

    def Wait(self):
        if self.fn:
            self.fn()
            self.fn = None


class Comm:
    def __init__(self, world: World, members: list[int], me: int, cid: int):
        self.w, self.members, self.me, self.cid = world, members, me, cid

    def Get_size(self):
        return len(self.members)

    def Get_rank(self):
        return self.members.index(self.me)

    def Isend(self, buf, dest, tag):
        d = self.members[dest]
        arrive = []
        for m, c in enumerate(self.w.cost(self.me, d, buf.nbytes)):
            ready, sport, _ = clk = self.w.clock[self.me][m]
            if m == 2:
                arrive.append(ready + c)
                continue
            clk[1] = max(ready, sport) + c           # the send port is busy until then
            arrive.append(clk[1])
        self.w.q((self.cid, self.me, d, tag)).put((np.array(buf, copy=True), arrive))
        return Req()

    def Irecv(self, buf, source, tag):
        s = self.members[source]

        def done():
            data, arrive = self.w.q((self.cid, s, self.me, tag)).get(timeout=30)
            assert data.size == buf.size, (data.size, buf.size)
            buf[...] = data
            for m, c in enumerate(self.w.cost(s, self.me, data.nbytes)):
                clk = self.w.clock[self.me][m]
                if m == 2:
                    clk[0] = max(clk[0], arrive[m])
                    continue
                clk[2] = max(arrive[m], clk[2] + c)  # one receive at a time
                clk[0] = max(clk[0], clk[2])
        return Req(done)

    def Send(self, buf, dest, tag):
        self.Isend(buf, dest, tag)

    def Recv(self, buf, source, tag):
        self.Irecv(buf, source, tag).Wait()

    def Sendrecv(self, sendbuf, dest, sendtag, recvbuf, source, recvtag):
        self.Isend(sendbuf, dest, sendtag)
        self.Recv(recvbuf, source, recvtag)


class Ctx:
    def __init__(self, comm, node_comm, cross_comm):
        self.comm, self.node_comm, self.cross_comm = comm, node_comm, cross_comm
        self._tmp = np.empty(0)

    def tmp(self, n):
        if self._tmp.size < n:
            self._tmp = np.empty(n)
        return self._tmp[:n]

    def reduce_into(self, dst, src):
        dst += src

    def reduce_out(self, dst, a, src):
        np.add(a, src, out=dst)

    def waitall(self, reqs):
        for r in reqs:
            r.Wait()


def simulate(fn, p: int, node: int, count: int, lat=(1.0, 1000.0), weight=(1.0, 1000.0),
             hops: bool = False):
    """Run fn(ctx, send, recv) on p threads; returns (max latency clock, max byte clock), or
    with ``hops`` (the longest chain of latencies, overlapping ones counted once, max byte
    clock)."""
    w = World(p, node, lat, weight)
    nodes = p // node
    errors, results = [], {}

    def rank(r):
        try:
            comm = Comm(w, list(range(p)), r, 0)
            nc = Comm(w, [x for x in range(p) if x // node == r // node], r, 1)
            cc = Comm(w, [x for x in range(p) if x % node == r % node], r, 2 + r % node)
            send = np.arange(count, dtype=float) * (r + 1)
            recv = np.zeros(count)
            fn(Ctx(comm, nc, cc), send, recv)
            results[r] = recv
        except BaseException as exc:      # surfaced below
            errors.append(exc)
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(p)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    want = np.arange(count, dtype=float) * sum(range(1, p + 1))
    for r in range(p):
        np.testing.assert_array_equal(results[r], want)
    assert nodes * node == p
    if hops:
        return (max(max(c[2]) for c in w.clock), max(max(c[1]) for c in w.clock))
    return (max(max(c[0]) for c in w.clock), max(max(c[1]) for c in w.clock))


def two_tiers(node: int, nodes: int, lat=(1.0, 1000.0), weight=(1.0, 1000.0)) -> System:
    """A system whose plan coefficients read directly as steps and bytes: tier k has
    latency lat[k] per step and 1/weight[k] bytes per us (efficiency 1)."""
    tiers = (Tier("in", node, 1e-3 / weight[0], lat_sw_us=lat[0]),
             Tier("out", nodes, 1e-3 / weight[1], lat_sw_us=lat[1]))
    return System("sim", tiers if nodes > 1 else tiers[:1], base_lat_us=0.0, reduce_gbps=1e9,
                  library_algorithms=tuple(MODEL_ALGORITHMS))


CASES = [(a, p, node) for a in runnable("allreduce") if not REGISTRY[a].model_as
         for p, node in ((2, 2), (3, 3), (4, 4), (5, 5), (8, 8))
         if a not in ("hier", "tree")] + [("hier", p, node) for p, node in ((4, 2), (6, 2), (6, 3), (8, 2),
                                                               (8, 4), (12, 4))]


@pytest.mark.parametrize("algo, p, node", CASES)
def test_real_implementation_is_the_modelled_algorithm(algo, p, node):
    count = 48 * p                       # small: one segment; divisible blocks not required
    fn = REGISTRY[algo].runs["allreduce"]
    lat_clock, byte_clock = simulate(fn, p, node, count)
    s = two_tiers(node, p // node)
    label = REGISTRY[algo].run_variants.get("allreduce", algo)
    plans = build(s, p, "allreduce", label, frozenset(REGISTRY))
    assert len(plans) == 1, [pl.label for pl in plans]
    pl = plans[0]
    n = count * 8
    # the plan's coefficients are bytes per byte of n on each tier; weighted as the clocks
    weights = (1.0, 1000.0)
    plan_bytes = sum(c * n * w for c, w in zip(pl.coef, weights))
    assert lat_clock == pytest.approx(pl.lat), (algo, p, node, lat_clock, pl.lat)
    assert byte_clock == pytest.approx(plan_bytes, rel=0.02), (algo, p, node, byte_clock,
                                                                plan_bytes)


@pytest.mark.parametrize("run_as, plan_of", [("binomial", "tree"), ("ring", "rhd"),
                                             ("rd", "rhd"), ("rhd", "ring")])
def test_the_check_tells_algorithms_apart(run_as, plan_of):
    """The comparison above fails when a name runs another algorithm (today's runtime
    binomial tree was once called 'tree'; the model's tree is a double binary tree)."""
    p = 8
    lat_clock, byte_clock = simulate(REGISTRY[run_as].runs["allreduce"], p, p, 48 * p)
    (pl,) = build(two_tiers(p, 1), p, "allreduce", plan_of, frozenset(REGISTRY))
    plan_bytes = pl.coef[0] * 48 * p * 8
    assert (lat_clock, byte_clock) != pytest.approx((pl.lat, plan_bytes), rel=0.02)


@pytest.mark.parametrize("p", [2, 3, 4, 5, 6, 7, 8, 12, 16])
def test_real_tree_is_the_modelled_double_binary_tree(p, monkeypatch):
    """The model's tree: 2 ceil(log2 p) latencies (up one tree and back down; the two
    children of a node answer at once, so the check counts overlapping latencies once) and,
    pipelined, the busiest port moves 2 bytes per byte: half the data up then down each tree;
    a rank inside one tree is a leaf of the other (with 2 ranks it moves 1, where the model
    keeps NCCL's 2: see the tree plan).  Single segment:
    the latency; 128 segments: the byte clock within 5% of the plan (pipeline fill)."""
    from collbench.algorithms import trees
    fn = REGISTRY["tree"].runs["allreduce"]
    (pl,) = build(two_tiers(p, 1), p, "allreduce", "tree", frozenset(REGISTRY))
    hop_clock, _ = simulate(fn, p, p, 48 * p, hops=True)
    assert hop_clock == pytest.approx(pl.lat), (p, hop_clock, pl.lat)   # one tier: no pipe
    count = 128 * 2 * 32                                # 128 segments of 32 elements a half
    monkeypatch.setattr(trees, "TREE_SEGMENT_BYTES", 32 * 8)
    _, byte_clock = simulate(fn, p, p, count)
    plan_bytes = pl.coef[0] * count * 8
    if p == 2:          # two ranks: one edge each way, half of what NCCL's model charges
        plan_bytes /= 2
    assert plan_bytes <= byte_clock <= 1.05 * plan_bytes, (p, byte_clock, plan_bytes)
    # every rank is an inner node of at most one tree (p even) and the trees have the height
    # the plan counts
    parents = [trees.btree(p, s)[0] for s in (False, True)]
    for par in parents:
        depth = [0] * p
        for r in range(p):
            x = r
            while par[x] is not None:
                x = par[x]
                depth[r] += 1
        assert max(depth) == (p - 1).bit_length()
    if p % 2 == 0:
        inner = [{r for r in range(p) if r in par} for par in parents]
        assert not inner[0] & inner[1]


def test_two_level_tree_is_exact_on_nodes():
    """On equal nodes the tree is one binary tree per tier (in the node, across leaders)."""
    class NodeCtx:
        pass
    for p, node in ((4, 2), (8, 4), (12, 4), (6, 3)):
        fn = REGISTRY["tree"].runs["allreduce"]

        def two_level(ctx, send, recv):
            ctx.uniform_nodes = True
            fn(ctx, send, recv)
        hop_clock, _ = simulate(two_level, p, node, 48 * p, hops=True)
        # up and down: ceil(log2 node) inner and ceil(log2 nodes) outer latencies each way
        inner, outer = (node - 1).bit_length(), (p // node - 1).bit_length()
        assert hop_clock == pytest.approx(2 * inner * 1.0 + 2 * outer * 1000.0), (p, node)
        (pl,) = build(two_tiers(node, p // node), p, "allreduce", "tree", frozenset(REGISTRY))
        # one segment pays every hop once: the pipelined hops across the nodes too
        assert hop_clock == pytest.approx(pl.lat + pl.pipe_d * pl.pipe_a)
