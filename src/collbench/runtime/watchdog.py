"""Ends the job when one step of a run (a collective, a save, a barrier) takes too long."""
from __future__ import annotations

import sys
import threading

from ._signals import install
from .joblink import end_job


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
            end_job(124)                 # as timeout(1): distinct from the checks
        self.timer = threading.Timer(seconds, fire)
        self.timer.daemon = True
        self.timer.start()

    def disarm(self) -> None:
        if self.timer:
            self.timer.cancel()
            self.timer = None



def exit_on_signals(rank: int, host: str) -> None:
    """Ctrl-C or SIGTERM ends this rank at once, even inside a blocking MPI call or when the
    signal lands on a helper thread, so that mpiexec ends the whole job (completed sizes are
    on disk already; every write is atomic).  The handlers are C (``_signals``): a Python
    handler would not run while the main thread waits inside MPI."""
    install(f"collbench run: rank {rank} ({host}): interrupted by ",
            "; ending the job (completed sizes are kept)\n")
