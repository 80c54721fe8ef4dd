"""Progress bars and the package logger: one ``progress=`` convention for every long call.

Every long call (simulators, ``generate``, score and current-velocity training, KGMM passes)
takes ``progress: bool = True`` and draws its bar with :func:`bar`, which picks the output by
where it runs:

* a Jupyter kernel with ``ipywidgets``: the ``tqdm.auto`` widget, one updating bar per call;
* a terminal (stderr is a TTY): the usual ``tqdm`` bar, redrawn in place;
* anything else (a batch job, ``2> log``, a pipe): plain lines, none for a call shorter than
  :data:`LINE_INTERVAL` seconds, else one every :data:`LINE_INTERVAL` seconds and one at the
  end, with no carriage returns (``tqdm`` >= 4.61 for its ``delay``).

The environment variable ``XLANGEVIN_PROGRESS`` overrides the choice for a whole session:
``auto`` (the default, as above), ``lines`` (plain lines everywhere) or ``off`` (no bars; the
documentation build sets it). ``progress=False`` silences one call.

Warnings go through :mod:`warnings`; other messages through the package logger
``logging.getLogger("xlangevin")`` (:data:`logger`), silent unless the application configures
logging.
"""

from __future__ import annotations

import logging
import os
import re
import sys

import tqdm as _tqdm
import tqdm.auto as _tqdm_auto

__all__ = ["bar", "mode", "logger", "LINE_INTERVAL"]

#: the package logger (``logging.getLogger("xlangevin")``)
logger = logging.getLogger("xlangevin")

#: seconds between two plain progress lines when stderr is not a terminal
LINE_INTERVAL = 30.0

_MODES = ("auto", "lines", "off")
_LINE_FORMAT = ("{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} "
                "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


def _in_notebook() -> bool:
    """True inside a Jupyter kernel whose widgets ``tqdm.auto`` can draw."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


def mode() -> str:
    """Where bars go now: ``"widget"``, ``"terminal"``, ``"lines"`` or ``"off"`` (module
    docstring); ``XLANGEVIN_PROGRESS`` overrides the automatic choice."""
    setting = os.environ.get("XLANGEVIN_PROGRESS", "auto").strip().lower() or "auto"
    if setting not in _MODES:
        raise ValueError(f"XLANGEVIN_PROGRESS={setting!r}: use one of {list(_MODES)}")
    if setting != "auto":
        return setting
    if _in_notebook():
        return "widget"
    return "terminal" if _isatty(sys.stderr) else "lines"


class _LineWriter:
    """A file for ``tqdm`` that turns each refresh into one plain line on stderr (cursor
    movements and carriage returns removed, blank refreshes dropped)."""

    def write(self, text: str) -> None:
        line = _CONTROL.sub("", text).strip()
        if line:
            sys.stderr.write(line + "\n")

    def flush(self) -> None:
        sys.stderr.flush()


class _LineBar(_tqdm.tqdm):
    """``tqdm`` whose ``set_postfix`` waits for the next timed line instead of printing one."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


def bar(iterable=None, *, progress: bool = True, total=None, desc: str | None = None, **kwargs):
    """A ``tqdm`` progress bar (use as ``tqdm``: iterate it, or ``update``/``close`` it, or
    ``with``) drawn where :func:`mode` says; ``progress=False`` or mode ``"off"`` gives a
    disabled bar that costs nothing. ``kwargs`` go to ``tqdm`` (``unit``, ``unit_scale``,
    ``leave``, ...)."""
    where = mode() if progress else "off"
    if where == "off":
        return _tqdm.tqdm(iterable, total=total, desc=desc, disable=True)
    if where == "lines":
        kwargs.update(file=_LineWriter(), delay=LINE_INTERVAL, mininterval=LINE_INTERVAL,
                      maxinterval=LINE_INTERVAL,
                      bar_format=_LINE_FORMAT, leave=True, dynamic_ncols=False, ncols=0)
        return _LineBar(iterable, total=total, desc=desc, **kwargs)
    return _tqdm_auto.tqdm(iterable, total=total, desc=desc, **kwargs)
