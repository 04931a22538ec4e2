"""Hand-computed cases and published link-level figures."""
import math
import tomllib
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

import collbench
from collbench.model import reference
from collbench.model.system import (
    SYSTEM_NUMBERS,
    TIER_NUMBERS,
    TIER_OPTIONAL_NUMBERS,
    System,
    Tier,
)


def flat_system(p=4, bw=100.0, a=1.0, base=5.0, red=1000.0, topology="switch", innet=False,
                overlap=False, **kw):
    t = Tier("t", p, bw, lat_sw_us=a, topology=topology, innet=innet, **kw)
    return System("hand", (t,), base_lat_us=base, reduce_gbps=red, overlap_reduce=overlap)


def one(system, n, algo, coll="allreduce", p=None):
    df = collbench.estimate(system, n, algorithm=algo, collective=coll, nranks=p,
                            library_only=False)
    assert len(df) == 1
    return df.iloc[0]


def test_ring_allreduce_by_hand():
    # 4 ranks, 100 GB/s = 1e5 B/us, 1 us/step, base 5 us, 1e8 B:
    # latency 5 + 2*3*1 = 11; bandwidth 2*3/4 * 1e8/1e5 = 1500; reduce 3/4 * 1e8/1e6 = 75
    r = one(flat_system(), 1e8, "ring")
    assert r.latency_us == pytest.approx(11)
    assert r.bandwidth_us == pytest.approx(1500)
    assert r.reduce_us == pytest.approx(75)
    assert r.time_us == pytest.approx(1586)
    assert r.algbw_gbps == pytest.approx(1e8 / 1586e-6 / 1e9)
    assert r.busbw_gbps == pytest.approx(r.algbw_gbps * 1.5)
    # overlapped reduction (NCCL): time = latency + max(bandwidth, reduce)
    r = one(flat_system(overlap=True), 1e8, "ring")
    assert r.time_us == pytest.approx(11 + 1500)


def test_rhd_non_power_of_two_by_hand():
    # 6 ranks: 4-rank core (2 steps, each in RS and AG) plus fold-in and fold-out.
    # latency 5 + 2*2*1 + 2*1 = 11; bandwidth (2*(1/2 + 1/4) + 2) * 1e8/1e5 = 3500
    # reduce (3/4 + 1) * 1e8 / 1e6 = 175
    r = one(flat_system(p=6), 1e8, "rhd")
    assert (r.latency_us, r.bandwidth_us, r.reduce_us) == pytest.approx((11, 3500, 175))


def test_rd_mesh_mesh2_innet_by_hand():
    s = flat_system(p=8, innet=True, innet_eff=0.5, innet_lat_us=20)
    n = 8e7  # 800 us at 1e5 B/us
    r = one(s, n, "rd")                       # 3 steps of n, reduce each
    assert (r.latency_us, r.bandwidth_us, r.reduce_us) == pytest.approx((8, 2400, 240))
    r = one(s, n, "mesh")                     # one step, 7 n out, reduce 7 n
    assert (r.latency_us, r.bandwidth_us, r.reduce_us) == pytest.approx((6, 5600, 560))
    r = one(s, n, "mesh2")                    # two steps, 2 * 7/8 n
    assert (r.latency_us, r.bandwidth_us, r.reduce_us) == pytest.approx((7, 1400, 70))
    r = one(s, n, "innet")                    # (p+1)/p n at half efficiency, switch reduces
    assert (r.latency_us, r.bandwidth_us, r.reduce_us) == pytest.approx((25, 1800, 0))


def test_other_collectives_by_hand():
    s = flat_system(p=4)
    n = 1e8
    r = one(s, n, "ring", "reduce_scatter")
    assert (r.latency_us, r.bandwidth_us, r.reduce_us) == pytest.approx((8, 750, 75))
    r = one(s, n, "ring", "all_gather")
    assert (r.latency_us, r.bandwidth_us, r.reduce_us) == pytest.approx((8, 750, 0))
    assert r.busbw_gbps == pytest.approx(r.algbw_gbps * 0.75)
    r = one(s, n, "binomial", "broadcast")        # binomial: 2 steps of n
    assert (r.latency_us, r.bandwidth_us) == pytest.approx((7, 2000))
    assert r.busbw_gbps == pytest.approx(r.algbw_gbps)
    # pipelined chain: d = 3 hops, a = 1, n b = 1000: k = sqrt(2 * 1000) segments
    k = math.sqrt(2000)
    r = one(s, n, "ring", "broadcast")
    assert r.time_us == pytest.approx(5 + (2 + k) * 1 + (1 + 2 / k) * 1000)
    r = one(s, n, "mesh", "all_to_all")       # 3/4 n out at once
    assert (r.latency_us, r.bandwidth_us) == pytest.approx((6, 750))


def test_full_mesh_ring_uses_one_link():
    # on a full mesh, a ring uses 1 of the 7 links; mesh2 uses all of them
    s = flat_system(p=8, topology="fullmesh", bw=70.0)
    n = 7e7
    ring, mesh2 = one(s, n, "ring"), one(s, n, "mesh2")
    assert ring.bandwidth_us == pytest.approx(7 * mesh2.bandwidth_us)


def test_ring_across_nodes_loads_an_inner_tier_with_its_share_of_the_hops_by_hand():
    # 16 ranks, 8 per node on 2 nodes: of the ring's 16 hops 14 stay inside a node and 2
    # cross the network, so a chip's node link carries 14/16 of what it sends and its
    # network link 1/8 (one chip in 8 leaves the node on each channel).  All-gather of
    # 1e8 B: each rank sends 15/16 x 1e8; node tier 100 GB/s, network 20 GB/s (both
    # efficiency 1): node 15/16 x 14/16 x 1e8 / 1e5 = 820.3 us, network 15/16 x 1/8 x 1e8 /
    # 2e4 = 585.9 us; the slower sets the time
    node = Tier("node", 8, 100.0, lat_sw_us=1.0)
    net = Tier("net", 2, 20.0, lat_sw_us=2.0)
    s = System("two", (node, net), base_lat_us=0.0)
    r = one(s, 1e8, "ring", coll="all_gather", p=16)
    assert r.bandwidth_us == pytest.approx(15 / 16 * 14 / 16 * 1e8 / 1e5)
    assert r.latency_us == pytest.approx(14 * 1.0 + 1 * 2.0)
    ref = reference.cost(s, 16, 1e8, algorithm="ring", collective="all_gather",
                         library_only=False)
    assert ref[2] == pytest.approx(r.bandwidth_us)
    # a slower network binds instead: 15/16 x 1/8 x 1e8 / 1e4 = 1171.9 us
    s = System("two", (node, replace(net, bw_gbps=10.0)), base_lat_us=0.0)
    assert one(s, 1e8, "ring", coll="all_gather", p=16).bandwidth_us == pytest.approx(
        15 / 16 / 8 * 1e8 / 1e4)
    # one chip per node: the node tier carries nothing, the network all of it
    s = System("two", (replace(node, size=1), replace(net, size=16)), base_lat_us=0.0)
    assert one(s, 1e8, "ring", coll="all_gather", p=16).bandwidth_us == pytest.approx(
        15 / 16 * 1e8 / 2e4)


