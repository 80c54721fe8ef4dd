"""The documentation site: every public name is in the API reference, the site builds with
warnings as errors, and the built pages load in a real browser (headless Chromium).

* quick: the API source list (``docs/api_index.py``) against ``xlangevin.__all__``, and a
  Sphinx build without executing the notebooks (``XLANGEVIN_DOCS_EXECUTE=off``, ~15 s) in
  which every public name gets its page;
* slow (``pytest -m slow tests/test_docs.py``, after ``make docs``): the built site served on
  a free local port and loaded in headless Chromium; console errors or broken images fail it;
  screenshots go to ``build/screenshots``.
"""

import contextlib
import functools
import http.server
import importlib.util
import inspect
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import pytest

import xlangevin

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HTML = ROOT / "build" / "html"


def _api_index():
    spec = importlib.util.spec_from_file_location("api_index", DOCS / "api_index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_name_is_in_the_api_source():
    api = _api_index()
    text = api.index_rst()
    listed = set(re.findall(r"^   (\S+)$", text, flags=re.M)) - {":nosignatures:"}
    expected = {n for n in xlangevin.__all__ if not n.startswith("_")}
    documented = {name for name, dotted in api.entries().items() if dotted in listed}
    assert documented == expected, f"missing from the API reference: {expected - documented}"


def _undocumented(obj, prefix):
    """Public names under ``obj`` (a module's ``__all__``, recursively) without a docstring."""
    if not (inspect.getdoc(obj) or "").strip():
        yield prefix
    if inspect.ismodule(obj):
        for name in getattr(obj, "__all__", []):
            yield from _undocumented(getattr(obj, name), f"{prefix}.{name}")


def test_every_public_name_has_a_docstring():
    missing = [p for name in xlangevin.__all__ if not name.startswith("_")
               for p in _undocumented(getattr(xlangevin, name), f"xlangevin.{name}")]
    assert not missing, f"write a docstring for: {missing}"


def test_the_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("pydata_sphinx_theme")
    out = tmp_path / "html"
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        env={**__import__("os").environ, "XLANGEVIN_DOCS_EXECUTE": "off"},
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    pages = {p.stem for p in (out / "api" / "generated").glob("*.html")}
    missing = {dotted for dotted in _api_index().entries().values() if dotted not in pages}
    assert not missing, f"no API page for {missing}"
    for page in ("index", "getting_started", "changelog", "systems"):
        assert (out / f"{page}.html").exists()
    assert {p.stem for p in (out / "notebooks").glob("*.html")} >= \
        {p.stem for p in (ROOT / "notebooks").glob("*.py")}


# ----------------------------------------------------------------------------------------------
# the browser check (slow)
# ----------------------------------------------------------------------------------------------
def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(directory):
    """``directory`` served on a free local port; yields the base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site():
    """``build/html`` served locally; yields the base URL."""
    if not (HTML / "index.html").exists():
        pytest.skip("build the site first: make docs")
    with _serve(HTML) as url:
        yield url


def _load(url, screenshot, tmp_path, height=1600):
    """Load ``url`` in headless Chromium: ``(dom, console lines)``, and a screenshot."""
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
            f"--window-size=1280,{height}", "--hide-scrollbars"]
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(base + [f"--screenshot={screenshot}", url], capture_output=True, text=True,
                   timeout=120)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line
               or "Uncaught" in line]
    return dom.stdout, console


#: put first in <head>: records script errors, console.error calls, failed resources and
#: broken images into attributes of <body> that --dump-dom shows (headless Chromium does not
#: print the page's console to stderr)
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(e.message ||
    ('failed to load ' + (e.target && (e.target.src || e.target.href)))), true);
window.addEventListener('unhandledrejection', e => window.__errors.push('rejection ' + e.reason));
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push('console.error ' + a.join(' '));
                            __consoleError(...a); };
window.addEventListener('load', () => setTimeout(() => {
  const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);
  document.body.setAttribute('data-broken-images', bad.map(i => i.src).join(' '));
  document.body.setAttribute('data-errors', window.__errors.join(' | '));
}, 500));
</script>"""


def _with_probe(page: str) -> str:
    head = re.search(r"<head[^>]*>", page)
    assert head, "the page has no <head>"
    return page[:head.end()] + _PROBE + page[head.end():]


def _attribute(dom, name):
    found = re.search(rf'{name}="([^"]*)"', dom)
    assert found is not None, "the probe did not run (no load event?)"
    return found.group(1)


def _errors_and_broken(dom, console):
    errors = [line for line in console if "Uncaught" in line or ":ERROR:CONSOLE" in line]
    errors += [e for e in _attribute(dom, "data-errors").split(" | ") if e]
    return errors, _attribute(dom, "data-broken-images")


@pytest.mark.slow
def test_the_browser_check_catches_errors_and_broken_images(tmp_path):
    if _chromium() is None:
        pytest.skip("no chromium: apt-get install chromium (make docs installs it)")
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "bad.html").write_text(_with_probe(
        "<html><head></head><body><img src='missing.png'><script>no_such_function();</script>"
        "</body></html>"))
    with _serve(site_dir) as url:
        dom, console = _load(f"{url}/bad.html", tmp_path / "bad.png", tmp_path)
    errors, broken = _errors_and_broken(dom, console)
    assert any("no_such_function" in e for e in errors), errors
    assert broken.endswith("/missing.png")


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "api/generated/xlangevin.LangevinModel.html",
                                  "notebooks/quickstart.html"])
def test_pages_load_in_chromium(site, page, tmp_path):
    if _chromium() is None:
        pytest.skip("no chromium: apt-get install chromium (make docs installs it)")
    # a copy of the page with the probe added, served beside the original
    original = HTML / page
    probe = original.with_name(f"_probe_{original.name}")
    probe.write_text(_with_probe(original.read_text()))
    try:
        shot = ROOT / "build" / "screenshots" / (page.replace("/", "_").replace(".html", ".png"))
        dom, console = _load(f"{site}/{probe.relative_to(HTML)}", shot, tmp_path)
    finally:
        probe.unlink()
    assert "<body" in dom, "Chromium returned no page"
    errors, broken = _errors_and_broken(dom, console)
    assert not errors, f"console errors on {page}: {errors}"
    assert broken == "", f"images that did not load on {page}: {broken}"
    if "<img" in original.read_text():           # the whole page, figures included
        _load(f"{site}/{page}", shot.with_name(shot.stem + "_full.png"), tmp_path, height=6000)
    if page.startswith("notebooks/"):
        assert re.search(r"<img[^>]+\.png", dom), "the notebook page shows no figure"
    assert shot.exists() and shot.stat().st_size > 10_000


def test_model_classes_show_their_constructor_signature():
    """Models are built through a freezing metaclass whose ``__call__`` is ``(*args,
    **kwargs)``; help() and the API pages must show the constructor's parameters instead."""
    import inspect

    import xlangevin

    for cls in set(xlangevin.io._MODELS.values()):
        params = list(inspect.signature(cls).parameters)
        assert params and params[0] not in ("self", "args"), (cls.__name__, params)
