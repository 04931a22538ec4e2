# cython: language_level=3
"""Signal handlers in C that end a rank at once, whatever thread the signal lands on, and the
job link that makes every other rank end with it, on its own.

A Python handler runs only in the main thread between bytecodes, so a rank waiting inside an
MPI call (or a signal delivered to a BLAS or MPI helper thread) would not see it: the rank
would hang while mpiexec waits.  These handlers write one prepared line (write(2) is
async-signal-safe) and end the rank with 128 + signal.

Leaving the other ranks to the launcher is not enough: MPICH's hydra kills them only when it
reads the ended rank's PMI socket closing before it reaps the rank, and when it kills them it
sometimes reports its own SIGKILL as the job's exit code (9 instead of 130).  So every rank
keeps one TCP connection to rank 0 (the hub; set up in ``collbench.runtime.joblink``) and a C
thread (signals blocked, no GIL) that watches it.  Ending the job, from a signal, the watchdog
or an error, is two-phase:

1. the rank that ends asks the hub (``E code``); the hub sends every other rank ``P code``;
2. each rank points its stdout and stderr at /dev/null (so the launcher has seen all output
   end before any rank exits) and answers ``A``; with every answer in (or after ``linger``
   milliseconds), the hub sends ``G``, and every rank, the hub last, exits with its own code
   if it had one, else the job's.

A rank whose connection closes without ``B`` (the goodbye sent at the normal end) was killed
or crashed: the hub names it in one line and ends the job with exit 2 (if the hub is the one
that died, rank 1 says so).  Without a link (one rank, or no TCP path to rank 0) a rank exits
at once, as before.  Messages are two bytes: a letter and a code."""
from libc.stdlib cimport malloc
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
    int sigfillset(sigset_t *)
    int SIGINT
    int SIGTERM
    int SIG_SETMASK

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    int pthread_create(pthread_t *, const void *, void *(*)(void *) noexcept nogil, void *)
    int pthread_detach(pthread_t)
    int pthread_sigmask(int, const sigset_t *, sigset_t *)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *, unsigned long, int)
    short POLLIN

cdef extern from "<sys/socket.h>" nogil:
    ssize_t send(int, const void *, size_t, int)
    ssize_t recv(int, void *, size_t, int)
    int MSG_NOSIGNAL
    int MSG_DONTWAIT
    int MSG_WAITALL

cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int, timespec *)
    int nanosleep(const timespec *, timespec *)
    int CLOCK_MONOTONIC

cdef extern from "<fcntl.h>" nogil:
    int O_CLOEXEC
    int O_NONBLOCK

cdef extern from "<unistd.h>" nogil:
    ssize_t write(int, const void *, size_t)
    ssize_t read(int, void *, size_t)
    int dup2(int, int)
    int pipe2(int *, int)
    void _exit(int)

cdef char _msg_int[512]
cdef char _msg_term[512]
cdef size_t _len_int = 0
cdef size_t _len_term = 0

# the link (set once by link(), read by the handlers and the watcher thread)
cdef enum:
    MAXPEERS = 4096
    LINE = 512
cdef int _linked = 0
cdef int _n = 0                    # sockets: the hub has one per other rank, the others one
cdef int _fds[MAXPEERS]
cdef char *_lines = NULL           # _n lines of LINE bytes: "rank X died" for each socket
cdef size_t _line_len[MAXPEERS]
cdef int _pipe[2]                  # handler / end_job -> watcher
cdef int _devnull = -1
cdef int _linger_ms = 3000
cdef volatile int _own = 0         # this rank's own exit code, once it has one
cdef volatile int _stopped = 0


cdef long _now_ms() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return t.tv_sec * 1000 + t.tv_nsec // 1000000


cdef void _sleep_ms(long ms) noexcept nogil:
    cdef timespec t
    t.tv_sec = ms // 1000
    t.tv_nsec = (ms % 1000) * 1000000
    nanosleep(&t, NULL)


