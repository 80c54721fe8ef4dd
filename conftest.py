"""Project-wide pytest helpers (loaded for every test)."""

import contextlib

import pytest


class _CountingScheduler:
    """A dask scheduler that counts computations and fails past ``max_computes``."""

    def __init__(self, max_computes=0):
        self.total = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        import dask

        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"dask computed {self.total} time(s); at most "
                               f"{self.max_computes} allowed")
        return dask.get(dsk, keys, **kwargs)


@pytest.fixture
def raise_if_dask_computes():
    """``with raise_if_dask_computes(n): ...`` fails if dask computes more than ``n`` times."""

    @contextlib.contextmanager
    def guard(max_computes=0):
        import dask

        scheduler = _CountingScheduler(max_computes)
        with dask.config.set(scheduler=scheduler):
            yield scheduler

    return guard