def test_tree_pipelines_its_hops_across_nodes_by_hand():
    # 8 ranks, 2 per node on 4 nodes; base 5 us.  Inside a node 2 ceil(log2 2) = 2 hops of
    # 1 us, paid once; across the nodes 2 ceil(log2 4) = 4 hops of 2 us, pipelined.  The
    # busiest port moves 2 bytes per byte, a node's 2 ranks share the crossing: n / 1e4 B/us
    # over the network.  One segment (8 B): 5 + 2 + 4 x 2, and the data through each of the
    # 4 network hops; 1e8 B (nb = 1e4 us): the best segment count
    # k = sqrt((4 - 1) nb / 2) = 122.5, latency 5 + 2 + (3 + k) x 2, bandwidth (1 + 3 / k) nb
    node = Tier("node", 2, 100.0, lat_sw_us=1.0)
    net = Tier("net", 4, 10.0, lat_sw_us=2.0)
    s = System("two", (node, net), base_lat_us=5.0)
    small = one(s, 8, "tree", p=8)
    assert small.latency_us == pytest.approx(15)
    assert small.bandwidth_us == pytest.approx(4 * 8 / 1e4)
    k = math.sqrt(3 * 1e4 / 2)
    big = one(s, 1e8, "tree", p=8)
    assert big.latency_us == pytest.approx(5 + 2 + (3 + k) * 2)
    assert big.bandwidth_us == pytest.approx((1 + 3 / k) * 1e4)
    for n, r in ((8, small), (1e8, big)):
        ref = reference.cost(s, 8, n, algorithm="tree", library_only=False)
        assert (ref[1], ref[2]) == (pytest.approx(r.latency_us), pytest.approx(r.bandwidth_us))
    # inside one node nothing is pipelined: 4 ranks, 4 hops of 1 us once, 2n / 1e5 B/us
    r = one(flat_system(), 1e8, "tree")
    assert (r.latency_us, r.bandwidth_us) == (pytest.approx(9), pytest.approx(2000))
    # NVLSTree (hier(innet>tree)): the tree's hops across the nodes carry the whole plan, NVLS
    # inside and the tree across (4 nodes: 4 hops of 2 us; NVLS inside: 2 x 3 us once).  At
    # 8 B one segment; at 1e8 B the segments pipeline the slower of the two bandwidth terms
    # (one kernel: NCCL's tuner takes min(intra, inter) bandwidth)
    node = Tier("node", 4, 100.0, lat_sw_us=1.0, innet=True, innet_eff=0.5, innet_lat_us=3.0)
    nvls = System("hand", (node, net), base_lat_us=0.0)
    r = one(nvls, 8, "hier(innet>tree)", p=16)
    assert r.latency_us == pytest.approx(2 * 3.0 + 4 * 2.0)
    flat = one(replace(nvls, tiers=(node, replace(net, lat_sw_us=0.0))), 1e8,
               "hier(innet>tree)", p=16)                # no hop latency: nothing to pipeline
    nb = flat.bandwidth_us
    # NVLS: (4 + 1) / 4 bytes per byte through each link at half of 100 GB/s, 2500 us; the
    # tree across 4 nodes: its busiest port 2 bytes per byte, a node's 4 ranks share the
    # crossing, at 10 GB/s, 5000 us; in turn (the phases summed) it would be 7500
    assert nb == pytest.approx(max(1.25 / 0.5 * 1e8 / 1e5, 2 / 4 * 1e8 / 1e4))
    # on 2 nodes the tree moves the data across once (NCCL: bwInter, not bwInter / 2): 2500
    # through the network, not 5000
    two = one(replace(nvls, tiers=(node, replace(net, lat_sw_us=0.0))), 1e8,
              "hier(innet>tree)", p=8)
    assert two.bandwidth_us == pytest.approx(max(2500.0, 1 / 4 * 1e8 / 1e4))
    r = one(nvls, 1e8, "hier(innet>tree)", p=16)
    k = math.sqrt(3 * nb / 2)
    assert r.latency_us == pytest.approx(2 * 3.0 + (3 + k) * 2)
    assert r.bandwidth_us == pytest.approx((1 + 3 / k) * nb)
    for n, p in ((8, 16), (1e8, 16), (1e8, 8)):
        got = one(nvls, n, "hier(innet>tree)", p=p)
        ref = reference.cost(nvls, p, n, algorithm="hier(innet>tree)", library_only=False)
        assert (ref[1], ref[2]) == (pytest.approx(got.latency_us),
                                    pytest.approx(got.bandwidth_us))


def test_nccl_latency_split_intra_inter():
    # NCCL: ring = base + (2(n-1) - 2(nodes-1)) intra + 2(nodes-1) inter;
    #       tree = base + 2((ppn-1) ... ) -> collbench: 2 (log2 ppn intra + log2 nodes inter)
    # (+ the launch/synchronisation floor of the network tier, fitted to the corpus);
    # at 8 B both run LL: Ring/LL 6.6 base, 0.6 NVLink, 2.7 network; Tree/LL its own 6.8,
    # 0.6 and 5.0 (tuning.cc)
    s = collbench.preset("dgx-h100")
    sync = s.tiers[1].sync_us
    assert sync > 0
    r = one(s, 8, "ring", p=16)
    assert r.latency_us == pytest.approx(6.6 + 28 * 0.6 + 2 * 2.7 + sync)
    assert r.variant == "ring/LL"
    r = one(s, 8, "tree", p=64)
    assert r.latency_us == pytest.approx(6.8 + 2 * (3 * 0.6 + 3 * 5.0) + sync)
    assert r.variant == "tree/LL"


