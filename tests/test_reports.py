"""collbench sweep / plot / report on real files."""
import re
import struct

import pandas as pd

import collbench


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _measured(tmp_path):
    """A results file in the measured schema (what collbench run writes), with predictions."""
    rows = []
    for algo, bw in (("mpi", 5.0), ("ring", 6.0)):
        for k in range(3, 24, 2):
            n = 2 ** k
            t = 2.0 + n / (bw * 1e3)
            rows.append(dict(source="measured", system="local", collective="allreduce",
                             algorithm=algo, nranks=2, nbytes=n, time_us=t,
                             algbw_gbps=n / t / 1e3, busbw_gbps=n / t / 1e3, nwrong=0, iters=20,
                             host="testhost", mpi_version="MPICH 5", thread_level="single",
                             ranks_per_node=1, predicted_us=t * 1.1, predicted_system="x",
                             ratio=1 / 1.1))
    path = tmp_path / "m.csv"
    collbench.write_results(pd.DataFrame(rows), path)
    return path


def test_sweep_plot_report(cli, tmp_path):
    model = tmp_path / "model.csv"
    r = cli("sweep", "--system", "dgx-h100,cloudmatrix384", "-b", "8", "-e", "1G", "--algo",
            "auto", "--nranks", "domain,full", "-o", model)
    assert r.returncode == 0, r.stderr
    assert "2/2" in r.stderr                       # progress
    df = collbench.read_results(model)
    assert set(df.nranks) == {8, 1024, 6144}
    meas = _measured(tmp_path)
    out = tmp_path / "out"
    r = cli("report", model, meas, "-o", out, "--crossover", "dgx-h100")
    assert r.returncode == 0, r.stderr
    text = (out / "report.md").read_text()
    assert "## Measured" in text and "measured / predicted" in text
    assert "| 0.909 |" in text or "0.909" in text   # geometric mean of the ratios
    assert "dgx-h100" in text and "cloudmatrix384" in text
    # no exponent notation in the tables (a busbw of 1,050 GB/s read "1.05e+03" before)
    assert not re.search(r"\de[+-]\d", text), re.findall(r".{20}\de[+-]\d.{5}", text)
    for name in ("measured_2ranks.png", "presets.png", "crossover_dgx-h100.png"):
        w, h = _png_size(out / name)
        assert w >= 800 and h >= 400
        assert f"]({name})" in text


def test_plot_bad_input(cli, tmp_path):
    r = cli("plot", tmp_path / "missing.csv")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    p = tmp_path / "x.txt"
    p.write_text("hello")
    r = cli("plot", p)
    assert r.returncode == 2 and "must end in .csv or .json" in r.stderr


def test_report_keeps_runs_and_placements_apart(tmp_path, cli):
    # two published runs of one system (Polaris, 8 nodes, two setups): both appear, each with
    # out-of-place and in-place tables of time (us) beside busbw; nothing prints "nan"
    from collbench.validation import corpus_dir
    raw = corpus_dir() / "raw"
    a, b = tmp_path / "s1.csv", tmp_path / "s4.csv"
    cli("import", raw / "alcf-polaris-n8-nccl218-allreduce-s1.txt", "-o", a)
    cli("import", raw / "alcf-polaris-n8-nccl218-allreduce-s4.txt", "-o", b)
    r = cli("report", a, b, "-o", tmp_path / "rep", "--no-plots")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "### Run `import:alcf-polaris-n8-nccl218-allreduce-s1.txt`" in text
    assert "### Run `import:alcf-polaris-n8-nccl218-allreduce-s4.txt`" in text
    assert text.count("allreduce (out-of-place)") == 2 and text.count("allreduce (in-place)") == 2
    assert "auto time us" in text and "auto busbw GB/s" in text
    assert "nan" not in text.lower().replace("nanos", "")
    assert "| 1G | 347,600 | 5.98 |" in text          # s1's 1 GiB row, as nccl-tests printed it
    assert "wrong elements: 0 (OK)" in text


def test_report_numbers_never_in_exponent_form(tmp_path):
    # a model table whose busbw passes 1,000 GB/s (in-switch systems reach it) read
    # "1.05e+03 GB/s" before
    from collbench.reports.markdown import report
    df = collbench.estimate("gb200-nvl72", [1 << 20, 1 << 30], nranks=72)
    df["busbw_gbps"] = [1.0537, 1050.2]
    text = report(df, tmp_path / "r", []).read_text()
    assert "1,050 GB/s" in text and not re.search(r"\de[+-]\d", text), text