cdef void _send(int fd, char kind, int code) noexcept nogil:
    cdef char m[2]
    m[0] = kind
    m[1] = <char>code
    send(fd, m, 2, MSG_NOSIGNAL | MSG_DONTWAIT)


cdef int _recv(int fd, char *m) noexcept nogil:
    """1 with a message in m[0..1], 0 when the other side is gone."""
    return 1 if recv(fd, m, 2, MSG_WAITALL) == 2 else 0


cdef void _quiet() noexcept nogil:
    # the launcher sees this rank's output end now, before any rank of the job exits
    if _devnull >= 0:
        dup2(_devnull, 1)
        dup2(_devnull, 2)


cdef void *_done() noexcept nogil:
    # the watcher stops: from now on a rank that ends exits at once
    global _stopped
    _stopped = 1
    return NULL


cdef void _leave(int code) noexcept nogil:
    _exit(_own if _own else code)


cdef void _hub_ends(int code, int *live) noexcept nogil:
    """Phase 1 and 2 on the hub: P to every live rank, their answers, G, exit."""
    cdef int i, waiting = 0
    cdef pollfd p[MAXPEERS]
    cdef char m[2]
    cdef long deadline
    for i in range(_n):
        p[i].fd = _fds[i] if live[i] else -1
        p[i].events = POLLIN
        if live[i]:
            _send(_fds[i], b'P', code)
            waiting += 1
    _quiet()
    deadline = _now_ms() + _linger_ms
    while waiting > 0 and _now_ms() < deadline:
        if poll(p, _n, <int>(deadline - _now_ms())) <= 0:
            continue
        for i in range(_n):
            if p[i].fd >= 0 and p[i].revents:
                if not _recv(p[i].fd, m) or m[0] == b'A' or m[0] == b'B':
                    p[i].fd = -1
                    waiting -= 1
    for i in range(_n):
        if live[i]:
            _send(_fds[i], b'G', code)
    _leave(code)


cdef void *_watch_hub(void *arg) noexcept nogil:
    cdef int i
    cdef int live[MAXPEERS]
    cdef pollfd p[MAXPEERS + 1]
    cdef char m[2]
    p[0].fd = _pipe[0]
    p[0].events = POLLIN
    for i in range(_n):
        live[i] = 1
        p[i + 1].fd = _fds[i]
        p[i + 1].events = POLLIN
    while True:
        if poll(p, _n + 1, -1) <= 0:
            continue
        if p[0].revents and read(_pipe[0], m, 2) == 2:
            if m[0] == b'S':
                return _done()
            _hub_ends(<unsigned char>m[1], live)
        for i in range(_n):
            if p[i + 1].fd < 0 or not p[i + 1].revents:
                continue
            if not _recv(_fds[i], m):           # closed without a goodbye: killed or crashed
                p[i + 1].fd = -1
                live[i] = 0
                if _stopped:
                    continue
                write(2, _lines + i * LINE, _line_len[i])
                _hub_ends(2, live)
            elif m[0] == b'B':
                p[i + 1].fd = -1
                live[i] = 0
            elif m[0] == b'E':
                _hub_ends(<unsigned char>m[1], live)


cdef void *_watch_rank(void *arg) noexcept nogil:
    cdef pollfd p[2]
    cdef char m[2]
    cdef int code
    cdef long deadline
    p[0].fd = _pipe[0]
    p[0].events = POLLIN
    p[1].fd = _fds[0]
    p[1].events = POLLIN
    while True:
        if poll(p, 2, -1) <= 0:
            continue
        if p[0].revents and read(_pipe[0], m, 2) == 2:
            if m[0] == b'S':
                return _done()
            _send(_fds[0], b'E', <unsigned char>m[1])   # the hub answers with P
        if not p[1].revents:
            continue
        if not _recv(_fds[0], m):                       # the hub is gone without a goodbye
            if _stopped:
                return _done()
            if not _own:
                write(2, _lines, _line_len[0])
            _quiet()
            _leave(2)
        if m[0] == b'B':
            return _done()
        if m[0] == b'P':
            code = <unsigned char>m[1]
            _quiet()
            _send(_fds[0], b'A', 0)
            deadline = _now_ms() + _linger_ms
            p[0].fd = -1
            while _now_ms() < deadline:
                if poll(&p[1], 1, <int>(deadline - _now_ms())) > 0:
                    if not _recv(_fds[0], m) or m[0] == b'G':
                        break
            _leave(code)


