"""Faults and hostile input (issue 10): signals to mpiexec or one rank, a stalled save under -T,
a full disk, oversized work, bad data in files; each ends with one line and a defined exit
code, and nothing already saved is lost.

Time limits below are liveness limits (a hung job would take the subprocess timeout), not
speed bounds: the jobs end within a fraction of a second when they work."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collbench
from collbench.errors import CollbenchError, InputError, ResultsFileError
from test_run_mpi import MPIEXEC, mpirun, shim

needs_mpi = pytest.mark.skipif(not MPIEXEC.exists(),
                               reason="mpiexec from the mpich wheel is not installed next to "
                                      "python (pip install '.[mpi]')")


def processes():
    """(pid, parent pid, command line) of every process."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True,
                         text=True).stdout
    return [(int(p), int(pp), a) for p, pp, a in (l.split(None, 2) for l in out.splitlines()
                                                  if l.strip())]


def rank_pids(job_pid):
    """PIDs of the collbench ranks under one mpiexec (its proxies' children)."""
    procs = processes()
    tree, frontier = set(), {job_pid}
    while frontier:
        kids = {p for p, pp, _ in procs if pp in frontier}
        tree |= kids
        frontier = kids
    return sorted(p for p, _, a in procs if p in tree and "collbench" in a and "hydra" not in a)