def test_sync_floor_is_the_outermost_tier_spanned():
    # node tier of 4 (sync 10 us), network of 8 nodes (sync 30 us), ring, 1 us per step,
    # base 5: 4 ranks pay 5 + 6 + 10; 8 ranks (two nodes) pay 5 + 14 + 30, not 10 + 30
    node = Tier("node", 4, 100.0, lat_sw_us=1.0, sync_us=10.0)
    net = Tier("net", 8, 10.0, lat_sw_us=1.0, sync_us=30.0)
    s = System("two", (node, net), library_algorithms=("ring",), base_lat_us=5.0)
    assert one(s, 8, "ring", p=4).latency_us == pytest.approx(5 + 6 + 10)
    assert one(s, 8, "ring", p=8).latency_us == pytest.approx(5 + 14 + 30)
    for p, want in ((4, 21), (8, 49)):
        t, lat, _, _ = reference.cost(s, p, 8, algorithm="ring", library_only=False)
        assert lat == pytest.approx(want)
    # it shows in describe() and survives a TOML round trip
    assert "sync 30 us" in s.describe()
    back = System.from_dict(tomllib.loads(s.to_toml()))
    assert [t.sync_us for t in back.tiers] == [10.0, 30.0]


def test_protocols_by_hand():
    # LL: the tier's latencies at half bandwidth; Simple: 2 us more per call and 3 us more
    # per step at full bandwidth.  Ring all-reduce, 4 ranks, 6 steps, 100 GB/s:
    # LL 5 + 6 = 11 us + 1.5 n / 5e4; Simple 7 + 6 * 4 = 31 us + 1.5 n / 1e5: they cross at
    # n = 20 / (1.5e-5) = 1.33 MB
    s = replace(flat_system(), protocols={
        "LL": {"base_us": 0.0, "step_us": (0.0,), "bw_factor": 0.5, "algorithms": ("ring",)},
        "Simple": {"base_us": 2.0, "step_us": (3.0,), "bw_factor": 1.0,
                   "algorithms": ("ring",)}})
    r = one(s, 1e4, "ring")
    assert r.variant == "ring/LL"
    assert r.latency_us == pytest.approx(11) and r.bandwidth_us == pytest.approx(0.3)
    r = one(s, 1e8, "ring")
    assert r.variant == "ring/Simple"
    assert r.latency_us == pytest.approx(31) and r.bandwidth_us == pytest.approx(1500)
    assert one(s, 1.3e6, "ring").variant == "ring/LL"
    assert one(s, 1.4e6, "ring").variant == "ring/Simple"
    # an algorithm no protocol names keeps the tier's numbers (rhd: 5 + 4 steps, full rate)
    r = one(s, 1e8, "rhd")
    assert r.variant == "rhd" and r.latency_us == pytest.approx(9)
    assert r.bandwidth_us == pytest.approx(1500)
    # the reference agrees
    t, lat, bw, _ = reference.cost(s, 4, 1e8, algorithm="ring", library_only=False)
    assert (lat, bw) == (pytest.approx(31), pytest.approx(1500))


def test_protocol_numbers_of_one_algorithm():
    # [protocols.LL.tree]: Tree runs LL with 1 us more per call, 2 us more per step and 0.25
    # of the bandwidth (NCCL's Tree has constants of its own); Ring keeps the protocol's
    base = replace(flat_system(), library_algorithms=("ring", "tree"), protocols={
        "LL": {"base_us": 0.0, "step_us": (0.0,), "bw_factor": 0.5,
               "algorithms": ("ring", "tree")}})
    s = replace(base, protocols={"LL": {**base.protocols["LL"], "by_algorithm": {
        "tree": {"base_us": 1.0, "step_us": (2.0,), "bw_factor": 0.25}}}})
    assert s.protocol("LL", "tree") == {**base.protocols["LL"], "base_us": 1.0,
                                        "step_us": (2.0,), "bw_factor": 0.25,
                                        "by_algorithm": s.protocols["LL"]["by_algorithm"]}
    assert s.protocol("LL", "ring")["bw_factor"] == 0.5
    for n in (8, 1e8):
        r0, r1 = one(base, n, "ring"), one(s, n, "ring")
        assert (r1.latency_us, r1.bandwidth_us) == (r0.latency_us, r0.bandwidth_us)
        t0, t1 = one(base, n, "tree"), one(s, n, "tree")
        assert t1.variant == "tree/LL"
        if n == 8:      # one segment: every hop's latency once (large sizes pipeline them)
            steps = (t0.latency_us - 5.0) / 1.0      # flat_system: base 5 us, 1 us per step
            assert t1.latency_us == pytest.approx(t0.latency_us + 1.0 + 2.0 * steps)
            assert t1.bandwidth_us == pytest.approx(2 * t0.bandwidth_us)
        ref = reference.cost(s, 4, n, algorithm="tree", library_only=False)
        assert ref[1] == pytest.approx(t1.latency_us) and ref[2] == pytest.approx(t1.bandwidth_us)
    # TOML: a [protocols.LL.tree] table; read back equal; describe() names it
    text = s.to_toml()
    assert "[protocols.LL.tree]" in text
    assert System.from_dict(tomllib.loads(text)) == s
    assert "tree/LL: base +1 us, per step +2 us, bandwidth x0.25" in s.describe()


