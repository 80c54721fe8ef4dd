"""Transition-counting kernels (``"transition_counts"``): numpy reference and numba fast paths.

All kernels count ``N[m, n] = #{t : l_t = n, l_{t+lag} = m}`` over the *valid source indices*
``t``: the union over sequences ``[b_i, b_{i+1})`` of ``[b_i, b_{i+1} - lag)`` — no pair ever
crosses a sequence bound. The valid sources are described by ``seg_start`` (first source index
of each non-empty segment) and ``seg_cum`` (prefix sums of the segment lengths, ``seg_cum[0] = 0``,
``seg_cum[-1] = M`` = number of transitions), so that the ``p``-th valid transition (``0 <= p <
M``) has source ``t = seg_start[s] + p - seg_cum[s]`` with ``seg_cum[s] <= p < seg_cum[s+1]``.
Parallel kernels split ``[0, M)`` into equal chunks; every chunk walks the segments it overlaps.

Numba paths (both return CSR arrays ``indptr, indices, data`` of N directly: rows = destinations
``m``, sorted column indices = sources ``n``):

* ``dense`` — thread-local dense ``(n_states, n_states)`` count tables, summed, then scanned to
  CSR. Memory ``n_chunks * n_states^2 * 8`` bytes: only for small ``n_states``.
* ``bucket`` — a counting sort by destination (histogram of ``l_{t+lag}`` per chunk, prefix sums,
  scatter of the sources ``l_t`` into per-row buckets), then every row's bucket is reduced with an
  ``n_states``-sized scratch table that stays in cache (distinct sources collected either by
  sorting the touched list or by scanning the table, whichever is cheaper). Memory ``O(M +
  n_chunks * n_states)``; no ``n_states^2`` anywhere, and the random accesses hit cache-sized
  tables only, which is why it beats a dense count on uniformly random labels.

The numpy reference (:func:`counts_numpy`) uses ``np.bincount`` on ``m * n_states + n`` when
``n_states^2`` is moderate and a sort (``np.unique`` of the int64 pair keys) otherwise.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import register

__all__ = ["valid_segments", "counts_numpy", "counts_numba", "label_range", "rate_csr"]

#: above this many dense entries the numpy reference switches from bincount to a sort
NUMPY_DENSE_MAX = 1 << 26


def valid_segments(bounds: np.ndarray, lag: int):
    """``(seg_start, seg_cum)`` of the valid source indices (see the module docstring)."""
    b = np.asarray(bounds, dtype=np.int64)
    starts = b[:-1]
    lengths = b[1:] - b[:-1] - lag
    keep = lengths > 0
    seg_start = np.ascontiguousarray(starts[keep])
    seg_cum = np.zeros(seg_start.size + 1, dtype=np.int64)
    np.cumsum(lengths[keep], out=seg_cum[1:])
    return seg_start, seg_cum


def _pairs(labels, seg_start, seg_cum, lag):
    """Source and destination labels of all valid transitions (numpy; allocates 2 M ints)."""
    M = int(seg_cum[-1])
    if M == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e
    seg_len = np.diff(seg_cum)
    # t = seg_start[s] + (p - seg_cum[s]) for p in [seg_cum[s], seg_cum[s+1])
    t = np.arange(M, dtype=np.int64) + np.repeat(seg_start - seg_cum[:-1], seg_len)
    return labels[t], labels[t + lag]


@register("transition_counts", "numpy")
def counts_numpy(labels, seg_start, seg_cum, lag, n_states, method="auto"):
    """Reference count (CSR arrays). ``method``: ``"bincount"``, ``"sort"`` or ``"auto"``."""
    src, dst = _pairs(labels, seg_start, seg_cum, lag)
    ns = int(n_states)
    if method == "auto":
        method = "bincount" if ns * ns <= NUMPY_DENSE_MAX else "sort"
    key = dst.astype(np.int64) * ns + src
    if method == "bincount":
        dense = np.bincount(key, minlength=ns * ns).reshape(ns, ns)
        rows, cols = np.nonzero(dense)
        data = dense[rows, cols].astype(np.int64)
    elif method == "sort":
        uk, data = np.unique(key, return_counts=True)
        rows, cols = np.divmod(uk, ns)
        data = data.astype(np.int64)
    else:
        raise ValueError(f"unknown numpy counting method {method!r}")
    indptr = np.zeros(ns + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=ns), out=indptr[1:])
    return indptr, cols.astype(np.int64), data


# ---------------------------------------------------------------------------------------------
# numba helpers
# ---------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _range_chunks(labels, nchunk):
    n = labels.size
    lo = np.empty(nchunk, dtype=np.int64)
    hi = np.empty(nchunk, dtype=np.int64)
    for c in prange(nchunk):
        a = c * n // nchunk
        b = (c + 1) * n // nchunk
        mn = np.int64(labels[a])
        mx = mn
        for i in range(a, b):
            v = np.int64(labels[i])
            mn = min(mn, v)
            mx = max(mx, v)
        lo[c] = mn
        hi[c] = mx
    return lo, hi


@register("label_range", "numpy")
def label_range_reference(labels):
    """``(min, max)`` of a non-empty integer array."""
    return int(labels.min()), int(labels.max())


@register("label_range", "numba")
def label_range(labels):
    """``(min, max)`` of a non-empty integer array (parallel, one pass)."""
    n = labels.size
    nchunk = max(1, min(numba.get_num_threads(), n // 65536 + 1))
    lo, hi = _range_chunks(labels, nchunk)
    return int(lo.min()), int(hi.max())


@njit(inline="always")
def _first_segment(seg_cum, p):
    # largest s with seg_cum[s] <= p
    return np.searchsorted(seg_cum, p, side="right") - 1


@njit(parallel=True, cache=True)
def _dense_counts(labels, seg_start, seg_cum, lag, ns, nchunk):
    M = seg_cum[-1]
    part = np.zeros((nchunk, ns * ns), dtype=np.int64)
    for c in prange(nchunk):
        lo = c * M // nchunk
        hi = (c + 1) * M // nchunk
        if lo >= hi:
            continue
        s = _first_segment(seg_cum, lo)
        p = lo
        row = part[c]
        while p < hi:
            stop = min(hi, seg_cum[s + 1])
            t0 = seg_start[s] + (p - seg_cum[s])
            for t in range(t0, t0 + (stop - p)):
                row[labels[t + lag] * ns + labels[t]] += 1
            p = stop
            s += 1
    # reduce over chunks (parallel over entries)
    tot = np.zeros(ns * ns, dtype=np.int64)
    nblk = max(1, min(ns, 64))
    for k in prange(nblk):
        a = k * (ns * ns) // nblk
        b = (k + 1) * (ns * ns) // nblk
        for c in range(nchunk):
            pc = part[c]
            for i in range(a, b):
                tot[i] += pc[i]
    return tot


@njit(cache=True)
def _dense_to_csr(tot, ns):
    indptr = np.zeros(ns + 1, dtype=np.int64)
    for m in range(ns):
        k = 0
        base = m * ns
        for n in range(ns):
            if tot[base + n] != 0:
                k += 1
        indptr[m + 1] = indptr[m] + k
    nnz = indptr[ns]
    indices = np.empty(nnz, dtype=np.int64)
    data = np.empty(nnz, dtype=np.int64)
    for m in range(ns):
        j = indptr[m]
        base = m * ns
        for n in range(ns):
            v = tot[base + n]
            if v != 0:
                indices[j] = n
                data[j] = v
                j += 1
    return indptr, indices, data


@njit(parallel=True, cache=True)
def _row_hist(labels, seg_start, seg_cum, lag, ns, nchunk):
    M = seg_cum[-1]
    hist = np.zeros((nchunk, ns), dtype=np.int64)
    for c in prange(nchunk):
        lo = c * M // nchunk
        hi = (c + 1) * M // nchunk
        if lo >= hi:
            continue
        s = _first_segment(seg_cum, lo)
        p = lo
        h = hist[c]
        while p < hi:
            stop = min(hi, seg_cum[s + 1])
            t0 = seg_start[s] + (p - seg_cum[s]) + lag
            for t in range(t0, t0 + (stop - p)):
                h[labels[t]] += 1
            p = stop
            s += 1
    return hist


@njit(cache=True)
def _offsets(hist, ns, nchunk):
    """Row starts (ns + 1) and per-chunk write offsets (nchunk, ns), rows major."""
    rowstart = np.zeros(ns + 1, dtype=np.int64)
    off = np.empty((nchunk, ns), dtype=np.int64)
    pos = 0
    for m in range(ns):
        rowstart[m] = pos
        for c in range(nchunk):
            off[c, m] = pos
            pos += hist[c, m]
    rowstart[ns] = pos
    return rowstart, off


@njit(parallel=True, cache=True)
def _scatter(labels, seg_start, seg_cum, lag, off, nchunk, buf):
    M = seg_cum[-1]
    for c in prange(nchunk):
        lo = c * M // nchunk
        hi = (c + 1) * M // nchunk
        if lo >= hi:
            continue
        s = _first_segment(seg_cum, lo)
        p = lo
        o = off[c]
        while p < hi:
            stop = min(hi, seg_cum[s + 1])
            t0 = seg_start[s] + (p - seg_cum[s])
            for t in range(t0, t0 + (stop - p)):
                m = labels[t + lag]
                buf[o[m]] = labels[t]
                o[m] += 1
            p = stop
            s += 1


@njit(parallel=True, cache=True)
def _reduce_rows(buf, rowstart, ns, nblk, cnt, nnz):
    """Per row: distinct sources (sorted) written over the row's bucket head, counts into cnt.

    Two ways to count a row into the ``ns``-sized scratch table: "tracking" records each newly
    touched source (cheap when few distinct sources, e.g. trajectories moving between
    neighbouring cells, then the short list is sorted) and "scanning" counts branch-free and then
    scans the whole table (best when the row touches a sizable part of it, e.g. random labels,
    where the tracking branch would mispredict). A row is tracked when it is short
    (``len * log2(len) * 4 < ns``) or when the previous row of the block had few distinct sources
    (``nnz * 16 < ns``).
    """
    M = rowstart[ns]
    for k in prange(nblk):
        # rows of block k: balanced by bucket mass
        a_target = k * M // nblk
        b_target = (k + 1) * M // nblk
        m0 = np.searchsorted(rowstart[:ns], a_target, side="left") if k > 0 else 0
        m1 = np.searchsorted(rowstart[:ns], b_target, side="left") if k < nblk - 1 else ns
        if m1 <= m0:
            continue
        scratch = np.zeros(ns, dtype=cnt.dtype)
        touched = np.empty(ns, dtype=np.int64)
        tmp_idx = np.empty(ns + 1, dtype=buf.dtype)
        tmp_cnt = np.empty(ns + 1, dtype=cnt.dtype)
        prev = ns
        for m in range(m0, m1):
            r0 = rowstart[m]
            r1 = rowstart[m + 1]
            L = r1 - r0
            if L == 0:
                nnz[m] = 0
                continue
            lg = 1
            while (1 << lg) < L:
                lg += 1
            nt = 0
            if L * lg * 4 < ns or prev * 16 < ns:
                for i in range(r0, r1):
                    v = buf[i]
                    if scratch[v] == 0:
                        touched[nt] = v
                        nt += 1
                    scratch[v] += 1
                lt = 1
                while (1 << lt) < nt:
                    lt += 1
                if nt * lt * 4 < ns:
                    tt = np.sort(touched[:nt])
                    for j in range(nt):
                        v = tt[j]
                        buf[r0 + j] = v
                        cnt[r0 + j] = scratch[v]
                        scratch[v] = 0
                    nnz[m] = nt
                    prev = nt
                    continue
            else:
                for i in range(r0, r1):
                    scratch[buf[i]] += 1
            # branch-free compaction of the whole table (resets it)
            j = 0
            for v in range(ns):
                c = scratch[v]
                tmp_idx[j] = v
                tmp_cnt[j] = c
                scratch[v] = 0
                j += c != 0
            for i in range(j):
                buf[r0 + i] = tmp_idx[i]
                cnt[r0 + i] = tmp_cnt[i]
            nnz[m] = j
            prev = j


@njit(parallel=True, cache=True)
def _gather_csr(buf, cnt, rowstart, nnz, ns, indptr, indices, data):
    for m in prange(ns):
        r0 = rowstart[m]
        j0 = indptr[m]
        for j in range(nnz[m]):
            indices[j0 + j] = buf[r0 + j]
            data[j0 + j] = cnt[r0 + j]


def _bucket_counts(labels, seg_start, seg_cum, lag, ns, nchunk):
    M = int(seg_cum[-1])
    hist = _row_hist(labels, seg_start, seg_cum, lag, ns, nchunk)
    rowstart, off = _offsets(hist, ns, nchunk)
    idt = np.int32 if ns <= np.iinfo(np.int32).max else np.int64
    cdt = np.int32 if M <= np.iinfo(np.int32).max else np.int64
    buf = np.empty(M, dtype=idt)
    _scatter(labels, seg_start, seg_cum, lag, off, nchunk, buf)
    cnt = np.empty(M, dtype=cdt)
    nnz = np.zeros(ns, dtype=np.int64)
    nblk = max(1, min(ns, 8 * numba.get_num_threads()))
    _reduce_rows(buf, rowstart, ns, nblk, cnt, nnz)
    total = int(nnz.sum())
    xdt = np.int32 if max(total, ns) <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(ns + 1, dtype=xdt)
    np.cumsum(nnz, out=indptr[1:])
    indices = np.empty(total, dtype=xdt)
    data = np.empty(total, dtype=np.int64)
    _gather_csr(buf, cnt, rowstart, nnz, ns, indptr, indices, data)
    return indptr, indices, data


#: the dense numba path is used up to this many states (n_chunks tables of n_states^2 int64)
DENSE_MAX_STATES = 512


@register("transition_counts", "numba")
def counts_numba(labels, seg_start, seg_cum, lag, n_states, method="auto"):
    """Numba count (CSR arrays). ``method``: ``"dense"``, ``"bucket"`` or ``"auto"``."""
    ns = int(n_states)
    M = int(seg_cum[-1])
    nth = numba.get_num_threads()
    if method == "auto":
        method = "dense" if ns <= DENSE_MAX_STATES else "bucket"
    if M == 0:
        return (np.zeros(ns + 1, dtype=np.int64), np.empty(0, dtype=np.int64),
                np.empty(0, dtype=np.int64))
    if method == "dense":
        nchunk = max(1, min(nth, M // 4096 + 1))
        tot = _dense_counts(labels, seg_start, seg_cum, lag, ns, nchunk)
        return _dense_to_csr(tot, ns)
    if method == "bucket":
        nchunk = max(1, min(nth, M // 65536 + 1))
        return _bucket_counts(labels, seg_start, seg_cum, lag, ns, nchunk)
    raise ValueError(f"unknown numba counting method {method!r}")


# ---------------------------------------------------------------------------------------------
# rate matrix from counts
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _rate_csr_kernel(indptr, indices, data, w, diag, ns):
    # row m of Q: off-diagonal N[m, n] w[n], plus diag[m] (if nonzero) at its sorted position
    cnt = np.zeros(ns + 1, dtype=np.int64)
    for m in range(ns):
        k = 0
        for j in range(indptr[m], indptr[m + 1]):
            if indices[j] != m:
                k += 1
        if diag[m] != 0.0:
            k += 1
        cnt[m + 1] = cnt[m] + k
    nnz = cnt[ns]
    qi = np.empty(nnz, dtype=np.int64)
    qd = np.empty(nnz, dtype=np.float64)
    for m in range(ns):
        p = cnt[m]
        placed = diag[m] == 0.0
        for j in range(indptr[m], indptr[m + 1]):
            n = indices[j]
            if n == m:
                continue
            if not placed and n > m:
                qi[p] = m
                qd[p] = diag[m]
                p += 1
                placed = True
            qi[p] = n
            qd[p] = data[j] * w[n]
            p += 1
        if not placed:
            qi[p] = m
            qd[p] = diag[m]
            p += 1
    return cnt, qi, qd


@register("rate_matrix", "numpy")
def rate_csr_reference(indptr, indices, data, w, leaves, ns):
    """:func:`rate_csr` with scipy's sparse arithmetic (the reference)."""
    import scipy.sparse as sp

    N = sp.csr_array((np.asarray(data, dtype=np.float64), indices, indptr), shape=(ns, ns))
    off = N - sp.diags_array(N.diagonal())
    Q = (off @ sp.diags_array(np.asarray(w, dtype=np.float64))).tocsr()
    Q = (Q + sp.diags_array(-(np.asarray(w, dtype=np.float64) * np.asarray(leaves)))).tocsr()
    Q.eliminate_zeros()
    Q.sort_indices()
    return Q.indptr.astype(np.int64), Q.indices.astype(np.int64), Q.data


@register("rate_matrix", "numba")
def rate_csr(indptr, indices, data, w, leaves, ns):
    """CSR arrays of ``Q[m, n] = N[m, n] w_n`` (m != n), ``Q[n, n] = -w_n L_n`` from the sorted
    CSR arrays of the counts ``N``; explicit zeros are left out."""
    diag = -(np.asarray(w, dtype=np.float64) * np.asarray(leaves, dtype=np.float64))
    return _rate_csr_kernel(np.asarray(indptr, dtype=np.int64),
                            np.asarray(indices, dtype=np.int64),
                            np.asarray(data), np.asarray(w, dtype=np.float64), diag, int(ns))
