"""Building the bisecting k-means tree (numba): k-means++ seeding, Lloyd passes, segment splits.

The kernels are ``nogil`` and run on a thread pool (nodes of a level in parallel, or the chunks
of one big node's Lloyd pass); every sum is accumulated per fixed chunk of :data:`CHUNK` rows
and the chunks are added in order, so a node gives the same centres whichever path and however
many threads run it. Lloyd passes skip the points which provably keep their side; the segment
partition is stable. Distances follow the 4-lane convention of :mod:`.assign` (:mod:`.lanes`).

:func:`build_tree` (registered as ``("build_tree", "numba")``; there is no other backend, and
its oracle is the reassignment of the build points by the reference descent, which must give
their leaves exactly) splits the tree level by level and returns it in the public layout of
:class:`xlangevin.partition.Partition`, cells numbered depth first.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from . import register
from .lanes import padded_width, vsqd1, vsqd2

__all__ = ["build_tree", "split_nodes", "split_node_parallel", "finalize_leaves", "num_threads",
           "CHUNK"]

#: points per partial sum in the Lloyd passes; fixes the summation order (determinism)
CHUNK = 4096


@njit(cache=True)
def _kmeanspp(W, s0, s1, u, n_trials, dbuf):
    """k-means++ seeds (row indices) for 2-means on rows ``s0:s1``; second is -1 if degenerate.
    Also returns the mean squared distance to the first seed (the node's scale).

    First seed: row ``s0 + floor(u[0] (s1 - s0))``. Second: ``n_trials`` candidates drawn with
    probability proportional to the squared distance to the first (uniforms ``u[1:]``); the one
    with the smallest potential wins (greedy k-means++, as scikit-learn).
    """
    d = W.shape[1]
    s = s1 - s0
    ia = s0 + min(np.int64(u[0] * s), s - 1)
    c = np.empty((1, d), dtype=np.float64)
    for j in range(d):
        c[0, j] = W[ia, j]
    total = 0.0
    for i in range(s0, s1):
        dd = vsqd1(W, i, c, 0)
        dbuf[i] = dd
        total += dd
    scale = total / s
    if not total > 0.0:
        return ia, -1, scale
    best_pot = np.inf
    ib = -1
    for t in range(n_trials):
        target = u[1 + t] * total
        acc = 0.0
        cand = -1
        last_pos = -1
        for i in range(s0, s1):
            if dbuf[i] > 0.0:
                last_pos = i
                acc += dbuf[i]
                if acc > target:
                    cand = i
                    break
        if cand < 0:
            cand = last_pos
        if n_trials == 1:
            return ia, cand, scale
        for j in range(d):
            c[0, j] = W[cand, j]
        pot = 0.0
        for i in range(s0, s1):
            dd = vsqd1(W, i, c, 0)
            pot += min(dd, dbuf[i])
        if pot < best_pot:
            best_pot = pot
            ib = cand
    return ia, ib, scale


# Lloyd passes skip the points that provably keep their side (a Hamerly-type bound for two
# centres): after an exact evaluation a point stores ``T = (|r_a - r_b| - 1e-9 (r_a + r_b)) + cum``
# (r = distances to the two centres, cum = cumulative centre movement |dC_0| + |dC_1| so far).
# While ``T > cum`` the triangle inequality guarantees that its nearer centre has not changed, with
# a relative slack of 1e-9 that dwarfs the rounding of the squared distances (~1e-15 relative), so
# the exact float rule (right iff d_b < d_a) would give the same side. Skipped points cost one
# comparison. The sums of the two clusters are updated with the points that change side only.
_SLACK = 1e-9


@njit(cache=True)
def _lloyd_chunk(W, c0, c1, C, lab, tbuf, cum, dsum, dcnt, p):
    """One Lloyd pass over rows c0:c1: relabel, and put the changes of the cluster sums and
    counts into dsum[p] (2, d4), dcnt[p] (2,). Returns the number of changed labels."""
    d = W.shape[1]
    for s in range(2):
        dcnt[p, s] = 0
        for j in range(d):
            dsum[p, s, j] = 0.0
    changed = 0
    for i in range(c0, c1):
        if tbuf[i] > cum:
            continue
        da, db = vsqd2(W, i, C, 0)
        side = 1 if db < da else 0
        ra = np.sqrt(da)
        rb = np.sqrt(db)
        tbuf[i] = (abs(ra - rb) - _SLACK * (ra + rb)) + cum
        old = lab[i]
        if old != side:
            changed += 1
            lab[i] = side
            dcnt[p, side] += 1
            for j in range(d):
                dsum[p, side, j] += np.float64(W[i, j])
            if old >= 0:
                dcnt[p, old] -= 1
                for j in range(d):
                    dsum[p, old, j] -= np.float64(W[i, j])
    return changed


@njit(cache=True)
def _lloyd_pass_serial(W, s0, s1, C, lab, tbuf, cum, sums, cnt):
    d = W.shape[1]
    dsum = np.empty((1, 2, d), dtype=np.float64)
    dcnt = np.empty((1, 2), dtype=np.int64)
    changed = 0
    for c0 in range(s0, s1, CHUNK):
        changed += _lloyd_chunk(W, c0, min(c0 + CHUNK, s1), C, lab, tbuf, cum, dsum, dcnt, 0)
        for s in range(2):
            cnt[s] += dcnt[0, s]
            for j in range(d):
                sums[s, j] += dsum[0, s, j]
    return changed


@njit(cache=True, nogil=True)
def _lloyd_chunks(W, s0, s1, C, lab, tbuf, cum, dsum, dcnt, pchg, c_lo, c_hi):
    """Chunks ``c_lo:c_hi`` of a pass over rows s0:s1 (one thread's share of a parallel pass)."""
    for c in range(c_lo, c_hi):
        c0 = s0 + c * CHUNK
        pchg[c] = _lloyd_chunk(W, c0, min(c0 + CHUNK, s1), C, lab, tbuf, cum, dsum, dcnt, c)


@njit(cache=True)
def _lloyd_reduce(dsum, dcnt, pchg, sums, cnt):
    """Add the chunk deltas in chunk order (the order of the serial pass)."""
    changed = 0
    for c in range(pchg.shape[0]):
        changed += pchg[c]
        for s in range(2):
            cnt[s] += dcnt[c, s]
            for j in range(sums.shape[1]):
                sums[s, j] += dsum[c, s, j]
    return changed


@njit(cache=True)
def _lloyd_init(W, s0, s1, ia, ib, lab, dbuf):
    """Seeds as float64 centres; labels -1 and bounds -inf (all evaluated in the first pass)."""
    d = W.shape[1]
    C = np.empty((2, d), dtype=np.float64)
    for j in range(d):
        C[0, j] = W[ia, j]
        C[1, j] = W[ib, j]
    for i in range(s0, s1):
        lab[i] = -1
        dbuf[i] = -np.inf
    return C


@njit(cache=True)
def _lloyd_update(C, C_new, sums, cnt):
    """New centres (means) into C_new; returns (|dC_0| + |dC_1|, |dC_0|^2 + |dC_1|^2)."""
    d = C.shape[1]
    move = 0.0
    move2 = 0.0
    for s in range(2):
        m2 = 0.0
        for j in range(d):
            c_new = sums[s, j] / cnt[s]
            m2 += (c_new - C[s, j]) ** 2
            C_new[s, j] = c_new
        move += np.sqrt(m2)
        move2 += m2
    return move, move2


@njit(cache=True)
def _copy2(src, dst):
    for a in range(src.shape[0]):
        for b in range(src.shape[1]):
            dst[a, b] = src[a, b]


@njit(cache=True)
def _two_means(W, s0, s1, u, n_trials, max_iter, tol, lab, dbuf, centers):
    """2-means of rows s0:s1 (serial passes). Returns (status, n_passes): 0 split, 1 leaf.

    Lloyd passes run until no label changes, or the centres would move by less than
    ``tol * (mean squared distance to the first seed)`` (squared, both centres together), or
    ``max_iter`` passes. On a split, ``centers`` (2, d4) holds the centres with which the final
    labels in ``lab[s0:s1]`` were computed (so a descent reproduces them exactly).
    :func:`split_node_parallel` runs the same steps with parallel passes (same numbers).
    """
    d = W.shape[1]
    ia, ib, scale = _kmeanspp(W, s0, s1, u, n_trials, dbuf)
    if ib < 0:
        return 1, 0
    C = _lloyd_init(W, s0, s1, ia, ib, lab, dbuf)
    sums = np.zeros((2, d), dtype=np.float64)
    cnt = np.zeros(2, dtype=np.int64)
    C_new = np.empty((2, d), dtype=np.float64)
    cum = 0.0
    it = 0
    while True:
        changed = _lloyd_pass_serial(W, s0, s1, C, lab, dbuf, cum, sums, cnt)
        it += 1
        if cnt[0] == 0 or cnt[1] == 0:
            return 1, it
        if changed == 0 or it >= max_iter:
            break
        move, move2 = _lloyd_update(C, C_new, sums, cnt)
        if move2 <= tol * scale:
            break  # keep C: the labels were computed with it
        _copy2(C_new, C)
        cum += move
    _copy2(C, centers)
    return 0, it


@njit(cache=True)
def _partition_segment(W_in, idx_in, W_out, idx_out, s0, s1, lab):
    """Stable partition of rows s0:s1 into W_out (side 0 first). Returns the left count."""
    d = W_in.shape[1]
    p = s0
    for i in range(s0, s1):
        if lab[i] == 0:
            for j in range(d):
                W_out[p, j] = W_in[i, j]
            idx_out[p] = idx_in[i]
            p += 1
    nl = p - s0
    for i in range(s0, s1):
        if lab[i] != 0:
            for j in range(d):
                W_out[p, j] = W_in[i, j]
            idx_out[p] = idx_in[i]
            p += 1
    return nl


@njit(cache=True, nogil=True)
def split_nodes(
    W_in, idx_in, W_out, idx_out, lab, dbuf, starts, ends, U, n_trials, max_iter, tol,
    task_order, q0, q1, centers, status, n_left, n_iter,
):
    """Split the nodes ``task_order[q0:q1]`` of one level, one after the other (one thread's
    share; nodes own disjoint row ranges, so threads never touch the same data)."""
    for q in range(q0, q1):
        k = task_order[q]
        st, it = _two_means(
            W_in, starts[k], ends[k], U[k], n_trials, max_iter, tol, lab, dbuf, centers[k]
        )
        status[k] = st
        n_iter[k] = it
        if st == 0:
            n_left[k] = _partition_segment(W_in, idx_in, W_out, idx_out, starts[k], ends[k], lab)


def split_node_parallel(
    pool, nthreads, W_in, idx_in, W_out, idx_out, lab, dbuf, s0, s1, u, n_trials, max_iter, tol,
    centers,
):
    """Split one (large) node with Lloyd passes spread over ``nthreads`` threads of ``pool``.

    The steps of ``_two_means`` with the same helpers and the same chunked sums, so the numbers
    are those of the serial path. Returns (status, n_left, n_passes).
    """
    s0, s1 = int(s0), int(s1)
    ia, ib, scale = _kmeanspp(W_in, s0, s1, u, n_trials, dbuf)
    if ib < 0:
        return 1, 0, 0
    d = W_in.shape[1]
    nch = (s1 - s0 + CHUNK - 1) // CHUNK
    dsum = np.empty((nch, 2, d), dtype=np.float64)
    dcnt = np.empty((nch, 2), dtype=np.int64)
    pchg = np.empty(nch, dtype=np.int64)
    bounds = np.linspace(0, nch, min(nthreads, nch) + 1).astype(np.int64)
    C = _lloyd_init(W_in, s0, s1, ia, ib, lab, dbuf)
    sums = np.zeros((2, d), dtype=np.float64)
    cnt = np.zeros(2, dtype=np.int64)
    C_new = np.empty((2, d), dtype=np.float64)
    cum = 0.0
    it = 0
    while True:
        futures = [
            pool.submit(_lloyd_chunks, W_in, s0, s1, C, lab, dbuf, cum, dsum, dcnt, pchg, lo, hi)
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        for f in futures:
            f.result()
        changed = _lloyd_reduce(dsum, dcnt, pchg, sums, cnt)
        it += 1
        if cnt[0] == 0 or cnt[1] == 0:
            return 1, 0, it
        if changed == 0 or it >= max_iter:
            break
        move, move2 = _lloyd_update(C, C_new, sums, cnt)
        if move2 <= tol * scale:
            break
        C[:, :] = C_new
        cum += move
    centers[:, :] = C
    nl = _partition_segment(W_in, idx_in, W_out, idx_out, s0, s1, lab)
    return 0, int(nl), it


@njit(cache=True, nogil=True)
def finalize_leaves(W, idx, starts, ends, leaf_ids, labels_out, means_out):
    """Leaf means (float64, sequential sums) and ``labels_out[idx[i]] = leaf_id`` per segment."""
    d = W.shape[1]
    for k in range(starts.shape[0]):
        s0 = starts[k]
        s1 = ends[k]
        for j in range(d):
            means_out[k, j] = 0.0
        for i in range(s0, s1):
            for j in range(d):
                means_out[k, j] += np.float64(W[i, j])
            labels_out[idx[i]] = leaf_ids[k]
        for j in range(d):
            means_out[k, j] /= s1 - s0


def num_threads() -> int:
    """Threads numba may use (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``)."""
    return numba.get_num_threads()


# --------------------------------------------------------------------------------------------
# the driver: level by level over a thread pool
# --------------------------------------------------------------------------------------------
class _Work:
    """The double-buffered working arrays of a build: rows of the level in ``W_in`` (padded
    float64) with their original indices ``idx_in``; a split writes both children's rows into
    ``W_out`` / ``idx_out``, and the buffers swap after each level."""

    def __init__(self, W):
        m, d = W.shape
        # float64 working copy, zero-padded for the 4-lane kernels (the distance convention
        # converts every coordinate to float64 first, so this changes no number; one compiled
        # specialization)
        self.W_in = np.zeros((m, padded_width(d)), dtype=np.float64)
        self.W_in[:, :d] = W
        self.W_out = np.zeros_like(self.W_in)
        self.idx_in = np.arange(m, dtype=np.int64)
        self.idx_out = np.empty(m, dtype=np.int64)
        self.lab = np.empty(m, dtype=np.int8)
        self.dbuf = np.empty(m, dtype=np.float64)
        self.labels = np.empty(m, dtype=np.int64)  # BFS leaf node id, renumbered at the end

    def swap(self):
        self.W_in, self.W_out = self.W_out, self.W_in
        self.idx_in, self.idx_out = self.idx_out, self.idx_in


@register("build_tree", "numba")
def build_tree(W: np.ndarray, threshold: int, rng: np.random.Generator, n_trials: int,
               max_iter: int, tol: float = 0.0) -> dict:
    """Split every node holding more than ``threshold`` rows of ``W`` (m, d) with 2-means,
    level by level; returns the tree in the public layout (module docstring) with the build
    rows' ``labels`` and per-level ``stats`` (depth, nodes split, points, Lloyd passes,
    point-passes)."""
    d = W.shape[1]
    work = _Work(W)
    nthreads = max(1, num_threads())
    # the kernels release the GIL: nodes of a level (or chunks of a big node's Lloyd pass) run
    # on the threads of this pool, as many as numba is allowed to use
    pool = ThreadPoolExecutor(max_workers=nthreads) if nthreads > 1 else None
    try:
        levels, stats = _split_levels(work, threshold, rng, n_trials, max_iter, tol, nthreads,
                                      pool)
    finally:
        if pool is not None:
            pool.shutdown()
    tree = _public_layout(levels, work.labels, d)
    tree["stats"] = np.array(stats, dtype=np.int64).reshape(-1, 5)
    return tree


def _split_levels(work, threshold, rng, n_trials, max_iter, tol, nthreads, pool):
    """All levels in breadth-first order: per level its nodes' ``internal`` flags, BFS child
    ids, depth, child centres, leaf means and sizes (lists of arrays), and the stats."""
    names = ("internal", "left", "right", "depth", "centers", "means", "counts")
    levels = {name: [] for name in names}
    stats = []
    lv_start = np.array([0], dtype=np.int64)
    lv_end = np.array([work.W_in.shape[0]], dtype=np.int64)
    lv_depth, next_id = 0, 1
    while lv_start.size:
        L = lv_start.size
        size = lv_end - lv_start
        status, n_left, centers, stat = _split_level(work, lv_start, lv_end, threshold, rng,
                                                     n_trials, max_iter, tol, nthreads, pool)
        if stat is not None:
            stats.append((lv_depth,) + stat)
        split = status == 0
        ids = np.arange(next_id - L, next_id, dtype=np.int64)  # this level's BFS ids
        means = _leaf_means(work, lv_start, lv_end, ~split, ids)
        ns = int(split.sum())
        left = np.full(L, -1, dtype=np.int64)
        right = np.full(L, -1, dtype=np.int64)
        left[split] = next_id + 2 * np.arange(ns)
        right[split] = left[split] + 1
        for name, value in zip(names, (split, left, right, np.full(L, lv_depth, np.int64),
                                       centers, means, size)):
            levels[name].append(value)
        s_sp, e_sp, nl_sp = lv_start[split], lv_end[split], n_left[split]
        lv_start = np.empty(2 * ns, dtype=np.int64)
        lv_end = np.empty(2 * ns, dtype=np.int64)
        lv_start[0::2], lv_end[0::2] = s_sp, s_sp + nl_sp
        lv_start[1::2], lv_end[1::2] = s_sp + nl_sp, e_sp
        next_id += 2 * ns
        lv_depth += 1
        work.swap()
    return {name: np.concatenate(v) for name, v in levels.items()}, stats


def _split_level(work, lv_start, lv_end, threshold, rng, n_trials, max_iter, tol, nthreads,
                 pool):
    """Split the nodes of one level larger than ``threshold``: returns per node ``status``
    (0 split, 1 leaf), ``n_left`` and the two child centres, and the level's stats (or None
    when nothing was split). Big nodes get parallel Lloyd passes, the others are dealt out to
    the threads longest first."""
    L, d4 = lv_start.size, work.W_in.shape[1]
    size = lv_end - lv_start
    status = np.ones(L, dtype=np.int8)  # 1 = leaf
    n_left = np.zeros(L, dtype=np.int64)
    centers = np.zeros((L, 2, d4), dtype=np.float64)
    sel = np.flatnonzero(size > threshold)
    k = sel.size
    if not k:
        return status, n_left, centers, None
    S = np.ascontiguousarray(lv_start[sel])
    E = np.ascontiguousarray(lv_end[sel])
    U = rng.random((k, 1 + n_trials))
    c_k = np.zeros((k, 2, d4), dtype=np.float64)
    st_k = np.ones(k, dtype=np.int8)
    nl_k = np.zeros(k, dtype=np.int64)
    it_k = np.zeros(k, dtype=np.int64)
    sz = E - S
    big = sz * nthreads > sz.sum()
    if nthreads == 1:
        big[:] = False
    for q in np.flatnonzero(big):
        st_k[q], nl_k[q], it_k[q] = split_node_parallel(
            pool, nthreads, work.W_in, work.idx_in, work.W_out, work.idx_out, work.lab,
            work.dbuf, S[q], E[q], U[q], n_trials, max_iter, tol, c_k[q])
    rest = np.flatnonzero(~big)
    if rest.size:
        args = (work.W_in, work.idx_in, work.W_out, work.idx_out, work.lab, work.dbuf, S, E, U,
                n_trials, max_iter, tol)
        _split_small_nodes(args, rest, sz, nthreads, pool, (c_k, st_k, nl_k, it_k))
    status[sel], n_left[sel], centers[sel] = st_k, nl_k, c_k
    return status, n_left, centers, (k, int(sz.sum()), int(it_k.sum()), int((it_k * sz).sum()))


def _split_small_nodes(args, rest, sz, nthreads, pool, outs):
    """Nodes ``rest`` split serially each, longest-processing-time first, dealt in a snake over
    the threads."""
    order = rest[np.argsort(-sz[rest], kind="stable")]
    T = min(nthreads, rest.size)
    pos = np.arange(order.size) % (2 * T)
    owner = np.where(pos < T, pos, 2 * T - 1 - pos)
    task_order = np.ascontiguousarray(order[np.argsort(owner, kind="stable")])
    offsets = np.zeros(T + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(owner, minlength=T))
    if T == 1:
        split_nodes(*args, task_order, 0, offsets[1], *outs)
        return
    futures = [pool.submit(split_nodes, *args, task_order, offsets[t], offsets[t + 1], *outs)
               for t in range(T)]
    for f in futures:
        f.result()


def _leaf_means(work, lv_start, lv_end, leaf, ids):
    """Means of the level's leaves (their rows sit in ``W_in``), labels of their rows."""
    means = np.zeros((lv_start.size, work.W_in.shape[1]), dtype=np.float64)
    if leaf.any():
        li = np.flatnonzero(leaf)
        m_l = np.zeros((li.size, work.W_in.shape[1]), dtype=np.float64)
        finalize_leaves(work.W_in, work.idx_in, np.ascontiguousarray(lv_start[li]),
                        np.ascontiguousarray(lv_end[li]), ids[li], work.labels, m_l)
        means[li] = m_l
    return means


def _public_layout(levels, bfs_labels, d):
    """Depth-first (preorder, left first) numbering of internal nodes and leaves, and the
    public arrays (``d`` true features)."""
    internal = levels["internal"]
    new_int = np.full(internal.size, -1, dtype=np.int64)
    new_leaf = np.full(internal.size, -1, dtype=np.int64)
    stack, ci, cl = [0], 0, 0
    il, ll, rl = internal.tolist(), levels["left"].tolist(), levels["right"].tolist()
    while stack:
        b = stack.pop()
        if il[b]:
            new_int[b] = ci
            ci += 1
            stack.append(rl[b])
            stack.append(ll[b])
        else:
            new_leaf[b] = cl
            cl += 1
    ib, lb = np.flatnonzero(internal), np.flatnonzero(~internal)

    def encode(child):
        return np.where(internal[child], new_int[child], -1 - new_leaf[child])

    tree = {"left_centroid": np.zeros((ib.size, d)), "right_centroid": np.zeros((ib.size, d)),
            "left_child": np.zeros(ib.size, dtype=np.int64),
            "right_child": np.zeros(ib.size, dtype=np.int64),
            "cell_centroid": np.zeros((lb.size, d)),
            "cell_count": np.zeros(lb.size, dtype=np.int64),
            "cell_depth": np.zeros(lb.size, dtype=np.int64)}
    pos = new_int[ib]
    tree["left_centroid"][pos] = levels["centers"][ib, 0, :d]
    tree["right_centroid"][pos] = levels["centers"][ib, 1, :d]
    tree["left_child"][pos] = encode(levels["left"][ib])
    tree["right_child"][pos] = encode(levels["right"][ib])
    pos = new_leaf[lb]
    tree["cell_centroid"][pos] = levels["means"][lb, :d]
    tree["cell_count"][pos] = levels["counts"][lb]
    tree["cell_depth"][pos] = levels["depth"][lb]
    tree["labels"] = new_leaf[bfs_labels]
    return tree
