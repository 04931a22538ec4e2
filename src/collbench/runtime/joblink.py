"""The job link: one TCP connection from every rank to rank 0, so that a rank that ends (a
signal, the watchdog, an error) or dies takes every other rank with it, on their own and with
one exit code, instead of leaving them to the launcher (see ``cext/runtime/_signals.pyx``)."""
from __future__ import annotations

import atexit
import fcntl
import os
import secrets
import socket
import struct
import threading

from ._signals import end_job, link, unlink

__all__ = ["connect", "disconnect", "end_job"]

MAX_RANKS = 4096        # the watcher's fixed tables; bigger jobs run without the link
CONNECT_S = 2.0         # per address tried
ACCEPT_S = 30.0         # the hub stops waiting for connections after this long
SIOCGIFADDR = 0x8915


def _addresses() -> list[str]:
    """This host's IPv4 addresses, loopback last (a rank on another host reaches one of the
    others; a rank on this host any)."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(probe.fileno(), SIOCGIFADDR,
                                  struct.pack("256s", name[:15].encode()))
            except OSError:                 # no IPv4 address on this interface
                continue
            found.append(socket.inet_ntoa(raw[20:24]))
    finally:
        probe.close()
    return sorted(set(found), key=lambda a: (a.startswith("127."), a))


def _hub_accepts(srv: socket.socket, token: bytes, want: int, got: dict[int, socket.socket],
                 stop: threading.Event) -> None:
    srv.settimeout(0.2)
    while len(got) < want and not stop.is_set():
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            conn.settimeout(CONNECT_S)
            hello = conn.recv(len(token) + 4, socket.MSG_WAITALL)
            if len(hello) != len(token) + 4 or hello[:len(token)] != token:
                conn.close()                # not one of ours
                continue
            conn.sendall(token)
            got[struct.unpack("!i", hello[len(token):])[0]] = conn
        except OSError:
            conn.close()


def _rank_connects(addrs: list[str], port: int, token: bytes, rank: int) -> socket.socket | None:
    for a in addrs:
        try:
            s = socket.create_connection((a, port), timeout=CONNECT_S)
        except OSError:
            continue
        try:
            s.sendall(token + struct.pack("!i", rank))
            if s.recv(len(token), socket.MSG_WAITALL) == token:
                return s
        except OSError:
            pass
        s.close()
    return None


def connect(comm, rank: int, host: str) -> str | None:
    """Link every rank of ``comm`` to rank 0 (collective).  Returns None when linked, else
    why not (the same on every rank); without the link a rank that ends leaves the others to
    mpiexec."""
    size = comm.Get_size()
    if size == 1:
        return None
    if size > MAX_RANKS:
        return f"more than {MAX_RANKS} ranks"
    hosts = comm.allgather(host)
    got: dict[int, socket.socket] = {}
    stop = threading.Event()
    offer: tuple[list[str], int, bytes] | str | None = None
    if rank == 0:
        try:
            srv = socket.create_server(("", 0), backlog=min(size, 1024))
            token = secrets.token_bytes(16)
            offer = (_addresses(), srv.getsockname()[1], token)
        except OSError as exc:          # every rank learns it from the broadcast below
            offer = f"rank 0 ({host}) cannot listen on TCP: {exc}"
        else:
            t = threading.Thread(target=_hub_accepts, args=(srv, token, size - 1, got, stop),
                                 daemon=True)
            t.start()
    offer = comm.bcast(offer, root=0)
    if isinstance(offer, str) or offer is None:
        return offer or "no offer from rank 0"
    addrs, port, token = offer
    mine = None if rank == 0 else _rank_connects(addrs, port, token, rank)
    missing = comm.allgather(rank != 0 and mine is None)
    if rank == 0:
        stop.set()
        t.join(ACCEPT_S)
        srv.close()
    if any(missing):
        for s in [*got.values(), *([mine] if mine else [])]:
            s.close()
        first = missing.index(True)
        return f"rank {first} ({hosts[first]}) could not reach rank 0 ({hosts[0]}) over TCP"
    devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    say = "collbench run: rank {} ({}): rank {} ({}) ended without a word (killed or " \
          "crashed); ending the job (completed sizes are kept)\n"
    if rank == 0:
        peers = sorted(got)
        socks = [got[r] for r in peers]
        lines = [say.format(0, hosts[0], r, hosts[r]) for r in peers]
    else:
        socks = [mine]
        lines = [say.format(rank, host, 0, hosts[0]) if rank == 1 else ""]
    fds = []
    for s in socks:
        s.settimeout(None)              # the watcher reads blocking sockets
        fds.append(s.detach())
    link(rank == 0, fds, lines, devnull)
    atexit.register(disconnect)         # after mpi4py's MPI_Finalize hook (atexit is LIFO)
    return None


def disconnect() -> None:
    """The normal end of a run, on every rank (at exit; paths that end the job call
    os._exit or end_job and skip it): goodbye on the link, so that exiting is not taken for
    dying."""
    unlink()