def test_a_protocol_ramp_replaces_the_tiers_for_its_algorithm():
    # NCCL's tree correction table as [protocols.LL.tree] ramp: 0.5 of the tier's eff_hi (0.8)
    # at and below 1 MB, rising log-linearly to 1 at 100 MB.  The tree reaches 0.4 of the
    # line rate at 1e5 B (the tier's own ramp, done at 1e4 B, would give 0.8), 0.6 at 1e7 B
    # (half way in log), 0.8 at 1e9 B; its latency and the ring keep the tier's numbers
    # (no step latency: the tree's segment pipelining, which trades it against bandwidth,
    # stays out of the comparison)
    base = replace(flat_system(a=0.0, eff_lo=0.3, eff_hi=0.8, eff_lo_bytes=1e3,
                               eff_hi_bytes=1e4),
                   library_algorithms=("ring", "tree"), protocols={
                       "LL": {"base_us": 0.0, "step_us": (0.0,), "bw_factor": 1.0,
                              "algorithms": ("ring", "tree")}})
    s = replace(base, protocols={"LL": {**base.protocols["LL"], "by_algorithm": {
        "tree": {"eff_lo_factor": 0.5, "eff_lo_bytes": 1e6, "eff_hi_bytes": 1e8}}}})
    for n, eff in ((1e5, 0.4), (1e7, 0.6), (1e9, 0.8)):
        t0, t1 = one(base, n, "tree"), one(s, n, "tree")
        assert t1.bandwidth_us == pytest.approx(t0.bandwidth_us * 0.8 / eff), n
        assert t1.latency_us == t0.latency_us
        assert one(s, n, "ring").bandwidth_us == one(base, n, "ring").bandwidth_us
        ref = reference.cost(s, 4, n, algorithm="tree", library_only=False)
        assert ref[2] == pytest.approx(t1.bandwidth_us), n
    # TOML round trip; describe() shows it
    assert System.from_dict(tomllib.loads(s.to_toml())) == s
    assert "tree/LL: base +0 us, per step +0 us, bandwidth x1, ramp x0.5 at 976.6 KiB -> x1 at " \
        "95.37 MiB" in s.describe()


def test_a_protocol_may_run_only_inside_the_inner_tiers():
    # NCCL turns LL128 off across nodes where a GPU reaches its NIC through the host bridge:
    # LL128 (max_tiers = 1) runs on ranks inside one node only.  Node of 4 (100 GB/s, 1 us
    # per step), network of 8 nodes (10 GB/s, 1 us); Simple: 200 us more per call, full
    # bandwidth; LL128: 0.9 of it, no extra latency.  Ring all-reduce of 1e8 B on 4 ranks:
    # LL128 (1500 / 0.9 = 1667 us of bandwidth) beats Simple (200 + 1500); on 8 ranks only
    # Simple is left, and its numbers are those of a system without LL128
    node = Tier("node", 4, 100.0, lat_sw_us=1.0)
    net = Tier("net", 8, 10.0, lat_sw_us=1.0)
    simple = {"base_us": 200.0, "step_us": (0.0, 0.0), "bw_factor": 1.0, "algorithms": ("ring",)}
    ll128 = {"base_us": 0.0, "step_us": (0.0, 0.0), "bw_factor": 0.9, "algorithms": ("ring",)}
    s = System("two", (node, net), library_algorithms=("ring",), base_lat_us=5.0,
               protocols={"Simple": simple, "LL128": {**ll128, "max_tiers": 1}})
    without = replace(s, protocols={"Simple": simple})
    assert (s.tiers_spanned(4), s.tiers_spanned(5), s.tiers_spanned(32)) == (1, 2, 2)
    assert s.protocols_for("ring", 4) == ["Simple", "LL128"]
    assert s.protocols_for("ring", 8) == ["Simple"] and s.protocols_for("ring") == ["Simple", "LL128"]
    r = one(s, 1e8, "ring", p=4)
    assert r.variant == "ring/LL128" and r.bandwidth_us == pytest.approx(1500 / 0.9)
    for p in (8, 32):
        r, w = one(s, 1e8, "ring", p=p), one(without, 1e8, "ring", p=p)
        assert r.variant == "ring/Simple"
        assert (r.latency_us, r.bandwidth_us) == (w.latency_us, w.bandwidth_us)
        ref = reference.cost(s, p, 1e8, algorithm="ring", library_only=False)
        assert ref[0] == pytest.approx(r.time_us)
    # an algorithm none of whose protocols runs that wide does not apply there
    only = replace(s, protocols={"LL128": {**ll128, "max_tiers": 1}})
    assert one(only, 1e8, "ring", p=4).variant == "ring/LL128"
    with pytest.raises(ValueError, match="none of ring's protocols runs on ranks that span 2 tiers"):
        one(only, 1e8, "ring", p=8)
    assert reference.cost(only, 8, 1e8, algorithm="ring", library_only=False) is None
    # TOML round trip; describe() says it
    assert System.from_dict(tomllib.loads(s.to_toml())) == s
    assert "protocol LL128 (ring): base +0 us, per step +0, +0 us, bandwidth x0.9, only on " \
        "ranks within 1 tier(s)" in s.describe()


def test_a_protocol_may_run_with_no_size_ramp_on_the_inner_tiers():
    # flat_tiers = 1: LL runs at its bandwidth at every size inside the node (no chunk
    # pipeline to fill), while the network keeps its ramp.  Both tiers ramp from 0.4 at
    # 64 KiB to 1.0 at 4 MiB.  Inside one node a small ring moves as fast per byte as a
    # large one; across nodes the plan equals one on a system whose node tier is flat
    ramp = {"eff_lo": 0.4, "eff_hi": 1.0, "eff_lo_bytes": 65536.0, "eff_hi_bytes": 4194304.0}
    node = Tier("node", 4, 100.0, lat_sw_us=1.0, **ramp)
    net = Tier("net", 8, 10.0, lat_sw_us=1.0, **ramp)
    ll = {"base_us": 0.0, "step_us": (0.0, 0.0), "bw_factor": 0.5, "algorithms": ("ring", "tree")}
    s = System("two", (node, net), library_algorithms=("ring", "tree"), base_lat_us=5.0,
               protocols={"LL": {**ll, "flat_tiers": 1}})
    plain = replace(s, protocols={"LL": ll})
    flat_node = replace(plain, tiers=(replace(node, eff_lo=1.0), net))
    for n in (1e4, 1e5, 1e6):
        r, w = one(s, n, "ring", p=4), one(plain, n, "ring", p=4)
        assert r.bandwidth_us == pytest.approx(one(s, 1e8, "ring", p=4).bandwidth_us * n / 1e8)
        assert r.bandwidth_us < w.bandwidth_us and r.latency_us == w.latency_us
        for p in (4, 32):
            r, f = one(s, n, "ring", p=p), one(flat_node, n, "ring", p=p)
            assert (r.latency_us, r.bandwidth_us) == pytest.approx((f.latency_us, f.bandwidth_us))
            ref = reference.cost(s, p, n, algorithm="ring", library_only=False)
            assert ref[0] == pytest.approx(r.time_us)
    # the across-node tier keeps its ramp: 32 ranks at 1e5 B are slower per byte than at 1e8
    assert one(s, 1e5, "ring", p=32).bandwidth_us > one(s, 1e8, "ring", p=32).bandwidth_us * 1e5 / 1e8
    # an algorithm's own ramp (NCCL's tree correction table) holds on every tier
    tree = {"eff_lo_factor": 0.5, "eff_lo_bytes": 1048576.0, "eff_hi_bytes": 1e8}
    t = replace(s, protocols={"LL": {**ll, "flat_tiers": 1, "by_algorithm": {"tree": tree}}})
    assert "flat_tiers" not in t.protocol("LL", "tree") and t.protocol("LL", "ring")["flat_tiers"] == 1
    # TOML round trip; describe() says it
    assert System.from_dict(tomllib.loads(s.to_toml())) == s
    assert "bandwidth x0.5, no size ramp on the innermost 1 tier(s)" in s.describe()


