"""A run's configuration, validated on every rank before any MPI work (pure functions:
every rank reaches the same verdict, so a bad flag ends every rank with exit 2, no hang)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..algorithms import COLLECTIVES, REGISTRY, runnable
from ..errors import InputError
from ..results.io import check_path
from ..results.nccl_json import check_json_path
from ..units import DType, dtype, size_range

RUN_DTYPES = ("float32", "float64", "float16", "bfloat16", "int32", "int64", "int8", "uint8",
              "uint32", "uint64")
RUN_OPS = ("sum", "prod", "min", "max", "avg")
THREAD_LEVELS = ("single", "funneled", "serialized", "multiple")
TIMING = {0: "rank0", 1: "avg", 2: "min", 3: "max"}
MAX_ITERS = 100_000
MAX_WARMUP = 10_000
MAX_TIMEOUT = 7 * 24 * 3600.0


# nccl-tests' program names (without _perf) and common spellings
RUN_ALIASES = {"all_reduce": "allreduce", "reducescatter": "reduce_scatter",
               "allgather": "all_gather", "bcast": "broadcast", "alltoall": "all_to_all",
               "all-to-all": "all_to_all", "reduce-scatter": "reduce_scatter",
               "all-gather": "all_gather", "all-reduce": "allreduce", "send_recv": "sendrecv"}


@dataclass
class RunConfig:
    collective: str = "allreduce"
    algo: str | None = None          # None: mpi and ring, or mpi and every own algorithm
    minbytes: str = "8"
    maxbytes: str = "64M"
    stepfactor: str | None = None
    stepbytes: str | None = None
    iters: int = 20
    warmup: int = 5
    check: int = 1
    op: str = "sum"
    dtype: str = "float32"
    average: int = 1
    ranks_per_node: int | None = None
    predict: str | None = None
    csv: str | None = None
    json: str | None = None
    nccl_json: str | None = None     # -J: nccl-tests' JSON layout (results/nccl_json.py)
    timeout: float | None = None
    thread_level: str = "single"
    min_busbw: float | None = None   # GB/s at the largest size, per algorithm: fail below
    command: str = ""
    run_suffix: str = ""
    root: int = 0                    # broadcast and reduce (nccl-tests' -r)
    in_place: bool = True            # time nccl-tests' in-place layout too (where it exists)
    expect_busbw: float | None = None   # GB/s: every row at or above, else exit 3
    expect_ratio: float | None = None   # measured / predicted time: every row at or below             # added to the run id (one run per dtype/op of -d/-o all)
    # filled by validate()
    algos: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    dt: DType | None = None
    paths: list[Path] = field(default_factory=list)


def combinations(dtype_arg: str, op_arg: str, collective: str) -> tuple[list[tuple[str, str]],
                                                                     list[str]]:
    """(dtype, op) pairs of ``-d``/``-o`` (``all`` expands as nccl-tests does), and notes on
    pairs left out: avg of integers (no exact check) and ops of collectives that do not
    reduce (one pass: the op does not matter)."""
    reduces = COLLECTIVES.get(RUN_ALIASES.get(collective, collective))
    dts = list(RUN_DTYPES) if dtype_arg == "all" else [dtype_arg]
    ops = list(RUN_OPS) if op_arg == "all" else [op_arg]
    notes = []
    if op_arg == "all" and reduces is not None and not reduces.reduces:
        ops, notes = ["sum"], [f"-o all: {reduces.name} does not reduce; one pass per dtype"]
    pairs = []
    for d in dts:
        for o in ops:
            if o == "avg" and (dtype_arg == "all" or op_arg == "all") and d in RUN_DTYPES \
                    and dtype(d).kind != "float" and (reduces is None or reduces.reduces):
                continue
            pairs.append((d, o))
    if len(pairs) < len(dts) * len(ops) and (dtype_arg == "all" or op_arg == "all"):
        notes.append("avg of integer dtypes left out (integer division truncates: no exact "
                     "check)")
    return pairs, notes


def validate(cfg: RunConfig) -> RunConfig:
    """Check everything that does not need the rank count; fills algos, sizes, dt, paths."""
    cfg.collective = RUN_ALIASES.get(str(cfg.collective), cfg.collective)
    if cfg.collective not in COLLECTIVES:
        raise InputError(f"unknown collective {str(cfg.collective)[:40]!r}; valid: "
                         f"{', '.join(COLLECTIVES)} (or nccl-tests' names: "
                         f"{', '.join(sorted(RUN_ALIASES))})")
    valid = runnable(cfg.collective)
    if not valid:
        raise InputError(f"collbench run has no algorithm for {cfg.collective}; it runs "
                         f"{', '.join(c for c in COLLECTIVES if runnable(c))}")
    if cfg.algo is None:
        own = [a for a in valid if a != "mpi"]
        cfg.algo = ",".join(["mpi"] + (["ring"] if "ring" in own else own))
    algos = [a.strip() for a in cfg.algo.split(",") if a.strip()]
    if not algos:
        raise InputError(f"no algorithm given; valid: {', '.join(valid)}")
    for a in algos:
        if a not in valid:
            kind = "has no real implementation" if a in REGISTRY else "is unknown"
            raise InputError(f"algorithm {a[:40]!r} {kind} in collbench run; valid: "
                             f"{', '.join(valid)}")
    if cfg.min_busbw is not None and not (math.isfinite(cfg.min_busbw) and cfg.min_busbw > 0):
        raise InputError(f"--min-busbw must be a positive, finite GB/s; got {cfg.min_busbw}")
    if cfg.expect_busbw is not None and not (math.isfinite(cfg.expect_busbw)
                                             and cfg.expect_busbw > 0):
        raise InputError(f"--expect-busbw must be a positive, finite GB/s; got "
                         f"{cfg.expect_busbw}")
    if cfg.expect_ratio is not None and not (math.isfinite(cfg.expect_ratio)
                                             and cfg.expect_ratio >= 1):
        raise InputError(f"--expect-ratio must be a finite measured/predicted ratio >= 1; got "
                         f"{cfg.expect_ratio}")
    if cfg.expect_ratio is not None and not cfg.predict:
        raise InputError("--expect-ratio needs --predict SYSTEM (a preset, a .toml file or "
                         "'local')")
    dt = dtype(cfg.dtype)
    if dt.name not in RUN_DTYPES:
        raise InputError(f"dtype {cfg.dtype!r} cannot run yet; valid: {', '.join(RUN_DTYPES)}")
    if cfg.op not in RUN_OPS:
        raise InputError(f"unknown op {cfg.op[:40]!r}; valid: {', '.join(RUN_OPS)}")
    if cfg.op == "avg" and dt.kind != "float" and COLLECTIVES[cfg.collective].reduces:
        raise InputError(f"op avg with {dt.name} makes no sense (integer division truncates); "
                         "use a float dtype")
    if cfg.average not in TIMING:
        raise InputError(f"-a must be 0 (rank 0), 1 (average), 2 (min) or 3 (max); got "
                         f"{cfg.average}")
    if not 1 <= cfg.iters <= MAX_ITERS:
        raise InputError(f"-n must be from 1 to {MAX_ITERS:,}; got {cfg.iters}")
    if not 0 <= cfg.warmup <= MAX_WARMUP:
        raise InputError(f"-w must be from 0 to {MAX_WARMUP:,}; got {cfg.warmup}")
    if cfg.check not in (0, 1):
        raise InputError("-c must be 0 or 1")
    if cfg.timeout is not None and not (math.isfinite(cfg.timeout)
                                        and 0 < cfg.timeout <= MAX_TIMEOUT):
        raise InputError(f"-T must be a positive, finite number of seconds (at most "
                         f"{MAX_TIMEOUT:g}); got {cfg.timeout}")
    if cfg.thread_level not in THREAD_LEVELS:
        raise InputError(f"unknown thread level {cfg.thread_level!r}; valid: "
                         f"{', '.join(THREAD_LEVELS)}")
    cfg.sizes = size_range(cfg.minbytes, cfg.maxbytes, cfg.stepfactor, cfg.stepbytes)
    cfg.paths = [check_path(p) for p in (cfg.csv, cfg.json) if p is not None]
    if len(cfg.paths) == 2 and cfg.paths[0].suffix == cfg.paths[1].suffix:
        raise InputError("--csv wants a .csv file and --json a .json file")
    if cfg.nccl_json is not None:
        check_json_path(cfg.nccl_json)
    cfg.algos, cfg.dt = algos, dt
    return cfg


def mpi_lacks(cfg: RunConfig, MPI: Any) -> bool:
    """True when the run asks the MPI library for a datatype it does not have."""
    return (cfg.dt is not None and cfg.dt.name == "bfloat16" and "mpi" in cfg.algos
            and getattr(MPI, "BFLOAT16_T", MPI.DATATYPE_NULL) == MPI.DATATYPE_NULL)


def validate_mpi(cfg: RunConfig, MPI: Any) -> None:
    """Checks that need the MPI library (after MPI_Init, before any communication)."""
    if mpi_lacks(cfg, MPI):
        raise InputError("this MPI library has no MPI_BFLOAT16_T: bfloat16 runs with "
                         "collbench's own algorithms only; drop mpi from --algo")


def validate_ranks(cfg: RunConfig, nranks: int) -> None:
    """Checks that need the rank count (still before any communication)."""
    if not 0 <= cfg.root < nranks:
        raise InputError(f"-r {cfg.root}: the root must be a rank; valid: 0 to {nranks - 1}")
    if cfg.op == "prod" and nranks > 8 * 15:
        raise InputError("op prod overflows the checkable range beyond 120 ranks")
    if cfg.op in ("sum", "avg") and cfg.dtype in ("float16", "half") and nranks > 32:
        raise InputError("float16 sums are exact only up to 32 ranks; use float32")
    if cfg.dtype in ("bfloat16", "bf16") and (cfg.op == "sum" and nranks > 64 or
                                              cfg.op == "avg" and nranks > 11):
        raise InputError("bfloat16 keeps 8 significant bits: sums are exact only up to 64 "
                         "ranks (avg: 11); use float32")
    if cfg.dtype in ("int8", "uint8") and (cfg.op == "sum" and nranks > 31 or
                                           cfg.op == "prod" and nranks > 48):
        raise InputError(f"{cfg.dtype} {cfg.op} of {nranks} ranks overflows the checkable "
                         "range (sum: 31 ranks, prod: 48); use int32")
    k = cfg.ranks_per_node
    if k is not None and (k < 1 or nranks % k):
        divisors = [str(d) for d in range(1, nranks + 1) if nranks % d == 0][:32]
        raise InputError(f"--ranks-per-node {k} does not divide {nranks} ranks; valid: "
                         + ", ".join(divisors))
