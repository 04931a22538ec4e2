"""``collbench systems``: the presets, or named systems' tiers and the source of each number."""
from __future__ import annotations

from ..model.system import load_system, systems


def add_parser(sub) -> None:
    s = sub.add_parser("systems", help="list presets, or show named systems' tiers and sources",
                       epilog="examples:\n  collbench systems\n  collbench systems cloudmatrix384"
                              "\n  collbench systems -v")
    s.add_argument("names", nargs="*", help="preset names or .toml paths to describe")
    s.add_argument("-v", "--verbose", action="store_true", help="tiers and sources of every preset")
    s.set_defaults(func=run)


def run(args) -> int:
    names = args.names or systems()
    for i, n in enumerate(names):
        s = load_system(n)
        if args.verbose or args.names:
            if i:
                print()
            print(s.describe())
        else:
            tiers = " > ".join(f"{t.name} x{t.size} {t.bw_gbps:g} GB/s" for t in s.tiers)
            print(f"{s.name:24s} {s.max_ranks:>10,} ranks  {s.library:5s} {tiers}")
    return 0
