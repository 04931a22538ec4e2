"""Validation cases: each corpus output the model can be held against, the system that
describes its hardware, and the errors of that system's estimates per collective.

A case is one run of one corpus file (its out-of-place rows); the model is asked for ``auto``
(the library's own choice, as nccl-tests measures it) at the run's rank count, with the node tier
holding the GPUs per node the run used (``per_node`` in index.tsv).  Errors are geometric means
of |log(predicted / measured)| expressed as percentages, from 1 MiB and over all sizes.

Where the corpus holds other runs of the same setup (system, collective, ranks, GPUs per node),
each case run also gets its *spread*: the same error measure between the run and the per-size
median of all those runs.  No single prediction can be closer, averaged over the runs of a setup,
than their mean spread: it is the part of a miss that the measurements themselves disagree on.
Files that repeat another run's numbers exactly (the same run published twice) do not count.
"""
from __future__ import annotations

import csv
import fnmatch
import glob
import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CollbenchError, InputError
from ..model.api import estimate
from ..model.system import System, load_system
from ..results.importers import read_output
from . import corpus_dir, systems_dir

# corpus id pattern -> system (a preset name or a file in systems/); first match wins.
# Cases left out say why (shown by ``collbench validate --all``).
CASE_SYSTEMS: list[tuple[str, str]] = [
    ("alcf-polaris-*-s1", "-NCCL over TCP sockets (setup 1): a transport collbench does not model"),
    ("alcf-polaris-*-s2", "-NCCL over TCP sockets (setup 2): a transport collbench does not model"),
    ("alcf-polaris-*-2023", "-environment not recorded (transport unknown)"),
    ("alcf-polaris-*", "alcf-polaris"),
    ("alcf-sirius-*-s1", "-NCCL over TCP sockets (setup 1): a transport collbench does not model"),
    ("alcf-sirius-*", "alcf-polaris"),
    ("alcf-sophia-*", "dgx-a100"),
    ("odd-alcf-sophia-*", "-no table rows (the job failed)"),
    ("*autodl-2080ti-*", "pc-2080ti-pcie"),
    ("odd-snellius-h100-1gpu*", "-one GPU: nothing crosses a link"),
    ("snellius-h100-*", "snellius-h100"),
    ("tl-a100pcie-2node-gdroff-*", "-GPUDirect RDMA off: a host bounce collbench does not model"),
    ("tl-a100pcie-*", "a100-pcie-ib"),
    ("*xx-h100-*", "dgx-h100"),
    ("rccl-mi300x-*", "mi300x-node"),
    ("rccl-mi355x-*", "mi355x-node"),
    ("odd-aws-p4de-*", "aws-p4de"),
    ("odd-aws-p5-*", "aws-p5"),
    ("*osu-azure-*", "-CPU ranks over MPI: no system written yet"),
    ("other-*", "-not nccl-tests output"),
]
NO_MATCH = "no system matches this case"
TARGET_1M, TARGET_ALL = 0.10, 0.20      # the fidelity targets: from 1 MiB, over all sizes
CASE_COLUMNS = ["case", "system", "collective", "nranks", "per_node", "rows", "min_bytes",
                "max_bytes", "error_1m",
                "error_all", "worst_size", "worst_error", "worst_algorithm", "algorithm",
                "spread_1m", "spread_all", "repeats", "same_as", "note"]


def index(corpus: str | Path | None = None) -> list[dict[str, str]]:
    """The rows of a corpus's ``index.tsv`` (default: the shipped corpus)."""
    path = (Path(corpus) if corpus is not None else corpus_dir()) / "index.tsv"
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}; a corpus folder holds "
                         "index.tsv (tab-separated, columns id and per_node; optional system) "
                         "and raw/ID.* outputs") from None
    if rows and ("id" not in rows[0] or "per_node" not in rows[0]):
        raise InputError(f"{path}: index.tsv needs the columns id and per_node (optional: "
                         f"system); it has {', '.join(list(rows[0])[:8])}")
    return rows


def system_names() -> list[str]:
    """Every validation system some corpus case is held against."""
    return sorted({t for _, t in CASE_SYSTEMS if not t.startswith("-")})


def per_node(entry: dict[str, str], system: System) -> int:
    """GPUs per node a corpus case ran with (index.tsv ``per_node``; else the node tier's)."""
    return int(entry["per_node"]) if entry["per_node"].isdigit() else system.tiers[0].size


def system_for(case_id: str) -> tuple[str | None, str]:
    """(system, '') for a case collbench describes, (None, why not) otherwise."""
    for pattern, target in CASE_SYSTEMS:
        if fnmatch.fnmatch(case_id, pattern):
            return (None, target[1:]) if target.startswith("-") else (target, "")
    return None, NO_MATCH


