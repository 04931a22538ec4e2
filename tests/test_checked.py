"""collbench.checked / collbench estimate's last lines: how far an estimate has been checked
against the corpus's real runs, recomputed from collbench validate's own rows."""
from dataclasses import replace

import numpy as np
import pytest

import collbench
from collbench.results.importers import read_output
from collbench.validation.cases import case_path, validate


@pytest.fixture(scope="module")
def h100():
    return validate(case="*xx-h100-*")


def test_validate_held_by_keeps_only_that_systems_cases(h100):
    own = validate(held_by="dgx-h100")
    assert set(own.system.dropna()) == {"dgx-h100"}
    assert set(own.case) == set(h100.case)           # every xx-h100 file, nothing else
    assert validate(held_by="no-such-system").empty
    # sizes measured: the file's first and last out-of-place sizes
    row = own[own.case == "xx-h100-n10g8-allgather"].iloc[0]
    df = read_output(case_path("xx-h100-n10g8-allgather")).frame
    df = df[(df.placement == "out-of-place") & (df.nbytes > 0)]
    assert (row.min_bytes, row.max_bytes) == (df.nbytes.min(), df.nbytes.max())


def test_checked_counts_each_run_once_and_picks_the_closest(h100):
    c = collbench.checked("dgx-h100", "all_gather", nranks=64)
    by_hand = h100[h100.collective == "all_gather"]
    # the odd-* file is the 80-rank log published whole: the same run as
    # xx-h100-n10g8-allgather, counted once
    assert "odd-xx-h100-n10g8-multicoll-sendrecv" in set(by_hand.case)
    assert sorted(c.runs.case) == ["xx-h100-n10g8-allgather", "xx-h100-n1g8-allgather"]
    assert c.closest.case == "xx-h100-n10g8-allgather"       # 80 is nearer 64 than 8 is
    assert collbench.checked("dgx-h100", "all_gather", nranks=9).closest.case == \
        "xx-h100-n1g8-allgather"
    assert set(c.collectives) == set(h100.collective.dropna())
    text = str(c)
    assert "2 corpus runs of all_gather on dgx-h100" in text and "8-80 ranks" in text
    errs = by_hand.set_index("case").error_1m
    lo, hi = errs.min(), errs.max()
    assert f"error from 1 MiB {100 * lo:.0f}-{100 * hi:.0f}%" in text
    within = int(((errs <= 0.10) & (by_hand.set_index("case").error_all <= 0.20))
                 .loc[["xx-h100-n10g8-allgather", "xx-h100-n1g8-allgather"]].sum())
    assert f"{within} of 2 within the targets" in text
    gm = np.exp(np.log1p(c.runs.error_all.astype(float)).mean()) - 1
    assert f"over all sizes {100 * c.runs.error_all.min():.0f}-" \
           f"{100 * c.runs.error_all.max():.0f}% (geomean {100 * gm:.0f}%)" in text


def test_what_is_not_checked_says_why():
    c = collbench.checked("gb200-nvl72", "allreduce", nranks=72)
    assert c.runs.empty and "no run of gb200-nvl72" in str(c)
    c = collbench.checked("dgx-h100", "broadcast", nranks=8)
    assert c.runs.empty and "no broadcast run of dgx-h100" in str(c) and "allreduce" in str(c)
    # a changed system is not the one the runs checked
    s = replace(collbench.preset("dgx-h100"), base_lat_us=1.0)
    assert "differs from the shipped one" in str(collbench.checked(s, "allreduce", 8))
    with pytest.raises(collbench.errors.InputError, match="unknown collective 'foo'; valid"):
        collbench.checked("dgx-h100", "foo")
    # a corpus system by name
    c = collbench.checked("alcf-polaris", "allreduce", nranks=32)
    assert len(c.runs) >= 10 and c.closest.nranks == 32


def test_estimate_prints_the_check(cli):
    r = cli("estimate", "--system", "dgx-h100", "--nranks", "80", "--collective", "all_gather",
            "-b", "1M", "-e", "4M", "--brief")
    assert r.returncode == 0, r.stderr
    tail = r.stdout.splitlines()[-3:]
    assert tail[0].startswith("# checked against real runs") and "2 corpus runs" in tail[0]
    assert tail[2].startswith("# closest to 80 ranks: xx-h100-n10g8-allgather")
    r = cli("estimate", "--system", "dgx-h100", "--nranks", "80", "-b", "1M", "-e", "4M",
            "--no-check")
    assert r.returncode == 0 and "checked" not in r.stdout
    assert r.stdout.splitlines()[-1].startswith("# Avg bus bandwidth")
    r = cli("estimate", "--system", "cloudmatrix384", "-b", "1M", "-e", "1M")
    assert r.stdout.splitlines()[-1].startswith("# not checked against real runs")
