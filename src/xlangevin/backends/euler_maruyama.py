"""Euler–Maruyama stepping of an ensemble for :meth:`xlangevin.LangevinModel.generate`.

Registered as ``"euler_maruyama"``: a stepper class built as ``Stepper(drift, Sigma)`` and
called once per chunk of steps with the same arguments on every backend (so all consume the same
noise and agree up to rounding):

* numpy — :class:`ReferenceStepper`, the reference loop: one batched score call per step (torch
  for a network score, numpy for a callable);
* numba — :class:`NumbaStepper`: the kernel :func:`em_blocks` on threads over blocks of members.

``drift`` (:class:`xlangevin.dynamics.drift.DriftField`) carries ``Phi`` (d, d), the
standardized score ``score_std`` (numpy) and ``score_tensor`` (torch, or None), the current
velocity ``current`` (or None), and the numba ``strategy`` with ``folded`` (below).

The kernel, :func:`em_blocks`, advances an ensemble (METHODS.md §0, §5)::

    x <- x + dt * Phi s(x) + sqrt(2 dt) * Sigma eta,        eta ~ N(0, I),

in the model's standardized units, for a chunk of steps whose normals ``eta`` (n, members, d) are
drawn beforehand by the caller (so every backend consumes the same noise). Members are cut into
blocks; the kernel carries each block of its range through all the steps of the chunk (the
block's states and activations stay in cache). It is serial and releases the GIL: the caller runs
disjoint block ranges on threads (:class:`NumbaStepper` does). A serial kernel
compiles 3-5x faster than a ``prange`` one, and keeps OpenBLAS (called for the MLP layers) out of
an OpenMP region. After each step a member that left the bound (``|x_i| > bound`` or non-finite)
is reset to a data state (mode 0) or frozen with the step recorded (mode 1, the caller raises).
Every ``save_every``-th state is written to ``out``.

The score is a *drift-evaluation strategy*: a jitted function ``drift(p, ip, xs, out, scratch)``
that writes the standardized score of the block ``xs`` (nb, d) into ``out`` (nb, d), with ``p``
(float, x's dtype) and ``ip`` (int64) its flat parameters (flat arrays: one kernel signature for
every network shape) and ``scratch`` a per-block work buffer. Two strategies are provided:

* :func:`mlp_drift` — the KGMM / score MLP ``d -> h1 -> ... -> d`` with swish activations, its
  affine unit maps, the ``-1/sigma`` factor and ``Phi`` folded into the first and last layers
  (then it returns the whole drift and the kernel skips ``Phi s``); the layer
  products are BLAS calls on blocks of >= 8 members (row-wise dot products below, and for
  outputs narrower than 16), the swish uses a vectorizable exp (:func:`exp64`, :func:`exp32`:
  exact to 7e-16 / 3e-7 relative). The caller limits OpenBLAS to one thread while the kernel
  runs (threadpoolctl), so that BLAS never starts threads of its own inside the kernel's.
* :func:`row_drift` ``(f)`` — a user's numba-jitted ``f(x_row, out_row)`` score in physical units,
  wrapped with the unit maps.

Fast-math: reassociation and contraction are allowed in the arithmetic, never ``nnan``/``ninf``
(the blow-up test must see NaN and inf); ``error_model="numpy"`` (no zero-division branches,
which would stop the loops from vectorizing).
"""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from . import register, torch_threads

__all__ = ["em_blocks", "mlp_drift", "pack_mlp", "row_drift", "apply_rows", "exp64", "exp32",
           "swish_bias", "FASTMATH", "NumbaStepper", "ReferenceStepper", "n_threads"]

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


# -- bit casts (LLVM bitcast: vectorizes, unlike scalar views) ----------------------------------
@intrinsic
def _f64_bits(typingctx, x):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _bits_f64(typingctx, x):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _f32_bits(typingctx, x):
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def _bits_f32(typingctx, x):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


