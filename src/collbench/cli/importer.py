"""``collbench import``: nccl-tests (text or -J JSON) and OSU output to results rows."""
from __future__ import annotations

import sys

import pandas as pd

from ..errors import InputError
from ..fileio import user_path
from ..results.importers import read_output
from ..results.io import check_path, write_results
from ..results.schema import typed


def add_parser(sub) -> None:
    i = sub.add_parser("import", help="nccl-tests (text or -J JSON) or OSU output to results rows",
                       epilog="examples:\n  collbench import all_reduce_perf.txt -o h100.csv\n"
                              "  collbench import osu_allreduce.txt --nranks 16")
    i.add_argument("files", nargs="+")
    i.add_argument("-o", "--output", default=None, help="results .csv or .json (default FILE.csv)")
    i.add_argument("--collective", default=None, help="override what the file says")
    i.add_argument("--nranks", type=int, default=None,
                   help="ranks, when the file does not say (OSU output never does)")
    i.add_argument("-v", "--verbose", action="store_true",
                   help="say how many lines were skipped and what was noted per file")
    i.set_defaults(func=run)


def run(args) -> int:
    files = [user_path(f, "file", InputError) for f in args.files]
    out = check_path(args.output if args.output else files[0].with_suffix(".csv"))
    if out.resolve() in {p.resolve() for p in files}:
        raise InputError(f"-o {out} would overwrite an input file")
    frames = []
    for p in files:
        got = read_output(p, collective=args.collective, nranks=args.nranks)
        for w in got.warnings:
            print(f"collbench import: warning: {w}", file=sys.stderr)
        if args.verbose:
            for n in got.notes:
                print(f"# {n}")
            runs = got.frame["run"].nunique()
            print(f"# {p}: {len(got.frame)} rows in {runs} run(s): "
                  f"{', '.join(sorted(set(got.frame.collective.astype(str))))} on "
                  f"{', '.join(map(str, sorted(set(got.frame.nranks))))} ranks; "
                  f"{got.skipped_lines} other lines skipped")
        frames.append(got.frame)
    df = typed(pd.concat(frames, ignore_index=True))
    write_results(df, out, overwrite=False, run=df["run"].astype(str).unique().tolist())
    print(f"# {len(df)} rows from {len(args.files)} file(s) -> {out}")
    return 0