cdef void _end(int code) noexcept nogil:
    """Ask the watcher to end the job with this code; exit anyway after twice the linger."""
    global _own
    cdef char m[2]
    cdef long deadline
    if _own == 0:
        _own = code
    if _linked and not _stopped:
        m[0] = b'E'
        m[1] = <char>code
        write(_pipe[1], m, 2)
        deadline = _now_ms() + 2 * _linger_ms + 1000
        while _now_ms() < deadline:
            _sleep_ms(10)
    _exit(code)


cdef void _handler(int sig) noexcept nogil:
    cdef ssize_t ignored
    if sig == SIGINT:
        ignored = write(2, _msg_int, _len_int)
    else:
        ignored = write(2, _msg_term, _len_term)
    _end(128 + sig)


cdef size_t _store(char *dst, bytes text):
    cdef size_t n = min(len(text), LINE - 1)
    memcpy(dst, <const char *>text, n)
    return n


def install(str prefix, str suffix):
    """On SIGINT or SIGTERM write ``prefix + 'SIGINT' + suffix`` (or SIGTERM) to stderr and
    end the job with exit 130 or 143 (this rank at once when there is no link)."""
    global _len_int, _len_term
    _len_int = _store(_msg_int, (prefix + "SIGINT" + suffix).encode())
    _len_term = _store(_msg_term, (prefix + "SIGTERM" + suffix).encode())
    cdef sigaction_t sa
    sa.sa_handler = _handler
    sigemptyset(&sa.sa_mask)
    sa.sa_flags = 0
    if sigaction(SIGINT, &sa, NULL) != 0 or sigaction(SIGTERM, &sa, NULL) != 0:
        raise OSError("sigaction failed")


def link(bint hub, list fds, list lines, int devnull, int linger_ms=3000):
    """Start the watcher thread on connected sockets (the hub: one per other rank; a rank:
    its one to the hub).  ``lines[i]`` is what to print if the other end of ``fds[i]`` dies."""
    global _linked, _n, _lines, _devnull, _linger_ms
    if _linked:
        raise RuntimeError("the job link is already up")
    if not 0 < len(fds) <= MAXPEERS or len(lines) != len(fds):
        raise ValueError(f"a link needs 1 to {MAXPEERS} sockets and one line per socket")
    if pipe2(_pipe, O_CLOEXEC | O_NONBLOCK) != 0:
        raise OSError("pipe2 failed")
    _lines = <char *>malloc(LINE * len(fds))
    if _lines == NULL:
        raise MemoryError()
    cdef int i
    for i in range(len(fds)):
        _fds[i] = fds[i]
        _line_len[i] = _store(_lines + i * LINE, lines[i].encode())
    _n, _devnull, _linger_ms = len(fds), devnull, linger_ms
    cdef pthread_t t
    cdef sigset_t all_, old
    sigfillset(&all_)
    pthread_sigmask(SIG_SETMASK, &all_, &old)       # the watcher never runs a handler
    rc = pthread_create(&t, NULL, _watch_hub if hub else _watch_rank, NULL)
    pthread_sigmask(SIG_SETMASK, &old, NULL)
    if rc != 0:
        raise OSError(rc, "pthread_create failed")
    pthread_detach(t)
    _linked = 1


def unlink():
    """The normal end: say goodbye on every socket and stop the watcher."""
    global _stopped
    cdef char m[2]
    if not _linked or _stopped:
        return
    _stopped = 1
    for i in range(_n):
        _send(_fds[i], b'B', 0)
    m[0] = b'S'
    m[1] = 0
    write(_pipe[1], m, 2)


def end_job(int code):
    """End the whole job with this exit code (never returns)."""
    with nogil:
        _end(code)
