"""Ensemble integration: the noise streams, the chunked stepping loop and the output writer.

:func:`run_ensemble` advances an ensemble ``x`` (m, d) in chunks of steps with a stepper of
:mod:`xlangevin.backends.euler_maruyama` (one chunk of steps per call, the same arguments on
every backend), draws the normals from :class:`Noise` and hands the saved states to an
:class:`EnsembleWriter`, which returns xarray like the fitted data or streams it to NetCDF
through :class:`xlangevin.io.NetCDFStream` (one atomic writer for every file).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import xarray as xr

from .. import io
from ..resources import require_memory
from ..data.timeaxis import time_values
from ..progress import bar as progress_bar

__all__ = ["BlowUpError", "Noise", "EnsembleWriter", "run_ensemble"]


#: with ``bound=None``, a final state beyond this many standard deviations is reported
UNBOUNDED_WARNING = 1e3


class BlowUpError(FloatingPointError):
    """A member left the bound or became non-finite with ``on_blowup="raise"``."""


class Noise:
    """Standard normals for chunks of steps, (n, m, d), from seeded generators.

    The flat buffer is cut into ``k`` equal pieces (``k`` fixed by the buffer size only, never by
    the machine) filled by ``k`` independent streams on threads (the fills release the GIL), so
    the draws depend only on the seed, the dtype and the sizes. float64: numpy generators on
    SFC64 bit generators (~9 ns a draw on the 2-core test machine, 13 ns with the default
    PCG64); float32: torch generators (``normal_``, ~4 ns a draw, 2.5x faster than numpy's
    float32 ziggurat).
    """

    PIECE = 1 << 16
    MAX_STREAMS = 8

    def __init__(self, seed_sequence, dtype, n_threads=1):
        self.dtype = np.dtype(dtype)
        seqs = seed_sequence.spawn(self.MAX_STREAMS)
        self._torch = self.dtype == np.float32
        if self._torch:
            self._streams = [torch.Generator().manual_seed(
                int(q.generate_state(1, np.uint64)[0] >> np.uint64(1))) for q in seqs]
        else:
            self._streams = [np.random.Generator(np.random.SFC64(q)) for q in seqs]
        self.n_threads = max(1, int(n_threads))
        self._pool = None

    def _fill(self, i, piece):
        if self._torch:
            torch.from_numpy(piece).normal_(generator=self._streams[i])
        else:
            self._streams[i].standard_normal(out=piece, dtype=self.dtype)

    def draw(self, n, m, d):
        out = np.empty((n, m, d), dtype=self.dtype)
        flat = out.reshape(-1)
        k = int(min(self.MAX_STREAMS, max(1, flat.size // self.PIECE)))
        if k == 1 or self.n_threads == 1:
            edges = np.linspace(0, flat.size, k + 1).astype(np.int64)
            for i in range(k):
                self._fill(i, flat[edges[i]:edges[i + 1]])
            return out
        edges = np.linspace(0, flat.size, k + 1).astype(np.int64)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
        list(self._pool.map(lambda i: self._fill(i, flat[edges[i]:edges[i + 1]]), range(k)))
        return out

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()


def run_ensemble(stepper, x, samples, noise, rng_reset, writer, *, n_steps, burn_in, dt,
                 save_every, chunk_steps, bound, raise_on_blowup, progress,
                 max_resets=None, advice="") -> np.ndarray:
    """Integrate ``x`` (m, d, modified in place) for ``burn_in`` then ``n_steps`` steps of
    ``dt``, in chunks of ``chunk_steps``; every ``save_every``-th state of the run goes to
    ``writer``. A member that leaves ``|x~_i| <= bound`` (None: finiteness only) or becomes
    non-finite is reset to a random row of ``samples`` or, with ``raise_on_blowup``, stops the
    run with :class:`BlowUpError`; more than ``max_resets`` resets in all stop it too (the
    message ends with ``advice``; nothing is written). Returns the resets per member."""
    m, d = x.shape
    mode = 1 if raise_on_blowup else 0
    bnd = np.finfo(x.dtype).max if bound is None else float(bound)
    resets = np.zeros(m, np.int64)
    frozen = np.full(m, -1, np.int64)
    empty = np.empty((0, m, d), x.dtype)
    bar = progress_bar(total=burn_in + n_steps, progress=progress, desc="langevin", unit="step",
               unit_scale=True, leave=False)
    try:
        for phase, total in (("burn_in", burn_in), ("run", n_steps)):
            se = save_every if phase == "run" else 0
            g = 0
            while g < total:
                n = min(chunk_steps, total - g)
                eta = noise.draw(n, m, d)
                pool = rng_reset.integers(samples.shape[0], size=(m, 2)) if mode == 0 \
                    else np.zeros((m, 1), np.int64)
                n_out = ((g + n) // se - g // se) if se else 0
                out = np.empty((n_out, m, d), x.dtype) if n_out else empty
                stepper(x, eta, dt, bnd, mode, samples, pool, resets, frozen, out, g, se)
                if mode == 1 and np.any(frozen >= 0):
                    _raise_blowup(frozen, phase, dt, bound)
                if max_resets is not None and resets.sum() > max_resets:
                    raise BlowUpError(
                        f"{int(resets.sum())} blow-up resets after {g + n} of "
                        f"{burn_in + n_steps} steps of {m} members (more than the allowed "
                        f"{max_resets}, max_reset_fraction of all member-steps): the ensemble "
                        f"would be made of reset states, not of the model's dynamics. {advice}")
                if n_out:
                    writer.append(out)
                g += n
                bar.update(n)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        noise.close()
        stepper.close()
    if bound is None and np.abs(x).max() > UNBOUNDED_WARNING:
        warnings.warn(f"without a bound the ensemble ended at |x~| = {np.abs(x).max():.3g} "
                      "standard deviations from the data's mean: it diverged (dt too large, or "
                      "the score wrong far from the data); pass bound= (default 10) to reset "
                      "such members", stacklevel=3)
    return resets


def _raise_blowup(frozen, phase, dt, bound):
    bad = np.flatnonzero(frozen >= 0)
    first = bad[np.argmin(frozen[bad])]
    raise BlowUpError(f"{bad.size} member(s) left the bound |x~| <= {bound} (standardized "
                      f"units) or became non-finite during the {phase.replace('_', '-')}; "
                      f"the first: member {first} at step {frozen[first] + 1}. Reduce dt "
                      f"(now {dt:g}), check the score, or use on_blowup='reset'")


class EnsembleWriter:
    """Turns chunks of saved standardized states (n, m, d) into xarray like the fitted data:
    in memory, or streamed to the NetCDF file ``path`` (atomic) and opened lazily at the end.
    Sample ``k`` (1-based) is at ``origin + (burn_in + k save_every) dt``."""


    def __init__(self, space, m, path, origin, dt, burn_in, save_every, n_steps,
                 overwrite=False, max_memory=None):
        if n_steps < save_every:
            raise ValueError(f"save_every ({save_every}) exceeds n_steps ({n_steps}): nothing "
                             "would be saved; lower save_every or raise n_steps")
        if path is None:
            # float64 states: the saved chunks and their concatenation (features), the output
            # in physical units on the whole grid (masked points and EOF-reduced fields included)
            require_memory(8 * (n_steps // save_every) * m * (2 * space.n_features
                                                                + space.n_grid),
                           f"an ensemble of {m} members x "
                           f"{n_steps // save_every} saved states", max_memory,
                           "pass path= to stream it to a NetCDF file (one chunk in memory), or "
                           "ask for fewer members or saved states")
        self.space = space
        self.m = m
        self.origin = origin
        self.dt, self.burn_in, self.save_every = dt, burn_in, save_every
        self.count = 0
        self._chunks = []
        self._stream = None if path is None else io.NetCDFStream(path, space.sample_dim,
                                                                 overwrite=overwrite)

    def _times(self, start, n):
        k = np.arange(start + 1, start + n + 1, dtype=np.float64)
        elapsed = (self.burn_in + k * self.save_every) * self.dt
        return time_values(self.space, self.origin, elapsed)

    def _piece(self, states, start):
        sp = self.space
        X = np.moveaxis(np.asarray(states, dtype=np.float64), 0, 1)       # (m, n, d)
        return sp.inverse_transform(X, dims=("member", sp.sample_dim),
                                    coords={sp.sample_dim: self._times(start, X.shape[1]),
                                            "member": np.arange(self.m)}, attrs={})

    def _stream_piece(self, states, start):
        piece = self._piece(states, start)
        self._stream.append(piece.to_dataset() if isinstance(piece, xr.DataArray) else piece)

    def append(self, states):
        if self._stream is None:
            self._chunks.append(np.array(states, copy=True))
        else:
            self._stream_piece(states, self.count)
        self.count += states.shape[0]

    def abort(self):
        if self._stream is not None:
            self._stream.abort()

    def close(self, attrs):
        sp = self.space
        if self._stream is None:
            states = np.concatenate(self._chunks, axis=0) if self._chunks else \
                np.empty((0, self.m, sp.n_features))
            out = self._piece(states, 0)
            if isinstance(out, xr.DataArray):
                out.attrs.update(attrs)
            else:
                out.attrs = dict(attrs)
            return out
        if self.count == 0:          # nothing saved: write an empty result
            self._stream_piece(np.empty((0, self.m, sp.n_features)), 0)
        self._stream.close(attrs)
        ds = self._stream.open(chunks={})
        if sp.kind == "DataArray":
            da = ds[sp.dataarray_name]
            da.attrs.update(ds.attrs)
            return da
        return ds
