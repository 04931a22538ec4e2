"""How far an estimate has been checked against real runs: the corpus cases held against a
system (``collbench validate``), for one collective, with their errors and the run closest to
the ranks asked about.  ``collbench estimate`` prints it under its table.

Only the shipped systems are checked: a preset or a corpus system (``systems/``) exactly as
shipped.  A user's file, or a shipped system changed in any number, is not (``collbench
validate --system FILE`` holds it against every case)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..algorithms import check_collective
from ..errors import CollbenchError
from ..model.system import System, load_system
from ..units import human
from .cases import _system, geomean_error, system_names, validate, within_targets


@dataclass(frozen=True)
class Checked:
    """The corpus runs of ``collective`` held against ``system`` (``runs``: collbench
    validate's rows, one per run), the collectives checked on it at all, and, where no run
    checks the estimate, why (``reason``)."""
    system: str
    collective: str
    nranks: int | None
    runs: pd.DataFrame
    collectives: tuple[str, ...]
    reason: str = ""

    @property
    def closest(self) -> pd.Series | None:
        """The run whose rank count is nearest (in ratio) to ``nranks``; None without runs
        or ranks."""
        if self.runs.empty or self.nranks is None:
            return None
        d = np.abs(np.log(self.runs.nranks.astype(float).to_numpy() / self.nranks))
        order = np.lexsort((self.runs.case.to_numpy(), d))
        return self.runs.iloc[int(order[0])]

    def lines(self) -> list[str]:
        """What the check says, in one to three lines (no leading '#')."""
        if self.runs.empty:
            return [f"not checked against real runs: {self.reason}"]
        r = self.runs
        nodes = (r.nranks // r.per_node).astype(int)
        within = int(within_targets(r).sum())
        e1 = r.error_1m.dropna()
        head = (f"checked against real runs (collbench validate; auto, the library's choice): "
                f"{len(r)} corpus run"
                f"{'s' if len(r) != 1 else ''} of {self.collective} on {self.system}, "
                f"{_span(r.nranks)} ranks on {_span(nodes)} node{'s' if nodes.max() > 1 else ''}, "
                f"{human(int(r.min_bytes.min()))}-{human(int(r.max_bytes.max()))}")
        errs = (f"error from 1 MiB {_pct_span(e1)} (geomean {_pct(geomean_error(e1))}), over all sizes "
                f"{_pct_span(r.error_all)} (geomean {_pct(geomean_error(r.error_all))}); {within} of "
                f"{len(r)} within the targets (<= 10% from 1 MiB, <= 20% over all sizes)")
        out = [head, errs]
        c = self.closest
        if c is not None:
            n = int(c.nranks) // int(c.per_node)
            out.append(f"closest to {self.nranks:,} ranks: {c.case}, {int(c.nranks):,} ranks on "
                       f"{n} node{'s' if n > 1 else ''} ({int(c.per_node)} per node): "
                       f"{_pct(c.error_1m)} from 1 MiB, {_pct(c.error_all)} over all sizes")
        return out

    def brief(self) -> str:
        """One clause: '{collective}: N runs at A-B ranks, X% from 1 MiB / Y% over all sizes
        (geomeans)', or why not checked."""
        if self.runs.empty:
            return f"{self.collective}: not checked ({self.reason})"
        r = self.runs
        return (f"{self.collective}: {len(r)} run{'s' if len(r) != 1 else ''} at "
                f"{_span(r.nranks)} ranks, {_pct(geomean_error(r.error_1m))} from 1 MiB / "
                f"{_pct(geomean_error(r.error_all))} over all sizes")

    def __str__(self) -> str:
        return "\n".join(self.lines())


def checked(system: str | System, collective: str = "allreduce",
            nranks: int | None = None) -> Checked:
    """How far estimates of ``collective`` on ``system`` (a name or a System) have been
    checked against the corpus's real runs; ``nranks``: also the run closest to that many
    ranks.  ``system`` may name a preset or a corpus system (``collbench validate``'s
    column).  Runs ``collbench validate`` over that system's cases once per process."""
    check_collective(collective)
    if isinstance(system, str):
        given = _system(system) if system in system_names() else load_system(system)
    else:
        given = system
    name = given.name
    if name not in system_names():
        return Checked(name, collective, nranks, _empty(), (),
                       f"the corpus has no run of {name}, so its estimates are not checked "
                       f"against measurements of it (collbench validate --system {name} holds "
                       f"it against every case)")
    if given != _system(name):
        return Checked(name, collective, nranks, _empty(), (),
                       f"this {name} differs from the shipped one, whose corpus runs are "
                       f"the check (collbench validate --system FILE holds it against every "
                       f"case)")
    runs = _runs(name)
    colls = tuple(sorted(runs.collective.unique()))
    mine = runs[runs.collective == collective].reset_index(drop=True)
    reason = "" if len(mine) else (
        f"the corpus has no {collective} run of {name} (checked there: {', '.join(colls)})")
    return Checked(name, collective, nranks, mine, colls, reason)


@functools.cache
def _runs(name: str) -> pd.DataFrame:
    """collbench validate's rows for the cases a shipped system is held against, each run
    once."""
    try:
        df = validate(held_by=name)
    except CollbenchError:
        return _empty()
    # the same run published twice (the corpus's odd-* copies of a whole log) counts once
    return df.dropna(subset=["error_all"])[lambda d: d.same_as.isna()].reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["case", "collective", "nranks", "per_node", "min_bytes",
                                 "max_bytes", "error_1m", "error_all"])


def _pct(x: float) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.0f}%"


def _pct_span(x: pd.Series) -> str:
    x = x.dropna().astype(float)
    if x.empty:
        return "-"
    lo, hi = f"{100 * x.min():.0f}", f"{100 * x.max():.0f}"
    return f"{lo}%" if lo == hi else f"{lo}-{hi}%"


def _span(x: pd.Series) -> str:
    lo, hi = int(x.min()), int(x.max())
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