# -- exp without libm calls ------------------------------------------------------------------------
# Inlined into the caller (so the loops around it vectorize): k = round(x / ln 2) by floor, a
# two-constant (Cody–Waite) reduction, a Taylor polynomial on |r| <= ln(2)/2 and 2^k built from
# its exponent bits. Under the callers' re-association the reduction may lose ~k ulp(ln 2)
# (< 1e-13 relative for |x| < 708), far below what the tests resolve.
@njit(inline="always", fastmath=FASTMATH, error_model="numpy", nogil=True)
def exp64(x):
    """``exp(x)`` for float64, relative error ~7e-16 on [-708, 708] (clamped outside)."""
    x = min(max(x, -708.0), 708.0)
    k = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - k * 0.6931471803691238) - k * 1.9082149292705877e-10
    # degree-10 polynomial interpolating exp at the 11 Chebyshev nodes of [-ln2/2, ln2/2]
    # (near-minimax, 3e-16 relative), by Estrin's scheme: dependency depth 4 instead of
    # Horner's 10, so that successive elements overlap in the pipeline
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    q0 = 1.0 + r * 1.0000000000000067
    q1 = 0.5000000000000006 + r * 0.16666666666554406
    q2 = 0.04166666666657314 + r * 0.008333333385667782
    q3 = 0.0013888888932488599 + r * 0.00019841170270440067
    q4 = 2.4801504346997686e-05 + r * 2.764018079620985e-06
    t0 = (q0 + r2 * q1) + r4 * (q2 + r2 * q3)
    p = t0 + r8 * (q4 + r2 * 2.7626357241447223e-07)
    return p * _bits_f64((np.int64(np.int32(k)) + 1023) << 52)


@njit(inline="always", fastmath=FASTMATH, error_model="numpy", nogil=True)
def exp32(x):
    """``exp(x)`` for float32, relative error ~3e-7 on [-87, 87] (clamped outside)."""
    x = min(max(x, np.float32(-87.0)), np.float32(87.0))
    k = np.floor(x * np.float32(1.442695) + np.float32(0.5))
    r = (x - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    # degree 6 by Estrin's scheme (depth 3)
    r2 = r * r
    r4 = r2 * r2
    q0 = np.float32(1.0) + r
    q1 = np.float32(0.5) + r * np.float32(1.0 / 6.0)
    q2 = np.float32(1.0 / 24.0) + r * np.float32(1.0 / 120.0)
    p = (q0 + r2 * q1) + r4 * (q2 + r2 * np.float32(1.0 / 720.0))
    return p * _bits_f32((np.int32(k) + np.int32(127)) << np.int32(23))


def fast_exp(x):
    """:func:`exp32` or :func:`exp64` by the type of ``x`` (inside jitted code)."""
    raise NotImplementedError("fast_exp is only callable from numba-compiled code")


@overload(fast_exp, inline="always")
def _fast_exp_overload(x):
    if x == types.float32:
        return lambda x: exp32(x)
    return lambda x: exp64(x)


@njit(fastmath=FASTMATH, error_model="numpy", nogil=True)
def swish_bias(h, bias):
    """``h <- v * sigmoid(v)`` with ``v = h + bias`` (rows of h), in place. Two rows per pass:
    two independent exp chains in flight (the exp is latency-bound one row at a time)."""
    nb, H = h.shape
    one = h.dtype.type(1.0)
    for b in range(0, nb - 1, 2):
        for j in range(H):
            v = h[b, j] + bias[j]
            w = h[b + 1, j] + bias[j]
            h[b, j] = v / (one + fast_exp(-v))
            h[b + 1, j] = w / (one + fast_exp(-w))
    if nb % 2:
        for j in range(H):
            v = h[nb - 1, j] + bias[j]
            h[nb - 1, j] = v / (one + fast_exp(-v))


# -- drift strategies ----------------------------------------------------------------------------
def pack_mlp(weights, biases, dtype):
    """Flatten an MLP into ``(p, ip)`` for :func:`mlp_drift`: ``weights[l]`` has shape (out, in)
    (torch's ``Linear.weight``), ``biases[l]`` (out,). Each layer is stored twice, as (in, out)
    for the BLAS product of a block and as (out, in) for row-wise dot products on small blocks.
    ``ip = [L, max_hidden, (n_in, n_out, offset W (in, out), offset W (out, in), offset b) per
    layer]``."""
    chunks, off = [], 0
    hidden = [np.asarray(w).shape[0] for w in weights[:-1]]
    ip = [len(weights), max(hidden) if hidden else 0]
    for w, b in zip(weights, biases):
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64).ravel()
        n_out, n_in = w.shape
        if b.shape != (n_out,):
            raise ValueError(f"bias of shape {b.shape} for a layer with {n_out} outputs")
        ip += [n_in, n_out, off, off + n_in * n_out, off + 2 * n_in * n_out]
        chunks += [w.T.ravel(), w.ravel(), b]
        off += 2 * n_in * n_out + n_out
    return (np.ascontiguousarray(np.concatenate(chunks), dtype=dtype),
            np.asarray(ip, dtype=np.int64))


