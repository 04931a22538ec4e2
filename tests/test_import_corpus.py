"""Every real output of the corpus (collbench/validation/corpus, shipped in the package: 92 public nccl-tests, rccl-tests and OSU
outputs, copied byte for byte, with index.tsv giving each one's collective, ranks and source)
imports with the right collective, the right rank count and every row of its tables, or is
refused with one line when it has no usable rows."""
import csv
import re

import pytest

from collbench.errors import CollbenchError
from collbench.results.importers import read_output
from collbench.validation import corpus_dir

CORPUS = corpus_dir()
INDEX = list(csv.DictReader(open(CORPUS / "index.tsv"), delimiter="\t"))

# files with no usable rows, refused with one line naming what is missing
REFUSED = {"odd-alcf-sophia-allreduce-norows": "no table rows",
           "other-stas-h200x8-allreduce-bench-md": "not nccl-tests output"}
# per-run truth where a file holds several runs (read from the file by hand)
RUNS = {"odd-autodl-2080ti-multirun-prompts": [("allreduce", 2), ("all_gather", 2),
                                                ("broadcast", 2), ("reduce", 2), ("reduce", 1),
                                                ("all_to_all", 2)]}

# an independent, deliberately simple row matcher: a line (after a launcher prefix) that
# starts with size, count and a type word, or an OSU "size latency..." line after a header
NCCL_ROW = re.compile(r"^\s*(?:\d+:\s|\s*\[\d+,\d+\]<stdout>:)?\s*\d+\s+\d+\s+(?:float|double|half|"
                      r"bfloat16|int8|uint8|int32|uint32|int64|uint64)\s")
OSU_ROW = re.compile(r"^\d+\s+[\d.]+(\s+[\d.]+)*\s*$")


def path_of(entry):
    return next((CORPUS / "raw").glob(entry["id"] + ".*"))


def expected_rows(text, osu):
    if osu:
        return sum(bool(OSU_ROW.match(l.strip())) for l in text.splitlines())
    return sum(bool(NCCL_ROW.match(l)) for l in text.splitlines())


@pytest.mark.parametrize("entry", INDEX, ids=[e["id"] for e in INDEX])
def test_corpus_file_imports_right(entry):
    p = path_of(entry)
    osu = entry["tool"] == "osu"
    kw = {"nranks": int(entry["ranks"])} if osu else {}     # OSU never prints its rank count
    if entry["id"] in REFUSED:
        with pytest.raises(CollbenchError) as exc:
            read_output(p, **kw)
        msg = str(exc.value)
        assert REFUSED[entry["id"]] in msg and "\n" not in msg
        return
    res = read_output(p, **kw)
    df = res.frame
    want = entry["collective"]
    if entry["id"] in RUNS:
        got = [(str(g.collective.iloc[0]), int(g.nranks.iloc[0]))
               for _, g in df.groupby("run", observed=True, sort=False)]
        assert got == RUNS[entry["id"]]
    elif want.startswith("mixed("):
        allowed = set(want[6:-1].split(","))
        assert set(df.collective.astype(str)) <= allowed
        assert set(df.nranks) == {int(entry["ranks"])}
    else:
        assert set(df.collective.astype(str)) == {want}
        assert set(df.nranks) == {int(entry["ranks"])}
    assert not res.warnings, res.warnings        # nothing in the corpus needs a warning
    # every row of every table: one imported row per (line, placement)
    text = p.read_text(errors="replace")
    lines = df.groupby(["run", "line"], observed=True).ngroups
    skipped = sum(int(re.search(r": (\d+) rows of", n).group(1)) for n in res.notes
                  if "rows of" in n)                  # sendrecv_perf blocks, noted
    assert lines + skipped == expected_rows(text, osu), (lines, skipped)
    assert (df.time_us > 0).all() and (df.nbytes >= 0).all()
    assert df.file.notna().all() and df.line.notna().all()
    if not osu:
        assert set(df.placement) <= {"out-of-place", "in-place"}
        assert (df.algorithm == "auto").all()


def test_corpus_summary():
    # the whole corpus at once: how many files import right (printed, and all of them must)
    ok = 0
    for e in INDEX:
        if e["id"] in REFUSED:
            continue
        kw = {"nranks": int(e["ranks"])} if e["tool"] == "osu" else {}
        df = read_output(path_of(e), **kw).frame
        ok += len(df) > 0
    assert ok == len(INDEX) - len(REFUSED) == 90


def test_split_row_is_joined():
    # snellius 2-node all-reduce: a NCCL INFO line cut the 2 MiB row in two; it is joined
    e = next(e for e in INDEX if e["id"] == "snellius-h100-2nodes-all-reduce-mpi")
    df = read_output(path_of(e)).frame
    row = df[(df.nbytes == 2097152) & (df.placement == "out-of-place")]
    assert len(row) == 1 and row.time_us.iloc[0] == pytest.approx(87.18)
    assert row.busbw_gbps.iloc[0] == pytest.approx(42.10)


def test_osu_per_process_sizes_and_rank_counts(tmp_path):
    # osu_allgather's Size is per process: rows carry the whole buffer (Size x ranks)
    p = tmp_path / "ag.txt"
    p.write_text("# OSU MPI Allgather Latency Test v7.4\n# Datatype: MPI_CHAR.\n"
                 "# Size       Avg Latency(us)\n1                       2.00\n1024                 10.00\n")
    df = read_output(p, nranks=8).frame
    assert list(df.nbytes) == [8, 8192] and list(df["count"]) == [1, 1024]
    assert df.busbw_gbps.iloc[1] == pytest.approx(8192 / 10.0 / 1e3 * 7 / 8)
    # reduce_scatter's Size is the whole vector already (OMB splits it over the ranks)
    p.write_text("# OSU MPI Reduce_scatter Latency Test v7.4\n# Size       Avg Latency(us)\n"
                 "4096                 10.00\n")
    assert list(read_output(p, nranks=8).frame.nbytes) == [4096]
    with pytest.raises(CollbenchError, match="pass --nranks"):
        read_output(p)
