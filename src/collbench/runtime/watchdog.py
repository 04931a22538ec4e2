"""Ends the job when one step of a run (a collective, a save, a barrier) takes too long."""
from __future__ import annotations

import os
import signal
import sys
import threading


class Watchdog:
    def __init__(self, seconds: float | None, rank: int) -> None:
        self.seconds, self.rank = seconds, rank
        self.timer: threading.Timer | None = None

    def arm(self, what: str) -> None:
        self.disarm()
        if not self.seconds:
            return
        seconds = self.seconds

        def fire() -> None:
            sys.stderr.write(f"collbench run: rank {self.rank}: timed out after {seconds:g} s "
                             f"in {what}; ending the job (completed sizes are kept)\n")
            sys.stderr.flush()
            os._exit(3)
        self.timer = threading.Timer(seconds, fire)
        self.timer.daemon = True
        self.timer.start()

    def disarm(self) -> None:
        if self.timer:
            self.timer.cancel()
            self.timer = None


EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def exit_on_signals(rank: int, host: str) -> None:
    """Ctrl-C or SIGTERM ends this rank at once, even inside a blocking MPI call, so that
    mpiexec ends the whole job (completed sizes are on disk already).

    The signals are blocked in every thread and taken by one waiting thread: a Python
    handler would not run while the main thread waits inside MPI."""
    sigs = set(EXIT_CODES)
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)

    def wait() -> None:
        sig = signal.sigwait(sigs)
        name = signal.Signals(sig).name
        sys.stderr.write(f"collbench run: rank {rank} ({host}): interrupted by {name}; ending "
                         "the job (completed sizes are kept)\n")
        sys.stderr.flush()
        os._exit(EXIT_CODES[signal.Signals(sig)])

    threading.Thread(target=wait, name="collbench-signals", daemon=True).start()
