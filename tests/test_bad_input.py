"""Bad input: ValueError naming the valid choices; on the CLI one line and exit code 2."""
import math

import numpy as np
import pytest

import collbench


@pytest.mark.parametrize("nbytes, words", [
    (-1, "negative"), (math.nan, "NaN"), (1.5, "whole"), (2.0 ** 60, "absurd"),
    ([8, -8], "negative"), ("12Q", "suffix"), ([], "no sizes"), (math.inf, "NaN"),
])
def test_bad_sizes(nbytes, words):
    with pytest.raises(ValueError, match=words):
        collbench.estimate("dgx-h100", nbytes)


@pytest.mark.parametrize("kw, words", [
    ({"nranks": 0}, "outside 1..1,024"), ({"nranks": 2000}, "outside"),
    ({"nranks": 2.5}, "whole number"),
    ({"algorithm": "bogus"}, "valid for allreduce: ring, tree"),
    ({"collective": "gather"}, "valid: allreduce, reduce_scatter"),
    ({"algorithm": "bruck"}, "does not implement allreduce"),
])
def test_bad_arguments(kw, words):
    with pytest.raises(ValueError, match=words):
        collbench.estimate("dgx-h100", 8, **kw)


def test_unknown_system_names_presets():
    with pytest.raises(ValueError, match="valid presets: dgx-a100, .*dgx-h100"):
        collbench.estimate("dgx-h900", 8)


def test_algorithm_that_does_not_fit():
    with pytest.raises(ValueError, match="no tier with in-switch|has none.*applicable: ring"):
        collbench.estimate("dgx-a100", 8, algorithm="innet", nranks=8, library_only=False)
    with pytest.raises(ValueError, match="use 'hier'"):
        collbench.estimate("dgx-h100", 8, algorithm="innet", nranks=16)
    with pytest.raises(ValueError, match="more than one tier"):
        collbench.estimate("dgx-h100", 8, algorithm="hier", nranks=8)


