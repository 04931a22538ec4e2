"""Cost-model speed, in three separate layers: the Cython kernel (and its NumPy twin) on
preallocated arrays, building the DataFrame from the kernel's arrays, and the public API
(``estimate`` for one size and for a million; ``planner`` arrays); plus the plain-Python
reference and a sweep of every preset."""
import numpy as np

import collbench
from collbench.model.api import _frame


def _sizes(n):
    rng = np.random.default_rng(0)
    return np.sort(np.floor(2.0 ** rng.uniform(0, 34, n)))


class Kernel:
    """The kernel alone: compiled plans of one algorithm on a DGX H100 x 64 ranks,
    evaluated into preallocated output arrays."""
    params = (["ring", "tree", "rhd", "hier", "auto"], [1000, 1_000_000])
    param_names = ["algorithm", "sizes"]

    def setup(self, algorithm, n):
        self.sizes = _sizes(n)
        self.comp = collbench.planner("dgx-h100", nranks=64, algorithm=algorithm).compiled
        self.buf = self.comp.alloc(n)

    def time_cython(self, algorithm, n):
        self.comp.run(self.sizes, "cython", self.buf)

    def time_numpy(self, algorithm, n):
        self.comp.run(self.sizes, "numpy", self.buf)


class Frame:
    """Building the typed model frame from the kernel's arrays (no kernel work)."""
    params = ([1, 1000, 1_000_000],)
    param_names = ["sizes"]

    def setup(self, n):
        self.sizes = _sizes(n)
        self.comp = collbench.planner("dgx-h100", nranks=64, algorithm="auto").compiled
        self.out, self.choice = self.comp.run(self.sizes)

    def time_frame(self, n):
        _frame(self.comp, self.sizes, self.out, self.choice)


class API:
    """What a planner calls: estimate() of one size and of a million, and the array path."""

    def setup(self):
        self.big = _sizes(1_000_000)
        collbench.estimate("dgx-h100", 1 << 20, nranks=64)          # warm the plan cache
        self.pl = collbench.planner("dgx-h100", nranks=64, algorithm="auto")

    def time_estimate_one_size(self):
        collbench.estimate("dgx-h100", 1 << 20, nranks=64)

    def time_estimate_million_sizes(self):
        collbench.estimate("dgx-h100", self.big, nranks=64)

    def time_planner_million_sizes(self):
        self.pl.time_us(self.big)

    def peakmem_estimate_million_sizes(self):
        collbench.estimate("dgx-h100", self.big, nranks=64)


class PythonReference:
    """The plain-Python reference on 1,000 sizes (multiply by 1,000 to compare with 1M)."""
    params = (["ring", "tree", "rhd", "hier", "auto"],)
    param_names = ["algorithm"]

    def setup(self, algorithm):
        from collbench.model import reference
        self.ref = reference
        self.system = collbench.preset("dgx-h100")
        self.sizes = _sizes(1000)

    def time_python(self, algorithm):
        for n in self.sizes:
            self.ref.cost(self.system, 64, n, algorithm=algorithm)


class Sweep:
    """Every preset at full size, every applicable algorithm."""

    def setup(self):
        self.sizes = np.floor(2.0 ** np.arange(3, 35, 0.5))

    def time_sweep_every_preset_64_sizes(self):
        collbench.sweep(None, self.sizes, algorithms="all")

    def peakmem_sweep_every_preset_16k_sizes(self):
        collbench.sweep(None, np.floor(2.0 ** np.linspace(0, 34, 16384)), algorithms="all")