# hardware named in an index's ``gpu_or_npu`` column -> system, for a corpus whose index names
# no system and whose ids the patterns above do not know (a held-out set laid out as the
# shipped one); first match wins, case-insensitive.  A system column overrides it.
HARDWARE_SYSTEMS: list[tuple[str, str]] = [
    (r"GB200", "gb200-nvl72"),
    (r"\bB200\b", "dgx-b200"),
    (r"H200", "dgx-h200"),
    (r"H100[^,;]*(PCIe|NVL\b)", "-H100 PCIe / NVL cards: no system written yet; name one in a "
                                 "system column"),
    (r"H100", "dgx-h100"),
    (r"A100[^,;]*PCIE", "-A100 PCIe cards: name the cluster's system in a system column (the "
                        "corpus's a100-pcie-ib is one such cluster)"),
    (r"A100", "dgx-a100"),
    (r"MI300X", "mi300x-node"),
    (r"MI355X", "mi355x-node"),
]


def hardware_system(entry: dict[str, str]) -> tuple[str | None, str]:
    """(system, '') from an index row's tool and hardware columns (``HARDWARE_SYSTEMS``: an
    NVIDIA part maps to its DGX/HGX preset, whose node tier then holds the run's GPUs per
    node), (None, why not) where they name none."""
    tool = (entry.get("tool") or "").strip().lower()
    if tool and tool not in ("nccl-tests", "rccl-tests"):
        return None, f"{tool} output: only nccl-tests / rccl-tests runs are held against a system"
    hw = (entry.get("gpu_or_npu") or "").strip()
    for pattern, target in HARDWARE_SYSTEMS:
        if re.search(pattern, hw, flags=re.IGNORECASE):
            return (None, target[1:]) if target.startswith("-") else (target, "")
    what = f"hardware {hw[:40]!r}" if hw else "no gpu_or_npu column"
    return None, (f"no system matches this case ({what}); name one in a system column "
                  f"(presets: collbench systems)")


def _system(name: str, fitted: bool = False) -> System:
    """A validation system by name: the fitted one (``systems/fitted/``, see ``fitted.py``)
    when asked for and present, else the spec-based file in ``systems/``, else the preset."""
    own = systems_dir() / ("fitted" if fitted else "") / f"{name}.toml"
    if fitted and not own.exists():
        return _system(name)
    return load_system(str(own) if own.exists() else name)


def per_node_system(system: System, per_node: int) -> System:
    """The system with its node tier holding the GPUs per node a run used (rank placement:
    collbench fills inner tiers first).  A node tier that spans hosts (``spans_hosts``: a
    GB200 NVL72's NVLink joins 18 hosts of 4 GPUs) stays whole: GPUs per host there do not
    say how many GPUs share it."""
    t0 = system.tiers[0]
    if per_node >= t0.size or len(system.tiers) < 2 or t0.spans_hosts:
        return system
    return replace(system, tiers=(replace(t0, size=per_node), *system.tiers[1:]))


def _error(meas: np.ndarray, pred: np.ndarray) -> float:
    if len(meas) == 0:
        return math.nan
    return float(np.exp(np.mean(np.abs(np.log(pred / meas)))) - 1)


