"""The source of the API reference: the ``autosummary`` tables of every name of
``xlangevin.__all__``, written by ``docs/conf.py`` at each build into
``docs/api/generated/index.rst`` (``autosummary`` then writes one page per name beside it), so a
new public name needs no edit of the documentation. ``tests/test_docs.py`` checks the list."""

import inspect
import pathlib

import xlangevin


def public_names() -> list:
    """Every documented name: ``xlangevin.__all__`` without dunder names."""
    return [name for name in xlangevin.__all__ if not name.startswith("_")]


def public_modules() -> list:
    """The modules among :func:`public_names` (their pages list their own members)."""
    return [name for name in public_names() if inspect.ismodule(getattr(xlangevin, name))]


def entries() -> dict:
    """``{public name: the dotted name autosummary documents it under}`` (a module by its own
    ``__name__``: ``xlangevin.plot`` is ``xlangevin.analysis.plot``)."""
    modules = set(public_modules())
    return {name: getattr(xlangevin, name).__name__ if name in modules else f"xlangevin.{name}"
            for name in public_names()}


def index_rst() -> str:
    """The text of ``api/generated/index.rst``."""
    table = entries()
    modules = public_modules()
    lines = ["API reference", "=============", "",
             "Every name of ``xlangevin.__all__``; the modules list their own members.", "",
             ".. autosummary::", "   :toctree: .", "   :nosignatures:", ""]
    lines += [f"   {table[n]}" for n in table if n not in modules]
    lines += ["", "Modules", "-------", "", ".. autosummary::", "   :toctree: .",
              "   :recursive:", ""]
    lines += [f"   {table[n]}" for n in modules] + [""]
    return "\n".join(lines)


def write(folder: pathlib.Path) -> pathlib.Path:
    """Write ``index.rst`` into ``folder`` (only when its text changed); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "index.rst"
    text = index_rst()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target
