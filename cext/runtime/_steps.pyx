# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""collbench's own algorithms at C speed: the step loops call MPI's C API through mpi4py's
Cython interface (``mpi4py.libmpi``) with the GIL released, on the caller's preallocated
buffers, and reduce each received segment as it lands (``cb_reduce.h``).

Every function takes an mpi4py communicator, 1-D contiguous NumPy arrays and the dtype code
and op of ``cb_reduce.h``; it returns when this rank's part is done and raises
``mpi4py.MPI.Exception`` if an MPI call fails.  The plain-Python implementations beside the
algorithms' plans (``collbench.algorithms``) are the reference these must agree with; the run
harness picks these when the MPI library is the one they were built against.
"""
from mpi4py cimport MPI
from mpi4py.libmpi cimport (MPI_BYTE, MPI_Comm, MPI_Comm_rank, MPI_Comm_size, MPI_Irecv,
                            MPI_Isend, MPI_Request, MPI_Sendrecv, MPI_STATUS_IGNORE,
                            MPI_STATUSES_IGNORE, MPI_SUCCESS, MPI_Wait, MPI_Waitall)
cimport numpy as cnp
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove

from mpi4py import MPI as _MPI

cnp.import_array()

cdef extern from "cb_reduce.h":
    void cb_reduce(void *d, const void *a, const void *s, Py_ssize_t n, int dt, int op) nogil
    const int *cb_itemsize

cdef Py_ssize_t CHUNK = 1 << 30          # largest single message (MPI counts are int)


cdef inline Py_ssize_t lo(Py_ssize_t count, int p, int i) noexcept nogil:
    """Start of block i of count elements split into p nearly equal blocks."""
    cdef Py_ssize_t q = count // p, rem = count % p
    return i * q + (i if i < rem else rem)


cdef inline int md(int a, int p) noexcept nogil:
    a = a % p
    return a + p if a < 0 else a


cdef int xchg(MPI_Comm comm, const char *s, Py_ssize_t sn, int dest, char *r, Py_ssize_t rn,
              int src, int tag) noexcept nogil:
    """Send sn bytes to dest and receive rn bytes from src, in messages of at most 1 GiB."""
    cdef Py_ssize_t o = 0, a, b
    cdef int err
    while o < sn or o < rn:
        a = min(CHUNK, sn - o) if o < sn else 0
        b = min(CHUNK, rn - o) if o < rn else 0
        if a > 0 and b > 0:
            err = MPI_Sendrecv(<void *>(s + o), <int>a, MPI_BYTE, dest, tag, r + o, <int>b,
                               MPI_BYTE, src, tag, comm, MPI_STATUS_IGNORE)
        elif a > 0:
            err = _send_only(comm, s + o, a, dest, tag)
        else:
            err = _recv_only(comm, r + o, b, src, tag)
        if err != MPI_SUCCESS:
            return err
        o += CHUNK
    return MPI_SUCCESS


cdef int _send_only(MPI_Comm comm, const char *s, Py_ssize_t n, int dest, int tag) noexcept nogil:
    cdef MPI_Request q
    cdef int err = MPI_Isend(<void *>s, <int>n, MPI_BYTE, dest, tag, comm, &q)
    return err if err != MPI_SUCCESS else MPI_Wait(&q, MPI_STATUS_IGNORE)


cdef int _recv_only(MPI_Comm comm, char *r, Py_ssize_t n, int src, int tag) noexcept nogil:
    cdef MPI_Request q
    cdef int err = MPI_Irecv(r, <int>n, MPI_BYTE, src, tag, comm, &q)
    return err if err != MPI_SUCCESS else MPI_Wait(&q, MPI_STATUS_IGNORE)


cdef int c_ring_allreduce(MPI_Comm comm, int r, int p, const char *snd, char *rcv, char *tmp,
                          Py_ssize_t count, int dt, int op, Py_ssize_t seg) noexcept nogil:
    """Reduce-scatter (segments of seg elements: every receive and send posted at once, each
    received segment reduced as it lands, reading the input block on first touch) then
    all-gather, around the ring r -> r+1."""
    cdef int es = cb_itemsize[dt], right = md(r + 1, p), left = md(r - 1, p)
    cdef int step, sb, rb, k, nr, ns, err = MPI_SUCCESS
    cdef Py_ssize_t s0, s1, r0, r1, o, e
    cdef Py_ssize_t maxseg = (count // p + 1 + seg - 1) // seg + 1
    cdef MPI_Request *reqs = <MPI_Request *>malloc(2 * maxseg * sizeof(MPI_Request))
    cdef const char *out
    if reqs == NULL:
        return -1
    for step in range(p - 1):
        sb, rb = md(r - step, p), md(r - step - 1, p)
        s0, s1, r0, r1 = lo(count, p, sb), lo(count, p, sb + 1), lo(count, p, rb), lo(count, p, rb + 1)
        out = snd if step == 0 else rcv
        nr = 0
        o = 0
        while o < r1 - r0:
            e = min(o + seg, r1 - r0)
            err = MPI_Irecv(tmp + o * es, <int>((e - o) * es), MPI_BYTE, left, step, comm, &reqs[nr])
            if err != MPI_SUCCESS:
                break
            nr += 1
            o = e
        ns = 0
        o = s0
        while err == MPI_SUCCESS and o < s1:
            e = min(o + seg, s1)
            err = MPI_Isend(<void *>(out + o * es), <int>((e - o) * es), MPI_BYTE, right, step,
                            comm, &reqs[nr + ns])
            ns += 1
            o = e
        if err != MPI_SUCCESS:
            break
        o = 0
        for k in range(nr):
            err = MPI_Wait(&reqs[k], MPI_STATUS_IGNORE)
            if err != MPI_SUCCESS:
                break
            e = min(o + seg, r1 - r0)
            cb_reduce(rcv + (r0 + o) * es, snd + (r0 + o) * es, tmp + o * es, e - o, dt, op)
            o = e
        if err == MPI_SUCCESS:
            err = MPI_Waitall(ns, reqs + nr, MPI_STATUSES_IGNORE)
        if err != MPI_SUCCESS:
            break
    free(reqs)
    if err != MPI_SUCCESS:
        return err
    # all-gather: rank r owns block r + 1
    for step in range(p - 1):
        sb, rb = md(r + 1 - step, p), md(r - step, p)
        s0, s1, r0, r1 = lo(count, p, sb), lo(count, p, sb + 1), lo(count, p, rb), lo(count, p, rb + 1)
        err = xchg(comm, rcv + s0 * es, (s1 - s0) * es, right, rcv + r0 * es, (r1 - r0) * es,
                   left, 100 + step)
        if err != MPI_SUCCESS:
            return err
    return MPI_SUCCESS


cdef int c_ring_reduce_scatter(MPI_Comm comm, int r, int p, const char *snd, char *rcv,
                               char *acc, char *inc, Py_ssize_t m, int dt,
                               int op) noexcept nogil:
    """Rank r ends with block r of the sum (MPI_Reduce_scatter_block's layout): step s sends
    the partial sum of block r-s-1 and adds the left neighbour's partial of block r-s-2 to
    this rank's input."""
    cdef int es = cb_itemsize[dt], right = md(r + 1, p), left = md(r - 1, p)
    cdef int s, rb, err
    cdef Py_ssize_t nb = m * es
    memcpy(acc, snd + md(r - 1, p) * nb, nb)
    for s in range(p - 1):
        rb = md(r - s - 2, p)
        err = xchg(comm, acc, nb, right, inc, nb, left, 200 + s)
        if err != MPI_SUCCESS:
            return err
        cb_reduce(acc, snd + rb * nb, inc, m, dt, op)
    memmove(rcv, acc, nb)
    return MPI_SUCCESS


cdef int c_ring_all_gather(MPI_Comm comm, int r, int p, const char *snd, char *rcv,
                           Py_ssize_t nb) noexcept nogil:
    cdef int right = md(r + 1, p), left = md(r - 1, p), s, err
    memmove(rcv + r * nb, snd, nb)       # in place: the same block
    for s in range(p - 1):
        err = xchg(comm, rcv + md(r - s, p) * nb, nb, right, rcv + md(r - s - 1, p) * nb, nb,
                   left, 300 + s)
        if err != MPI_SUCCESS:
            return err
    return MPI_SUCCESS


cdef int c_pairwise_all_to_all(MPI_Comm comm, int r, int p, const char *snd, char *rcv,
                               Py_ssize_t nb) noexcept nogil:
    """p-1 Sendrecv steps: at step s send to r+s and receive from r-s (one peer at a time)."""
    cdef int s, dst, src, err
    memcpy(rcv + r * nb, snd + r * nb, nb)
    for s in range(1, p):
        dst, src = md(r + s, p), md(r - s, p)
        err = xchg(comm, snd + dst * nb, nb, dst, rcv + src * nb, nb, src, 400 + s)
        if err != MPI_SUCCESS:
            return err
    return MPI_SUCCESS


cdef int c_sendrecv(MPI_Comm comm, int r, int p, const char *snd, char *rcv,
                    Py_ssize_t nb) noexcept nogil:
    """nccl-tests' sendrecv: send to r+1 and receive from r-1 at once."""
    return xchg(comm, snd, nb, md(r + 1, p), rcv, nb, md(r - 1, p), 500)


cdef int send_all(MPI_Comm comm, const char *s, Py_ssize_t n, int dest, int tag) noexcept nogil:
    cdef Py_ssize_t o = 0
    cdef int err = MPI_SUCCESS
    while err == MPI_SUCCESS and o < n:
        err = _send_only(comm, s + o, min(CHUNK, n - o), dest, tag)
        o += CHUNK
    return err


cdef int recv_all(MPI_Comm comm, char *r, Py_ssize_t n, int src, int tag) noexcept nogil:
    cdef Py_ssize_t o = 0
    cdef int err = MPI_SUCCESS
    while err == MPI_SUCCESS and o < n:
        err = _recv_only(comm, r + o, min(CHUNK, n - o), src, tag)
        o += CHUNK
    return err


cdef inline int largest_pof2(int p) noexcept nogil:
    cdef int q = 1
    while q * 2 <= p:
        q *= 2
    return q


cdef inline int real_rank(int newrank, int p, int pof2) noexcept nogil:
    cdef int rem = p - pof2
    return newrank * 2 + 1 if newrank < rem else newrank + rem


cdef int fold_in(MPI_Comm comm, int r, int p, char *buf, char *tmp, Py_ssize_t n, int dt,
                 int op, int *newrank) noexcept nogil:
    """Fold p ranks onto the largest power of two: of each of the first 2 rem pairs the even
    rank hands its buffer to the odd one and waits (newrank -1)."""
    cdef int pof2 = largest_pof2(p), rem = p - pof2, err
    cdef Py_ssize_t nb = n * cb_itemsize[dt]
    if r < 2 * rem:
        if r % 2 == 0:
            newrank[0] = -1
            return send_all(comm, buf, nb, r + 1, 7)
        err = recv_all(comm, tmp, nb, r - 1, 7)
        if err == MPI_SUCCESS:
            cb_reduce(buf, buf, tmp, n, dt, op)
        newrank[0] = r // 2
        return err
    newrank[0] = r - rem
    return MPI_SUCCESS


cdef int fold_out(MPI_Comm comm, int r, int p, char *buf, Py_ssize_t nb) noexcept nogil:
    cdef int rem = p - largest_pof2(p)
    if r < 2 * rem:
        if r % 2 == 0:
            return recv_all(comm, buf, nb, r + 1, 8)
        return send_all(comm, buf, nb, r - 1, 8)
    return MPI_SUCCESS


cdef int c_rhd(MPI_Comm comm, int newrank, int p, char *buf, char *tmp, Py_ssize_t n, int dt,
               int op) noexcept nogil:
    """Reduce-scatter by recursive halving, all-gather by recursive doubling (power-of-two
    ranks after the fold)."""
    cdef int es = cb_itemsize[dt], pof2 = largest_pof2(p), mask = 1, depth = 0, partner, err
    cdef Py_ssize_t lo = 0, hi = n, mid, k0, k1, g0, g1, olo, ohi
    cdef Py_ssize_t slo[64]
    cdef Py_ssize_t shi[64]
    cdef int spart[64]
    while mask < pof2:
        partner = real_rank(newrank ^ mask, p, pof2)
        mid = lo + (hi - lo) // 2
        if newrank & mask:
            k0, k1, g0, g1 = mid, hi, lo, mid
        else:
            k0, k1, g0, g1 = lo, mid, mid, hi
        err = xchg(comm, buf + g0 * es, (g1 - g0) * es, partner, tmp, (k1 - k0) * es, partner,
                   mask)
        if err != MPI_SUCCESS:
            return err
        cb_reduce(buf + k0 * es, buf + k0 * es, tmp, k1 - k0, dt, op)
        slo[depth], shi[depth], spart[depth] = lo, hi, partner
        depth += 1
        lo, hi = k0, k1
        mask <<= 1
    while depth > 0:
        depth -= 1
        if lo == slo[depth]:
            olo, ohi = hi, shi[depth]
        else:
            olo, ohi = slo[depth], lo
        err = xchg(comm, buf + lo * es, (hi - lo) * es, spart[depth], buf + olo * es,
                   (ohi - olo) * es, spart[depth], 1000 + depth)
        if err != MPI_SUCCESS:
            return err
        lo, hi = slo[depth], shi[depth]
    return MPI_SUCCESS


cdef int c_rd(MPI_Comm comm, int newrank, int p, char *buf, char *tmp, Py_ssize_t n, int dt,
              int op) noexcept nogil:
    """Recursive doubling: log2 pof2 exchanges of the whole buffer, each reduced."""
    cdef int pof2 = largest_pof2(p), mask = 1, partner, err
    cdef Py_ssize_t nb = n * cb_itemsize[dt]
    while mask < pof2:
        partner = real_rank(newrank ^ mask, p, pof2)
        err = xchg(comm, buf, nb, partner, tmp, nb, partner, mask)
        if err != MPI_SUCCESS:
            return err
        cb_reduce(buf, buf, tmp, n, dt, op)
        mask <<= 1
    return MPI_SUCCESS


cdef int c_folded(MPI_Comm comm, int r, int p, const char *snd, char *buf, char *tmp,
                  Py_ssize_t n, int dt, int op, bint halving) noexcept nogil:
    cdef int newrank = -1, err
    cdef Py_ssize_t nb = n * cb_itemsize[dt]
    memmove(buf, snd, nb)
    if p == 1:
        return MPI_SUCCESS
    err = fold_in(comm, r, p, buf, tmp, n, dt, op, &newrank)
    if err == MPI_SUCCESS and newrank >= 0:
        err = c_rhd(comm, newrank, p, buf, tmp, n, dt, op) if halving else \
            c_rd(comm, newrank, p, buf, tmp, n, dt, op)
    if err != MPI_SUCCESS:
        return err
    return fold_out(comm, r, p, buf, nb)


cdef int binomial_links(int p, int r, int root, int *parent, int *children) noexcept nogil:
    """Rank r's parent (-1 at the root) and children (largest subtree last) in the binomial
    tree rooted at ``root`` (ranks relabelled so that the root is 0); returns the count."""
    cdef int v = md(r - root, p), mask = 1, nc = 0
    parent[0] = -1
    while mask < p:
        if v & mask:
            parent[0] = md(v - mask + root, p)
            break
        if v + mask < p:
            children[nc] = md(v + mask + root, p)
            nc += 1
        mask <<= 1
    return nc


cdef int c_binomial(MPI_Comm comm, int r, int p, int root, char *acc, char *tmp,
                    Py_ssize_t n, int dt, int op, Py_ssize_t seg, bint up, bint down,
                    int tag) noexcept nogil:
    """Binomial tree over acc (n elements), segments of seg elements pipelined: going up,
    each segment of every child is received into tmp and reduced into acc, then acc's
    segment goes to the parent; coming down, each segment comes from the parent and goes on
    to the children (largest subtree first)."""
    cdef int es = cb_itemsize[dt], parent, nc, k, err = MPI_SUCCESS, nq = 0
    cdef int children[64]
    cdef Py_ssize_t o, e, nseg = (n + seg - 1) // seg
    cdef MPI_Request *reqs
    if p == 1 or n == 0:
        return MPI_SUCCESS
    nc = binomial_links(p, r, root, &parent, children)
    reqs = <MPI_Request *>malloc((nseg * (nc + 1) + 1) * sizeof(MPI_Request))
    if reqs == NULL:
        return -1
    if up:
        o = 0
        while err == MPI_SUCCESS and o < n:
            e = min(o + seg, n)
            for k in range(nc):
                err = _recv_only(comm, tmp, (e - o) * es, children[k], tag)
                if err != MPI_SUCCESS:
                    break
                cb_reduce(acc + o * es, acc + o * es, tmp, e - o, dt, op)
            if err == MPI_SUCCESS and parent >= 0:
                err = MPI_Isend(acc + o * es, <int>((e - o) * es), MPI_BYTE, parent, tag, comm,
                                &reqs[nq])
                nq += 1
            o = e
        if err == MPI_SUCCESS:
            err = MPI_Waitall(nq, reqs, MPI_STATUSES_IGNORE)
        nq = 0
    if down and err == MPI_SUCCESS:
        o = 0
        while err == MPI_SUCCESS and o < n:
            e = min(o + seg, n)
            if parent >= 0:
                err = _recv_only(comm, acc + o * es, (e - o) * es, parent, tag + 1)
            k = nc - 1
            while err == MPI_SUCCESS and k >= 0:
                err = MPI_Isend(acc + o * es, <int>((e - o) * es), MPI_BYTE, children[k],
                                tag + 1, comm, &reqs[nq])
                nq += 1
                k -= 1
            o = e
        if err == MPI_SUCCESS:
            err = MPI_Waitall(nq, reqs, MPI_STATUSES_IGNORE)
    free(reqs)
    return err


cdef struct TreeLevel:
    MPI_Comm comm
    int parent
    int nchild
    int child[2]


cdef inline Py_ssize_t half_len(Py_ssize_t h, Py_ssize_t n, int t) noexcept nogil:
    return h if t == 0 else n - h


cdef int c_tree(TreeLevel *lv, int *nlev, bint *leaf, int *up_order, int nup,
                int *down_order, int ndown, char *buf, Py_ssize_t n, char *tmp, int dt, int op,
                Py_ssize_t seg, int window) noexcept nogil:
    """The double binary tree of ``tree_allreduce`` (collbench/algorithms/trees.py), step for
    step: tree t (0, 1) carries half t of buf; lv[2 t + i] is this rank's level i of tree t
    (bottom up); a leaf tree's segments run ``window`` segments ahead going up (behind coming
    down) of the inner trees', which go in up_order / down_order."""
    cdef int es = cb_itemsize[dt], t, i, j, x, err = MPI_SUCCESS
    cdef Py_ssize_t h = (n + 1) // 2, nseg = (h + seg - 1) // seg, k, o, e, L
    cdef Py_ssize_t sent[2]
    cdef Py_ssize_t waited[2]
    cdef int np_ = 0
    cdef MPI_Request *pend = <MPI_Request *>malloc((10 * nseg + 10) * sizeof(MPI_Request))
    cdef MPI_Request *inc = <MPI_Request *>malloc((2 * nseg + 2) * sizeof(MPI_Request))
    cdef MPI_Request rq[2]
    cdef char *part
    cdef TreeLevel *v
    if pend == NULL or inc == NULL:
        free(pend)
        free(inc)
        return -1
    sent[0] = sent[1] = 0
    waited[0] = waited[1] = 0
    # ---- up ----
    for k in range(nseg + 1):
        # leaf segments up to k + window (all of them after the last inner segment)
        for t in range(2):
            if not leaf[t]:
                continue
            L = half_len(h, n, t)
            while err == MPI_SUCCESS and sent[t] * seg < L and (sent[t] <= k + window
                                                                  or k == nseg):
                o = sent[t] * seg
                e = min(o + seg, L)
                err = MPI_Isend(buf + (t * h + o) * es, <int>((e - o) * es), MPI_BYTE,
                                lv[2 * t].parent, 40 + t, lv[2 * t].comm, &pend[np_])
                np_ += 1
                sent[t] += 1
        if k == nseg or err != MPI_SUCCESS:
            break
        for x in range(nup):
            t = up_order[x]
            L = half_len(h, n, t)
            o = k * seg
            if o >= L:
                continue
            e = min(o + seg, L)
            part = buf + (t * h + o) * es
            for i in range(nlev[t]):
                v = &lv[2 * t + i]
                for j in range(v.nchild):
                    err = MPI_Irecv(tmp + j * seg * es, <int>((e - o) * es), MPI_BYTE,
                                    v.child[j], 40 + t, v.comm, &rq[j])
                    if err != MPI_SUCCESS:
                        break
                for j in range(v.nchild):
                    if err == MPI_SUCCESS:
                        err = MPI_Wait(&rq[j], MPI_STATUS_IGNORE)
                    if err == MPI_SUCCESS:
                        cb_reduce(part, part, tmp + j * seg * es, e - o, dt, op)
                if err == MPI_SUCCESS and v.parent >= 0:
                    err = MPI_Isend(part, <int>((e - o) * es), MPI_BYTE, v.parent, 40 + t,
                                    v.comm, &pend[np_])
                    np_ += 1
                if err != MPI_SUCCESS:
                    break
            if err != MPI_SUCCESS:
                break
        if err != MPI_SUCCESS:
            break
    if err == MPI_SUCCESS:
        err = MPI_Waitall(np_, pend, MPI_STATUSES_IGNORE)
    np_ = 0
    # ---- down ----
    if err == MPI_SUCCESS:
        for t in range(2):                 # a leaf tree's segments: every receive posted now
            if not leaf[t]:
                continue
            L = half_len(h, n, t)
            k = 0
            while err == MPI_SUCCESS and k * seg < L:
                o = k * seg
                e = min(o + seg, L)
                err = MPI_Irecv(buf + (t * h + o) * es, <int>((e - o) * es), MPI_BYTE,
                                lv[2 * t].parent, 42 + t, lv[2 * t].comm, &inc[t * nseg + k])
                k += 1
            sent[t] = k                    # receives posted
    for k in range(nseg):
        if err != MPI_SUCCESS:
            break
        for x in range(ndown):
            t = down_order[x]
            L = half_len(h, n, t)
            o = k * seg
            if o >= L:
                continue
            e = min(o + seg, L)
            part = buf + (t * h + o) * es
            i = nlev[t] - 1
            while err == MPI_SUCCESS and i >= 0:
                v = &lv[2 * t + i]
                if v.parent >= 0:
                    err = _recv_only(v.comm, part, (e - o) * es, v.parent, 42 + t)
                j = 0
                while err == MPI_SUCCESS and j < v.nchild:
                    err = MPI_Isend(part, <int>((e - o) * es), MPI_BYTE, v.child[j], 42 + t,
                                    v.comm, &pend[np_])
                    np_ += 1
                    j += 1
                i -= 1
        for t in range(2):
            while err == MPI_SUCCESS and leaf[t] and waited[t] < sent[t] \
                    and waited[t] <= k - window:
                err = MPI_Wait(&inc[t * nseg + waited[t]], MPI_STATUS_IGNORE)
                waited[t] += 1
    for t in range(2):
        if err == MPI_SUCCESS and leaf[t] and waited[t] < sent[t]:
            err = MPI_Waitall(<int>(sent[t] - waited[t]), &inc[t * nseg + waited[t]],
                              MPI_STATUSES_IGNORE)
    if err == MPI_SUCCESS:
        err = MPI_Waitall(np_, pend, MPI_STATUSES_IGNORE)
    free(pend)
    free(inc)
    return err


# ---- Python entry points ----------------------------------------------------------------

cdef inline char *ptr(cnp.ndarray x):
    return <char *>cnp.PyArray_DATA(x)


cdef inline MPI_Comm rank_size(MPI.Comm comm, int *r, int *p):
    """The communicator's handle, this rank and the size."""
    cdef MPI_Comm c = comm.ob_mpi
    MPI_Comm_rank(c, r)
    MPI_Comm_size(c, p)
    return c


cdef inline int check(int err) except -1:
    if err == -1:
        raise MemoryError("collbench step loop: no memory for the request list")
    if err != MPI_SUCCESS:
        raise _MPI.Exception(err)
    return 0


def ring_allreduce(MPI.Comm comm, cnp.ndarray send, cnp.ndarray recv, cnp.ndarray tmp,
                   int dt, int op, Py_ssize_t seg):
    """recv = op over ranks of send; tmp holds at least count // p + 1 elements."""
    cdef int r, p, err
    cdef MPI_Comm c = rank_size(comm, &r, &p)
    cdef Py_ssize_t count = cnp.PyArray_SIZE(recv)
    if p == 1:
        memmove(ptr(recv), ptr(send), count * cb_itemsize[dt])
        return
    if cnp.PyArray_SIZE(tmp) < count // p + 1 or cnp.PyArray_SIZE(send) != count:
        raise ValueError("ring_allreduce: buffer sizes")
    cdef const char *s = ptr(send)
    cdef char *d = ptr(recv)
    cdef char *t = ptr(tmp)
    with nogil:
        err = c_ring_allreduce(c, r, p, s, d, t, count, dt, op, max(seg, 1))
    check(err)


def ring_reduce_scatter(MPI.Comm comm, cnp.ndarray send, cnp.ndarray recv, cnp.ndarray work,
                        int dt, int op):
    """recv (m elements) = block r of op over ranks of send (p x m); work: 2 m elements."""
    cdef int r, p, err
    cdef MPI_Comm c = rank_size(comm, &r, &p)
    cdef Py_ssize_t m = cnp.PyArray_SIZE(recv)
    if cnp.PyArray_SIZE(send) < p * m or cnp.PyArray_SIZE(work) < 2 * m:
        raise ValueError("ring_reduce_scatter: buffer sizes")
    cdef const char *s = ptr(send)
    cdef char *d = ptr(recv)
    cdef char *w = ptr(work)
    cdef char *w2 = w + m * cb_itemsize[dt]
    with nogil:
        err = c_ring_reduce_scatter(c, r, p, s, d, w, w2, m, dt, op)
    check(err)


def ring_all_gather(MPI.Comm comm, cnp.ndarray send, cnp.ndarray recv):
    """recv (p x m elements) = every rank's send (m elements), in rank order."""
    cdef int r, p, err
    cdef MPI_Comm c = rank_size(comm, &r, &p)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(send)
    if cnp.PyArray_NBYTES(recv) < p * nb:
        raise ValueError("ring_all_gather: buffer sizes")
    cdef const char *s = ptr(send)
    cdef char *d = ptr(recv)
    with nogil:
        err = c_ring_all_gather(c, r, p, s, d, nb)
    check(err)


def pairwise_all_to_all(MPI.Comm comm, cnp.ndarray send, cnp.ndarray recv):
    """recv block j = rank j's send block r (p blocks of equal size)."""
    cdef int r, p, err
    cdef MPI_Comm c = rank_size(comm, &r, &p)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(send) // p
    if cnp.PyArray_NBYTES(recv) != cnp.PyArray_NBYTES(send):
        raise ValueError("pairwise_all_to_all: buffer sizes")
    cdef const char *s = ptr(send)
    cdef char *d = ptr(recv)
    with nogil:
        err = c_pairwise_all_to_all(c, r, p, s, d, nb)
    check(err)


def sendrecv(MPI.Comm comm, cnp.ndarray send, cnp.ndarray recv):
    """Send to rank r+1, receive from rank r-1 (equal sizes)."""
    cdef int r, p, err
    cdef MPI_Comm c = rank_size(comm, &r, &p)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(send)
    if cnp.PyArray_NBYTES(recv) != nb:
        raise ValueError("sendrecv: buffer sizes")
    cdef const char *s = ptr(send)
    cdef char *d = ptr(recv)
    with nogil:
        err = c_sendrecv(c, r, p, s, d, nb)
    check(err)


def folded_allreduce(MPI.Comm comm, cnp.ndarray send, cnp.ndarray recv, cnp.ndarray tmp,
                     int dt, int op, bint halving):
    """recv = op over ranks of send by rhd (halving) or rd, non-powers of two folded in;
    tmp holds count elements."""
    cdef int r, p, err
    cdef MPI_Comm c = rank_size(comm, &r, &p)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(recv)
    if cnp.PyArray_SIZE(send) != n or cnp.PyArray_SIZE(tmp) < n:
        raise ValueError("folded_allreduce: buffer sizes")
    cdef const char *s = ptr(send)
    cdef char *d = ptr(recv)
    cdef char *t = ptr(tmp)
    with nogil:
        err = c_folded(c, r, p, s, d, t, n, dt, op, halving)
    check(err)


def binomial(MPI.Comm comm, cnp.ndarray acc, cnp.ndarray tmp, int dt, int op, int root,
             Py_ssize_t seg, bint up, bint down, int tag):
    """The binomial tree rooted at ``root`` over acc in place: ``up`` reduces every rank's
    acc into the root's, ``down`` sends the root's acc to every rank (both: all-reduce);
    tmp holds one segment of seg elements; messages use tags tag (up) and tag + 1 (down)."""
    cdef int r, p, err
    cdef MPI_Comm c = rank_size(comm, &r, &p)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(acc)
    seg = max(1, min(seg, n))
    if up and cnp.PyArray_SIZE(tmp) < seg:
        raise ValueError("binomial: tmp holds less than one segment")
    if not 0 <= root < p:
        raise ValueError("binomial: root outside the communicator")
    cdef char *a = ptr(acc)
    cdef char *t = ptr(tmp)
    with nogil:
        err = c_binomial(c, r, p, root, a, t, n, dt, op, seg, up, down, tag)
    check(err)


def tree(list levels, list leaf, list up_order, list down_order, cnp.ndarray buf,
         cnp.ndarray tmp, int dt, int op, Py_ssize_t seg, int window):
    """The double binary tree all-reduce over buf in place (``tree_allreduce``'s schedule):
    levels[t] is tree t's [(communicator, parent or None, children)] bottom up (1 or 2
    levels, at most 2 children each); tmp holds 2 segments of seg elements."""
    cdef TreeLevel lv[4]
    cdef int nlev[2]
    cdef bint lf[2]
    cdef int up[2]
    cdef int down[2]
    cdef int t, i, j, err, nup = len(up_order), ndown = len(down_order)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(buf)
    cdef MPI.Comm cm
    seg = max(1, min(seg, (n + 1) // 2))
    if cnp.PyArray_SIZE(tmp) < 2 * seg:
        raise ValueError("tree: tmp holds less than two segments")
    for t in range(2):
        nlev[t] = len(levels[t])
        lf[t] = bool(leaf[t])
        if not 1 <= nlev[t] <= 2:
            raise ValueError("tree: 1 or 2 levels per tree")
        for i in range(nlev[t]):
            comm, parent, children = levels[t][i]
            cm = comm
            lv[2 * t + i].comm = cm.ob_mpi
            lv[2 * t + i].parent = -1 if parent is None else parent
            if len(children) > 2:
                raise ValueError("tree: at most 2 children")
            lv[2 * t + i].nchild = len(children)
            for j in range(len(children)):
                lv[2 * t + i].child[j] = children[j]
    for i in range(nup):
        up[i] = up_order[i]
    for i in range(ndown):
        down[i] = down_order[i]
    cdef char *b = ptr(buf)
    cdef char *w = ptr(tmp)
    with nogil:
        err = c_tree(lv, nlev, lf, up, nup, down, ndown, b, n, w, dt, op, seg, window)
    check(err)
