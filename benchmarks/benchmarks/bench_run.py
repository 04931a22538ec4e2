"""Measured all-reduce time of real `collbench run` jobs (mpiexec -n 2), tracked in us
(asv treats larger as worse, so times, not bandwidths)."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ALGOS = ["mpi", "ring", "binomial", "rhd", "hier"]
SIZES = [8, 32768, 2097152]      # on the -b 8 -f 8 ladder


class MeasuredAllreduce:
    params = (ALGOS, SIZES)
    param_names = ["algorithm", "nbytes"]
    timeout = 900

    def setup_cache(self):
        import pandas as pd
        mpiexec = Path(sys.executable).parent / "mpiexec"
        with tempfile.TemporaryDirectory() as d:
            csv = Path(d) / "run.csv"
            cmd = [str(mpiexec), "-n", "2", sys.executable, "-m", "collbench", "run", "-b", "8",
                   "-e", "2M", "-f", "8", "-n", "20", "-w", "5", "--algo", ",".join(ALGOS),
                   "--ranks-per-node", "1", "--csv", str(csv)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=600,
                           env=dict(os.environ, MPI4PY_RC_THREAD_LEVEL="single"))
            df = pd.read_csv(csv, comment="#")
        return {(r.algorithm, int(r.nbytes)): float(r.time_us) for r in df.itertuples()}

    def track_time_us(self, times, algorithm, nbytes):
        return times[(algorithm, nbytes)]

    track_time_us.unit = "us"
