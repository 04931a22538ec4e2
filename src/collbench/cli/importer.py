"""``collbench import``: nccl-tests (text or -J JSON) and OSU output to results rows."""
from __future__ import annotations

import pandas as pd

from ..errors import InputError
from ..fileio import user_path
from ..results.importers import import_file
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
    i.set_defaults(func=run)


def run(args) -> int:
    files = [user_path(f, "file", InputError) for f in args.files]
    out = check_path(args.output if args.output else files[0].with_suffix(".csv"))
    if out.resolve() in {p.resolve() for p in files}:
        raise InputError(f"-o {out} would overwrite an input file")
    frames = [import_file(p, collective=args.collective, nranks=args.nranks) for p in args.files]
    df = typed(pd.concat(frames, ignore_index=True))
    write_results(df, out, overwrite=False, run=df["run"].astype(str).unique().tolist())
    print(f"# {len(df)} rows from {len(args.files)} file(s) -> {out}")
    return 0
