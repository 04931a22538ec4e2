"""Measured all-reduce time of real `collbench run` jobs (mpiexec -n 2), tracked in us (asv
treats larger as worse, so times, not bandwidths).

One job is machine noise, not a measurement: setup_cache runs JOBS jobs, and each point records
the median over the jobs of each job's median iteration time (robust to a job that a busy
neighbour slowed), and separately the spread over the jobs (max - min) / median, in percent, so
the dashboard shows how much a point can move by noise alone."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ALGOS = ["mpi", "ring", "binomial", "rhd", "hier"]
SIZES = [8, 32768, 2097152]      # on the -b 8 -f 8 ladder
JOBS = 3


class MeasuredAllreduce:
    params = (ALGOS, SIZES)
    param_names = ["algorithm", "nbytes"]
    timeout = 900

    def setup_cache(self):
        import numpy as np
        import pandas as pd
        mpiexec = Path(sys.executable).parent / "mpiexec"
        samples = {}
        with tempfile.TemporaryDirectory() as d:
            for job in range(JOBS):
                csv = Path(d) / f"run{job}.csv"
                cmd = [str(mpiexec), "-n", "2", sys.executable, "-m", "collbench", "run",
                       "-b", "8", "-e", "2M", "-f", "8", "-n", "30", "-w", "5",
                       "--algo", ",".join(ALGOS), "--ranks-per-node", "1", "--csv", str(csv)]
                subprocess.run(cmd, check=True, capture_output=True, timeout=600,
                               env=dict(os.environ, MPI4PY_RC_THREAD_LEVEL="single"))
                df = pd.read_csv(csv, comment="#")
                if "placement" in df:          # newer builds also time in place
                    df = df[df.placement == "out-of-place"]
                col = "time_median_us" if "time_median_us" in df else "time_us"
                for r in df.itertuples():
                    samples.setdefault((r.algorithm, int(r.nbytes)), []).append(getattr(r, col))
        out = {}
        for key, xs in samples.items():
            med = float(np.median(xs))
            out[key] = (med, 100.0 * (max(xs) - min(xs)) / med if med > 0 else 0.0)
        return out

    def track_time_us(self, stats, algorithm, nbytes):
        return stats[(algorithm, nbytes)][0]

    track_time_us.unit = "us"

    def track_spread_pct(self, stats, algorithm, nbytes):
        return stats[(algorithm, nbytes)][1]

    track_spread_pct.unit = "%"
