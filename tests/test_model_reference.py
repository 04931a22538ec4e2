"""The Cython kernel (and its NumPy twin) against the plain-Python reference."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import collbench
from collbench.algorithms import COLLECTIVES, MODEL_ALGORITHMS, for_collective
from collbench.model import reference
from collbench.model.system import System, Tier

tiers_st = st.builds(
    Tier,
    name=st.sampled_from(["a", "b", "c"]),
    size=st.integers(1, 12),
    bw_gbps=st.floats(1, 2000),
    lat_hw_us=st.floats(0, 5),
    lat_sw_us=st.floats(0, 20),
    topology=st.sampled_from(["switch", "fullmesh", "ring", "torus"]),
    innet=st.booleans(),
    innet_eff=st.floats(0.3, 1.0),
    innet_lat_us=st.floats(0, 30),
    oversub=st.floats(1, 4),
    eff_lo=st.floats(0.05, 1.0),
    eff_hi=st.floats(0.05, 1.0),
    eff_lo_bytes=st.sampled_from([1024.0, 65536.0, 1048576.0]),
    eff_hi_bytes=st.sampled_from([4194304.0, 268435456.0]),
    peer_share=st.sampled_from([1.0, 0.3]),
    shared_gbps=st.sampled_from([0.0, 0.0, 5.0, 300.0]),
    channels=st.sampled_from([0, 0, 2, 16]),
)

def _protocols(ntiers, extra):
    """None, or an LL-like protocol (the tiers' latencies, half bandwidth) and a Simple-like
    one (more latency per call and per step, full bandwidth), which the tree runs with
    numbers of its own (as NCCL's Tree does), with or without size ramps of their own (as
    NCCL's tree correction table: on LL for every algorithm, on Simple for the tree); LL
    may run only on ranks inside the inner tiers (max_tiers, as NCCL's LL128 where the NIC
    sits behind the host bridge), and Simple too (then wider ranks have no protocol); both
    may run with no size ramp on their innermost tiers (flat_tiers, as LL inside a node),
    which the tree's own ramp overrides.  Both have channel thresholds (NCCL's: fewer
    channels below channels x channel_bytes on a tier with channels; ring LL's x ranks)."""
    if extra is None:
        return {}
    algos = ("ring", "tree", "pairwise")
    ramp = ({"eff_lo_factor": extra[3], "eff_lo_bytes": 2.0 ** extra[4],
             "eff_hi_bytes": 2.0 ** (extra[4] + 5)} if extra[2] else {})
    ll_tiers = {"max_tiers": min(extra[5], ntiers)} if extra[5] else {}
    simple_tiers = ll_tiers if extra[6] else {}
    flat = {"flat_tiers": min(extra[7], ntiers)} if extra[7] else {}
    return {"LL": {"base_us": 0.0, "step_us": (0.0,) * ntiers, "bw_factor": 0.5,
                   **ll_tiers, "algorithms": algos, **ramp, **flat, "channel_bytes": 4096.0,
                   "by_algorithm": {"ring": {"bw_factor_across": 0.3,
                                             "channel_bytes_per_rank": 4096.0}}},
            "Simple": {"base_us": extra[0], "step_us": tuple(extra[1] * (k + 1)
                                                             for k in range(ntiers)),
                       "bw_factor": 1.0, **simple_tiers, **flat, "algorithms": algos,
                       "channel_bytes": 32768.0,
                       "by_algorithm": {"tree": {"step_us": (extra[1] + 1.0,) * ntiers,
                                                 "bw_factor": 0.9, **ramp}}}}


systems_st = st.builds(
    lambda tiers, base, red, ov, lib, span, proto, hier, once: System(
        name="h", tiers=tuple(tiers), base_lat_us=base, reduce_gbps=red, overlap_reduce=ov,
        library_algorithms=tuple(lib), channels_span_mesh=span,
        protocols=_protocols(len(tiers), proto), hier_plans=hier, two_node_tree_once=once),
    st.lists(tiers_st, min_size=1, max_size=3),
    st.floats(0, 10), st.floats(10, 2000), st.booleans(),
    st.lists(st.sampled_from(list(MODEL_ALGORITHMS)),
             min_size=1, max_size=6, unique=True),
    st.booleans(), st.one_of(st.none(), st.tuples(st.floats(0, 10), st.floats(0, 15),
                                                   st.booleans(), st.floats(0.05, 1.0),
                                                   st.integers(6, 24), st.integers(0, 2),
                                                   st.booleans(), st.integers(0, 2))),
    st.sampled_from([(), ("hier(innet>tree)",), ("hier(ring>rhd)", "hier(mesh)")]),
    st.booleans(),
)

sizes_st = st.lists(st.integers(0, 1 << 36), min_size=1, max_size=20)


def _check(system, p, coll, algo, sizes, library_only=True):
    try:
        df = collbench.estimate(system, sizes, collective=coll, algorithm=algo, nranks=p,
                                library_only=library_only)
    except ValueError as exc:
        # not applicable: the reference must agree
        assert reference.cost(system, p, sizes[0] or 1, collective=coll, algorithm=algo,
                              library_only=library_only) is None, str(exc)
        return
    dfn = collbench.estimate(system, sizes, collective=coll, algorithm=algo, nranks=p,
                             library_only=library_only, engine="numpy")
    np.testing.assert_allclose(df.time_us, dfn.time_us, rtol=1e-12)
    for n, row in zip(sizes, df.itertuples()):
        ref = reference.cost(system, p, n, collective=coll, algorithm=algo,
                             library_only=library_only)
        assert ref is not None
        assert math.isclose(row.time_us, ref[0], rel_tol=1e-9, abs_tol=1e-9), (n, row, ref)
        if algo != "auto":
            assert math.isclose(row.latency_us, ref[1], rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(row.bandwidth_us, ref[2], rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(row.reduce_us, ref[3], rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system=systems_st, data=st.data(), sizes=sizes_st)
def test_kernel_matches_reference(system, data, sizes):
    coll = data.draw(st.sampled_from(list(COLLECTIVES)))
    algo = data.draw(st.sampled_from(for_collective(coll) + ["auto"]))
    p = data.draw(st.integers(1, min(system.max_ranks, 200)))
    lib_only = data.draw(st.booleans())
    _check(system, p, coll, algo, sizes, lib_only)


@pytest.mark.parametrize("name", collbench.systems())
@pytest.mark.parametrize("coll", list(COLLECTIVES))
def test_presets_match_reference(name, coll):
    s = collbench.preset(name)
    sizes = [0, 1, 8, 1000, 65536, 1 << 20, 3 << 22, 1 << 28, 1 << 33]
    for p in sorted({1, 2, 3, 7, min(s.tiers[0].size, 64), s.tiers[0].size + 1,
                     s.tiers[0].size * 2, s.tiers[0].size * 2 + 1, 200}):
        if p > s.max_ranks:
            continue
        for algo in for_collective(coll) + ["auto"]:
            _check(s, p, coll, algo, sizes)
