"""collbench import on realistic nccl-tests and OSU files, written here in their real formats."""
import json

import pytest

import collbench
from collbench.results.importers import import_file

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


@pytest.mark.parametrize("mutate, words", [
    (lambda t: t.replace("   1048576  ", "   10x8576  ", 1), "is not a number"),
    (lambda t: t + "     2097152   524288  float  sum\n", "expected a table row of 13 fields"),
    (lambda t: t.replace("float", "float99", 1).replace("     float     sum", "   complex     sum", 1),
     "unknown nccl-tests type"),
    (lambda t: t.replace("all_reduce_perf", "sendrecv_perf"), "not one collbench models"),
    (lambda t: "\n".join(l for l in t.splitlines() if "Rank" not in l), "pass --nranks"),
])
def test_damaged_nccl_text_names_the_line_and_writes_nothing(tmp_path, cli, mutate, words):
    p = tmp_path / "bad.txt"
    p.write_text(mutate(nccl_text()))
    out = tmp_path / "out.csv"
    r = cli("import", p, "-o", out)
    assert r.returncode == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()


def test_damaged_other_inputs(tmp_path, cli):
    j = tmp_path / "bad.json"
    j.write_text('{"config": {"devices": [1, 2]}, "results": [{"size": 8, "out_of_place": {')
    r = cli("import", j)
    assert r.returncode == 2 and "broken JSON" in r.stderr and "bad.json:1" in r.stderr
    o = tmp_path / "bad_osu.txt"
    o.write_text(OSU_F.replace("40.10", "40.10  7"))
    r = cli("import", o, "--nranks", "2")
    assert r.returncode == 2 and "bad_osu.txt:5: expected 5 fields" in r.stderr
    x = tmp_path / "hello.txt"
    x.write_text("hello world\n")
    r = cli("import", x)
    assert r.returncode == 2 and "not nccl-tests output" in r.stderr
