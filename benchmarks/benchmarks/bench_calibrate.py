"""collbench calibrate: the robust fit of 1,000 measured rows (35 groups: 5 algorithms x
ranks 2..8), as benchmarks/speed_calibrate.py builds them."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from collbench import calibration as calibrate  # noqa: E402
from speed_calibrate import rows  # noqa: E402


class Calibrate:
    params = ([200, 1000],)
    param_names = ["rows"]

    def setup(self, n):
        self.df = rows(n)

    def time_fit(self, n):
        calibrate.fit(self.df)
