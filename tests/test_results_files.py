"""Results files: typed round trip, runs appended (never replaced), concurrent writers keep
every row, files that are not regular files refused at once."""
import multiprocessing as mp
import os

import pandas as pd
import pytest

import collbench
from collbench.errors import CollbenchError
from collbench.results.io import write_results
from collbench.units import size_range


def _rows(run, n=3, host="h"):
    return pd.DataFrame({"source": "measured", "run": run, "system": "local",
                         "collective": "allreduce", "algorithm": "ring", "variant": "ring",
                         "nranks": 2, "nbytes": [8 << i for i in range(n)],
                         "time_us": [1.0 + i for i in range(n)], "host": host,
                         "mpi_version": "MPICH 5"})


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_model_frame_round_trip_keeps_dtypes(tmp_path, suffix):
    df = collbench.estimate("dgx-h100", [8, 1 << 20], nranks=16, algorithm="ring,auto")
    path = write_results(df, tmp_path / f"m{suffix}")
    back = collbench.read_results(path)
    assert list(back.columns) == list(df.columns)
    assert list(back.dtypes.astype(str)) == list(df.dtypes.astype(str))
    assert not any(df[c].isna().all() for c in df.columns)          # no all-empty columns


def test_a_second_run_is_added_not_replaced(tmp_path):
    path = tmp_path / "r.csv"
    write_results(_rows("a"), path, overwrite=False, run="a")
    write_results(_rows("b", host="other"), path, overwrite=False, run="b")
    write_results(_rows("b", n=4, host="other"), path, overwrite=False, run="b")   # b grows
    df = collbench.read_results(path)
    assert df.groupby("run", observed=True).size().to_dict() == {"a": 3, "b": 4}
    assert dict(zip(df.run, df.host)) == {"a": "h", "b": "other"}    # metadata per run
    assert path.read_text().count('"host"') == 2                    # once per run


def _writer(path, run):
    for n in range(1, 21):
        write_results(_rows(run, n=n), path, overwrite=False, run=run)


def test_concurrent_writers_keep_each_others_rows(tmp_path):
    path = tmp_path / "r.csv"
    procs = [mp.get_context("fork").Process(target=_writer, args=(path, f"w{i}"))
             for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    df = collbench.read_results(path)
    assert df.groupby("run", observed=True).size().to_dict() == {f"w{i}": 20 for i in range(4)}


def test_not_a_results_file_is_refused_not_replaced(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("hello,world\n1,2\n")
    with pytest.raises(CollbenchError, match="not a collbench results file"):
        write_results(_rows("a"), path, overwrite=False, run="a")
    assert path.read_text() == "hello,world\n1,2\n"


def test_fifo_is_refused_without_blocking(tmp_path, cli):
    fifo, rows = tmp_path / "sys.toml", tmp_path / "rows.csv"
    os.mkfifo(fifo)
    os.mkfifo(rows)
    for args in (["estimate", "--system", fifo], ["import", fifo], ["calibrate", rows]):
        r = cli(*args, timeout=60)
        assert r.returncode == 2 and "not a regular file" in r.stderr, (args, r.stderr)
    with pytest.raises(CollbenchError, match="not a regular file"):
        collbench.System.from_toml(fifo)


@pytest.mark.parametrize("b, e, f, words", [
    ("8", "64M", "1.0000001", "more than 100,000 sizes"),
    ("8", "64M", "1e308", None),
    ("1" * 400, "8", None, "bad size"),
    ("8", "8G", "nan", "finite number above 1"),
])
def test_size_ranges_are_bounded(b, e, f, words):
    if words is None:
        assert size_range(b, e, f) == [8]
    else:
        with pytest.raises(CollbenchError, match=words):
            size_range(b, e, f)