def test_one_point_to_point_peer_gets_its_share_of_a_tier():
    # peer_share 0.25: one send/receive peer moves at a quarter of the tier (NCCL's 2 p2p
    # channels per network peer); k peers in flight at once reach min(1, k/4) of it.  The
    # library keeps 4 in flight (as many as fill the tier), so pairwise's p-1 exchanges take
    # ceil((p-1)/4) rounds of step latency (1 us each, base 5) where one peer at a time
    # takes p-1
    shared = flat_system(p=8, bw=10.0, peer_share=0.25)
    full = flat_system(p=8, bw=10.0)
    for coll, algo, p, slower, rounds in [
            ("sendrecv", "ring", 8, 4.0, None), ("all_to_all", "pairwise", 2, 4.0, 1),
            ("all_to_all", "pairwise", 4, 4 / 3, 1), ("all_to_all", "mesh", 4, 4 / 3, None),
            ("all_to_all", "pairwise", 8, 1.0, 2), ("all_to_all", "mesh", 8, 1.0, None)]:
        a, b = one(shared, 1e8, algo, coll, p), one(full, 1e8, algo, coll, p)
        assert a.bandwidth_us == pytest.approx(slower * b.bandwidth_us), (coll, algo, p)
        if rounds is None:
            assert a.latency_us == b.latency_us
        else:
            assert (a.latency_us, b.latency_us) == (5 + rounds, 5 + p - 1), (p, a.latency_us)
        ref = reference.cost(shared, p, 1e8, algorithm=algo, collective=coll, library_only=False)
        assert ref[2] == pytest.approx(a.bandwidth_us), (coll, algo, p)
        assert ref[1] == pytest.approx(a.latency_us), (coll, algo, p)
    # a ring's channels are not point-to-point peers: its all-reduce does not change
    assert one(shared, 1e8, "ring").bandwidth_us == one(full, 1e8, "ring").bandwidth_us
    # TOML round trip, describe(), and a share outside (0, 1] is refused naming the range
    shared = replace(shared, library_algorithms=("ring", "pairwise"))
    assert System.from_dict(tomllib.loads(shared.to_toml())) == shared
    assert "one p2p peer x0.25" in shared.describe()
    bad = tomllib.loads(shared.to_toml())
    bad["tiers"][0]["peer_share"] = 1.5
    with pytest.raises(collbench.CollbenchError, match=r"peer_share=1.5 is outside \[1e-06, 1.0\]"):
        System.from_dict(bad)


def test_a_shared_capacity_is_split_among_the_chips_sending_at_once():
    # 2 chips of 12 GB/s behind one 10 GB/s uplink (shared_gbps): a broadcast or reduce has
    # one sender, which gets 10; a ring all-reduce or all-gather, a pairwise all-to-all or
    # a tree have both sending, 5 each; without the shared capacity all run at 12
    # (no step latency: the tree's segment pipelining stays out of the comparison)
    shared = flat_system(p=2, bw=12.0, a=0.0, shared_gbps=10.0)
    free = flat_system(p=2, bw=12.0, a=0.0)
    for coll, algo, slower in [("broadcast", "ring", 1.2), ("reduce", "ring", 1.2),
                               ("allreduce", "ring", 2.4), ("all_gather", "ring", 2.4),
                               ("all_to_all", "pairwise", 2.4), ("allreduce", "tree", 2.4)]:
        a, b = one(shared, 1e8, algo, coll, 2), one(free, 1e8, algo, coll, 2)
        assert a.bandwidth_us == pytest.approx(slower * b.bandwidth_us), (coll, algo)
        assert a.latency_us == b.latency_us
        ref = reference.cost(shared, 2, 1e8, algorithm=algo, collective=coll, library_only=False)
        assert ref[2] == pytest.approx(a.bandwidth_us), (coll, algo)
    # 8 chips of a 4-chip tier's groups: each group's 4 chips share it, 2.5 GB/s each
    two = System("two", (Tier("in", 4, 12.0, lat_sw_us=1.0, shared_gbps=10.0),
                         Tier("out", 2, 12.0, lat_sw_us=1.0)), base_lat_us=5.0)
    a = one(two, 1e8, "ring", "all_gather", 8)
    b = one(replace(two, tiers=(replace(two.tiers[0], shared_gbps=0.0), two.tiers[1])),
            1e8, "ring", "all_gather", 8)
    assert a.bandwidth_us == pytest.approx(12.0 / 2.5 * b.bandwidth_us)
    # TOML round trip and describe()
    shared = replace(shared, library_algorithms=("ring", "tree", "pairwise"))
    assert System.from_dict(tomllib.loads(shared.to_toml())) == shared
    assert "10 GB/s/dir shared by the group" in shared.describe()


