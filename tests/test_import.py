"""collbench import on realistic nccl-tests and OSU files, written here in their real formats."""
import json
import re

import numpy as np
import pytest

import collbench
from collbench.results.importers import import_file, read_output

NCCL_HEAD = """# Collective test starting: {prog}
# nThread 1 nGpus 1 minBytes 8 maxBytes 134217728 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#
# Using devices
{ranks}#
#                                                              out-of-place                       in-place          
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       
"""
RANK = "#  Rank {r:2d} Group  0 Pid {pid:6d} on {host:>10s} device {d:2d} [0000:{bus:02x}:00] NVIDIA H100 80GB HBM3\n"


def nccl_text(prog="all_reduce_perf", nranks=8, hosts=("node1",), sizes=(8, 1024, 1 << 20, 1 << 27),
              gbps=300.0, lat=20.0, debug=False, wrong="0"):
    ranks = "".join(RANK.format(r=r, pid=1000 + r, host=hosts[r * len(hosts) // nranks], d=r % 8,
                                bus=r) for r in range(nranks))
    out = NCCL_HEAD.format(prog=prog, ranks=ranks)
    for n in sizes:
        t = lat + n / (gbps * 1e3) * 2 * (nranks - 1) / nranks
        algbw = n / t / 1e3
        busbw = algbw * 2 * (nranks - 1) / nranks
        row = (f"{n:12d}  {n // 4:12d}     float     sum      -1  {t:7.2f}  {algbw:6.2f}  {busbw:6.2f}"
               f"  {wrong:>6s}  {t * 1.01:7.2f}  {algbw / 1.01:6.2f}  {busbw / 1.01:6.2f}  {wrong:>6s}\n")
        if debug:
            out += "node1:1234:1234 [0] NCCL INFO Channel 00/32 :    0   1   2   3\n"
        out += row
    out += "# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 123.4 \n#\n"
    out += f"# Collective test concluded: {prog}\n"
    return out


def test_nccl_text_two_blocks_in_and_out_of_place(tmp_path):
    p = tmp_path / "nccl.txt"
    p.write_text(nccl_text(debug=True) + "\n" + nccl_text(nranks=16, hosts=("a", "b")))
    df = import_file(p)
    assert len(df) == 16                                   # 2 blocks x 4 sizes x 2 places
    assert set(df.placement) == {"out-of-place", "in-place"}
    assert list(df.nranks.unique()) == [8, 16]
    assert (df.algorithm == "auto").all() and (df.collective == "allreduce").all()
    assert (df.source == "measured").all() and (df.dtype == "float32").all()
    assert set(df[df.nranks == 16].host) == {"a,b"}
    assert (df.iters == 20).all() and (df.nwrong == 0).all()
    row = df[(df.nbytes == 1 << 20) & (df.placement == "out-of-place") & (df.nranks == 8)].iloc[0]
    assert row.time_us == pytest.approx(20 + (1 << 20) / 3e5 * 1.75, abs=0.01)


def test_nccl_other_collectives_and_na(tmp_path):
    text = nccl_text(prog="all_gather_perf", wrong="N/A")
    p = tmp_path / "ag.txt"
    p.write_text(text)
    df = import_file(p)
    assert (df.collective == "all_gather").all()
    assert df.nwrong.isna().all()


def test_nccl_json(tmp_path):
    doc = {"config": {"nthreads": 1, "ngpus": 1, "iterations": 20, "devices": [
        {"rank": r, "hostname": "n1"} for r in range(4)]},
        "results": [{"size": n, "count": n // 4, "type": "float", "redop": "sum", "root": -1,
                     "out_of_place": {"time": 10.0 + n / 1e5, "alg_bw": 1.0, "bus_bw": 1.5,
                                      "nwrong": 0},
                     "in_place": {"time": 11.0 + n / 1e5, "alg_bw": 0.9, "bus_bw": 1.4,
                                  "nwrong": 0}} for n in (8, 1 << 20)]}
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc, indent=2))
    df = import_file(p)
    assert len(df) == 4 and (df.nranks == 4).all() and set(df.host) == {"n1"}


