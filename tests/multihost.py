"""MPI hosts on one machine: one network namespace per host, joined by a bridge in a switch
namespace (../shared/reference/multihost.md).  MPICH treats each namespace as a node and data
between them crosses veth links (OFI netmod over TCP); a rate-shaped link gives a two-tier
fabric with known figures.  Needs root, iproute2 and util-linux unshare."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MPIEXEC = Path(sys.executable).parent / "mpiexec"
WRAPPER = """#!/bin/sh
# stands in for ssh: drop ssh's options, take the host, run the rest inside its namespace
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-p|-l|-i) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host="$1"; shift
exec ip netns exec "$host" unshare --uts sh -c "hostname $host && exec $*"
"""
ENV = {"MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp", "FI_TCP_IFACE": "eth0"}


def why_not() -> str | None:
    """Why hosts cannot be built here, or None."""
    if os.geteuid() != 0:
        return "network-namespace hosts need root (CI runs as root)"
    for tool in ("ip", "unshare", "tc"):
        if shutil.which(tool) is None:
            return f"network-namespace hosts need {tool} (iproute2 / util-linux)"
    if not MPIEXEC.exists():
        return "mpiexec from the mpich wheel is not installed next to python"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


def remove_stale() -> None:
    """Namespaces left by killed test runs: collbench's prefix and a PID that is gone."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("cbt") and "x" in name:
            pid = name[3:].split("x")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _delete(name)


def _delete(name: str) -> None:
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", name, check=False)


class Hosts:
    """``n`` hosts named cbt<PID>x<K>h<i>, addresses 10.<...>.<i>/24; ``rate`` (e.g.
    "200mbit") shapes every host's link in both directions."""

    def __init__(self, tmp: Path, n: int = 2, rate: str | None = None, tag: int = 0) -> None:
        remove_stale()
        base = f"cbt{os.getpid()}x{tag}"
        self.switch = base + "sw"
        self.names = [f"{base}h{i + 1}" for i in range(n)]
        self.wrapper = tmp / "netns-ssh"
        self.wrapper.write_text(WRAPPER)
        self.wrapper.chmod(0o755)
        net = 64 + (os.getpid() + tag) % 128
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, h in enumerate(self.names):
                _ip("netns", "add", h)
                _ip("-n", h, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{i}",
                    "netns", self.switch)
                _ip("-n", self.switch, "link", "set", f"v{i}", "master", "br0", "up")
                _ip("-n", h, "addr", "add", f"10.{net}.0.{i + 1}/24", "dev", "eth0")
                _ip("-n", h, "link", "set", "eth0", "up")
                _ip("-n", h, "link", "set", "lo", "up")
                if rate:
                    for ns, dev in ((h, "eth0"), (self.switch, f"v{i}")):
                        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev",
                                        dev, "root", "tbf", "rate", rate, "burst", "128kb",
                                        "latency", "20ms"], check=True, capture_output=True,
                                       timeout=30)
        except BaseException:
            self.close()
            raise

    def tx_bytes(self) -> list[int]:
        """Bytes each host has sent on its link so far."""
        out = []
        for h in self.names:
            text = _ip("-n", h, "-s", "link", "show", "eth0").stdout.splitlines()
            i = next(k for k, l in enumerate(text) if l.strip().startswith("TX:"))
            out.append(int(text[i + 1].split()[0]))
        return out

    def command(self, ranks_per_host: int, args: list[str]) -> list[str]:
        """mpiexec inside the first host, ranks_per_host ranks on each host."""
        hosts = ",".join(f"{h}:{ranks_per_host}" for h in self.names)
        return ["ip", "netns", "exec", self.names[0], str(MPIEXEC), "-launcher", "ssh",
                "-launcher-exec", str(self.wrapper), "-iface", "eth0", "-hosts", hosts,
                "-n", str(ranks_per_host * len(self.names)), *args]

    def mpiexec(self, ranks_per_host: int, args: list[str], timeout: float = 300,
                cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(ranks_per_host, args), capture_output=True,
                              text=True, timeout=timeout, env=dict(os.environ, **ENV), cwd=cwd)

    def start(self, ranks_per_host: int, args: list[str],
              cwd: Path | None = None) -> subprocess.Popen:
        """The same job, started in the background (its own session)."""
        return subprocess.Popen(self.command(ranks_per_host, args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ, **ENV),
                                cwd=cwd, start_new_session=True)

    def pids(self, host: str, word: str) -> list[int]:
        """Processes running in one host whose command line holds word (hydra's excepted)."""
        out = _ip("netns", "pids", host).stdout.split()
        found = []
        for pid in map(int, out):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except FileNotFoundError:
                continue
            if word in args and "hydra" not in args:
                found.append(pid)
        return sorted(found)

    def close(self) -> None:
        for h in [*self.names, self.switch]:
            _delete(h)

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