def test_a_library_runs_only_its_own_hierarchical_plans():
    # NCCL's one hierarchical algorithm is NVLSTree (hier(innet>tree)): auto never picks
    # another hier plan on an NCCL preset; with every algorithm allowed, or asked for by its
    # label, hier(ring>ring) is still there
    s = collbench.preset("dgx-h100")
    assert s.hier_plans == ("hier(innet>tree)",)
    sizes = [1 << k for k in range(3, 35, 2)]
    for p in (16, 80):
        got = set(collbench.estimate(s, sizes, nranks=p).variant.astype(str))
        # (NVLSTree runs Simple only: [protocols.Simple.hier])
        assert {v for v in got if v.startswith("hier")} <= {"hier(innet>tree)/Simple"}, got
        ag = collbench.estimate(s, sizes, nranks=p, collective="all_gather")
        assert not any(str(v).startswith("hier") for v in ag.variant), p
    assert {v.split("/")[0] for v in collbench.estimate(
        s, sizes, nranks=80, collective="all_gather", algorithm="hier",
        library_only=False).variant.astype(str)} <= {
        "hier(ring+ring)", "hier(innet+ring)", "hier(ring+mesh)", "hier(innet+mesh)",
        "hier(mesh+ring)", "hier(mesh+mesh)"}
    with pytest.raises(collbench.CollbenchError, match="its hier plans: hier.innet>tree."):
        collbench.estimate(s, [1 << 20], nranks=80, collective="all_gather", algorithm="hier")
    assert collbench.estimate(s, [1 << 20], nranks=16, algorithm="hier(ring>ring)").variant[0] \
        == "hier(ring>ring)/Simple"
    # the reference agrees, and a file names them and reads them back
    for p, coll in [(16, "allreduce"), (80, "all_gather")]:
        est = collbench.estimate(s, [1 << 24], nranks=p, collective=coll).time_us[0]
        assert reference.cost(s, p, 1 << 24, collective=coll, algorithm="auto")[0] == \
            pytest.approx(est)
    text = s.to_toml()
    assert 'hier_plans = ["hier(innet>tree)"]' in text
    assert System.from_dict(tomllib.loads(text)).hier_plans == s.hier_plans
    assert "hier plans hier(innet>tree)" in s.describe()
    bad = tomllib.loads(text)
    bad["hier_plans"] = ["hier(nvls>tree)"]
    with pytest.raises(collbench.CollbenchError, match=r"'hier\(nvls>tree\)' is not one of the "
                                                       r"hier\(INNER>OUTER\) labels, INNER one of "
                                                       r"ring, mesh, innet"):
        System.from_dict(bad)


def test_in_switch_inner_all_reduce_costs_one_pass_per_direction():
    # hier(innet>ring) on 2 nodes of 4: the switch's reduce-scatter + all-gather move
    # (4+1)/4 of n through each chip's link per direction (as a one-tier in-switch
    # all-reduce does), not 1 + 3/4; then a ring all-reduce of n/4 across the 2 nodes
    node = Tier("node", 4, 100.0, lat_sw_us=1.0, innet=True, innet_eff=0.5, innet_lat_us=3.0)
    net = Tier("net", 2, 10.0, lat_sw_us=2.0)
    s = System("hand", (node, net), base_lat_us=0.0)
    r = one(s, 1e8, "hier(innet>ring)", p=8)
    inner = 1.25 / 0.5 * 1e8 / 1e5
    outer = 2 * 0.5 * 1e8 / 4 / 1e4
    assert r.bandwidth_us == pytest.approx(inner + outer)
    assert r.latency_us == pytest.approx(2 * 3.0 + 2 * 2.0)
    flat = one(replace(s, tiers=(node,)), 1e8, "innet", p=4)
    assert inner == pytest.approx(flat.bandwidth_us)
    ref = reference.cost(s, 8, 1e8, algorithm="hier(innet>ring)", library_only=False)
    assert ref[2] == pytest.approx(r.bandwidth_us)


def test_channels_span_a_full_mesh():
    # 4 ranks on a full mesh: one ring uses 1 of the 3 links per chip (bandwidth x3); a
    # library whose channels lay rings over different links (NCCL) uses all three
    mesh = flat_system(topology="fullmesh")
    one_ring = one(mesh, 1e8, "ring")
    spread = one(replace(mesh, channels_span_mesh=True), 1e8, "ring")
    assert one_ring.bandwidth_us == pytest.approx(3 * 1500)
    assert spread.bandwidth_us == pytest.approx(1500)
    assert spread.latency_us == one_ring.latency_us
    # the same for the tree; a single exchange (sendrecv) or rhd is still one partner at a time
    flat = replace(mesh, tiers=(replace(mesh.tiers[0], lat_sw_us=0.0),))   # unpipelined
    tree = one(replace(flat, channels_span_mesh=True), 1e8, "tree")
    assert tree.bandwidth_us == pytest.approx(one(flat, 1e8, "tree").bandwidth_us / 3)
    assert (one(replace(mesh, channels_span_mesh=True), 1e8, "rhd").bandwidth_us
            == one(mesh, 1e8, "rhd").bandwidth_us)


def test_nccl_presets_choose_protocols_as_nccl_does():
    # small sizes run LL, large ones Simple; LL128 in between on NVLink
    df = collbench.estimate("dgx-h100", [8, 1 << 20, 16 << 20, 1 << 32], nranks=8,
                            algorithm="ring")
    protos = [v.split("/")[1] for v in df.variant.astype(str)]
    assert protos[0] == "LL" and protos[-1] == "Simple" and "LL128" in protos
    # Simple on the network costs NCCL's 8.4 base + 14 us per network step (+ the network
    # tier's launch/synchronisation floor)
    r = one("dgx-h100", 1 << 34, "ring", p=16)
    assert r.variant == "ring/Simple"
    sync = collbench.preset("dgx-h100").tiers[1].sync_us
    assert r.latency_us == pytest.approx(8.4 + 28 * 3.4 + 2 * 14.0 + sync)
    s = collbench.preset("dgx-h100")
    assert s.protocols_for("ring") == ["LL", "LL128", "Simple"]
    # NVLS and NVLSTree run Simple only, with their own numbers
    assert s.protocols_for("innet") == s.protocols_for("hier(innet>tree)") == ["Simple"]


