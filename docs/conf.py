"""Sphinx configuration of the xlangevin documentation site (``make docs`` -> build/html).

Why these tools: they are what the scientific-Python sites our users read are built with
(xarray, xeofs, deeptime): Sphinx with ``autodoc`` + ``autosummary`` for the API reference,
``napoleon`` for the numpy-style docstrings (it reads the package's docstrings as they are;
numpydoc's stricter validation would turn every free-form section into a warning), the
``pydata-sphinx-theme``, and ``myst-nb``, which reads the markdown pages (MyST, so the existing
``docs/*.md`` stay plain markdown) and executes the jupytext percent scripts of ``notebooks/``
(kept as ``.py`` so that diffs stay readable; ``docs/notebooks`` is a link to that folder) at
build time, with their figures. Everything is local: no intersphinx, no CDN, no download.

The API pages are generated: ``docs/api_index.py`` lists every name of ``xlangevin.__all__``
(and, through the module template, the members of the public modules among them) for
``autosummary`` at each build, so a new public name needs no edit here.
"""

import os
import pathlib
import re
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))

# the notebooks run at their quick size without bars (a widget would need JavaScript from a CDN)
os.environ.setdefault("XLANGEVIN_NOTEBOOK_QUICK", "1")
os.environ["XLANGEVIN_PROGRESS"] = "off"

import xlangevin  # noqa: E402

sys.path.insert(0, str(DOCS))
import api_index  # noqa: E402  (docs/api_index.py: the list of public names)

project = "xlangevin"
author = "the xlangevin developers"
copyright = "the xlangevin developers"
release = version = xlangevin.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "*.py", "api/_templates", "**.ipynb_checkpoints"]
templates_path = ["api/_templates"]
root_doc = "index"

# -- API reference -----------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

# -- notebooks ---------------------------------------------------------------------------------
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = os.environ.get("XLANGEVIN_DOCS_EXECUTE", "force")   # "off": drafts
nb_execution_timeout = 1200
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# -- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"xlangevin {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 4,
}
html_context = {"default_mode": "light"}   # unset, the theme logs a console error
html_static_path = []
html_last_updated_fmt = None


api_index.write(DOCS / "api" / "generated")

#: the line of docs/index.md's user-guide toctree that stands for the pages it does not list
_OTHER_PAGES = "(pages not listed above)"


def _other_pages(index_text: str) -> list:
    """The pages of ``docs/*.md`` that ``index.md`` does not name (added by other issues)."""
    named = set(index_text.split())
    return sorted(p.stem for p in DOCS.glob("*.md")
                  if p.stem not in named and p.stem != "index")


def _fill_user_guide(app, docname, source):
    if docname == "index":
        source[0] = source[0].replace(_OTHER_PAGES, "\n".join(_other_pages(source[0])))


#: numpy-style sections whose entries are ``name : ...``
_FIELD_SECTIONS = {"Parameters", "Other Parameters", "Attributes", "Keyword Arguments"}
_FIELD = re.compile(r"^(\S[^:]*?) : (.+)$")


def _descriptions_not_types(app, what, name, obj, options, lines):
    """The package writes ``name : description`` (the description after the colon, where
    numpydoc puts a type); napoleon would show the first line as a type, so it gets
    ``name`` / indented description instead (runs before napoleon)."""
    out, section = [], None
    for i, line in enumerate(lines):
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.strip() and nxt and set(nxt) == {"-"}:
            section = line.strip()
        match = _FIELD.match(line) if section in _FIELD_SECTIONS else None
        out += [match.group(1), "    " + match.group(2)] if match else [line]
    lines[:] = out


def setup(app):
    app.connect("source-read", _fill_user_guide)
    app.connect("autodoc-process-docstring", _descriptions_not_types, priority=400)