@pytest.mark.parametrize("text, words", [
    ("name = 'x'\n[[tiers]\n", "broken TOML"),
    ("name = 'x'\n", "at least one"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\n", "missing 'bw_gbps'"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=-3\n", "outside"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\ntopology='hypercube'\n", "valid: switch"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\nbandwidth=4\n", "unknown tier keys"),
    ("name = 'x'\nlibrary_algorithms=['warp']\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "unknown algorithms"),
    ("name = 'x'\n[protocols.LL]\nstep_us=[1, 2]\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "list of 1 numbers, one per tier"),
    ("name = 'x'\n[protocols.LL]\nbw_factor=2\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "outside"),
    ("name = 'x'\n[protocols.LL]\nlatency=2\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "unknown keys.*valid keys: base_us, step_us"),
    ("name = 'x'\n[protocols.LL]\nalgorithms=['warp']\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "non-empty list of: ring"),
    ("name = 'x'\nprotocols=3\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n", "table of tables"),
    ("name = 'x'\n[protocols.LL]\nalgorithms=['ring']\n[protocols.LL.tree]\nbw_factor=0.5\n"
     "[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.tree: not an algorithm this protocol runs; valid: ring"),
    ("name = 'x'\n[protocols.LL]\nalgorithms=['tree']\n[protocols.LL.tree]\nalgorithms=['ring']\n"
     "[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.tree: unknown keys \\['algorithms'\\]; valid keys: base_us, step_us, bw_factor, "
     "bw_factor_across, eff_lo_factor, eff_lo_bytes, eff_hi_bytes, flat_tiers, channel_bytes, "
     "channel_bytes_per_rank$"),
    ("name = 'x'\n[protocols.LL]\nchannel_bytes=0\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.channel_bytes=0 is outside \\[1, 1000000000000.0\\]"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\nchannels=2.5\n",
     "channels must be a whole number, got 2.5"),
    ("name = 'x'\n[protocols.LL]\nalgorithms=['tree']\n[protocols.LL.tree]\neff_lo_factor=0.5\n"
     "eff_lo_bytes=1024\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.tree: a ramp needs all of eff_lo_factor, eff_lo_bytes, eff_hi_bytes; got "
     "eff_lo_factor, eff_lo_bytes$"),
    ("name = 'x'\n[protocols.LL]\neff_lo_factor=1.5\neff_lo_bytes=1024\neff_hi_bytes=4096\n"
     "[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.eff_lo_factor=1.5 is outside \\[1e-06, 1.0\\]"),
    ("name = 'x'\n[protocols.LL]\neff_lo_factor=0.5\neff_lo_bytes=4096\neff_hi_bytes=4096\n"
     "[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.eff_hi_bytes must be above eff_lo_bytes$"),
    ("name = 'x'\n[protocols.LL]\nalgorithms=['tree']\n[protocols.LL.tree]\nstep_us=[1, 2]\n"
     "[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.tree.step_us must be a list of 1 numbers"),
    ("name = 'x'\n[protocols.LL128]\nmax_tiers=2\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL128.max_tiers=2 is outside \\[1, 1\\]"),
    ("name = 'x'\n[protocols.LL128]\nmax_tiers=0.5\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL128.max_tiers=0.5 is outside \\[1, 1\\]"),
    ("name = 'x'\n[protocols.LL]\nflat_tiers=2\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL.flat_tiers=2 is outside \\[1, 1\\]"),
    ("name = 'x'\n[protocols.LL128]\nalgorithms=['tree']\n[protocols.LL128.tree]\nmax_tiers=1\n"
     "[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "protocols.LL128.tree: unknown keys \\['max_tiers'\\]"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\npeer_share=0\n",
     "peer_share=0 is outside \\[1e-06, 1.0\\]"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\nshared_gbps=-1\n",
     "shared_gbps=-1 is outside \\[0, 1000000000.0\\]"),
    ("name = 'x'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\nspans_hosts=1\n",
     "spans_hosts must be true or false"),
    ("name = 'x'\nhier_plans='hier(innet>tree)'\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "hier_plans must be a list of hier\\(INNER>OUTER\\) labels"),
    ("name = 'x'\nhier_plans=['hier(ring>warp)']\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n",
     "'hier\\(ring>warp\\)' is not one of the hier.*OUTER one of ring, tree"),
])
def test_broken_toml(tmp_path, text, words):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=words):
        collbench.System.from_toml(p)


def test_user_toml_works(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text("name = 'mine'\nbase_lat_us = 3\n[[tiers]]\nname = 'nv'\nsize = 4\n"
                 "bw_gbps = 100\nlat_sw_us = 1\n[[tiers]]\nname = 'eth'\nsize = 16\nbw_gbps = 12.5\n")
    df = collbench.estimate(str(p), [8, 1 << 20], algorithm="all")
    assert set(df.nranks) == {64} and np.isfinite(df.time_us).all()


@pytest.mark.parametrize("args, words", [
    (["estimate", "--system", "nope"], "valid presets"),
    (["estimate", "--system", "dgx-h100", "-b", "-8"], "bad size"),
    (["estimate", "--system", "dgx-h100", "--algo", "zz"], "valid for allreduce"),
    (["estimate", "--system", "dgx-h100", "--nranks", "0"], "outside"),
    (["estimate", "--system", "dgx-h100", "--nranks", "x"], "invalid int"),
    (["estimate", "--system", "dgx-a100", "--nranks", "8", "--algo", "innet"], "applicable"),
    (["estimate", "--system", "/nonexistent/x.toml"], "cannot read"),
    (["estimate", "--system", "dgx-h100", "-e", "2P"], "outside"),
    (["estimate", "--system", "dgx-h100", "-f", "1"], "factor"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_input_one_line_exit_2(cli, args, words):
    r = cli(*args)
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, r.stderr