def test_zero_bytes_cost_nothing():
    df = collbench.estimate("dgx-h100", [0, 8], algorithm="all", nranks=8)
    zero = df[df.nbytes == 0]
    assert (zero.time_us == 0).all() and (zero.busbw_gbps == 0).all()


def test_large_messages_reach_published_link_figures():
    # busbw of a ring approaches line rate x measured efficiency:
    # H100 NVLink4 450 GB/s x 0.82 (nccl issue 1264: ~370 effective)
    r = one("dgx-h100", 1 << 34, "ring", p=8)
    assert 0.98 * 369 < r.busbw_gbps <= 450 * 0.82
    # CloudMatrix384 UB: 392 GB/s per chip x 0.85 (measured 167 of 196 GB/s per die)
    # (HCCL adds its reduction, B = 483 GB/s, to the transfer: check the terms apart)
    n = 1 << 34
    r = one("cloudmatrix384", n, "mesh2", p=8)
    link_busbw = 2 * 7 / 8 * n / (r.bandwidth_us * 1e3)
    assert 0.97 * 392 * 0.85 < link_busbw <= 392 * 0.85
    assert r.reduce_us == pytest.approx(7 / 8 * n / 483e3)
    # multi-node H100 ring is bound by the node's 8 x 50 GB/s NICs (rails) x 0.92
    r = one("dgx-h100", 1 << 34, "ring", p=64)
    assert 0.97 * 8 * 50 * 0.92 < r.busbw_gbps <= 8 * 50 * 0.92


def test_auto_follows_nccl_shape_on_h100():
    df = collbench.estimate("dgx-h100", [8, 1 << 30], nranks=8)
    assert list(df.algorithm) == ["tree", "innet"]
    df = collbench.estimate("dgx-a100", [1 << 30], nranks=8, algorithm="auto")
    assert list(df.algorithm) == ["ring"]
    # auto never loses to any algorithm it may choose
    sizes = 2.0 ** np.arange(0, 34)
    allr = collbench.estimate("dgx-h100", sizes, nranks=64, algorithm="all", library_only=False)
    auto = collbench.estimate("dgx-h100", sizes, nranks=64, library_only=False)
    best = allr.groupby("nbytes").time_us.min().values
    np.testing.assert_allclose(auto.time_us.values, best)


def test_hier_variants_follow_library_and_tiers():
    # library mode: NCCL's hier may only use ring / in-switch reduction inside the node
    df = collbench.estimate("dgx-h100", [8, 1 << 30], algorithm="hier", nranks=64)
    for v in df.variant:
        assert v.endswith("/Simple")        # NVLSTree runs Simple only
        inner, outer = v.split("/")[0][len("hier("):-1].split(">")
        assert inner in ("ring", "innet") and outer in ("ring", "tree", "innet")
    # three tiers: one inner choice per inner tier
    r = one("cloudmatrix384", 1 << 30, "hier", p=768)
    inner, outer = r.variant[len("hier("):-1].split(">")
    assert len(inner.split("+")) == 2


def test_mesh_wins_on_ascend_full_mesh():
    df = collbench.estimate("ascend-910b-8", [1 << 26], nranks=8)
    assert df.algorithm.iloc[0] in ("mesh", "mesh2")


def test_preset_sizes_and_scales():
    assert collbench.preset("dgx-h100").max_ranks >= 64
    assert collbench.preset("gb200-nvl72").max_ranks >= 1440
    assert collbench.preset("atlas-950-supercluster").max_ranks > 520_000
    assert collbench.preset("atlas-960-supercluster").max_ranks > 1_000_000
    assert set(collbench.systems()) == {
        "dgx-a100", "dgx-h100", "dgx-h200", "dgx-b200", "gb200-nvl72", "ascend-910b-8",
        "cloudmatrix384", "atlas-950-superpod", "atlas-960-superpod",
        "atlas-950-supercluster", "atlas-960-supercluster"}
    # every preset at its full size gives finite estimates
    for name in collbench.systems():
        df = collbench.estimate(name, [8, 1 << 30])
        assert np.isfinite(df.time_us).all() and (df.time_us > 0).all()


@pytest.mark.parametrize("name", collbench.systems())
def test_every_preset_number_has_a_source(name):
    raw = tomllib.loads((resources.files("collbench") / "model" / "presets" / f"{name}.toml").read_text())
    for key in SYSTEM_NUMBERS + ("library_algorithms", "overlap_reduce"):
        assert key in raw and len(raw["sources"].get(key, "")) > 10, key
    for tier in raw["tiers"]:
        for key in TIER_NUMBERS + ("innet", "topology"):
            if key == "topology" and key not in tier:
                continue
            assert key in tier, (tier["name"], key)
            assert len(tier["sources"].get(key, "")) > 10, (tier["name"], key)
        for key in TIER_OPTIONAL_NUMBERS:
            if key in tier:
                assert len(tier["sources"].get(key, "")) > 10, (tier["name"], key)
    if "hier_plans" in raw:
        assert len(raw["sources"].get("hier_plans", "")) > 10
    for proto in raw.get("protocols", {}):
        assert len(raw["sources"].get(f"protocols.{proto}", "")) > 10, proto


@pytest.mark.parametrize("name", ["cloudmatrix384", "dgx-h100"])
def test_toml_round_trip(tmp_path, name):
    s = collbench.preset(name)
    path = tmp_path / "cm.toml"
    path.write_text(s.to_toml())
    t = collbench.System.from_toml(path)
    assert t == s
    assert t.sources == s.sources        # dotted source keys ("protocols.LL") stay one key
    a = collbench.estimate(s, [1 << 20], nranks=64)
    b = collbench.estimate(str(path), [1 << 20], nranks=64)
    assert a.time_us.iloc[0] == b.time_us.iloc[0]


def test_sweep_grid():
    df = collbench.sweep(["dgx-h100", "cloudmatrix384"], [8, 1 << 20], algorithms="all",
                         nranks=[8, 64, 384])
    assert set(df.system) == {"dgx-h100", "cloudmatrix384"}
    assert set(df[df.system == "dgx-h100"].nranks) == {8, 64, 384}
    assert set(df[df.system == "cloudmatrix384"].nranks) == {8, 64, 384}
    assert (df.source == "model").all()


