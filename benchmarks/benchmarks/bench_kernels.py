"""Cost-model speed: the Cython kernel against the NumPy twin and the plain-Python reference."""
import numpy as np

import collbench


def _sizes(n):
    rng = np.random.default_rng(0)
    return np.sort(np.floor(2.0 ** rng.uniform(0, 34, n)))


class ModelKernels:
    """estimate() of one algorithm on a DGX H100 x 64 ranks, per engine and sweep size."""
    params = (["ring", "tree", "rhd", "hier", "auto"], [1000, 100_000, 1_000_000])
    param_names = ["algorithm", "sizes"]

    def setup(self, algorithm, n):
        self.sizes = _sizes(n)
        collbench.estimate("dgx-h100", self.sizes[:2], algorithm=algorithm, nranks=64)  # warm

    def time_cython(self, algorithm, n):
        collbench.estimate("dgx-h100", self.sizes, algorithm=algorithm, nranks=64)

    def time_numpy(self, algorithm, n):
        collbench.estimate("dgx-h100", self.sizes, algorithm=algorithm, nranks=64, engine="numpy")


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
        # about 1.8 million rows of the full result schema
        collbench.sweep(None, np.floor(2.0 ** np.linspace(0, 34, 16384)), algorithms="all")
