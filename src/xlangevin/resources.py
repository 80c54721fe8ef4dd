"""Memory the process may still use, and the check that refuses a request larger than that
before anything is allocated (an out-of-memory kill gives the user no message)."""

from __future__ import annotations

import os
import resource

__all__ = ["available_memory", "require_memory", "format_bytes"]


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """Room left under a cgroup-v2 memory limit (containers, batch schedulers)."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            return int(limit) - int(f.read().strip())
    except (OSError, ValueError):
        return None


def _address_space_available() -> int | None:
    """Room left under ``ulimit -v`` (RLIMIT_AS) given the process's current virtual size."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        size = 0
    return soft - size


def available_memory() -> int | None:
    """Bytes this process can still allocate: the least of the system's available memory, the
    room under a cgroup limit and under ``ulimit -v`` (None when none can be read)."""
    known = [v for v in (_meminfo_available(), _cgroup_available(), _address_space_available())
             if v is not None]
    return max(min(known), 0) if known else None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def require_memory(nbytes: int, what: str, max_memory: int | None = None,
                   advice: str = "") -> None:
    """Raise ``MemoryError`` naming ``what`` and its size when ``nbytes`` exceeds
    ``max_memory`` (bytes; default: 80 % of :func:`available_memory`)."""
    if max_memory is None:
        available = available_memory()
        if available is None:
            return
        max_memory = int(0.8 * available)
    if nbytes > max_memory:
        raise MemoryError(f"{what} needs about {format_bytes(nbytes)}, more than the "
                          f"{format_bytes(max_memory)} this process may use (max_memory); "
                          f"{advice}")