def test_physics_at_scale_holds_everywhere():
    # issue 12: no algorithm beats ceil(log2 p) rounds of 0.3 us at 8 B, and a direct one sends
    # p-1 messages per shot at no more than 200 M messages/s, on every preset at every scale
    from collbench.algorithms import COLLECTIVES
    from collbench.algorithms.base import ceil_log2
    from collbench.model.system import load_system
    checked = 0
    for name in collbench.systems():
        s = load_system(name)
        counts = {2, 3, 8, 64, 72, 384, 1024, 8192, s.tiers[0].size, s.max_ranks}
        for p in sorted(c for c in counts if c <= s.max_ranks):
            for coll in COLLECTIVES:
                df = collbench.estimate(s, 8, nranks=p, collective=coll, algorithm="all",
                                        library_only=False)
                for r in df.itertuples():
                    floor = ceil_log2(p) * 0.3
                    if r.algorithm == "mesh":
                        floor = max(floor, (p - 1) * 0.005)
                    if r.algorithm == "mesh2":
                        floor = max(floor, 2 * (p - 1) * 0.005)
                    assert r.time_us >= floor - 1e-9, (name, p, coll, r.algorithm, r.time_us)
                    checked += 1
    assert checked > 1000


def test_nvlstree_on_two_nodes_beats_any_ring():
    # corpus odd-aws-p5-2node-srunlabel: 16 H100 on 2 nodes reach 487 GB/s busbw at 16 GiB,
    # above what any ring reaches (a ring's busbw is at most the node's NICs, 8 x 50 GB/s):
    # NCCL runs NVLSTree there, one pipelined kernel whose tree moves the data across 2 nodes
    # once.  On 3 nodes its tree moves it twice and the ring is as fast
    two = collbench.estimate("dgx-h100", [16 << 30], nranks=16)
    assert two.variant.iloc[0] == "hier(innet>tree)/Simple"
    assert two.busbw_gbps.iloc[0] > 8 * 50
    three = collbench.estimate("dgx-h100", [16 << 30], nranks=24, algorithm="hier(innet>tree)")
    assert three.busbw_gbps.iloc[0] < 8 * 50


def test_ring_ll_runs_at_a_quarter_across_nodes():
    # NCCL's tuner: Ring/LL at 1/4 of the line rate where the ranks span nodes; the presets keep
    # 1/2 inside one node ([protocols.LL.ring] bw_factor_across).  Tree/LL has its own factor
    # on every span, and all-to-all (pairwise) keeps LL's 1/2
    s = System.from_dict({
        "name": "hand", "library": "nccl", "library_algorithms": ["ring", "tree", "pairwise"],
        "tiers": [{"name": "node", "size": 4, "bw_gbps": 100.0},
                  {"name": "net", "size": 4, "bw_gbps": 100.0}],
        "protocols": {"LL": {"bw_factor": 0.5, "algorithms": ["ring", "tree", "pairwise"],
                             "ring": {"bw_factor_across": 0.25},
                             "tree": {"bw_factor": 0.2}}}})
    n = 1e8
    inside = collbench.estimate(s, [n], nranks=4, algorithm="ring").iloc[0]
    across = collbench.estimate(s, [n], nranks=16, algorithm="ring").iloc[0]
    # 2 (p-1)/p n through each link at the factor's share of 1e5 B/us
    assert inside.bandwidth_us == pytest.approx(2 * 3 / 4 * n / (0.5 * 1e5))
    # across 4 nodes: a chip's node link carries 12 of the ring's 16 hops (the busier link)
    assert across.bandwidth_us == pytest.approx(2 * 15 / 16 * 12 / 16 * n / (0.25 * 1e5))
    tree = collbench.estimate(s, [n], nranks=4, algorithm="tree").iloc[0]
    assert tree.bandwidth_us == pytest.approx(2 * n / (0.2 * 1e5))
    a2a = collbench.estimate(s, [n], nranks=16, algorithm="pairwise",
                             collective="all_to_all").iloc[0]
    a2a_half = collbench.estimate(replace(s, protocols={"LL": {**s.protocols["LL"],
                                                               "by_algorithm": {}}}),
                                  [n], nranks=16, algorithm="pairwise",
                                  collective="all_to_all").iloc[0]
    assert a2a.time_us == a2a_half.time_us
    for p, r in ((4, inside), (16, across)):
        ref = reference.cost(s, p, n, algorithm="ring")
        assert ref[0] == pytest.approx(r.time_us)


def test_a_tree_across_two_nodes_crosses_once_where_the_system_says_so():
    # 16 ranks, 8 per node on 2 nodes, 1000 GB/s inside, 10 across: the busiest port of the
    # tree across the nodes moves 2 bytes per byte (NCCL's tree model), shared by a node's 8
    # ranks; on a system whose tree crosses 2 nodes once (two_node_tree_once, fitted where
    # the corpus's 2-node runs beat any ring) 1 byte per byte; on 3 nodes twice either way
    node, net = Tier("node", 8, 1000.0), Tier("net", 4, 10.0)
    s = System("pair", (node, net))
    once = replace(s, two_node_tree_once=True)
    n = 1e9
    assert one(s, n, "tree", p=16).bandwidth_us == pytest.approx(2 * n / 8 / 1e4)
    assert one(once, n, "tree", p=16).bandwidth_us == pytest.approx(n / 8 / 1e4)
    assert (one(once, n, "tree", p=24).bandwidth_us
            == pytest.approx(one(s, n, "tree", p=24).bandwidth_us))
    for sysm, p in ((s, 16), (once, 16), (once, 24)):
        ref = reference.cost(sysm, p, n, algorithm="tree", library_only=False)
        assert ref[0] == pytest.approx(one(sysm, n, "tree", p=p).time_us)
    # NVLSTree's tree crosses 2 nodes once on every system, and not twice over
    nv = replace(node, innet=True, innet_eff=1.0)
    a = one(System("nv", (nv, net)), n, "hier(innet>tree)", p=16)
    b = one(System("nv", (nv, net), two_node_tree_once=True), n, "hier(innet>tree)", p=16)
    assert a.bandwidth_us == b.bandwidth_us == pytest.approx(max(9 / 8 * n / 1e6, n / 8 / 1e4))