def validate(system: str | System | None = None, case: str | None = None, *,
             fitted: bool = False, corpus: str | Path | None = None,
             held_by: str | None = None) -> pd.DataFrame:
    """One row per (case, run, collective): errors of ``auto``'s estimates against the
    measurement.  ``system``: hold every case against this system instead of its own;
    ``case``: a glob over corpus ids; ``fitted``: each case's system as fitted to the corpus
    (in-sample: the cases were fitted to; ``fitted.fit_corpus`` also measures left-out cases);
    ``corpus``: another corpus folder laid out as the shipped one (``index.tsv`` and
    ``raw/ID.*``; an index ``system`` column names each case's system, a preset or a TOML file
    relative to the folder), e.g. a held-out set; ``held_by``: only the cases whose own system
    is this one (a name)."""
    rows: list[dict[str, Any]] = []
    measured: dict[int, tuple[tuple, np.ndarray, np.ndarray]] = {}    # row -> setup, sizes, us
    chosen = load_system(system) if system is not None else None
    root = Path(corpus) if corpus is not None else corpus_dir()
    entries = [e for e in index(corpus) if case is None or fnmatch.fnmatch(e["id"], case)]
    if not entries:
        raise InputError(f"no corpus case matches {case!r}; e.g. 'xx-h100-*', 'alcf-polaris-n8-*'")
    for e in entries:
        own = (e.get("system") or "").strip()     # a corpus may name each case's system
        name, why = (own, "") if own else _case_system(e)
        if held_by is not None and name != held_by:
            continue
        # the setup's hardware (repeat runs are grouped by it), whatever is held to it
        hw = name or (e.get("gpu_or_npu") or "").strip() or e["id"]
        if chosen is not None:
            sys_ = chosen
        elif own:
            sys_ = load_system(str(root / own) if own.endswith(".toml") else own)
        elif name is None:
            rows.append({"case": e["id"], "system": "", "note": why})
            continue
        else:
            sys_ = _system(name, fitted)
        path = _output(root, e["id"])
        if path is None:
            rows.append({"case": e["id"], "system": sys_.name,
                         "note": f"no output file raw/{e['id']}.* in {root}"})
            continue
        try:
            df = read_output(path).frame
        except CollbenchError as exc:
            rows.append({"case": e["id"], "system": sys_.name, "note": f"not imported: {exc}"})
            continue
        df = df[(df.placement == "out-of-place") & (df.nbytes > 0)]
        pn = per_node(e, sys_)
        s = per_node_system(sys_, pn)
        for (run, coll, p), g in df.groupby(["run", "collective", "nranks"], observed=True):
            p = int(p)
            if p < 2:
                rows.append({"case": e["id"], "system": s.name, "collective": str(coll),
                             "nranks": p, "note": "one rank: nothing crosses a link"})
                continue
            if p > s.max_ranks:
                rows.append({"case": e["id"], "system": s.name, "collective": str(coll),
                             "nranks": p, "note": f"{p} ranks: more than {s.name} holds"})
                continue
            g = g.sort_values("nbytes")
            sizes = g.nbytes.to_numpy(np.int64)
            try:
                est = estimate(s, sizes, nranks=p, collective=str(coll), algorithm="auto")
            except CollbenchError as exc:
                rows.append({"case": e["id"], "system": s.name, "collective": str(coll),
                             "nranks": p, "note": f"no estimate: {exc}"})
                continue
            meas = g.time_us.to_numpy(float)
            pred = est.time_us.to_numpy(float)
            big = sizes >= 1 << 20
            lr = np.log(pred / meas)
            w = int(np.argmax(np.abs(lr)))
            measured[len(rows)] = ((hw, str(coll), p, pn), sizes, meas)
            rows.append({
                "case": e["id"], "system": s.name, "collective": str(coll), "nranks": p,
                "per_node": pn, "rows": len(g), "min_bytes": int(sizes[0]),
                "max_bytes": int(sizes[-1]), "error_1m": _error(meas[big], pred[big]),
                "error_all": _error(meas, pred), "worst_size": int(sizes[w]),
                "worst_error": float(np.exp(lr[w]) - 1),
                "worst_algorithm": str(est.variant.iloc[w]),     # plan/protocol chosen there
                "algorithm": str(est.variant.iloc[-1]),           # ... and at the largest size
                "note": "" if df.run.nunique() == 1 else str(run)})
    for i, (spread_1m, spread_all, repeats) in repeat_spreads(measured).items():
        rows[i].update(spread_1m=spread_1m, spread_all=spread_all, repeats=repeats)
    # the same run published twice (a whole log and its excerpts): the copy names the run it
    # repeats, preferring a file that is not one of the corpus's odd-* copies as the original
    for i, j in twins(measured, rank=lambda k: (rows[k]["case"].startswith("odd-"), k)).items():
        rows[i]["same_as"] = rows[j]["case"]
    out = pd.DataFrame(rows, columns=CASE_COLUMNS)
    return out.astype({"nranks": "Int64", "per_node": "Int64", "rows": "Int64",
                       "min_bytes": "Int64", "max_bytes": "Int64", "worst_size": "Int64",
                       "repeats": "Int64"})


def _case_system(entry: dict[str, str]) -> tuple[str | None, str]:
    """The system of a case whose index names none: by the shipped patterns, else by its
    part (``hardware_system``); (None, why) where neither knows it."""
    name, why = system_for(entry["id"])
    if name is None and why == NO_MATCH:
        name, why = hardware_system(entry)
    return name, why


def twins(runs: dict[int, tuple[tuple, np.ndarray, np.ndarray]],
          rank: Callable[[int], Any] = lambda k: k) -> dict[int, int]:
    """Per run (key -> (setup, sizes, measured us)) whose times equal another run's of its
    setup at every size they share, the run it repeats: the same run published twice.  The
    run ranked first by ``rank`` (a key) is the original."""
    setups: dict[tuple, list[int]] = {}
    for k, (setup, _, _) in runs.items():
        setups.setdefault(setup, []).append(k)
    same: dict[int, int] = {}
    for keys in setups.values():
        series = {k: _series(runs[k]) for k in keys}
        distinct: list[int] = []
        for k in sorted(keys, key=rank):
            twin = next((d for d in distinct if _same_run(series[k], series[d])), None)
            if twin is None:
                distinct.append(k)
            else:
                same[k] = twin
    return same


