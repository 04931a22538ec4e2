"""Build: cythonize cext/<subpackage>/*.pyx into extension modules of that subpackage
(cext/model/_kernels.pyx -> collbench.model._kernels).

cext/runtime/_steps.pyx (collbench's algorithms at C speed) calls MPI's C API through mpi4py's
Cython interface: it is built when mpi4py and an MPI header are found (the mpich wheel, a
build requirement on Linux, ships mpi.h; MPICC or an mpicc on PATH also works).  Without
them the package builds without it and `collbench run` uses the Python step loops.
"""
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
MPI_MODULES = {"_steps.pyx"}


def mpi_build_flags():
    """(include dirs, library dirs) of an MPICH-ABI MPI and mpi4py's, or None."""
    try:
        import mpi4py
    except ImportError:
        return None
    incs, libs = [], []
    try:                                  # the mpich wheel: include/mpi.h, lib/libmpi.so
        dist = metadata.distribution("mpich")
        for f in dist.files or []:
            name = str(f)
            if name.endswith("include/mpi.h"):
                incs.append(str(Path(dist.locate_file(f)).resolve().parent))
            elif name.endswith("libmpi.so"):
                libs.append(str(Path(dist.locate_file(f)).resolve().parent))
    except metadata.PackageNotFoundError:
        mpicc = os.environ.get("MPICC") or shutil.which("mpicc")
        if mpicc:
            out = subprocess.run([mpicc, "-show"], capture_output=True, text=True).stdout.split()
            incs += [a[2:] for a in out if a.startswith("-I")]
            libs += [a[2:] for a in out if a.startswith("-L")]
            if not incs:
                incs.append(str(Path(mpicc).resolve().parent.parent / "include"))
    if not any((Path(i) / "mpi.h").exists() for i in incs):
        return None
    return incs + [mpi4py.get_include()], libs


def extension(pyx, mpi):
    name = "collbench." + ".".join(pyx.relative_to(HERE / "cext").with_suffix("").parts)
    incs, extra = [np.get_include(), str(pyx.parent.relative_to(HERE))], {}
    if mpi is not None:
        incs += mpi[0]
        extra = dict(libraries=["mpi"], library_dirs=mpi[1])
    return Extension(name, [str(pyx.relative_to(HERE))], include_dirs=incs,
                     extra_compile_args=["-O3"],
                     define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")], **extra)


mpi = mpi_build_flags()
if mpi is None:
    print("collbench: no mpi4py/MPI header at build time; building without the C step loops "
          "(cext/runtime/_steps.pyx)", file=sys.stderr)
extensions = [extension(pyx, mpi if pyx.name in MPI_MODULES else None)
              for pyx in sorted((HERE / "cext").rglob("*.pyx"))
              if pyx.name not in MPI_MODULES or mpi is not None]

setup(ext_modules=cythonize(extensions, language_level=3,
                            compiler_directives={"boundscheck": False, "wraparound": False}))