#: blocks with at least this many rows (and layers with at least this many outputs) use BLAS
BLAS_MIN_ROWS = 8


@njit(fastmath=FASTMATH, error_model="numpy", nogil=True)
def _layer(p, ip, l, a, out):
    """``out = a @ W_l`` (no bias); returns the offset of the layer's bias in ``p``."""
    k = 2 + 5 * l
    n_in, n_out = ip[k], ip[k + 1]
    nb = a.shape[0]
    if nb >= BLAS_MIN_ROWS and n_out >= 16:
        W = p[ip[k + 2]:ip[k + 2] + n_in * n_out].reshape((n_in, n_out))
        np.dot(a, W, out)
    else:
        Wo = p[ip[k + 3]:ip[k + 3] + n_in * n_out].reshape((n_out, n_in))
        zero = out.dtype.type(0.0)
        for b in range(nb):
            for j in range(n_out):
                acc = zero
                for i in range(n_in):
                    acc += Wo[j, i] * a[b, i]
                out[b, j] = acc
    return ip[k + 4]


@njit(fastmath=FASTMATH, error_model="numpy", nogil=True)
def mlp_drift(p, ip, xs, out, scratch):
    """MLP score on a block (parameters from :func:`pack_mlp`): hidden layers swish, last layer
    linear. ``scratch`` holds two (nb, max hidden) buffers."""
    L = ip[0]
    nb = xs.shape[0]
    half = nb * ip[1]
    if L == 1:
        ob = _layer(p, ip, 0, xs, out)
    else:
        H = ip[3]
        a = scratch[:nb * H].reshape((nb, H))
        ob = _layer(p, ip, 0, xs, a)
        swish_bias(a, p[ob:ob + H])
        for l in range(1, L - 1):
            H = ip[3 + 5 * l]
            off = (l % 2) * half
            h = scratch[off:off + nb * H].reshape((nb, H))
            ob = _layer(p, ip, l, a, h)
            swish_bias(h, p[ob:ob + H])
            a = h
        ob = _layer(p, ip, L - 1, a, out)
    d = out.shape[1]
    for b in range(nb):
        for i in range(d):
            out[b, i] += p[ob + i]


_ROW_DRIFTS: dict = {}
_ROW_APPLY: dict = {}


def row_drift(f):
    """Strategy wrapping a numba-jitted physical-unit score ``f(x_row, out_row)``:
    ``s~(x~) = S f(m + S x~)`` with ``p = [mean, scale]`` (2 d values), ``ip`` unused; scratch
    holds 2 d values."""
    if f not in _ROW_DRIFTS:
        @njit(fastmath=FASTMATH, error_model="numpy", nogil=True)
        def drift(p, ip, xs, out, scratch):
            nb, d = xs.shape
            xp = scratch[:d]
            op = scratch[d:2 * d]
            for b in range(nb):
                for i in range(d):
                    xp[i] = p[i] + p[d + i] * xs[b, i]
                f(xp, op)
                for i in range(d):
                    out[b, i] = p[d + i] * op[i]

        _ROW_DRIFTS[f] = drift
    return _ROW_DRIFTS[f]


def apply_rows(f):
    """``g(X, out)``: ``f(X[i], out[i])`` for every row (batch evaluation of a row function)."""
    if f not in _ROW_APPLY:
        @njit(nogil=True)
        def apply(X, out):
            for i in range(X.shape[0]):
                f(X[i], out[i])

        _ROW_APPLY[f] = apply
    return _ROW_APPLY[f]


