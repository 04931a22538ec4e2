"""Systems as data: an ordered list of tiers, innermost first.

A tier groups ``size`` units of the tier inside it (chips for tier 0) and says how a
chip reaches the peers that sit across it: bandwidth per chip per direction, latency
per message split into a hardware and a software part, topology, in-switch reduction,
oversubscription and a size-dependent efficiency curve.  Every number of a preset
carries its source in the TOML file it comes from (``[tiers.sources]``).
"""
from __future__ import annotations

import math
import numbers
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..algorithms import MODEL_ALGORITHMS, REGISTRY
from ..algorithms.base import Geometry
from ..algorithms.hier import INNER, OUTER, parse_label
from ..errors import InputError, NotApplicable, SystemFileError
from ..fileio import read_text_file
from ..units import human

TOPOLOGIES = ("switch", "fullmesh", "ring", "torus")
MAX_TIERS = 6                  # hier enumerates 3^(tiers-1) x 7 plans: bounded work
MAX_FILE_BYTES = 1 << 20       # a system file larger than 1 MiB is not a system file
LIBRARIES = ("nccl", "rccl", "hccl", "mpi", "custom")

# Tier fields that are numbers and must carry a source in a preset.
TIER_NUMBERS = ("size", "bw_gbps", "lat_hw_us", "lat_sw_us", "oversub", "eff_lo", "eff_hi",
                "eff_lo_bytes", "eff_hi_bytes", "innet_eff", "innet_lat_us", "sync_us")
# Tier numbers a file may leave out (they default to "no effect"); when given, a preset
# cites their source too.
TIER_OPTIONAL_NUMBERS = ("peer_share", "shared_gbps")
SYSTEM_NUMBERS = ("base_lat_us", "reduce_gbps")


