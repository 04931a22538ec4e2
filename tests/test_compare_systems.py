"""collbench compare-systems: systems at equal chip counts, ratios, crossovers, one step."""
import numpy as np
import pytest

from collbench.errors import InputError
from collbench.model.versus import versus


def test_versus_table_and_crossovers_agree():
    v = versus(["gb200-nvl72", "cloudmatrix384"], [8, 72, 384, 8192],
               nbytes=2.0 ** np.arange(3, 31), step_bytes=14 << 30)
    t = v.table
    assert set(t.nranks) == {8, 72, 384}                     # 8192: cloudmatrix384 holds 6,144
    assert any("cloudmatrix384 holds 6,144" in s for s in v.skipped)
    assert (t.nbytes == 14 << 30).any()                       # the step size is costed
    assert set(t.collective) == {"allreduce", "all_gather", "all_to_all"}
    for r in v.crossovers.itertuples():                       # each crossover is real
        g = t[(t.collective == r.collective) & (t.nranks == r.nranks)]
        piv = g.pivot(index="nbytes", columns="system", values="time_us").sort_index()
        at = piv.index.get_loc(r.nbytes)
        assert piv.iloc[at].idxmin() == r.faster_from
        assert piv.iloc[at - 1].idxmin() == r.faster_below
    assert len(v.crossovers) >= 1


@pytest.mark.parametrize("systems, counts, words", [
    (["gb200-nvl72"], [8], "at least two"),
    (["gb200-nvl72", "gb200-nvl72"], [8], "same system twice"),
    (["gb200-nvl72", "cloudmatrix384"], [1], "2 or more"),
    (["ascend-910b-8", "cloudmatrix384"], [100_000], "no rank count is held"),
])
def test_versus_bad_input(systems, counts, words):
    with pytest.raises(InputError, match=words):
        versus(systems, counts)


def test_cli(tmp_path, cli):
    png = tmp_path / "vs.png"
    r = cli("compare-systems", "gb200-nvl72", "cloudmatrix384", "--nranks", "8,384",
            "--step", "14G", "--plot", png)
    assert r.returncode == 0, r.stderr
    assert "# allreduce on 384 chips" in r.stdout and "<- --step" in r.stdout
    assert "one 14G message" in r.stdout and png.stat().st_size > 20_000
    r = cli("compare-systems", "gb200-nvl72", "--nranks", "8")
    assert r.returncode == 2 and "at least two" in r.stderr
    r = cli("compare-systems", "gb200-nvl72", "cloudmatrix384", "--nranks", "8,x")
    assert r.returncode == 2 and "comma list" in r.stderr


def test_cli_says_how_far_real_runs_check_each_system(cli):
    import collbench
    r = cli("compare-systems", "cloudmatrix384", "dgx-h100", "--nranks", "8")
    assert r.returncode == 0, r.stderr
    assert "# how far real runs check each system" in r.stdout
    assert "#   cloudmatrix384: not checked: the corpus has no run of cloudmatrix384" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith("#   dgx-h100: "))
    for coll in ("allreduce", "all_gather", "all_to_all"):
        assert collbench.checked("dgx-h100", coll).brief() in line
    assert "allreduce: 7 runs at 4-80 ranks" in line
