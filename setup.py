"""Build: cythonize cext/<subpackage>/*.pyx into extension modules of that subpackage
(cext/model/_kernels.pyx -> collbench.model._kernels)."""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
extensions = [
    Extension("collbench." + ".".join(pyx.relative_to(HERE / "cext").with_suffix("").parts),
              [str(pyx.relative_to(HERE))],
              include_dirs=[np.get_include()],
              extra_compile_args=["-O3"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    for pyx in sorted((HERE / "cext").rglob("*.pyx"))
]

setup(ext_modules=cythonize(extensions, language_level=3,
                            compiler_directives={"boundscheck": False, "wraparound": False}))
