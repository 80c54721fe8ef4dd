"""The 4-lane distance convention in numba: vector intrinsics and the packed descent records.

All distances follow the convention of :mod:`.assign` (its numpy reference): float64
arithmetic, four lanes (``j mod 4``) summed as ``(l0 + l1) + (l2 + l3)``, no fused multiply-add.
The lanes are computed with explicit 4-wide vector instructions (numba intrinsics emitting LLVM
``<4 x double>`` ``fsub``/``fmul``/``fadd`` without fast-math flags, so LLVM may neither fuse nor
re-associate them): each lane is exactly the scalar IEEE sequence of the reference while the
kernels run on SIMD registers. The intrinsics need rows padded with zeros to a multiple of 4
columns (a padded coordinate adds ``(0 - 0)^2 = +0.0`` to a lane, which is exact): the tree
centres are stored padded, points are copied into padded float64 per-thread blocks (which also
checks them for NaN/inf for free), and the tree-building copy is padded.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["vsqd1", "vsqd2", "vsqd2_rec", "vsqd2x4_rec", "pack_records", "padded_width",
           "REC_OFF"]


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
