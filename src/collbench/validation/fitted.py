"""Systems fitted to the training corpus, and how well they predict cases they did not see.

``fit_corpus`` fits each validation system (a preset or a file in ``systems/``) to the corpus
cases ``collbench validate`` holds against it, through ``collbench calibrate``'s fit, starting
from the spec-based system: only what the data separates is fitted (per-tier step latency and
efficiency curve, base latency); line rates, tier sizes and topology stay the spec's. Every
fitted number cites the corpus files it came from (``[calibration].source_files``).

A fit reproduces its own data better than it predicts new data, so next to the in-sample
errors the same function refits once per case with that case left out and predicts it
(leave-one-case-out): the honest number for a cluster the corpus does not have.

Only cases that ran with the system's full node (GPUs per node = the node tier's size) are
fitted to (calibrate's rank placement fills whole nodes); the others are still validated.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CollbenchError, FitError
from ..model.system import System
from ..results.io import atomic_write
from .cases import (
    _system,
    case_rows,
    copies,
    geomean_error,
    index,
    per_node,
    system_for,
    system_names,
    validate,
)

FITTED_DIR = Path(__file__).parent / "systems" / "fitted"


def training_cases(name: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(cases fitted to, [(case, why not)]) of one validation system."""
    use, left = [], []
    base = _system(name)
    for e in index():
        target, _ = system_for(e["id"])
        if target != name:
            continue
        pn = per_node(e, base)
        if len(base.tiers) > 1 and pn != base.tiers[0].size:
            left.append((e["id"], f"{pn} GPUs per node of {base.tiers[0].size}"))
            continue
        use.append(e["id"])
    return use, left


def fit_one(name: str, cases: list[str], frames: dict[str, pd.DataFrame]) -> System:
    from ..calibration.fitting import fit  # scipy: only fits need it
    df = pd.concat([frames[c] for c in cases], ignore_index=True)
    f = fit(df, _system(name), name=name)
    return f.system


def fit_corpus(out_dir: Path = FITTED_DIR, names: list[str] | None = None,
               progress: Callable[[str], None] = print, loo: bool = True) -> pd.DataFrame:
    """Fit every validation system (or ``names``) to its corpus cases and write
    ``out_dir/NAME.toml``; returns per case the spec's, the fit's and (``loo``) the
    left-out fit's errors."""
    all_names = system_names()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names or all_names:
        cases, left = training_cases(name)
        if not cases:
            progress(f"# {name}: no case to fit to")
            continue
        frames = {}
        for c in cases:
            try:
                frames[c] = case_rows(c)
            except CollbenchError as exc:
                left.append((c, f"not imported: {exc}"))
        # a run published twice (a whole log and its excerpts, validate's same_as) is one run:
        # fitted once and reported once; its copy's rows are dropped, so a left-out fit never
        # sees the run it is held against
        copied = copies(name)
        for c, coll, p in copied:
            if c in frames:
                f = frames[c]
                frames[c] = f[~((f.collective.astype(str) == coll) & (f.nranks == p))]
        cases = [c for c in cases if c in frames and len(frames[c])]
        if not cases:
            continue
        path = out_dir / f"{name}.toml"
        try:
            fitted = fit_one(name, cases, frames)
        except FitError as exc:
            # the model cannot follow these cases with physical numbers: say so, keep the
            # spec-based system for them (a stale fitted file would claim otherwise)
            path.unlink(missing_ok=True)
            progress(f"# {name}: fit refused ({exc}); its cases keep the spec-based system")
            rows += [{"case": c, "system": name, "collective": r.collective, "nranks": r.nranks,
                      "spec_1m": r.error_1m, "spec_all": r.error_all}
                     for c in cases for r in validate(case=c).itertuples()
                     if (c, str(r.collective), r.nranks) not in copied]
            continue
        atomic_write(path, fitted.to_toml())
        progress(f"# {name}: fitted to {len(cases)} case(s) "
                 f"({sum(len(frames[c]) for c in cases)} rows) -> {path}"
                 + (f"; left out: {', '.join(c for c, _ in left)}" if left else ""))
        for c in cases:
            spec = validate(case=c)
            inside = validate(fitted, case=c)
            out = None
            if loo and len(cases) > 1:
                try:
                    out = validate(fit_one(name, [x for x in cases if x != c], frames), case=c)
                except CollbenchError as exc:
                    progress(f"#   {c}: the fit without it failed: {exc}")
            for k in range(len(spec)):
                if (c, str(spec.collective.iloc[k]), spec.nranks.iloc[k]) in copied:
                    continue
                row = {"case": c, "system": name, "collective": spec.collective.iloc[k],
                       "nranks": spec.nranks.iloc[k],
                       "spec_1m": spec.error_1m.iloc[k], "spec_all": spec.error_all.iloc[k],
                       "fit_1m": inside.error_1m.iloc[k], "fit_all": inside.error_all.iloc[k],
                       "loo_1m": out.error_1m.iloc[k] if out is not None else np.nan,
                       "loo_all": out.error_all.iloc[k] if out is not None else np.nan}
                rows.append(row)
            progress(f"#   {c}: spec {spec.error_all.iloc[0]:.0%}, fitted "
                     f"{inside.error_all.iloc[0]:.0%}"
                     + (f", left out {out.error_all.iloc[0]:.0%}" if out is not None else ""))
    return pd.DataFrame(rows, columns=["case", "system", "collective", "nranks", "spec_1m",
                                       "spec_all", "fit_1m", "fit_all", "loo_1m", "loo_all"])


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per system and collective: geometric means of the spec's, the fit's and the left-out
    fit's errors (from 1 MiB and over all sizes)."""
    cols = ["spec_1m", "spec_all", "fit_1m", "fit_all", "loo_1m", "loo_all"]
    return (df.groupby(["system", "collective"], sort=True)
            .apply(lambda g: pd.Series({"cases": len(g),
                                        **{c: geomean_error(g[c]) for c in cols}}),
                   include_groups=False)
            .reset_index())


def main(argv: list[str] | None = None) -> int:
    """``python -m collbench.validation.fitted [OUT_DIR] [--csv FILE]``: refit every validation
    system to the corpus, write the fitted systems, print spec / fitted / left-out errors."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m collbench.validation.fitted",
                                 description=main.__doc__)
    ap.add_argument("out_dir", nargs="?", default=str(FITTED_DIR))
    ap.add_argument("--csv", default=None, help="per-case errors (.csv)")
    args = ap.parse_args(argv)
    df = fit_corpus(Path(args.out_dir))
    if args.csv:
        atomic_write(Path(args.csv), df.to_csv(index=False))

    def pct(x: float) -> str:
        return "-" if x != x else f"{x:.0%}"
    print("# per system and collective: geometric-mean error from 1 MiB / over all sizes; spec: "
          "the spec-based system; fitted: fitted to every case (in-sample); left out: fitted "
          "without the case, then predicting it")
    print(f"# {'system':<15s} {'collective':<15s} {'cases':>5s} {'spec':>13s} {'fitted':>13s} "
          f"{'left out':>13s}")
    for r in summary(df).itertuples():
        print(f"  {r.system:<15s} {r.collective:<15s} {int(r.cases):>5d} "
              f"{pct(r.spec_1m):>6s}/{pct(r.spec_all):<6s} {pct(r.fit_1m):>6s}/{pct(r.fit_all):<6s} "
              f"{pct(r.loo_1m):>6s}/{pct(r.loo_all):<6s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
