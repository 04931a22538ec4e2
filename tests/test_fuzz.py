"""Fuzzing (Hypothesis) of the parsers and the command line: whatever a user types or feeds,
the answer is a value or one CollbenchError, and on the command line exit 0 or exit 2 with
one line on stderr; never a traceback."""
import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import collbench
from collbench.cli import main
from collbench.errors import CollbenchError
from collbench.model.system import System
from collbench.results.importers import import_file
from collbench.units import dtype, parse_factor, parse_size, size_range
from collbench.validation import corpus_dir

CORPUS = corpus_dir() / "raw"
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

numberish = st.one_of(
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["8", "0", "1K", "64M", "8G", "2P", "1e308", "-1", "nan", "inf", "1.5G",
                     "0x10", "", " ", "12Q", "9" * 400, "1_000", "٣", "1e-9", "K"]),
    st.text(max_size=12))


def only_collbench_errors(fn, *a):
    try:
        return fn(*a)
    except CollbenchError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), repr(exc)
        return None


@FUZZ
@given(text=numberish)
def test_size_factor_dtype_parsers(text):
    only_collbench_errors(parse_size, text)
    only_collbench_errors(parse_factor, text)
    only_collbench_errors(dtype, text)


@FUZZ
@given(b=numberish, e=numberish, f=st.one_of(st.none(), numberish),
       i=st.one_of(st.none(), numberish))
def test_size_ranges(b, e, f, i):
    sizes = only_collbench_errors(size_range, b, e, f, i)
    if sizes is not None:
        assert 0 < len(sizes) <= 100_000 and all(x >= 0 for x in sizes)


toml_scalar = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.booleans(),
                        st.text(max_size=8), st.lists(st.text(max_size=5), max_size=3))
TIER_KEYS = ["name", "size", "bw_gbps", "lat_sw_us", "topology", "eff_lo", "eff_hi",
             "eff_lo_bytes", "eff_hi_bytes", "innet", "innet_eff", "links", "bogus"]
TOP_KEYS = ["name", "base_lat_us", "reduce_gbps", "library", "library_algorithms",
            "overlap_reduce", "vendor", "calibration", "sources", "bogus"]


@FUZZ
@given(top=st.dictionaries(st.sampled_from(TOP_KEYS), toml_scalar, max_size=6),
       tiers=st.lists(st.dictionaries(st.sampled_from(TIER_KEYS), toml_scalar, max_size=10),
                      max_size=4),
       tiers_kind=st.sampled_from(["list", "missing", "scalar"]))
def test_system_dicts(top, tiers, tiers_kind):
    d = dict(top)
    if tiers_kind == "list":
        d["tiers"] = tiers
    elif tiers_kind == "scalar":
        d["tiers"] = 3
    s = only_collbench_errors(System.from_dict, d)
    if s is not None:          # a system that loads can be estimated or says why not
        only_collbench_errors(collbench.estimate, s, [8, 1 << 20])


def corpus_files():
    return sorted(CORPUS.glob("*.txt"))[:12] if CORPUS.is_dir() else []


@pytest.mark.skipif(not corpus_files(), reason="the shared corpus of real outputs is not here")
@FUZZ
@given(data=st.data())
def test_import_of_mangled_real_outputs(data):
    # real outputs with lines dropped, duplicated, cut or with tokens replaced
    src = data.draw(st.sampled_from(corpus_files()))
    lines = src.read_text(errors="replace").splitlines()
    for _ in range(data.draw(st.integers(0, 6))):
        if not lines:
            break
        k = data.draw(st.integers(0, len(lines) - 1))
        how = data.draw(st.sampled_from(["drop", "dup", "cut", "token", "junk"]))
        if how == "drop":
            del lines[k]
        elif how == "dup":
            lines.insert(k, lines[k])
        elif how == "cut":
            lines[k] = lines[k][: data.draw(st.integers(0, max(0, len(lines[k]))))]
        elif how == "token":
            toks = lines[k].split()
            if toks:
                toks[data.draw(st.integers(0, len(toks) - 1))] = data.draw(numberish)
                lines[k] = " ".join(toks)
        else:
            lines.insert(k, data.draw(st.text(max_size=40)))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / src.name
        p.write_text("\n".join(lines), errors="replace")
        df = only_collbench_errors(import_file, p)
    if df is not None and len(df):
        assert (df.nbytes >= 0).all() and (df.time_us > 0).all() and (df.nranks >= 1).all()


WORDS = ["estimate", "systems", "sweep", "import", "--system", "dgx-h100", "cloudmatrix384",
         "nope", "-b", "-e", "-f", "-i", "--nranks", "--algo", "ring", "auto", "all", "tree",
         "hier(ring>rhd)", "--collective", "all_to_all", "reduce", "--format", "csv", "json",
         "table", "-v", "--brief", "-o", "--all-algorithms", "--collectives", "-h"]


@FUZZ
@given(cmd=st.sampled_from(["estimate", "systems", "sweep", "import"]),
       rest=st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(WORDS), numberish),
                     max_size=9))
def test_command_line(cmd, rest):
    argv = [cmd, *rest]
    err, out = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as d:
        if "-o" in argv:        # outputs go to a scratch folder
            i = argv.index("-o")
            argv = argv[: i + 1] + [str(Path(d) / "out.csv")] + argv[i + 2:]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as exc:       # --help and --version
                code = exc.code
    assert code in (0, 2), (argv, code, err.getvalue())
    if code == 2:
        lines = [l for l in err.getvalue().splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("collbench"), (argv, err.getvalue())


def test_a_damaged_rank_number_is_not_a_rank_count(tmp_path):
    # found by the fuzz test above: a device line whose rank reads 2**63-1 made the listed rank
    # count overflow to a negative nranks; the damaged line is ignored, the others count
    src = corpus_dir() / "raw" / "alcf-polaris-n128-nccl218-allreduce-s1.txt"
    lines = src.read_text(errors="replace").splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.lstrip("# ").startswith("Rank"))
    toks = lines[k].split()
    toks[2] = "9223372036854775807"
    lines[k] = " ".join(toks)
    p = tmp_path / src.name
    p.write_text("\n".join(lines))
    df = import_file(p)
    assert len(df) and (df.nranks == 512).all()