@dataclass(frozen=True)
class Tier:
    name: str
    size: int                      # units of the inner tier grouped here (chips for tier 0)
    bw_gbps: float                 # per chip, per direction, to peers across this tier (GB/s)
    lat_hw_us: float = 0.0         # wire/switch latency per message
    lat_sw_us: float = 0.0         # software/protocol latency per step
    topology: str = "switch"
    innet: bool = False            # switch reduces in the network (NVLS / SHARP)
    innet_eff: float = 1.0         # bandwidth fraction of in-network reduction vs the tier curve
    innet_lat_us: float = 0.0      # latency of one in-network reduction step
    oversub: float = 1.0           # oversubscription: bandwidth is divided by it
    eff_lo: float = 1.0            # achieved / line rate at or below eff_lo_bytes
    eff_hi: float = 1.0            # achieved / line rate at or above eff_hi_bytes
    eff_lo_bytes: float = 65536.0
    eff_hi_bytes: float = 268435456.0
    # launch and synchronisation cost a collective whose outermost tier is this one pays
    # once on top of the library's latencies (what nccl-tests measures at a few bytes beyond
    # NCCL's tuner constants); fitted to the corpus's small sizes, see validation/floors.py
    sync_us: float = 0.0
    # fraction of this tier's bandwidth the library's point-to-point transfer to ONE peer
    # reaches (NCCL runs send/receive over the network with 2 channels per peer); a rank
    # with k peers across the tier in flight at once reaches min(1, k x peer_share)
    peer_share: float = 1.0
    # capacity per direction that all chips of one group of this tier share (0: none), e.g.
    # the uplink of a PCIe switch every byte crosses when GPUs talk through host memory:
    # k chips of the group sending at once get min(bw_gbps, shared_gbps / k) each
    shared_gbps: float = 0.0
    # the tier's chips sit in several hosts (NVLink across the compute trays of a GB200
    # NVL72): a run's GPUs per host say nothing about how many share the tier
    spans_hosts: bool = False
    # channels that carry this tier's traffic where it is the outermost one spanned (NCCL:
    # two per NIC across nodes, at most MAXCHANNELS); with a protocol's channel_bytes, sizes
    # below channels x channel_bytes run on fewer of them (System.protocol_channels);
    # 0: not modelled (a few channels fill the tier)
    channels: int = 0
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def peer_rate(self, peers: int) -> float:
        """Fraction of the tier's bandwidth ``peers`` point-to-point peers in flight reach."""
        return min(1.0, max(1, peers) * self.peer_share)

    def peer_rounds(self, peers: int) -> int:
        """Rounds of step latency ``peers`` point-to-point exchanges across this tier take
        when the library keeps as many in flight as fill the tier, ceil(1 / peer_share) of
        them (one at a time where one peer fills it)."""
        width = max(1, math.ceil(1.0 / self.peer_share - 1e-9))
        return -(-max(0, peers) // width)

    def share(self, senders: int) -> float:
        """Fraction of ``bw_gbps`` each chip gets when ``senders`` chips of one group of
        this tier send at once through its shared capacity (``shared_gbps``)."""
        if self.shared_gbps <= 0:
            return 1.0
        return min(1.0, self.shared_gbps / (max(1, senders) * self.bw_gbps))

    @property
    def lat_us(self) -> float:
        return self.lat_hw_us + self.lat_sw_us

    def efficiency(self, nbytes: float) -> float:
        """Achieved fraction of line rate for a collective of ``nbytes`` on this tier:
        log-linear between (eff_lo_bytes, eff_lo) and (eff_hi_bytes, eff_hi), flat outside."""
        if nbytes <= self.eff_lo_bytes:
            return self.eff_lo
        if nbytes >= self.eff_hi_bytes:
            return self.eff_hi
        t = (math.log(nbytes) - math.log(self.eff_lo_bytes)) / (
            math.log(self.eff_hi_bytes) - math.log(self.eff_lo_bytes))
        return self.eff_lo + t * (self.eff_hi - self.eff_lo)


@dataclass(frozen=True)
class System:
    name: str
    tiers: tuple[Tier, ...]
    library: str = "custom"
    library_algorithms: tuple[str, ...] = ()
    # the hierarchical plans the library runs, as hier labels (NCCL's NVLSTree is
    # "hier(innet>tree)"); empty: every combination of its algorithms
    hier_plans: tuple[str, ...] = ()
    base_lat_us: float = 0.0       # fixed cost of launching one collective
    reduce_gbps: float = 1000.0    # chip's local reduction throughput (input bytes/s)
    overlap_reduce: bool = False   # reduction runs under the transfer (time uses max, not sum)
    # the library lays its rings and trees over several channels on different links (NCCL,
    # RCCL), so on a full-mesh tier they use every link; False: one ring uses 1 of size-1
    channels_span_mesh: bool = False
    # the library's tree across exactly 2 nodes (2 groups of a tier outside the innermost)
    # moves the data across once, each node sending the other its part and receiving the
    # other's, at the full inter-node bandwidth; False: twice, as across more nodes (NCCL's
    # tuner picks its tree there on some systems and not on others: collbench sets this
    # where the corpus's 2-node runs go faster than any ring could)
    two_node_tree_once: bool = False
    vendor: str = ""
    description: str = ""
    # per implementation run by name (e.g. collbench's own Python ring, or "mpi" for the MPI
    # library's MPI_Allreduce): {"step_us": extra latency per step, "base_us": extra fixed
    # latency per call, "bw_factor"/"bw_factor_lo": its efficiency relative to the tiers'
    # curves at large/small sizes}.  Fitted by `collbench calibrate`; presets have none.
    implementations: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)
    # what a calibrated system was fitted to (sizes, ranks, tiers, algorithms, error):
    # estimates outside it are labelled as extrapolation
    calibration: dict[str, Any] = field(default_factory=dict, hash=False)
    # the library's protocols (NCCL: LL, LL128, Simple), each a variant of the algorithms it
    # names: {"base_us": latency added to base_lat_us, "step_us": per tier, latency added to
    # its lat_sw_us, "bw_factor": bandwidth relative to the tiers' curves, "algorithms": which
    # algorithms run it}, and optionally a size ramp of its own ("eff_lo_factor",
    # "eff_lo_bytes", "eff_hi_bytes": NCCL's tree correction table) in place of the tiers',
    # and optionally "max_tiers": the protocol runs only on ranks that span at most that many
    # tiers (NCCL turns LL128 off where a GPU reaches its NIC through the host bridge), and
    # "flat_tiers": on the innermost that many tiers it runs at its bandwidth at every size
    # (no size ramp there: LL's flagged stores need no pipeline to fill inside a node).
    # The cheapest (algorithm, protocol) wins, as in NCCL's tuner.  None: one implicit
    # protocol with the tiers' numbers as they are.
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    path: str = field(default="", compare=False)

    @property
    def max_ranks(self) -> int:
        return math.prod(t.size for t in self.tiers)

    def tiers_spanned(self, nranks: int) -> int:
        """How many tiers ``nranks`` ranks span (inner tiers first, whole groups; 1 at least)."""
        return Geometry(self, nranks).L

    def protocols_for(self, algorithm: str, nranks: int | None = None) -> list[str]:
        """The protocols ``algorithm`` runs with on this system ([] : the implicit one); with
        ``nranks``, only those that run on ranks spanning that many tiers (``max_tiers``)."""
        algorithm = protocol_algorithm(algorithm)
        names = [n for n, d in self.protocols.items() if algorithm in d["algorithms"]]
        if nranks is None:
            return names
        span = self.tiers_spanned(nranks)
        return [n for n in names if span <= self.protocols[n].get("max_tiers", span)]

    def protocol_variants(self, algorithm: str, nranks: int) -> list[str | None]:
        """The protocols ``algorithm`` runs with on ``nranks`` ranks, or [None] (the implicit
        one) if it names none; NotApplicable if none of those it names runs that wide."""
        names = self.protocols_for(algorithm, nranks)
        if names:
            return list(names)
        if self.protocols_for(algorithm):
            raise NotApplicable(f"none of {algorithm}'s protocols runs on ranks that span "
                                f"{self.tiers_spanned(nranks)} tiers")
        return [None]

    def protocol(self, name: str, algorithm: str | None = None) -> dict[str, Any]:
        """Protocol ``name``'s base latency, per-step latencies and bandwidth factor as
        ``algorithm`` runs it: the protocol's own numbers, with the keys of its
        per-algorithm table (NCCL's Tree has constants of its own) put over them."""
        d = self.protocols[name]
        o = d.get("by_algorithm", {}).get(protocol_algorithm(algorithm) if algorithm else "", {})
        out = {**d, **o}
        if "bw_factor" in o and "bw_factor_across" not in o:
            out.pop("bw_factor_across", None)   # its own factor holds on every span
        if any(k in o for k in RAMP_KEYS) and "flat_tiers" not in o:
            out.pop("flat_tiers", None)         # its own ramp holds on every tier
        return out

    def protocol_bw_factor(self, name: str, algorithm: str, nranks: int) -> float:
        """Protocol ``name``'s bandwidth factor for ``algorithm`` on ``nranks`` ranks: its
        ``bw_factor_across`` where the ranks span more than one tier, if it has one."""
        d = self.protocol(name, algorithm)
        if "bw_factor_across" in d and self.tiers_spanned(nranks) > 1:
            return d["bw_factor_across"]
        return d["bw_factor"]

    def protocol_channels(self, name: str, algorithm: str, nranks: int) -> tuple[float, float]:
        """(bytes at which every channel runs, the fraction one channel carries) for protocol
        ``name`` run by ``algorithm`` on ``nranks`` ranks, or (0, 1): not modelled.  NCCL
        runs a collective on fewer channels while a size gives each fewer than its threshold
        (``channel_bytes``: threads x bytes per thread; ring LL's grows with the ranks,
        ``channel_bytes_per_rank``), so below channels x that the transfer runs at
        n / (channels x channel_bytes) of the tiers' rate, never below one channel's share;
        the channels are the outermost spanned tier's (``Tier.channels``)."""
        if protocol_algorithm(algorithm) not in CHANNEL_ALGORITHMS:
            return 0.0, 1.0
        d = self.protocol(name, algorithm)
        per, each = d.get("channel_bytes_per_rank"), d.get("channel_bytes")
        ch = self.tiers[self.tiers_spanned(nranks) - 1].channels
        if not ch:
            return 0.0, 1.0
        if per is not None:
            return float(ch * per * nranks), 1.0 / ch
        if each is not None:
            return float(ch * each), 1.0 / ch
        return 0.0, 1.0

    def with_protocol(self, name: str, algorithm: str | None = None) -> System:
        """The system as protocol ``name`` sees it when ``algorithm`` runs it: its base and
        per-step latencies added, its own size ramp if it has one (its bandwidth factor is
        applied to the plans, see ``engine.Compiled``)."""
        d = self.protocol(name, algorithm)
        ramp = protocol_ramp(d)
        tiers = [replace(t, lat_sw_us=max(0.0, t.lat_sw_us + s))
                 for t, s in zip(self.tiers, d["step_us"])]
        if ramp is not None:        # its own size ramp in place of the tiers'
            tiers = [replace(t, eff_lo=ramp[0] * t.eff_hi, eff_lo_bytes=ramp[1],
                             eff_hi_bytes=ramp[2]) for t in tiers]
        flat = d.get("flat_tiers", 0)   # no size ramp at all on the innermost tiers
        tiers = [replace(t, eff_lo=t.eff_hi) if i < flat else t for i, t in enumerate(tiers)]
        return replace(self, base_lat_us=self.base_lat_us + d["base_us"], tiers=tuple(tiers))

    def with_tier(self, index: int, **changes: Any) -> System:
        tiers = list(self.tiers)
        tiers[index] = replace(tiers[index], **changes)
        return replace(self, tiers=tuple(tiers))

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, *, where: str = "<dict>") -> System:
        return _system_from_dict(data, where)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> System:
        path = Path(path)
        text = read_text_file(path, "system file", SystemFileError, MAX_FILE_BYTES)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SystemFileError(f"broken TOML in {path}: {exc}") from None
        system = _system_from_dict(data, str(path))
        return replace(system, path=str(path))

    def to_toml(self) -> str:
        return system_to_toml(self)

    def describe(self) -> str:
        hier = f"; hier plans {', '.join(self.hier_plans)}" if self.hier_plans else ""
        lines = [f"{self.name}: {self.description}".rstrip(": "),
                 f"  library {self.library} ({', '.join(self.library_algorithms)}{hier}), "
                 f"base latency {self.base_lat_us:g} us, local reduction {self.reduce_gbps:g} GB/s, "
                 f"max {self.max_ranks:,} ranks"
                 + ("; its tree crosses 2 nodes once" if self.two_node_tree_once else "")]
        for i, t in enumerate(self.tiers):
            flags = ([t.topology] + (["in-switch reduction"] if t.innet else [])
                     + (["spans hosts"] if t.spans_hosts else []))
            if t.oversub != 1:
                flags.append(f"oversub {t.oversub:g}:1")
            lines.append(
                f"  tier {i} {t.name}: x{t.size}, {t.bw_gbps:g} GB/s/dir, "
                f"{t.lat_hw_us:g}+{t.lat_sw_us:g} us, eff {t.eff_lo:g}->{t.eff_hi:g}, "
                + (f"sync {t.sync_us:g} us, " if t.sync_us else "")
                + (f"one p2p peer x{t.peer_share:g}, " if t.peer_share != 1 else "")
                + (f"{t.shared_gbps:g} GB/s/dir shared by the group, " if t.shared_gbps else "")
                + (f"{t.channels} channels, " if t.channels else "")
                + ", ".join(flags))
            for key, src in t.sources.items():
                lines.append(f"      {key}: {src}")
        def numbers(d: dict[str, Any]) -> str:
            steps = ", ".join(f"{x:+g}" for x in d["step_us"])
            ramp = protocol_ramp(d)
            return (f"base {d['base_us']:+g} us, per step {steps} us, bandwidth x{d['bw_factor']:g}"
                    + (f" (x{d['bw_factor_across']:g} across tiers)" if "bw_factor_across" in d
                       else "")
                    + ("" if ramp is None else f", ramp x{ramp[0]:g} at {human(ramp[1], space=True)}"
                       f" -> x1 at {human(ramp[2], space=True)}")
                    + (f", only on ranks within {d['max_tiers']} tier(s)" if "max_tiers" in d
                       else "")
                    + (f", no size ramp on the innermost {d['flat_tiers']} tier(s)"
                       if "flat_tiers" in d else "")
                    + (f", a channel per {human(d['channel_bytes_per_rank'], space=True)} x ranks"
                       if "channel_bytes_per_rank" in d else
                       f", a channel per {human(d['channel_bytes'], space=True)}"
                       if "channel_bytes" in d else ""))
        for name, d in self.protocols.items():
            lines.append(f"  protocol {name} ({', '.join(d['algorithms'])}): {numbers(d)}")
            lines += [f"    {algo}/{name}: {numbers(self.protocol(name, algo))}"
                      for algo in d.get("by_algorithm", {})]
        for key, src in self.sources.items():
            lines.append(f"  {key}: {src}")
        return "\n".join(lines)


