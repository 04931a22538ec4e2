"""The model against the shipped corpus of real runs (``collbench validate``), tracked per
commit: the mean error of ``auto``'s estimates from 1 MiB and over all sizes, in percent, and the
runs outside the fidelity targets (<= 10% from 1 MiB, <= 20% over all sizes), over every run
and per validation system.  asv treats larger as worse, and every series here is an error or a
count of misses.  Nothing is timed: the values are the model's alone, so any change is a change
of the model (or of the corpus), and the regression threshold can be tight.

A run published twice (an ``odd-*`` log and its excerpts) counts once: ``validate``'s
``same_as`` names the copies; builds from before that column existed drop a run whose
collective, ranks, sizes and error equal another's (the same copies)."""
import math

SYSTEMS = ["all", "dgx-h100", "dgx-a100", "aws-p5", "aws-p4de", "alcf-polaris",
           "snellius-h100", "a100-pcie-ib", "mi300x-node", "mi355x-node", "pc-2080ti-pcie"]


def runs():
    """collbench validate's compared runs, each once."""
    from collbench.validation.cases import validate
    t = validate().dropna(subset=["error_all"])
    if "same_as" in t:
        return t[t.same_as.isna()]
    key = [c for c in ("collective", "nranks", "per_node", "rows", "error_all") if c in t]
    return t.assign(_copy=t.case.str.startswith("odd-")).sort_values(["_copy", "case"]) \
        .drop_duplicates(subset=key).drop(columns="_copy")


def stats(t):
    """Per system (and 'all'): mean error from 1 MiB and over all sizes in percent, runs
    outside the targets."""
    out = {}
    for name in SYSTEMS:
        g = t if name == "all" else t[t.system == name]
        if g.empty:
            out[name] = (math.nan, math.nan, math.nan)
            continue
        miss = ~((g.error_1m.fillna(0) <= 0.10) & (g.error_all <= 0.20))
        out[name] = (100.0 * float(g.error_1m.mean()), 100.0 * float(g.error_all.mean()),
                     float(miss.sum()))
    return out


class Fidelity:
    params = (SYSTEMS,)
    param_names = ["system"]
    timeout = 600

    def setup_cache(self):
        return stats(runs())

    def track_error_1m_pct(self, s, system):
        return s[system][0]

    track_error_1m_pct.unit = "%"

    def track_error_all_pct(self, s, system):
        return s[system][1]

    track_error_all_pct.unit = "%"

    def track_runs_outside_targets(self, s, system):
        return s[system][2]

    track_runs_outside_targets.unit = "runs"