def _series(run: tuple[tuple, np.ndarray, np.ndarray]) -> pd.Series:
    return pd.Series(run[2], index=run[1]).groupby(level=0).median()


def repeat_spreads(runs: dict[int, tuple[tuple, np.ndarray, np.ndarray]]
                   ) -> dict[int, tuple[float, float, int]]:
    """Per run (key -> (setup, sizes, measured us)) that has other runs of its setup: its
    spread from 1 MiB and over all sizes (geometric mean of |log(time / median of the
    setup's runs at that size)| over the sizes two or more runs measured) and how many runs
    the setup has.  A run whose times equal another's at every size they share is the same
    run published twice (``twins``): it gets the spread of that run and is counted once."""
    same = twins(runs)
    setups: dict[tuple, list[int]] = {}
    for k, (setup, _, _) in runs.items():
        setups.setdefault(setup, []).append(k)
    out: dict[int, tuple[float, float, int]] = {}
    for keys in setups.values():
        distinct = [k for k in keys if k not in same]
        if len(distinct) < 2:
            continue
        logs = pd.DataFrame({k: np.log(_series(runs[k])) for k in distinct})
        logs = logs[logs.notna().sum(axis=1) >= 2]
        dev = (logs.sub(logs.median(axis=1), axis=0)).abs()
        big = dev.index.to_numpy() >= 1 << 20
        for k in keys:
            d = dev[same.get(k, k)].dropna()
            b = dev.loc[big, same.get(k, k)].dropna()
            out[k] = (float(np.expm1(b.mean())) if len(b) else math.nan,
                      float(np.expm1(d.mean())) if len(d) else math.nan, len(distinct))
    return out


def _same_run(a: pd.Series, b: pd.Series) -> bool:
    common = a.index.intersection(b.index)
    return len(common) > 0 and bool(np.allclose(a[common], b[common], rtol=1e-9, atol=0))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per system and collective: cases, geometric-mean errors, and how many meet the targets
    (<= 10% from 1 MiB, <= 20% over all sizes); a run published twice (``same_as``) counts
    once."""
    t = table.dropna(subset=["error_all"])
    if "same_as" in t:
        t = t[t.same_as.isna()]
    if t.empty:
        return pd.DataFrame(columns=["system", "collective", "cases", "error_1m", "error_all",
                                     "within_targets"])

    return (t.groupby(["system", "collective"], sort=True)
            .apply(lambda g: pd.Series({
                "cases": len(g), "error_1m": geomean_error(g.error_1m),
                "error_all": geomean_error(g.error_all),
                "within_targets": int(within_targets(g).sum())}),
                   include_groups=False)
            .reset_index())


def geomean_error(x: pd.Series) -> float:
    """Geometric mean of 1 + error, less 1 (how errors are averaged); NaN where none."""
    x = pd.to_numeric(x, errors="coerce").dropna()
    return float(np.expm1(np.log1p(x).mean())) if len(x) else math.nan


def within_targets(t: pd.DataFrame) -> pd.Series:
    """Per row of validate's table: within both targets (a run without sizes from 1 MiB
    needs only the one over all sizes)."""
    return (t.error_1m.fillna(0) <= TARGET_1M) & (t.error_all <= TARGET_ALL)


def copies(name: str) -> set[tuple[str, str, int]]:
    """(case, collective, ranks) of each run of system ``name``'s cases that repeats another
    file's run (validate's ``same_as``; the original is not in the set)."""
    runs = validate(held_by=name)
    return {(r.case, str(r.collective), int(r.nranks))
            for r in runs[runs.same_as.notna()].itertuples()}


def _output(root: Path, case_id: str) -> Path | None:
    """The raw output of a case in a corpus folder (``raw/ID.*``), or None."""
    return next((root / "raw").glob(glob.escape(case_id) + ".*"), None)


def case_rows(case_id: str) -> pd.DataFrame:
    """A shipped corpus case's out-of-place rows with data and at least two ranks."""
    df = read_output(case_path(case_id)).frame
    return df[(df.placement == "out-of-place") & (df.nbytes > 0) & (df.nranks > 1)]


def case_path(case_id: str) -> Path:
    """The raw output of a case of the shipped corpus."""
    path = _output(corpus_dir(), case_id)
    if path is None:
        raise InputError(f"no output file for corpus case {case_id!r}")
    return path
