"""collbench validate: every corpus case is either held against a system collbench describes
(with finite errors computed from its own rows) or left out with a reason; the systems written
for the corpus hardware load and cite a source for every number they set."""
import math
import tomllib

import numpy as np
import pandas as pd
import pytest

import collbench
from collbench.results.importers import read_output
from collbench.validation import systems_dir
from collbench.validation.cases import (
    _system,
    case_path,
    index,
    per_node_system,
    summary,
    system_for,
    validate,
)


@pytest.fixture(scope="module")
def table():
    return validate()


def test_every_case_is_compared_or_left_out_with_a_reason(table):
    ids = {e["id"] for e in index()}
    assert set(table.case) == ids                      # all 92 files accounted for
    done = table.dropna(subset=["error_all"])
    assert len(done) >= 70 and done.case.nunique() >= 60
    assert np.isfinite(done.error_all).all() and (done.error_all >= 0).all()
    left = table[table.error_all.isna()]
    assert (left.note.str.len() > 5).all()             # each says why
    for e in index():
        name, why = system_for(e["id"])
        assert (name is None) == bool(why)


def test_errors_are_the_case_rows_against_the_estimate(table):
    # recompute one case by hand from the corpus file and the model
    case = "xx-h100-n1g8-allgather"
    row = table[table.case == case].iloc[0]
    df = read_output(case_path(case)).frame
    df = df[(df.placement == "out-of-place") & (df.nbytes > 0)].sort_values("nbytes")
    est = collbench.estimate("dgx-h100", df.nbytes.to_numpy(), nranks=8,
                             collective="all_gather", algorithm="auto")
    lr = np.log(est.time_us.to_numpy() / df.time_us.to_numpy())
    assert row.error_all == pytest.approx(math.exp(np.abs(lr).mean()) - 1)
    assert row.rows == len(df) and row.system == "dgx-h100" and row.nranks == 8


def test_summary_per_system_and_collective(table):
    s = summary(table)
    assert {"dgx-h100", "alcf-polaris", "snellius-h100"} <= set(s.system)
    assert (s.cases >= 1).all() and (s.within_targets <= s.cases).all()


def test_rank_placement_follows_the_run():
    # 10 nodes x 1 GPU: the node tier holds 1 rank, so every step crosses the network
    s = per_node_system(_system("dgx-h100"), 1)
    assert s.tiers[0].size == 1 and s.tiers[1:] == _system("dgx-h100").tiers[1:]
    one = collbench.estimate(s, 1 << 30, nranks=8, algorithm="ring").time_us.iloc[0]
    eight = collbench.estimate("dgx-h100", 1 << 30, nranks=8, algorithm="ring").time_us.iloc[0]
    assert one > 3 * eight                             # network, not NVLink


@pytest.mark.parametrize("path", sorted(systems_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_validation_systems_load_and_cite_sources(path):
    s = collbench.System.from_toml(path)
    assert s.name == path.stem
    raw = tomllib.loads(path.read_text())
    for key in ("base_lat_us", "reduce_gbps", "library_algorithms"):
        assert len(raw["sources"].get(key, "")) > 10, key
    for tier in raw["tiers"]:
        for key in tier:
            if key in ("name", "sources"):
                continue
            assert len(tier["sources"].get(key, "")) > 10, (tier["name"], key)
    df = collbench.estimate(s, [8, 1 << 20, 1 << 30], nranks=s.max_ranks)
    assert np.isfinite(df.time_us).all()


def test_cli(tmp_path, cli):
    out = tmp_path / "v.csv"
    r = cli("validate", "--case", "snellius-*", "--all", "--csv", out)
    assert r.returncode == 0, r.stderr
    assert "snellius-h100-2nodes-all-reduce-mpi" in r.stdout and "within targets" in r.stdout
    assert "left out: odd-snellius-h100-1gpu-allreduce-degenerate" not in r.stdout
    t = pd.read_csv(out)
    assert set(t.system.dropna()) == {"snellius-h100"} and len(t) == 7
    r = cli("validate", "--case", "zz*")
    assert r.returncode == 2 and "no corpus case matches" in r.stderr
    r = cli("validate", "--case", "xx-h100-n1g8-allreduce", "--system", "dgx-a100")
    assert r.returncode == 0 and "dgx-a100" in r.stdout