OSU = """
# OSU MPI Allreduce Latency Test v7.4
# Datatype: MPI_FLOAT.
# Size       Avg Latency(us)
4                       1.51
8                       1.50
1048576               310.22
"""
OSU_F = """# OSU MPI Allreduce Latency Test v7.4
# Datatype: MPI_DOUBLE.
# Size       Avg Latency(us)   Min Latency(us)   Max Latency(us)  Iterations
8                       1.60              1.40              1.80        1000
65536                  40.10             39.00             41.20         100
"""


def test_osu_plain_and_full(tmp_path, cli):
    a, b = tmp_path / "osu.txt", tmp_path / "osu_f.txt"
    a.write_text(OSU)
    b.write_text(OSU_F)
    with pytest.raises(ValueError, match="pass --nranks"):
        import_file(a)
    df = import_file(a, nranks=2)
    assert list(df.nbytes) == [4, 8, 1048576] and (df.algorithm == "mpi").all()
    assert df.busbw_gbps.iloc[2] == pytest.approx(1048576 / 310.22 / 1e3)   # 2 ranks: factor 1
    df = import_file(b, nranks=4)
    assert list(df.time_min_us) == [1.4, 39.0] and list(df.iters) == [1000, 100]
    assert (df.dtype == "float64").all()
    out = tmp_path / "both.csv"
    r = cli("import", a, b, "--nranks", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    assert len(collbench.read_results(out)) == 5


@pytest.mark.parametrize("mutate, rows", [
    (lambda t: t.replace("   1048576  ", "   10x8576  ", 1), 6),          # not a row: skipped
    (lambda t: t + "     2097152   524288  float  sum\n", 8),            # a cut row: skipped
    (lambda t: t.replace("     float     sum", "   complex     sum", 1), 6),  # unknown type
    (lambda t: t.replace("  0  ", "  N/A  "), 8),
])
def test_lines_that_are_not_rows_are_skipped_and_counted(tmp_path, cli, mutate, rows):
    p = tmp_path / "bad.txt"
    p.write_text(mutate(nccl_text()))
    out = tmp_path / "out.csv"
    r = cli("import", p, "-o", out, "-v")
    assert r.returncode == 0, r.stderr
    assert "other lines skipped" in r.stdout
    df = collbench.read_results(out)
    assert len(df) == rows and (df.nranks == 8).all() and (df.collective == "allreduce").all()


def test_rank_count_from_the_table_when_no_device_lines(tmp_path):
    # no '# Rank' lines: busbw / algbw = 2(n-1)/n settles n for all-reduce
    text = "\n".join(l for l in nccl_text(nranks=8).splitlines() if "Rank" not in l)
    p = tmp_path / "nodev.txt"
    p.write_text(text)
    assert set(import_file(p).nranks) == {8}
    # a device list that shows fewer ranks than ran (elided): the arithmetic wins, with a warning
    text = nccl_text(nranks=16)
    text = "\n".join(l for l in text.splitlines() if not re.search(r"Rank +(1[0-5]|[2-9]) ", l))
    p.write_text(text)
    res = read_output(p)
    assert set(res.frame.nranks) == {16}
    assert any("device lines show 2 ranks" in w and "say 16" in w for w in res.warnings)


def test_unmodelled_program_only_is_refused_with_one_line(tmp_path, cli):
    p = tmp_path / "g.txt"
    p.write_text(nccl_text().replace("all_reduce_perf", "gather_perf"))
    r = cli("import", p, "-o", tmp_path / "o.csv")
    assert r.returncode == 2 and "does not model" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_sendrecv_is_read(tmp_path, cli):
    # a real sendrecv_perf block (10 nodes x 8 H100), among four other collectives
    from test_import_corpus import CORPUS
    r = cli("import", CORPUS / "raw" / "odd-xx-h100-n10g8-multicoll-sendrecv.txt", "-o",
            tmp_path / "o.csv")
    assert r.returncode == 0 and not r.stderr, r.stderr
    df = collbench.read_results(tmp_path / "o.csv")
    sr = df[df.collective == "sendrecv"]
    assert len(sr) == 2 * 10 and np.allclose(sr.busbw_gbps, sr.algbw_gbps, rtol=0.01)
    assert sr.busbw_gbps.max() == pytest.approx(15.26, abs=0.01)


def test_collective_never_defaults_silently(tmp_path, cli):
    # no program name; redop none and root -1 with count = size / (4 x 8): all_gather or
    # all_to_all, and with checking off the in-place column cannot tell them apart
    head = NCCL_HEAD.split("\n", 1)[1].format(ranks="".join(
        RANK.format(r=r, pid=r, host="n", d=r, bus=r) for r in range(8)))
    rows = "".join(f"{n:12d}  {n // 32:12d}     float    none      -1  {10 + n / 1e5:7.2f}  "
                   f"{n / (10 + n / 1e5) / 1e3:6.2f}  {n / (10 + n / 1e5) / 1e3 * 7 / 8:6.2f}"
                   f"     N/A  {10 + n / 1e5:7.2f}  {n / (10 + n / 1e5) / 1e3:6.2f}  "
                   f"{n / (10 + n / 1e5) / 1e3 * 7 / 8:6.2f}     N/A\n" for n in (1 << 20, 1 << 26))
    text = head + rows
    p = tmp_path / "ag.txt"
    p.write_text(text)
    r = cli("import", p, "-o", tmp_path / "o.csv")
    assert r.returncode == 2 and "pass --collective" in r.stderr and "all_gather" in r.stderr
    r = cli("import", p, "--collective", "all_gather", "-o", tmp_path / "o.csv")
    assert r.returncode == 0, r.stderr


def test_damaged_other_inputs(tmp_path, cli):
    j = tmp_path / "bad.json"
    j.write_text('{"config": {"devices": [1, 2]}, "results": [{"size": 8, "out_of_place": {')
    r = cli("import", j)
    assert r.returncode == 2 and "broken JSON" in r.stderr and "bad.json:1" in r.stderr
    o = tmp_path / "bad_osu.txt"
    o.write_text(OSU_F.replace("40.10", "40.10  7"))
    r = cli("import", o, "--nranks", "2", "-v")          # a row with an extra field: skipped
    assert r.returncode == 0 and "1 rows in 1 run(s)" in r.stdout, r.stdout + r.stderr
    x = tmp_path / "hello.txt"
    x.write_text("hello world\n")
    r = cli("import", x)
    assert r.returncode == 2 and "not nccl-tests output" in r.stderr


def test_nccl_json_program_in_args_and_nan(tmp_path):
    # nccl-tests -J as written by recent versions: the program is args[0], devices at the top,
    # root printed as a padded string, "nan" for an unmeasured value
    doc = {"version": 1, "args": ["/opt/nccl-tests/build/all_gather_perf", "-b", "8"],
           "nccl_version": 22703, "config": {"iterations": 20},
           "devices": [{"rank": r, "hostname": f"h{r // 4}"} for r in range(8)],
           "results": [{"size": n, "count": n // 32, "type": "float", "redop": "none",
                        "root": "    -1",
                        "out_of_place": {"time": 10.0, "alg_bw": n / 1e4, "bus_bw": n / 1e4 * 7 / 8,
                                         "nwrong": 0.0},
                        "in_place": {"time": "nan", "alg_bw": 0, "bus_bw": 0, "nwrong": None}}
                       for n in (1024, 1 << 20)]}
    p = tmp_path / "ag.json"
    p.write_text(json.dumps(doc))
    res = read_output(p)
    df = res.frame
    assert (df.collective == "all_gather").all() and (df.nranks == 8).all()
    assert list(df.placement) == ["out-of-place"] * 2 and set(df.host) == {"h0,h1"}
    assert (df.tool == "nccl-tests -J").all() and (df.iters == 20).all()
