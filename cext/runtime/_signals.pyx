# cython: language_level=3
"""Signal handlers in C that end a rank at once, whatever thread the signal lands on.

A Python handler runs only in the main thread between bytecodes, so a rank waiting inside an
MPI call (or a signal delivered to a BLAS or MPI helper thread) would not see it: the rank
would hang while mpiexec waits.  These handlers write one prepared line (write(2) is
async-signal-safe) and call _exit(128 + signal)."""
from libc.string cimport memcpy

cdef extern from "<signal.h>" nogil:
    ctypedef struct sigset_t:
        pass
    ctypedef struct sigaction_t "struct sigaction":
        void (*sa_handler)(int)
        sigset_t sa_mask
        int sa_flags
    int sigaction(int, const sigaction_t *, sigaction_t *)
    int sigemptyset(sigset_t *)
    int SIGINT
    int SIGTERM

cdef extern from "<unistd.h>" nogil:
    ssize_t write(int, const void *, size_t)
    void _exit(int)

cdef char _msg_int[512]
cdef char _msg_term[512]
cdef size_t _len_int = 0
cdef size_t _len_term = 0


cdef void _handler(int sig) noexcept nogil:
    cdef ssize_t ignored
    if sig == SIGINT:
        ignored = write(2, _msg_int, _len_int)
    else:
        ignored = write(2, _msg_term, _len_term)
    _exit(128 + sig)


cdef size_t _store(char *dst, bytes text):
    cdef size_t n = min(len(text), 511)
    memcpy(dst, <const char *>text, n)
    return n


def install(str prefix, str suffix):
    """On SIGINT or SIGTERM write ``prefix + 'SIGINT' + suffix`` (or SIGTERM) to stderr and
    exit 130 or 143 at once."""
    global _len_int, _len_term
    _len_int = _store(_msg_int, (prefix + "SIGINT" + suffix).encode())
    _len_term = _store(_msg_term, (prefix + "SIGTERM" + suffix).encode())
    cdef sigaction_t sa
    sa.sa_handler = _handler
    sigemptyset(&sa.sa_mask)
    sa.sa_flags = 0
    if sigaction(SIGINT, &sa, NULL) != 0 or sigaction(SIGTERM, &sa, NULL) != 0:
        raise OSError("sigaction failed")
