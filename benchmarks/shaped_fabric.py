"""Two namespace hosts x 2 ranks on a 200 Mbit/s shaped link (tests/multihost.py): collbench
run's ring, rhd and hier all-reduce at 4-16 MiB against the model's prediction from a system
file written from the link's figures (tests/data/netns-2x2-200mbit.toml).  Needs root.

    python benchmarks/shaped_fabric.py [--out results/multihost-shaped-200mbit.csv]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import collbench  # noqa: E402
from multihost import Hosts, why_not  # noqa: E402

SYSTEM = ROOT / "tests" / "data" / "netns-2x2-200mbit.toml"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "multihost-shaped-200mbit.csv")
    args = ap.parse_args(argv)
    if why_not():
        print(f"shaped_fabric: {why_not()}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d, Hosts(Path(d), 2, rate="200mbit", tag=9) as hosts:
        r = hosts.mpiexec(2, [sys.executable, "-m", "collbench", "run", "--algo",
                              "mpi,ring,rhd,hier", "-b", "4M", "-e", "16M", "-f", "2", "-n", "3",
                              "-w", "1", "--no-in-place", "--predict", str(SYSTEM), "--csv", str(args.out)],
                          timeout=1200, cwd=Path(d))
    print(r.stdout)
    if r.returncode:
        print(r.stderr, file=sys.stderr)
        return r.returncode
    df = collbench.read_results(args.out)
    df = df[df.run == df.run.iloc[-1]]
    print("# measured / predicted per algorithm: " + ", ".join(
        f"{a} {g.ratio.min():.2f}-{g.ratio.max():.2f}" for a, g in df.groupby("algorithm",
                                                                                observed=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