def start_long_run(csv, n=2):
    return subprocess.Popen([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "collbench", "run",
                             "-b", "8", "-e", "64M", "-f", "2", "-n", "50", "--algo", "ring",
                             "--csv", str(csv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_rows(csv, n, proc, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None:
        if csv.exists() and len(pd.read_csv(csv, comment="#")) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"the run did not save {n} rows")


@needs_mpi
@pytest.mark.parametrize("target", ["mpiexec", "rank"])
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_ends_job_with_one_line_and_keeps_rows(tmp_path, target, sig, code):
    # Ctrl-C / SIGTERM to mpiexec or to one rank (the last one): every rank ends at once,
    # even inside an MPI call, with "interrupted by SIG..." and exit 128 + signal; no MPICH
    # assertion, no traceback, and every row saved before is still readable
    csv = tmp_path / "r.csv"
    p = start_long_run(csv)
    try:
        wait_rows(csv, 4, p)
        os.kill(p.pid if target == "mpiexec" else rank_pids(p.pid)[-1], sig)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == code, (p.returncode, err)
    name = signal.Signals(sig).name
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines and all(f"interrupted by {name}; ending the job" in l for l in lines), err
    assert "Traceback" not in err and "Assertion" not in err
    df = pd.read_csv(csv, comment="#")
    assert len(df) >= 4 and list(df.nbytes[:4]) == [8, 8, 16, 16]  # both placements


def proxy_pid(job_pid):
    """MPICH's hydra proxy under one mpiexec: the process that starts and reaps the ranks."""
    return next(p for p, pp, a in processes() if pp == job_pid and "hydra_pmi_proxy" in a)


def ended(pid):
    """True once the process has exited (a zombie its parent has not reaped yet counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


@needs_mpi
@pytest.mark.parametrize("sig, victim", [(signal.SIGINT, -1), (signal.SIGKILL, -1),
                                         (signal.SIGKILL, 0)])
def test_every_rank_ends_on_its_own_while_the_launcher_is_held(tmp_path, sig, victim):
    # hydra ends the other ranks only if it reads the ended rank's PMI socket close before it
    # reaps it; with its proxy held (SIGSTOP) while a rank ends it does not (before the job
    # link the others waited forever; under load it once reported exit 9 instead of 130).
    # Over the link every rank ends by itself, the launcher still held; then the job reports
    # the signalled rank's code, or, for a rank killed outright, one line naming it.
    csv = tmp_path / "r.csv"
    p = start_long_run(csv, n=3)
    proxy = None
    try:
        wait_rows(csv, 4, p)
        ranks = rank_pids(p.pid)
        proxy = proxy_pid(p.pid)
        os.kill(proxy, signal.SIGSTOP)
        os.kill(ranks[victim], sig)
        deadline = time.time() + 60          # liveness limit; it takes milliseconds
        while time.time() < deadline and not all(ended(r) for r in ranks):
            time.sleep(0.05)
        assert all(ended(r) for r in ranks), [(r, ended(r)) for r in ranks]
        os.kill(proxy, signal.SIGCONT)
        out, err = p.communicate(timeout=60)
    finally:
        if proxy:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proxy, signal.SIGCONT)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    lines = [l for l in err.splitlines() if l.strip()]
    if sig == signal.SIGINT:
        assert p.returncode == 130, (p.returncode, err)
        assert len(lines) == 1 and "rank 2 (" in lines[0] and "interrupted by SIGINT" in lines[0]
    else:
        # the killed rank's own status is the launcher's to report (SIGKILL: 9)
        assert p.returncode != 0, (p.returncode, err)
        ours = [l for l in lines if l.startswith("collbench run:")]
        dead = 2 if victim == -1 else 0
        assert len(ours) == 1 and f"rank {dead} (" in ours[0].split(": ", 2)[2], err
        assert "ended without a word (killed or crashed); ending the job" in ours[0], err
    assert "Traceback" not in err
    df = pd.read_csv(csv, comment="#")
    assert len(df) >= 4 and list(df.nbytes[:4]) == [8, 8, 16, 16]


@needs_mpi
def test_stall_in_the_save_is_ended_by_the_watchdog(tmp_path):
    # rank 0 stalls while saving the 3rd size; the other rank waits in the barrier after it.
    # -T covers the save and its barrier: the job ends with exit 3 and the rows before stay.
    env = shim(tmp_path,
               "import time\n"
               "import collbench.runtime.harness as h\n"
               "orig = h.write_results\n"
               "calls = []\n"
               "def slow(df, path, **kw):\n"
               "    calls.append(1)\n"
               "    if len(calls) == 3:\n"
               "        time.sleep(600)\n"
               "    return orig(df, path, **kw)\n"
               "h.write_results = slow\n")
    csv = tmp_path / "r.csv"
    r = mpirun(2, "-b", "8", "-e", "4K", "-f", "8", "--algo", "rd", "-T", "3", "--csv", csv,
               env=env, timeout=120)
    assert r.returncode == 124, (r.returncode, r.stderr)
    assert "timed out after 3 s in saving rd allreduce of 512 bytes" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert list(pd.read_csv(csv, comment="#").nbytes) == [8, 8, 64, 64]


@needs_mpi
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux) to "
                    "mount a small tmpfs in a private namespace")
def test_full_disk_says_why_exit_2_every_rank(tmp_path):
    # a tmpfs of 8 KiB fills up mid-run: one line naming the file and "disk full", exit 2,
    # and the file on it still holds the rows of the last successful save
    full = tmp_path / "full"
    full.mkdir()
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o size=8k tmpfs {full}"], capture_output=True)
    if probe.returncode:
        pytest.skip("this kernel refuses tmpfs mounts in a user namespace: "
                    + probe.stderr.decode(errors="replace").strip())
    csv = full / "x.csv"
    script = (f"mount -t tmpfs -o size=8k tmpfs {full} && "
              f"{MPIEXEC} -n 2 {sys.executable} -m collbench run -b 8 -e 1M -f 2 -n 2 -w 0 "
              f"--algo mpi,ring,rd --csv {csv}; rc=$?; cp {csv} {tmp_path}/kept.csv; exit $rc")
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, (r.returncode, r.stderr, r.stdout[-2000:])
    ours = [l for l in r.stderr.splitlines() if l.startswith("collbench")]
    assert len(ours) == 1 and "disk full" in ours[0] and str(csv) in ours[0], \
        (r.stderr, r.stdout[-2000:])
    assert "Traceback" not in r.stderr
    kept = collbench.read_results(tmp_path / "kept.csv")
    assert len(kept) > 6 and (kept.nwrong == 0).all()


def test_too_many_tiers_is_refused_before_any_work(tmp_path):
    for n in (18, 1000):
        lines = ["name = 'deep'"]
        for i in range(n):
            lines += ["[[tiers]]", f"name = 't{i}'", "size = 2", "bw_gbps = 100"]
        p = tmp_path / f"t{n}.toml"
        p.write_text("\n".join(lines) + "\n")
        with pytest.raises(CollbenchError, match=f"{n} tiers; at most 6"):
            collbench.System.from_toml(p)


def test_estimate_and_sweep_are_bounded():
    from collbench.model.api import MAX_ESTIMATE_CELLS
    sizes = np.arange(1, MAX_ESTIMATE_CELLS + 2, dtype=np.int64)
    with pytest.raises(InputError, match="use collbench.planner"):
        collbench.estimate("dgx-h100", sizes)
    with pytest.raises(InputError, match="sweep is more than"):
        collbench.sweep(None, sizes[: MAX_ESTIMATE_CELLS // 8], algorithms="all")
    # the array path has no cap and stays cheap in memory
    pl = collbench.planner("dgx-h100", nranks=8, algorithm="ring")
    assert pl.time_us(sizes[:1000]).shape == (1, 1000)


def write_rows(path, **changes):
    df = pd.DataFrame({"source": ["measured"] * 3, "collective": ["allreduce"] * 3,
                       "algorithm": ["mpi"] * 3, "nranks": [8] * 3,
                       "nbytes": [1024, 1 << 20, 1 << 26], "time_us": [20.0, 120.0, 2400.0]})
    for k, v in changes.items():
        df[k] = v
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("changes, words", [
    ({"time_us": [20.0, float("inf"), 2400.0]}, "row 2 has a time that is not finite"),
    ({"time_us": [20.0, float("nan"), 2400.0]}, "row 2 has a time that is not finite"),
    ({"time_us": [0.0, 120.0, 2400.0]}, "row 1 has a time that is not finite and > 0"),
    ({"nbytes": [1024, -8, 1]}, "row 2 has a size that is not a whole number"),
    ({"nranks": [8, 8, -3]}, "row 3 has a rank count"),
    ({"collective": ["allreduce", "allgather", "allreduce"]}, "valid: allreduce, reduce_scatter"),
])
def test_bad_rows_in_a_results_file_are_refused(tmp_path, cli, changes, words):
    p = write_rows(tmp_path / "rows.csv", **changes)
    with pytest.raises(ResultsFileError, match=words):
        collbench.read_results(p)
    for cmd in (["calibrate", p, "-o", tmp_path / "s.toml"], ["report", p, "-o", tmp_path / "r"],
                ["plot", p, "-o", tmp_path / "p"]):
        r = cli(*cmd)
        assert r.returncode == 2 and words.split(";")[0] in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "s.toml").exists()


def test_files_with_only_the_required_columns_work_everywhere(tmp_path, cli):
    # plot, report and calibrate on a plain CSV of the six required columns: bandwidths are
    # derived, optional columns are absent, no traceback
    p = write_rows(tmp_path / "rows.csv")
    df = collbench.read_results(p)
    assert df.busbw_gbps.iloc[1] == pytest.approx((1 << 20) / 120e3 * 2 * 7 / 8)
    assert cli("plot", p, "-o", tmp_path / "p").returncode == 0
    r = cli("report", p, "-o", tmp_path / "r")
    assert r.returncode == 0 and "nan" not in (tmp_path / "r" / "report.md").read_text()
    r = cli("calibrate", p, "-o", tmp_path / "s.toml")
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr
    if r.returncode == 0:      # whatever it wrote loads back
        collbench.System.from_toml(tmp_path / "s.toml")
    p2 = tmp_path / "few.csv"
    pd.read_csv(p).drop(columns=["algorithm"]).to_csv(p2, index=False)
    r = cli("report", p2, "-o", tmp_path / "r2")
    assert r.returncode == 2 and "it lacks algorithm" in r.stderr


def test_calibrate_refuses_impossible_fits(tmp_path, cli):
    # times 100x below what an 8-GPU H100 box can do: starting from its preset, a fit would
    # need efficiencies far above 1; calibrate refuses and writes nothing
    df = collbench.estimate("dgx-h100", 2.0 ** np.arange(10, 31), nranks=8, algorithm="ring")
    rows = pd.DataFrame({"source": "measured", "collective": "allreduce", "algorithm": "ring",
                         "nranks": 8, "nbytes": df.nbytes, "time_us": df.time_us / 100})
    p = tmp_path / "fast.csv"
    rows.to_csv(p, index=False)
    r = cli("calibrate", p, "--system", "dgx-h100", "-o", tmp_path / "s.toml")
    assert r.returncode == 2 and "faster than the line rate" in r.stderr, r.stderr
    assert not (tmp_path / "s.toml").exists()


NCCL_HEAD = """# nThread 1 nGpus 1 minBytes 8 maxBytes 64 step: 2(factor) warmup iters: 5 iters: 20
#  Rank  0 Group  0 Pid 1 on host device  0 [0x07] NVIDIA H100 80GB HBM3
#  Rank  1 Group  0 Pid 2 on host device  1 [0x0a] NVIDIA H100 80GB HBM3
#                                                              out-of-place                       in-place
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
"""
ROW = "{:>12} {:>12}     float     sum      -1  {:>7}    0.00    0.00      0  {:>7}    0.00    0.00      0\n"


@pytest.mark.parametrize("size, t", [("-8", "10.00"), ("8", "nan"), ("8", "inf"), ("8", "0"),
                                     ("8", "-3.0"), ("9" * 30, "3.00")])
def test_import_never_writes_impossible_rows(tmp_path, cli, size, t):
    # a bad row is refused (exit 2, one line) or left out; never written as data
    p = tmp_path / "nccl.txt"
    p.write_text(NCCL_HEAD + ROW.format(size, 2, t, t) + ROW.format(64, 16, "12.00", "12.00"))
    r = cli("import", p, "-o", tmp_path / "o.csv")
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr
    if r.returncode == 2:
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o.csv").exists()
    else:
        df = collbench.read_results(tmp_path / "o.csv")      # checks every row as it reads
        assert set(df.nbytes) == {64}
    r = cli("import", p, "--nranks", "-3", "-o", tmp_path / "o2.csv")
    assert r.returncode == 2 and "--nranks" in r.stderr and not (tmp_path / "o2.csv").exists()


@pytest.mark.parametrize("doc", [
    '{"args": [1, 2], "results": "x"}',
    '{"args": {"a": 1}, "results": [{"size": "x"}, 3, null]}',
    '{"results": [{"size": 8, "time": {"oop": "fast"}}]}',
    "[" * 100_000 + "]" * 100_000,
    '{"nccl": ' * 5000 + "1" + "}" * 5000,
])
def test_import_of_hostile_json_is_one_line(tmp_path, cli, doc):
    p = tmp_path / "nccl.json"
    p.write_text(doc)
    r = cli("import", p, "--nranks", "2", "-o", tmp_path / "o.csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("extra, words", [
    ("[[tiers]]\nname='t'\nsize=inf\nbw_gbps=3\n", "size"),
    ("[[tiers]]\nname='t'\nsize=8\nbw_gbps=nan\n", "bw_gbps"),
    ("[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n[calibration]\ngeomean_error='x'\n", "calibration"),
    ("[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n[calibration]\nnranks=[1, -4]\n", "calibration"),
    ("reduce_gbps = 1e300\n[[tiers]]\nname='t'\nsize=8\nbw_gbps=3\n", "reduce_gbps"),
])
def test_system_files_with_bad_numbers_are_one_line(tmp_path, cli, extra, words):
    p = tmp_path / "s.toml"
    p.write_text("name = 'x'\n" + extra)
    with pytest.raises(CollbenchError, match=words):
        collbench.System.from_toml(p)
    r = cli("estimate", "--system", p)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_check_physical_refuses_what_no_hardware_does():
    # the last gate before calibrate writes a system: each impossible fit named, nothing written
    import dataclasses

    from collbench.calibration.fitting import MAX_REDUCE_GBPS, check_physical
    from collbench.errors import FitError
    base = collbench.System.from_dict({"name": "b", "tiers": [{"name": "t", "size": 8,
                                                               "bw_gbps": 100.0}]})
    base = dataclasses.replace(base, calibration={"geomean_error": 0.05})
    rows = pd.DataFrame({"nbytes": [1 << 20, 1 << 30], "time_us": [11.0, 19.0],
                         "predicted_us": [10.0, 20.0]})
    check_physical(base, rows)                                       # a sound one passes
    t = base.tiers[0]
    cases = [
        (dataclasses.replace(base, tiers=(dataclasses.replace(t, eff_hi=1.7),)), "above 1"),
        (dataclasses.replace(base, reduce_gbps=MAX_REDUCE_GBPS * 3), "faster than any memory"),
        (dataclasses.replace(base, calibration={"geomean_error": float("inf")}), "finite"),
    ]
    for system, words in cases:
        with pytest.raises(FitError, match=words):
            check_physical(system, rows)
    with pytest.raises(FitError, match="finite"):
        check_physical(base, rows.assign(predicted_us=[10.0, float("nan")]))
    # the largest sizes measured 3x faster than the fit gives at full efficiency
    with pytest.raises(FitError, match="3x faster than the fitted system .*line rate"):
        check_physical(base, rows.assign(time_us=[11.0, 20.0 / 3]))