# -- the stepping kernel -------------------------------------------------------------------------
@njit(fastmath=FASTMATH, error_model="numpy", nogil=True)
def em_blocks(drift, p, ip, scratch_size, block, b0, b1, x, PhiT, SigT, noise, dt, sq, bound,
              mode, samples, pool, resets, frozen, out, g0, save_every):
    """Advance the members of blocks ``b0 .. b1 - 1`` (block ``i`` = rows ``i block ..
    (i + 1) block`` of ``x`` (m, d)) in place through the ``n`` steps of ``noise`` (n, m, d).

    ``drift(p, ip, xs, out, scratch)`` is the strategy (``p`` float parameters of x's dtype,
    ``ip`` int64 parameters); ``scratch_size`` its buffer length per member. ``dt``,
    ``sq = sqrt(2 dt)``, ``bound`` scalars of x's dtype; ``PhiT`` = ``Phi^T`` and ``SigT`` =
    ``Sigma^T`` (d, d), C-contiguous (``Sigma`` lower triangular); an empty ``PhiT`` (0, d)
    means that the strategy returns the whole drift ``Phi s`` (``Phi`` folded into it). For
    ``d >= 16`` and blocks of at least 8 members the products ``s Phi^T`` and ``eta Sigma^T``
    of a block are BLAS calls, otherwise loops. ``mode`` 0: a member leaving the bound (``|x_i| > bound`` or NaN) is reset to
    ``samples[pool[r, resets[r] % K]]`` and ``resets[r]`` counts; mode 1: it is frozen and
    ``frozen[r]`` = the global step index (the caller raises). ``g0`` = global index of the first
    step (counted after the burn-in); with ``save_every > 0`` the state after global step ``g`` is
    saved when ``(g + 1) % save_every == 0`` into ``out[(g + 1) // save_every - 1 -
    g0 // save_every]``. Blocks touch disjoint rows, so threads may run disjoint block ranges.
    """
    n, m, d = noise.shape
    s0 = g0 // save_every if save_every > 0 else 0
    K = pool.shape[1]
    folded = PhiT.shape[0] == 0
    zero = x.dtype.type(0.0)
    xb = np.empty((block, d), x.dtype)
    sb = np.empty((block, d), x.dtype)
    fb = np.empty((block, d), x.dtype)
    zb = np.empty((block, d), x.dtype)
    scratch = np.empty(max(1, scratch_size * block), x.dtype)
    for ib in range(b0, b1):
        r0 = ib * block
        nb = min(block, m - r0)
        xs = xb[:nb]
        ss = sb[:nb]
        fs = fb[:nb]
        zs = zb[:nb]
        blas = d >= 16 and nb >= 8
        for b in range(nb):
            for i in range(d):
                xs[b, i] = x[r0 + b, i]
        for j in range(n):
            g = g0 + j
            drift(p, ip, xs, fs if folded else ss, scratch)
            if blas:
                if not folded:
                    np.dot(ss, PhiT, fs)
                np.dot(noise[j, r0:r0 + nb], SigT, zs)
            else:
                for b in range(nb):
                    r = r0 + b
                    for i in range(d):
                        nz = zero
                        for k in range(i + 1):
                            nz += noise[j, r, k] * SigT[k, i]
                        zs[b, i] = nz
                    if not folded:
                        for i in range(d):
                            acc = zero
                            for k in range(d):
                                acc += ss[b, k] * PhiT[k, i]
                            fs[b, i] = acc
            for b in range(nb):
                r = r0 + b
                if frozen[r] >= 0:
                    continue
                bad = False
                for i in range(d):
                    v = xs[b, i] + dt * fs[b, i] + sq * zs[b, i]
                    xs[b, i] = v
                    if not (abs(v) <= bound):          # NaN compares false, inf > bound
                        bad = True
                if bad:
                    if mode == 0:
                        c = pool[r, resets[r] % K]
                        for i in range(d):
                            xs[b, i] = samples[c, i]
                        resets[r] += 1
                    else:
                        frozen[r] = g
            if save_every > 0 and (g + 1) % save_every == 0:
                k = (g + 1) // save_every - 1 - s0
                for b in range(nb):
                    for i in range(d):
                        out[k, r0 + b, i] = xs[b, i]
        for b in range(nb):
            for i in range(d):
                x[r0 + b, i] = xs[b, i]


# -- the steppers (one chunk of steps; the same arguments on every backend) ---------------------
def n_threads() -> int:
    """Threads numba may use."""
    return max(1, int(numba.get_num_threads()))