def _num(where: str, key: str, value: Any, *, lo: float | None = None, hi: float | None = None,
         integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SystemFileError(f"{where}: {key} must be a number, got {str(value)[:40]!r}")
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise SystemFileError(f"{where}: {key}={value!r} is outside {rng}")
    if integer and int(value) != value:
        raise SystemFileError(f"{where}: {key} must be a whole number, got {value!r}")
    return int(value) if integer else float(value)


def _tier_from_dict(d: Any, where: str) -> Tier:
    if not isinstance(d, dict):
        raise SystemFileError(f"{where}: a tier must be a table")
    known = {f.name for f in fields(Tier)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise SystemFileError(f"{where}: unknown tier keys {unknown}; valid keys: {sorted(known)}")
    for req in ("name", "size", "bw_gbps"):
        if req not in d:
            raise SystemFileError(f"{where}: tier is missing '{req}'")
    kw: dict[str, Any] = {"name": str(d["name"])}
    kw["size"] = _num(where, "size", d["size"], lo=1, hi=1e9, integer=True)
    kw["bw_gbps"] = _num(where, "bw_gbps", d["bw_gbps"], lo=1e-6, hi=1e7)
    if "shared_gbps" in d:
        kw["shared_gbps"] = _num(where, "shared_gbps", d["shared_gbps"], lo=0, hi=1e9)
    for key in ("lat_hw_us", "lat_sw_us", "innet_lat_us", "sync_us"):
        if key in d:
            kw[key] = _num(where, key, d[key], lo=0, hi=1e6)
    for key in ("eff_lo", "eff_hi", "innet_eff", "peer_share"):
        if key in d:
            kw[key] = _num(where, key, d[key], lo=1e-6, hi=1.0)
    for key in ("eff_lo_bytes", "eff_hi_bytes"):
        if key in d:
            kw[key] = _num(where, key, d[key], lo=1, hi=1e18)
    if "oversub" in d:
        kw["oversub"] = _num(where, "oversub", d["oversub"], lo=1, hi=1e6)
    if "channels" in d:
        kw["channels"] = _num(where, "channels", d["channels"], lo=0, hi=4096, integer=True)
    if "topology" in d:
        if d["topology"] not in TOPOLOGIES:
            raise SystemFileError(f"{where}: topology {d['topology']!r} unknown; valid: {', '.join(TOPOLOGIES)}")
        kw["topology"] = d["topology"]
    for key in ("innet", "spans_hosts"):
        if key in d:
            if not isinstance(d[key], bool):
                raise SystemFileError(f"{where}: {key} must be true or false")
            kw[key] = d[key]
    if "sources" in d:
        if not isinstance(d["sources"], dict):
            raise SystemFileError(f"{where}: sources must be a table")
        kw["sources"] = dict(d["sources"])
    t = Tier(**kw)
    if t.eff_hi_bytes <= t.eff_lo_bytes:
        raise SystemFileError(f"{where}: eff_hi_bytes must be larger than eff_lo_bytes")
    return t


def _system_from_dict(data: Any, where: str) -> System:
    if not isinstance(data, dict):
        raise SystemFileError(f"{where}: a system must be a table")

    known = {f.name for f in fields(System)} - {"path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemFileError(f"{where}: unknown keys {unknown}; valid keys: {sorted(known)}")
    if "name" not in data or "tiers" not in data:
        raise SystemFileError(f"{where}: a system needs 'name' and at least one [[tiers]] table")
    tiers_raw = data["tiers"]
    if not isinstance(tiers_raw, list) or not tiers_raw:
        raise SystemFileError(f"{where}: a system needs at least one [[tiers]] table")
    if len(tiers_raw) > MAX_TIERS:
        raise SystemFileError(f"{where}: {len(tiers_raw)} tiers; at most {MAX_TIERS} are supported")
    tiers = tuple(_tier_from_dict(t, f"{where} tier {i}") for i, t in enumerate(tiers_raw))
    if math.prod(t.size for t in tiers) > 10 ** 9:
        raise SystemFileError(f"{where}: the tiers hold more than 1e9 ranks")
    kw: dict[str, Any] = {"name": str(data["name"]), "tiers": tiers}
    if "library" in data:
        if data["library"] not in LIBRARIES:
            raise SystemFileError(f"{where}: library {data['library']!r} unknown; valid: {', '.join(LIBRARIES)}")
        kw["library"] = data["library"]
    algos = data.get("library_algorithms", list(MODEL_ALGORITHMS))
    if not isinstance(algos, list) or not algos:
        raise SystemFileError(f"{where}: library_algorithms must be a non-empty list")
    bad = [a for a in algos if a not in MODEL_ALGORITHMS]
    if bad:
        raise SystemFileError(f"{where}: unknown algorithms {bad}; valid: "
                              f"{', '.join(MODEL_ALGORITHMS)}")
    kw["library_algorithms"] = tuple(algos)
    if "hier_plans" in data:
        kw["hier_plans"] = _hier_plans(data["hier_plans"], where)
    if "base_lat_us" in data:
        kw["base_lat_us"] = _num(where, "base_lat_us", data["base_lat_us"], lo=0, hi=1e6)
    if "reduce_gbps" in data:
        kw["reduce_gbps"] = _num(where, "reduce_gbps", data["reduce_gbps"], lo=1e-6, hi=1e7)
    for key in ("overlap_reduce", "channels_span_mesh", "two_node_tree_once"):
        if key in data:
            if not isinstance(data[key], bool):
                raise SystemFileError(f"{where}: {key} must be true or false")
            kw[key] = data[key]
    for key in ("vendor", "description"):
        if key in data:
            kw[key] = str(data[key])
    if "implementations" in data:
        kw["implementations"] = _implementations(data["implementations"], where)
    if "calibration" in data:
        kw["calibration"] = _calibration(data["calibration"], where)
    if "protocols" in data:
        kw["protocols"] = _protocols(data["protocols"], len(tiers), where)
    for key in ("sources",):
        if key in data:
            if not isinstance(data[key], dict):
                raise SystemFileError(f"{where}: {key} must be a table")
            kw[key] = {str(k): str(v) for k, v in data[key].items()}
    return System(**kw)


def _hier_plans(raw: Any, where: str) -> tuple[str, ...]:
    """hier_plans: a list of hier labels, hier(INNER[+INNER...][>OUTER])."""
    form = (f"hier(INNER>OUTER) labels, INNER one of {', '.join(INNER)} (one per inner tier, "
            f"joined by +), OUTER one of {', '.join(OUTER)}, e.g. \"hier(innet>tree)\"")
    if not isinstance(raw, list):
        raise SystemFileError(f"{where}: hier_plans must be a list of {form}")
    for x in raw:
        got = parse_label(x) if isinstance(x, str) else None
        if got is None or any(i not in INNER for i in got[0]) or (
                got[1] is not None and got[1] not in OUTER):
            raise SystemFileError(f"{where}: hier_plans: {str(x)[:40]!r} is not one of the "
                                  f"{form}")
    return tuple(raw)


IMPLEMENTATION_KEYS = ("step_us", "base_us", "bw_factor", "bw_factor_lo")
RAMP_KEYS = ("eff_lo_factor", "eff_lo_bytes", "eff_hi_bytes")
CHANNEL_KEYS = ("channel_bytes", "channel_bytes_per_rank")
PROTOCOL_KEYS = ("base_us", "step_us", "bw_factor", "bw_factor_across", *RAMP_KEYS,
                 "flat_tiers", *CHANNEL_KEYS, "max_tiers", "algorithms")
OVERRIDE_KEYS = ("base_us", "step_us", "bw_factor", "bw_factor_across", *RAMP_KEYS,
                 "flat_tiers", *CHANNEL_KEYS)
# the algorithms whose channel count follows the size (NCCL's collective thresholds; its
# send/receive and NVLS/CollNet set their channels otherwise)
CHANNEL_ALGORITHMS = ("ring", "tree")


def protocol_algorithm(algorithm: str) -> str:
    """The name a protocol table knows an algorithm by: every hierarchical plan
    (``hier(innet>tree)``, ...) is ``hier`` there."""
    return "hier" if parse_label(algorithm) else algorithm


def plan_ramp(d: dict[str, Any]) -> tuple[float, float, float, int] | None:
    """What a plan running protocol table ``d`` carries to the kernel: its own size ramp
    (NaN factor: none, the tiers' ramps) and how many innermost tiers run flat, or None."""
    ramp, flat = protocol_ramp(d), int(d.get("flat_tiers", 0))
    if ramp is None and not flat:
        return None
    return (*(ramp or (math.nan, 1.0, 2.0)), flat)


def protocol_ramp(d: dict[str, Any]) -> tuple[float, float, float] | None:
    """A protocol's own size ramp (eff_lo_factor, eff_lo_bytes, eff_hi_bytes), or None: the
    plans that run it reach eff_lo_factor x each tier's eff_hi at and below eff_lo_bytes,
    rising log-linearly to the tier's eff_hi at eff_hi_bytes, in place of the tier's ramp."""
    if "eff_lo_factor" not in d:
        return None
    return d["eff_lo_factor"], d["eff_lo_bytes"], d["eff_hi_bytes"]


MAX_PROTOCOLS = 4


def _protocols(raw: Any, ntiers: int, where: str) -> dict[str, dict[str, Any]]:
    """A system's [protocols.NAME] tables: latencies added per call and per step on each
    tier, a bandwidth factor, and the algorithms that run the protocol; a sub-table
    [protocols.NAME.ALGORITHM] gives one of those algorithms numbers of its own."""
    if not isinstance(raw, dict) or not all(isinstance(d, dict) for d in raw.values()):
        raise SystemFileError(f"{where}: protocols must be a table of tables ([protocols.LL] ...)")
    if len(raw) > MAX_PROTOCOLS:
        raise SystemFileError(f"{where}: {len(raw)} protocols; at most {MAX_PROTOCOLS}")
    out = {}
    for name, d in raw.items():
        w = f"protocols.{name}"
        if "/" in name or not name:
            raise SystemFileError(f"{where}: {w}: a protocol name may not be empty or hold '/'")
        algos = d.get("algorithms", ["ring", "tree"])
        if not isinstance(algos, list) or not algos or any(a not in MODEL_ALGORITHMS for a in algos):
            raise SystemFileError(f"{where}: {w}.algorithms must be a non-empty list of: "
                                  f"{', '.join(MODEL_ALGORITHMS)}")
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        spec = _protocol_numbers({k: v for k, v in d.items() if k not in subs}, ntiers, where,
                                 w, PROTOCOL_KEYS, " and a table per algorithm it runs")
        if "max_tiers" in d:
            spec["max_tiers"] = _num(where, f"{w}.max_tiers", d["max_tiers"], lo=1, hi=ntiers,
                                     integer=True)
        spec["algorithms"] = tuple(str(a) for a in algos)
        by_algorithm = {}
        for algo, o in subs.items():
            if algo not in algos:
                raise SystemFileError(f"{where}: {w}.{algo}: not an algorithm this protocol "
                                      f"runs; valid: {', '.join(algos)}")
            by_algorithm[str(algo)] = {k: v for k, v in _protocol_numbers(
                o, ntiers, where, f"{w}.{algo}", OVERRIDE_KEYS).items() if k in o}
        if by_algorithm:
            spec["by_algorithm"] = by_algorithm
        out[str(name)] = spec
    return out


def _protocol_numbers(d: dict, ntiers: int, where: str, w: str, valid: tuple[str, ...],
                      more: str = "") -> dict[str, Any]:
    """The numbers of one protocol table (or one algorithm's table under it); ``more``
    follows the valid keys in the error."""
    bad = sorted(set(d) - set(valid))
    if bad:
        raise SystemFileError(f"{where}: {w}: unknown keys {bad}; valid keys: "
                              f"{', '.join(valid)}{more}")
    steps = d.get("step_us", [0.0] * ntiers)
    if not isinstance(steps, list) or len(steps) != ntiers:
        raise SystemFileError(f"{where}: {w}.step_us must be a list of {ntiers} numbers, "
                              "one per tier")
    out = {"base_us": _num(where, f"{w}.base_us", d.get("base_us", 0.0), lo=-1e6, hi=1e6),
           "step_us": tuple(_num(where, f"{w}.step_us", x, lo=-1e6, hi=1e6) for x in steps),
           "bw_factor": _num(where, f"{w}.bw_factor", d.get("bw_factor", 1.0), lo=1e-6, hi=1.0)}
    if "bw_factor_across" in d:
        out["bw_factor_across"] = _num(where, f"{w}.bw_factor_across", d["bw_factor_across"],
                                       lo=1e-6, hi=1.0)
    if "flat_tiers" in d:
        out["flat_tiers"] = _num(where, f"{w}.flat_tiers", d["flat_tiers"], lo=1, hi=ntiers,
                                 integer=True)
    for key in CHANNEL_KEYS:
        if key in d:
            out[key] = _num(where, f"{w}.{key}", d[key], lo=1, hi=1e12)
    given = [k for k in RAMP_KEYS if k in d]
    if given:
        if len(given) != len(RAMP_KEYS):
            raise SystemFileError(f"{where}: {w}: a ramp needs all of {', '.join(RAMP_KEYS)}; "
                                  f"got {', '.join(given)}")
        out["eff_lo_factor"] = _num(where, f"{w}.eff_lo_factor", d["eff_lo_factor"],
                                    lo=1e-6, hi=1.0)
        out["eff_lo_bytes"] = _num(where, f"{w}.eff_lo_bytes", d["eff_lo_bytes"], lo=1, hi=1e15)
        out["eff_hi_bytes"] = _num(where, f"{w}.eff_hi_bytes", d["eff_hi_bytes"], lo=1, hi=1e15)
        if out["eff_hi_bytes"] <= out["eff_lo_bytes"]:
            raise SystemFileError(f"{where}: {w}.eff_hi_bytes must be above eff_lo_bytes")
    return out


CALIBRATION_KEYS = {"date": str, "files": list, "rows": int, "min_bytes": int, "max_bytes": int,
                    "nranks": list, "tiers_measured": int, "collectives": list,
                    "algorithms": list, "geomean_error": float, "fitted": list,
                    "source_files": list}


def _calibration(raw: Any, where: str) -> dict[str, Any]:
    """A fitted system's [calibration] table: known keys of the right types only."""
    if not isinstance(raw, dict):
        raise SystemFileError(f"{where}: calibration must be a table")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        kind = CALIBRATION_KEYS.get(key)
        if kind is None:
            raise SystemFileError(f"{where}: calibration.{key}: unknown key; valid keys: "
                                  f"{', '.join(CALIBRATION_KEYS)}")
        if kind is float:
            value = _num(where, f"calibration.{key}", value, lo=0, hi=1e9)
        elif kind is int:
            value = _num(where, f"calibration.{key}", value, lo=0, hi=1 << 60, integer=True)
        elif not isinstance(value, kind):
            raise SystemFileError(f"{where}: calibration.{key} must be a {kind.__name__}")
        if key == "nranks" and not all(isinstance(x, int) and x > 0 for x in value):
            raise SystemFileError(f"{where}: calibration.nranks must be a list of positive integers")
        out[key] = value
    return out


def _implementations(raw: Any, where: str) -> dict[str, dict[str, float]]:
    if not isinstance(raw, dict):
        raise SystemFileError(f"{where}: implementations must be a table of tables")
    out = {}
    for name, d in raw.items():
        if name not in REGISTRY:
            raise SystemFileError(f"{where}: implementations.{name}: unknown algorithm; valid: "
                                  f"{', '.join(REGISTRY)}")
        if not isinstance(d, dict):
            raise SystemFileError(f"{where}: implementations.{name} must be a table")
        bad = sorted(set(d) - set(IMPLEMENTATION_KEYS))
        if bad:
            raise SystemFileError(f"{where}: implementations.{name}: unknown keys {bad}; valid keys: "
                             f"{', '.join(IMPLEMENTATION_KEYS)}")
        out[name] = {"step_us": _num(where, f"implementations.{name}.step_us",
                                     d.get("step_us", 0.0), lo=0, hi=1e6),
                     "bw_factor": _num(where, f"implementations.{name}.bw_factor",
                                       d.get("bw_factor", 1.0), lo=1e-6, hi=1e6),
                     "base_us": _num(where, f"implementations.{name}.base_us",
                                     d.get("base_us", 0.0), lo=-1e6, hi=1e6)}
        out[name]["bw_factor_lo"] = _num(where, f"implementations.{name}.bw_factor_lo",
                                         d.get("bw_factor_lo", out[name]["bw_factor"]),
                                         lo=1e-6, hi=1e6)
    return out


def _toml_value(v):
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return repr(int(v))
    if isinstance(v, numbers.Real):
        return repr(float(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def _toml_key(k: str) -> str:
    """A key as TOML reads it back: bare when it can be, quoted otherwise (a dotted
    source key such as "protocols.LL" is one key, not a table)."""
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(k)


def system_to_toml(system: System, *, comments: dict | None = None) -> str:
    out = []
    for c in (comments or {}).get("header", []):
        out.append(f"# {c}")
    for key in ("name", "vendor", "description", "library", "library_algorithms",
                "base_lat_us", "reduce_gbps", "overlap_reduce", "channels_span_mesh"):
        out.append(f"{key} = {_toml_value(getattr(system, key))}")
    if system.two_node_tree_once:
        out.append("two_node_tree_once = true")
    if system.hier_plans:
        out.append(f"hier_plans = {_toml_value(system.hier_plans)}")
    if system.sources:
        out.append("\n[sources]")
        out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in system.sources.items()]
    if system.calibration:
        out.append("\n[calibration]")
        out += [f"{k} = {_toml_value(v)}" for k, v in system.calibration.items()]
    for name, d in system.protocols.items():
        out.append(f"\n[protocols.{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in d.items() if k != "by_algorithm"]
        for algo, o in d.get("by_algorithm", {}).items():
            out.append(f"\n[protocols.{name}.{algo}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in o.items()]
    for name, d in system.implementations.items():
        out.append(f"\n[implementations.{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in d.items()]
    for t in system.tiers:
        out.append("\n[[tiers]]")
        for f in fields(Tier):
            if f.name != "sources":
                out.append(f"{f.name} = {_toml_value(getattr(t, f.name))}")
        if t.sources:
            out.append("[tiers.sources]")
            out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in t.sources.items()]
    return "\n".join(out) + "\n"


# ---- presets ------------------------------------------------------------------------
PRESET_DIR = Path(__file__).parent / "presets"


def _preset_order(path: Path) -> tuple[int, int, str]:
    """NVLink systems first, then UnifiedBus, each from small to large."""
    data = tomllib.loads(path.read_text())
    size = math.prod(int(t.get("size", 1)) for t in data.get("tiers", []))
    return (0 if data.get("vendor") == "NVIDIA" else 1), size, path.stem


PRESETS = tuple(p.stem for p in sorted(PRESET_DIR.glob("*.toml"), key=_preset_order))
_cache: dict[str, System] = {}


def systems() -> list[str]:
    """Names of the preset systems (every TOML file in the presets folder)."""
    return list(PRESETS)


def preset(name: str) -> System:
    if name not in _cache:
        if name not in PRESETS:
            raise InputError(f"unknown system {str(name)[:60]!r}; valid presets: "
                             f"{', '.join(PRESETS)} (or a path to a .toml file)")
        _cache[name] = System.from_toml(PRESET_DIR / f"{name}.toml")
    return _cache[name]


def load_system(system: System | str | os.PathLike[str]) -> System:
    """A System from a System, a preset name or a path to a TOML file."""
    if isinstance(system, System):
        return system
    if isinstance(system, Path) or (isinstance(system, str) and (
            system.endswith(".toml") or "/" in system)):
        return System.from_toml(system)
    if isinstance(system, str):
        return preset(system)
    raise InputError(f"system must be a preset name, a TOML path or a System; got "
                     f"{type(system).__name__}")
