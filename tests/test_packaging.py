"""The sdist is complete: built, installed outside the source tree, imported, used."""
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_sdist_builds_an_importable_package(tmp_path):
    pytest.importorskip("build", reason="the 'build' package (in collbench[test]) makes the sdist")
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o",
                        str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (sdist,) = (tmp_path / "dist").glob("collbench-*.tar.gz")
    names = tarfile.open(sdist).getnames()
    for part in ("cext/model/_kernels.pyx", "cext/runtime/_reduce.pyx",
                 "cext/runtime/_steps.pyx", "cext/runtime/cb_reduce.h",
                 "src/collbench/py.typed", "src/collbench/model/_kernels.pyi",
                 "src/collbench/model/presets/dgx-h100.toml",
                 "src/collbench/validation/systems/fitted/dgx-h100.toml"):
        assert any(n.endswith(part) for n in names), part
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                        "--no-build-isolation", "--target", str(target), str(sdist)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (target / "collbench" / "py.typed").exists()
    assert (target / "collbench" / "validation" / "systems" / "fitted" / "dgx-h100.toml").exists()
    # the C step loops are built where mpi4py and the mpich wheel's mpi.h are (test extras)
    assert list((target / "collbench" / "runtime").glob("_steps.*.so"))
    code = ("import collbench, sys; df = collbench.estimate('dgx-h100', [8, 1 << 20], nranks=8);"
            "assert collbench.__file__.startswith(sys.argv[1]), collbench.__file__;"
            "print(len(df), df.time_us.min() > 0, len(collbench.systems()))")
    r = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "True", "11"]
