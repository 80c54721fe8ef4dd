"""Parallel CPU kernels (numba), bit-for-bit equal to :mod:`.numpy_kernels`.

All distances follow the convention documented in :mod:`.numpy_kernels`: float64 arithmetic,
four lanes (``j mod 4``) summed as ``(l0 + l1) + (l2 + l3)``, no fused multiply-add, right child
iff ``dist_right < dist_left``. The lanes are computed with explicit 4-wide vector instructions
(numba intrinsics emitting LLVM ``<4 x double>`` ``fsub``/``fmul``/``fadd`` without fast-math
flags, so LLVM may neither fuse nor re-associate them): each lane is exactly the scalar IEEE
sequence of the reference while the kernels run on SIMD registers. The intrinsics need rows
padded with zeros to a multiple of 4 columns (a padded coordinate adds ``(0 - 0)^2 = +0.0`` to a
lane, which is exact): the tree centres are stored padded, points are copied into padded float64
per-thread blocks (which also checks them for NaN/inf for free), and the tree-building copy is
padded.

Assignment (``prange`` over blocks of points):

* :func:`tree_descend_lockstep` — the default. Blocks of 16 points advance level by level,
  branch-free (leaves of the packed layout loop onto themselves), four points per vector
  intrinsic call so that their dependency chains overlap. The tree is one int64 record per node
  (:func:`pack_records`: children and the float64 bits of both child centres side by side), so a
  step touches one place in memory.
* :func:`tree_descend` — one point at a time (reference for the lockstep trick).
* :func:`nearest_centroid` — brute-force nearest leaf centroid.

Tree building (used by :mod:`xlangevin.partition`): greedy k-means++ seeding, Lloyd passes that
skip the points which provably keep their side, stable segment partition. These kernels are
``nogil`` and run on a thread pool (nodes of a level in parallel, or the chunks of one big node's
Lloyd pass); every sum is accumulated per fixed chunk of :data:`CHUNK` rows and the chunks are
added in order, so a node gives the same centres whichever path and however many threads run it.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "tree_descend",
    "tree_descend_lockstep",
    "nearest_centroid",
    "split_nodes",
    "split_node_parallel",
    "finalize_leaves",
    "vsqd1",
    "vsqd2",
    "vsqd2_rec",
    "vsqd2x4_rec",
    "pack_records",
    "REC_OFF",
    "CHUNK",
    "BLOCK",
    "padded_width",
    "accumulate_cells",
]

#: points per partial sum in the Lloyd passes; fixes the summation order (determinism)
CHUNK = 4096
#: points advanced together by the lockstep descent
BLOCK = 16
#: blocks of BLOCK points handed to one parallel task by the descent kernels
_TASK_BLOCKS = 64


def padded_width(d: int) -> int:
    """Columns after padding ``d`` features to a multiple of 4."""
    return -(-int(d) // 4) * 4


# --------------------------------------------------------------------------------------------
# distances: 4-lane vector intrinsics (rows padded to a multiple of 4 columns, C-contiguous)
# --------------------------------------------------------------------------------------------
_F64 = ir.DoubleType()
_V4D = ir.VectorType(_F64, 4)
_I32 = ir.IntType(32)


def _row_loader(context, builder, aryty, ary, row):
    """Function ``block -> <4 x double>`` loading ``ary[row, 4 block : 4 block + 4]``."""
    zero = context.get_constant(types.intp, 0)
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [row, zero])
    vty = ir.VectorType(context.get_data_type(aryty.dtype), 4)
    vptr = builder.bitcast(ptr, vty.as_pointer())
    align = aryty.dtype.bitwidth // 8

    def load(block):
        v = builder.load(builder.gep(vptr, [block]), align=align)
        if aryty.dtype != types.float64:
            v = builder.fpext(v, _V4D)  # exact
        return v

    return load


def _lane_total(builder, acc):
    lane = [builder.extract_element(acc, ir.Constant(_I32, k)) for k in range(4)]
    return builder.fadd(builder.fadd(lane[0], lane[1]), builder.fadd(lane[2], lane[3]))


def _check_vec_args(X, C):
    for a in (X, C):
        if not (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
                and a.dtype in (types.float32, types.float64)):
            raise TypeError("vsqd: 2-D C-contiguous float32/float64 arrays required")
    if C.dtype != types.float64:
        raise TypeError("vsqd: centres must be float64")


def _sqd_codegen(n_centres):
    def codegen(context, builder, signature, args):
        xty, ity, cty, rty = signature.args
        xa = context.make_array(xty)(context, builder, args[0])
        ca = context.make_array(cty)(context, builder, args[2])
        i = context.cast(builder, args[1], ity, types.intp)
        r = context.cast(builder, args[3], rty, types.intp)
        nblk = builder.lshr(builder.extract_value(xa.shape, 1), context.get_constant(types.intp, 2))
        load_x = _row_loader(context, builder, xty, xa, i)
        loads, accs = [], []
        for c in range(n_centres):
            row = builder.add(r, context.get_constant(types.intp, c))
            loads.append(_row_loader(context, builder, cty, ca, row))
            acc = cgutils.alloca_once(builder, _V4D)
            builder.store(ir.Constant(_V4D, None), acc)
            accs.append(acc)
        with cgutils.for_range(builder, nblk) as loop:
            xv = load_x(loop.index)
            for load_c, acc in zip(loads, accs):
                t = builder.fsub(xv, load_c(loop.index))
                builder.store(builder.fadd(builder.load(acc), builder.fmul(t, t)), acc)
        totals = [_lane_total(builder, builder.load(acc)) for acc in accs]
        if n_centres == 1:
            return totals[0]
        return context.make_tuple(builder, signature.return_type, totals)

    return codegen


@intrinsic
def vsqd2(typingctx, X, i, C, r):
    """``(|X[i] - C[r]|^2, |X[i] - C[r + 1]|^2)``; rows padded to a multiple of 4 columns."""
    _check_vec_args(X, C)
    return types.UniTuple(types.float64, 2)(X, i, C, r), _sqd_codegen(2)


@intrinsic
def vsqd1(typingctx, X, i, C, r):
    """``|X[i] - C[r]|^2``; rows padded to a multiple of 4 columns."""
    _check_vec_args(X, C)
    return types.float64(X, i, C, r), _sqd_codegen(1)


# --------------------------------------------------------------------------------------------
# the descent layout: one int64 record per packed node, children and centres side by side
# --------------------------------------------------------------------------------------------
#: int64 columns of a record before the centres: left child, right child, two spare (alignment)
REC_OFF = 4


def pack_records(centers: np.ndarray, children: np.ndarray) -> np.ndarray:
    """Records ``(n_nodes + n_cells, REC_OFF + 2 d4)`` int64 from the padded packed layout.

    ``T[k, 0:2]`` are the packed children of node ``k`` and ``T[k, REC_OFF:]`` the float64 bits
    of its left then right centre (``d4`` columns each): one node is one contiguous record, so a
    descent step touches one place in memory. The base is 64-byte aligned.
    """
    n_tot, two, d4 = centers.shape
    assert two == 2 and d4 % 4 == 0
    R = REC_OFF + 2 * d4
    buf = np.zeros(n_tot * R + 8, dtype=np.int64)
    off = (-buf.ctypes.data // 8) % 8
    T = buf[off : off + n_tot * R].reshape(n_tot, R)
    T[:, 0:2] = children
    T[:, REC_OFF:] = np.ascontiguousarray(centers, dtype=np.float64).reshape(n_tot, 2 * d4).view(np.int64)
    return T


def _rec_codegen(npts):
    """Distances of ``npts`` consecutive rows of X (padded float64 block) to the two centres of
    records ``T[n_p]``; returns ``(da_0, db_0, da_1, db_1, ...)``; the point loops are
    interleaved so that their dependency chains overlap."""

    def codegen(context, builder, signature, args):
        xty, kty, tty = signature.args[:3]
        xa = context.make_array(xty)(context, builder, args[0])
        ta = context.make_array(tty)(context, builder, args[2])
        k = context.cast(builder, args[1], kty, types.intp)
        nblk = builder.lshr(builder.extract_value(xa.shape, 1), context.get_constant(types.intp, 2))
        zero = context.get_constant(types.intp, 0)
        off = context.get_constant(types.intp, REC_OFF)
        xps, lps, rps, accs = [], [], [], []
        for p in range(npts):
            kp = builder.add(k, context.get_constant(types.intp, p))
            xp = cgutils.get_item_pointer(context, builder, xty, xa, [kp, zero])
            xps.append(builder.bitcast(xp, _V4D.as_pointer()))
            nn = context.cast(builder, args[3 + p], signature.args[3 + p], types.intp)
            lp = cgutils.get_item_pointer(context, builder, tty, ta, [nn, off])
            lp = builder.bitcast(lp, _V4D.as_pointer())
            lps.append(lp)
            rps.append(builder.gep(lp, [nblk]))
            for _ in range(2):
                acc = cgutils.alloca_once(builder, _V4D)
                builder.store(ir.Constant(_V4D, None), acc)
                accs.append(acc)
        with cgutils.for_range(builder, nblk) as loop:
            for p in range(npts):
                xv = builder.load(builder.gep(xps[p], [loop.index]), align=8)
                t = builder.fsub(xv, builder.load(builder.gep(lps[p], [loop.index]), align=8))
                u = builder.fsub(xv, builder.load(builder.gep(rps[p], [loop.index]), align=8))
                builder.store(builder.fadd(builder.load(accs[2 * p]), builder.fmul(t, t)), accs[2 * p])
                builder.store(
                    builder.fadd(builder.load(accs[2 * p + 1]), builder.fmul(u, u)), accs[2 * p + 1]
                )
        vals = [_lane_total(builder, builder.load(acc)) for acc in accs]
        return context.make_tuple(builder, signature.return_type, vals)

    return codegen


def _check_rec_args(X, T):
    if not (isinstance(X, types.Array) and X.ndim == 2 and X.layout == "C" and X.dtype == types.float64):
        raise TypeError("vsqd_rec: X must be a 2-D C-contiguous float64 block")
    if not (isinstance(T, types.Array) and T.ndim == 2 and T.layout == "C" and T.dtype == types.int64):
        raise TypeError("vsqd_rec: T must be 2-D C-contiguous int64 records")


@intrinsic
def vsqd2_rec(typingctx, X, k, T, n0):
    """``(|X[k] - L|^2, |X[k] - R|^2)`` for the centres L, R of record ``T[n0]``."""
    _check_rec_args(X, T)
    return types.UniTuple(types.float64, 2)(X, k, T, n0), _rec_codegen(1)


@intrinsic
def vsqd2x4_rec(typingctx, X, k, T, n0, n1, n2, n3):
    """:func:`vsqd2_rec` for rows ``k .. k+3`` of X at records ``n0 .. n3`` (8 values)."""
    _check_rec_args(X, T)
    return types.UniTuple(types.float64, 8)(X, k, T, n0, n1, n2, n3), _rec_codegen(4)


# --------------------------------------------------------------------------------------------
# assignment (X: (n, d) float32/float64, any d; records from pack_records)
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _load_block(X, i0, m, xb):
    """Rows i0:i0+m of X into the padded float64 block; returns sum(v - v): 0 iff all finite."""
    d = X.shape[1]
    bad = 0.0
    for k in range(m):
        for j in range(d):
            v = np.float64(X[i0 + k, j])
            xb[k, j] = v
            bad += v - v
    return bad


@njit(parallel=True, cache=True)
def tree_descend(X, T, n_int, out):
    """Descend the tree one point at a time (records ``T``); writes the labels into ``out``.

    Returns 0.0 if every coordinate of X is finite (NaN otherwise), for free.
    """
    n = X.shape[0]
    d4 = (T.shape[1] - REC_OFF) // 2
    nblk = (n + BLOCK - 1) // BLOCK
    ntask = (nblk + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    bad = 0.0
    for t in prange(ntask):
        xb = np.zeros((BLOCK, d4), dtype=np.float64)
        for blk in range(t * _TASK_BLOCKS, min((t + 1) * _TASK_BLOCKS, nblk)):
            i0 = blk * BLOCK
            m = min(BLOCK, n - i0)
            bad += _load_block(X, i0, m, xb)
            for k in range(m):
                nd = 0
                while nd < n_int:
                    da, db = vsqd2_rec(xb, k, T, nd)
                    nd = T[nd, 1] if db < da else T[nd, 0]
                out[i0 + k] = nd - n_int
    return bad


@njit(parallel=True, cache=True)
def tree_descend_lockstep(X, T, n_int, depth, out):
    """Descend the tree BLOCK points at a time, level by level, without branches.

    Leaves of the packed layout loop onto themselves, so every point of a block takes the same
    steps; four points are evaluated together (interleaved vector code). ``depth`` is the
    maximum leaf depth; a block stops early once all its points sit on leaves. Returns 0.0 if
    every coordinate of X is finite (NaN otherwise).
    """
    n = X.shape[0]
    d4 = (T.shape[1] - REC_OFF) // 2
    nblk = (n + BLOCK - 1) // BLOCK
    ntask = (nblk + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    bad = 0.0
    for t in prange(ntask):
        xb = np.zeros((BLOCK, d4), dtype=np.float64)
        node = np.empty(BLOCK, dtype=np.int64)
        for blk in range(t * _TASK_BLOCKS, min((t + 1) * _TASK_BLOCKS, nblk)):
            i0 = blk * BLOCK
            m = min(BLOCK, n - i0)
            bad += _load_block(X, i0, m, xb)
            for k in range(m):
                node[k] = 0
            for k in range(m, BLOCK):
                node[k] = n_int  # a leaf: loops onto itself
            for _lev in range(depth):
                for k in range(0, BLOCK, 4):
                    n0 = node[k]
                    n1 = node[k + 1]
                    n2 = node[k + 2]
                    n3 = node[k + 3]
                    a0, b0, a1, b1, a2, b2, a3, b3 = vsqd2x4_rec(xb, k, T, n0, n1, n2, n3)
                    node[k] = T[n0, np.int64(b0 < a0)]
                    node[k + 1] = T[n1, np.int64(b1 < a1)]
                    node[k + 2] = T[n2, np.int64(b2 < a2)]
                    node[k + 3] = T[n3, np.int64(b3 < a3)]
                done = True
                for k in range(BLOCK):
                    if node[k] < n_int:
                        done = False
                if done:
                    break
            for k in range(m):
                out[i0 + k] = node[k] - n_int
    return bad


@njit(parallel=True, cache=True)
def nearest_centroid(X, C, out):
    """Index of the nearest row of ``C`` (padded, (k, d4)); first one on ties.

    Returns 0.0 if every coordinate of X is finite (NaN otherwise).
    """
    n = X.shape[0]
    d4 = C.shape[1]
    kc = C.shape[0]
    nblk = (n + BLOCK - 1) // BLOCK
    bad = 0.0
    for b in prange(nblk):
        xb = np.zeros((BLOCK, d4), dtype=np.float64)
        best = np.full(BLOCK, np.inf)
        bi = np.zeros(BLOCK, dtype=np.int64)
        i0 = b * BLOCK
        m = min(BLOCK, n - i0)
        bad += _load_block(X, i0, m, xb)
        for c in range(kc):
            for k in range(m):
                dist = vsqd1(xb, k, C, c)
                if dist < best[k]:
                    best[k] = dist
                    bi[k] = c
        for k in range(m):
            out[i0 + k] = bi[k]
    return bad


# --------------------------------------------------------------------------------------------
# bisecting 2-means building blocks
# --------------------------------------------------------------------------------------------
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


@njit(parallel=True, cache=True)
def _accumulate_cells(labels, z, x, n_cells, n_parts, count, sum_z, sum_x, sum_z2):
    n, d = z.shape
    size = (n + n_parts - 1) // n_parts
    for p in prange(n_parts):  # thread-local partial sums, one reduction at the end
        for i in range(p * size, min(n, (p + 1) * size)):
            k = labels[i]
            count[p, k] += 1
            acc = 0.0
            for j in range(d):
                zj = np.float64(z[i, j])
                sum_z[p, k, j] += zj
                sum_x[p, k, j] += np.float64(x[i, j])
                acc += zj * zj
            sum_z2[p, k] += acc


def accumulate_cells(labels, z, x, n_cells):
    """Per-cell ``(count, sum z, sum x, sum |z|^2)`` with thread-local partial sums."""
    n, d = z.shape
    n_parts = max(1, min(numba.get_num_threads(), n // 65536 + 1))
    count = np.zeros((n_parts, n_cells), np.int64)
    sum_z = np.zeros((n_parts, n_cells, d))
    sum_x = np.zeros((n_parts, n_cells, d))
    sum_z2 = np.zeros((n_parts, n_cells))
    _accumulate_cells(labels, z, x, n_cells, n_parts, count, sum_z, sum_x, sum_z2)
    return count.sum(0), sum_z.sum(0), sum_x.sum(0), sum_z2.sum(0)
