import io
import json

import pandas as pd


def test_estimate_table_reads_like_nccl_tests(cli):
    r = cli("estimate", "--system", "dgx-h100", "-b", "8", "-e", "8G", "-f", "2", "--nranks", "8")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = [l for l in lines if l.startswith("#") and "size" in l][0]
    for col in ("size", "count", "type", "redop", "time", "algbw", "busbw"):
        assert col in header
    rows = [l for l in lines if not l.startswith("#")]
    assert len(rows) == 31                     # 8 B .. 8 GiB, factor 2
    first = rows[0].split()
    assert first[:4] == ["8", "2", "float", "sum"]
    assert any(x.startswith("# Avg bus bandwidth") for x in lines[-4:])


def test_estimate_csv_and_json_are_the_schema(cli):
    r = cli("estimate", "--system", "cloudmatrix384", "-b", "1K", "-e", "1M", "--algo", "all",
            "--nranks", "16", "--format", "csv")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(io.StringIO(r.stdout))
    assert {"system", "collective", "algorithm", "nranks", "nbytes", "time_us", "algbw_gbps",
            "busbw_gbps", "latency_us", "bandwidth_us", "reduce_us", "source"} <= set(df.columns)
    assert set(df.algorithm) >= {"ring", "mesh", "mesh2", "rhd", "hier"}
    r = cli("estimate", "--system", "dgx-h100", "-b", "8", "-e", "64", "--format", "json")
    rows = json.loads(r.stdout)
    assert len(rows) == 4 and rows[0]["nranks"] == 1024


def test_systems_lists_presets_and_sources(cli):
    r = cli("systems")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 11
    r = cli("systems", "gb200-nvl72")
    assert "NVLink" in r.stdout and "interconnects.md" in r.stdout


def test_python_m_and_console_script_agree(cli):
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    exe = Path(sys.executable).parent / "collbench"
    if not exe.exists():
        exe = shutil.which("collbench")
    a = subprocess.run([str(exe), "estimate", "--system", "dgx-b200", "--nranks", "8", "-b", "1M",
                        "-e", "1M", "--format", "csv"], capture_output=True, text=True, timeout=60)
    b = cli("estimate", "--system", "dgx-b200", "--nranks", "8", "-b", "1M", "-e", "1M",
            "--format", "csv")
    assert a.returncode == 0 and a.stdout == b.stdout
