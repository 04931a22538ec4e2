"""Several hosts for real: network-namespace hosts on this machine (tests/multihost.py), MPICH
over TCP on veth links.  Every collective and algorithm on 2 hosts x 2 ranks, exact, with the
bytes seen crossing the links; on a 200 Mbit/s shaped fabric the model, given a system file
written from the link's known figures, predicts ring, rhd and hier and orders them; a Ctrl-C to one rank on the second host ends
every rank through the job link."""
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collbench
from collbench.algorithms import COLLECTIVES, runnable
from multihost import Hosts, why_not

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))
SYSTEM = Path(__file__).parent / "data" / "netns-2x2-200mbit.toml"


def run(hosts, tmp_path, *args, timeout=300):
    return hosts.mpiexec(2, [sys.executable, "-m", "collbench", "run", *map(str, args)],
                         timeout=timeout, cwd=tmp_path)


def test_every_collective_and_algorithm_on_two_hosts(tmp_path):
    with Hosts(tmp_path, 2, tag=1) as hosts:
        for coll in COLLECTIVES:
            csv = tmp_path / f"{coll}.csv"
            before = hosts.tx_bytes()
            r = run(hosts, tmp_path, "--collective", coll, "--algo", ",".join(runnable(coll)),
                    "-b", "8", "-e", "1M", "-f", "128", "-n", "2", "-w", "1", "--csv", csv)
            after = hosts.tx_bytes()
            assert r.returncode == 0, coll + r.stderr[-3000:] + r.stdout[-3000:]
            assert "4 ranks (2 per node, 2 nodes)" in r.stdout.splitlines()[0], r.stdout
            assert "no job link" not in r.stdout, r.stdout            # rank 0 reached over TCP
            assert "# Out of bounds values : 0 OK" in r.stdout
            df = collbench.read_results(csv)
            assert set(df.algorithm) == set(runnable(coll)) and (df.nwrong == 0).all()
            assert set(df.slowest_host.astype(str)) <= set(hosts.names)
            assert set(df.host.astype(str)) == {hosts.names[0]}       # rank 0's host
            # data really crossed the links: a quarter of the 1 MiB buffer at least, from
            # every host (from the root's host only, or to it, for broadcast and reduce)
            sent = [b - a for a, b in zip(before, after)]
            least = (1 << 20) // 4
            assert (max(sent) if COLLECTIVES[coll].rooted else min(sent)) > least, (coll, sent)


def test_shaped_fabric_prediction_and_order(tmp_path):
    csv = tmp_path / "shaped.csv"
    with Hosts(tmp_path, 2, rate="200mbit", tag=2) as hosts:
        r = run(hosts, tmp_path, "--algo", "ring,rhd,hier", "-b", "4M", "-e", "16M", "-f", "2",
                "-n", "5", "-w", "1", "--no-in-place", "--predict", SYSTEM, "--csv", csv, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    df = collbench.read_results(csv)
    assert len(df) == 9 and (df.nwrong == 0).all()
    # the median of 5 iterations against the prediction: within 20% at 4-16 MiB as a geometric
    # mean per algorithm over the three sizes (measured here: 1.00-1.15 per point), a single
    # point within 35%.  The median, not the mean: on this shared machine one stalled iteration
    # of 2 once put a hier point at 1.62 (the other eight 0.99-1.13), and two of 3 once put
    # one at 1.51 (the other eight 1.01-1.06); 5 outlast two stalls
    df["r"] = df.time_median_us.astype(float) / df.predicted_us.astype(float)
    shown = df[["algorithm", "nbytes", "time_us", "time_median_us", "predicted_us", "r"]].to_string()
    gm = np.exp(np.log(df.r).groupby(df.algorithm.astype(str)).mean())
    assert gm.between(0.8, 1.2).all(), shown
    assert df.r.between(0.65, 1.35).all(), shown
    t = df.pivot_table(index="nbytes", columns="algorithm", values="time_median_us")
    # the order the model gives (ring moves 1.5 n per host link, rhd and hier n)
    assert (t.ring > t.rhd).all() and (t.ring > t.hier).all(), t


def test_a_signal_to_a_rank_on_the_other_host_ends_every_rank(tmp_path):
    # Ctrl-C to one rank on the second host: the job link (TCP to rank 0 on the first host)
    # ends every rank on both hosts with 130, one line, the rows saved so far kept
    csv = tmp_path / "r.csv"
    with Hosts(tmp_path, 2, tag=3) as hosts:
        p = hosts.start(2, [sys.executable, "-m", "collbench", "run", "-b", "8", "-e", "64M",
                            "-f", "2", "-n", "20", "--algo", "ring", "--csv", str(csv)],
                        cwd=tmp_path)
        try:
            deadline = time.time() + 120      # liveness limits, not speed bounds
            while time.time() < deadline and p.poll() is None and not (
                    csv.exists() and len(pd.read_csv(csv, comment="#")) >= 4):
                time.sleep(0.2)
            victims = hosts.pids(hosts.names[1], "collbench")
            assert len(victims) == 2, victims
            os.kill(victims[-1], signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, (p.returncode, err, out[-2000:])
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and f"({hosts.names[1]}): interrupted by SIGINT" in lines[0], err
    df = pd.read_csv(csv, comment="#")
    assert len(df) >= 4 and list(df.nbytes[:4]) == [8, 8, 16, 16]