@register("euler_maruyama", "numba")
class NumbaStepper:
    """:func:`em_blocks` on ``numba.get_num_threads()`` threads, each advancing a contiguous
    range of member blocks (the kernel releases the GIL). Needs ``drift.strategy``."""

    name = "numba"

    def __init__(self, drift, Sig):
        if drift.strategy is None:
            raise ValueError("this drift has no numba strategy")
        self.drift, self.p, self.ip, self.scratch, self.block = drift.strategy
        # folded: the strategy returns the whole drift (an empty Phi^T tells the kernel)
        self.PhiT = np.empty((0, Sig.shape[0]), Sig.dtype) if drift.folded else \
            np.ascontiguousarray(drift.Phi.T)
        self.SigT = np.ascontiguousarray(Sig.T)
        self.n_threads = n_threads()
        self._pool = None
        self._blas = None

    def __call__(self, x, noise, dt, bound, mode, samples, pool, resets, frozen, out, g0,
                 save_every):
        from threadpoolctl import threadpool_limits

        if self._blas is None:      # one-thread OpenBLAS until close() (generate's finally)
            self._blas = threadpool_limits(1, user_api="blas")
        T = x.dtype.type
        m = x.shape[0]
        # at least one block per thread where the members allow
        block = max(1, min(self.block, max(8, -(-m // self.n_threads))))
        n_blocks = -(-m // block)
        k = min(self.n_threads, n_blocks)
        edges = np.linspace(0, n_blocks, k + 1).astype(np.int64)

        def run(i):
            em_blocks(self.drift, self.p, self.ip, self.scratch, block,
                                 edges[i], edges[i + 1], x, self.PhiT, self.SigT, noise, T(dt),
                                 T(math.sqrt(2.0 * dt)), T(bound), mode, samples, pool, resets,
                                 frozen, out, g0, save_every)

        if k == 1:
            run(0)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
        list(self._pool.map(run, range(k)))

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None


@register("euler_maruyama", "numpy")
class ReferenceStepper:
    """The reference loop: one batched drift call per step. With a torch score
    (``drift.score_tensor``) the update products run in torch too, on the same threads as the
    network (numpy's BLAS threads and torch's would otherwise contend for the cores)."""

    name = "numpy"

    def __init__(self, drift, Sig):
        self.score_std = drift.score_std
        self.torch_std = drift.score_tensor
        self.current = drift.current
        self.PhiT = np.array(drift.Phi.T, order="C")   # own, writable copies (torch views them)
        self.SigT = np.array(Sig.T, order="C")

    def close(self):
        pass

    def _products(self, x, noise, dt_, sq):
        """Generator of the proposed states ``x + dt (Phi s(x) + v(x)) + sq Sigma eta_j``, step
        by step (``x`` is read afresh at every step; ``v`` the current velocity, if any)."""
        v = self.current
        if self.torch_std is None:
            for j in range(noise.shape[0]):
                s = self.score_std(x)
                f = s @ self.PhiT
                if v is not None:
                    f += v(x, s)
                yield x + dt_ * f + sq * (noise[j] @ self.SigT)
            return
        import torch

        xt, nt = torch.from_numpy(x), torch.from_numpy(noise)
        PhiT, SigT = torch.from_numpy(self.PhiT), torch.from_numpy(self.SigT)
        small = torch_threads(1) if x.shape[0] < 512 else contextlib.nullcontext()
        with torch.no_grad(), small:
            for j in range(noise.shape[0]):
                s = self.torch_std(xt)
                f = s @ PhiT
                if v is not None:
                    f += v.tensor(xt, s)
                yield (xt + dt_ * f + sq * (nt[j] @ SigT)).numpy()

    def __call__(self, x, noise, dt, bound, mode, samples, pool, resets, frozen, out, g0,
                 save_every):
        T = x.dtype.type
        dt_, sq, bound = T(dt), T(math.sqrt(2.0 * dt)), T(bound)
        s0 = g0 // save_every if save_every > 0 else 0
        K = pool.shape[1]
        for j, new in enumerate(self._products(x, noise, dt_, sq)):
            g = g0 + j
            with np.errstate(invalid="ignore"):
                bad = ~np.all(np.abs(new) <= bound, axis=1)
            if bad.any():
                idx = np.flatnonzero(bad)
                if mode == 0:
                    new[idx] = samples[pool[idx, resets[idx] % K]]
                    resets[idx] += 1
                else:
                    frozen[idx] = g
                    x[~bad] = new[~bad]
                    return
            x[...] = new
            if save_every > 0 and (g + 1) % save_every == 0:
                out[(g + 1) // save_every - 1 - s0] = x


def check_exp():
    """Max relative errors of :func:`exp64` / :func:`exp32` on a grid (for the tests)."""
    v = np.linspace(-80.0, 80.0, 200_001)
    e64 = _eval_exp(v)
    v32 = v.astype(np.float32)
    e32 = _eval_exp32(v32)
    ref32 = np.exp(v32.astype(np.float64))
    return (float(np.max(np.abs(e64 / np.exp(v) - 1.0))),
            float(np.max(np.abs(e32.astype(np.float64) / ref32 - 1.0))))


@njit
def _eval_exp(v):
    out = np.empty_like(v)
    for i in range(v.size):
        out[i] = exp64(v[i])
    return out


@njit
def _eval_exp32(v):
    out = np.empty_like(v)
    for i in range(v.size):
        out[i] = exp32(v[i])
    return out

