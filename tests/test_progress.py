"""Progress bars (``xlangevin.progress``): where they go, plain lines when stderr is not a
terminal (no carriage returns), silence on request; the models' HTML repr in notebooks."""

import sys
import time
import types

import numpy as np
import pytest

import xlangevin
from xlangevin import progress, systems


class _Terminal:
    def __init__(self):
        self.text = []

    def isatty(self):
        return True

    def write(self, s):
        self.text.append(s)

    def flush(self):
        pass


def test_mode_follows_the_environment_and_stderr(monkeypatch):
    monkeypatch.delenv("XLANGEVIN_PROGRESS", raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert progress.mode() == "lines"                       # pytest captures stderr
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress.mode() == "terminal"
    for value in ("off", "lines", " LINES "):
        monkeypatch.setenv("XLANGEVIN_PROGRESS", value)
        assert progress.mode() == value.strip().lower()
    monkeypatch.setenv("XLANGEVIN_PROGRESS", "quiet")
    with pytest.raises(ValueError, match="XLANGEVIN_PROGRESS='quiet': use one of"):
        progress.mode()


def test_widget_mode_in_a_jupyter_kernel(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.delenv("XLANGEVIN_PROGRESS", raising=False)
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: shell))
    assert progress.mode() == "widget"
    shell.config = {}                                       # a terminal IPython: not a kernel
    assert progress.mode() == "lines"


def test_lines_mode_prints_few_plain_lines(monkeypatch, capsys):
    monkeypatch.delenv("XLANGEVIN_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.05)
    bar = progress.bar(total=40, desc="work", unit="step", leave=False)
    for i in range(40):
        time.sleep(0.005)
        bar.update(1)
        bar.set_postfix(loss=f"{i:.1f}")                     # no line of its own
    bar.close()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and "\x1b" not in err
    assert 2 <= len(lines) <= 40 * 0.005 / 0.05 + 3         # one per interval and the last
    assert lines[-1].startswith("work: 100% 40/40") and "loss=39.0" in lines[-1]


def test_short_or_silenced_calls_print_nothing(monkeypatch, capsys):
    monkeypatch.delenv("XLANGEVIN_PROGRESS", raising=False)
    assert list(progress.bar(range(5), desc="short")) == list(range(5))   # under LINE_INTERVAL
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    assert list(progress.bar(range(5), progress=False)) == list(range(5))
    monkeypatch.setenv("XLANGEVIN_PROGRESS", "off")
    assert list(progress.bar(range(5))) == list(range(5))
    assert capsys.readouterr().err == ""


def test_a_simulator_logs_plain_lines(monkeypatch, capsys):
    monkeypatch.delenv("XLANGEVIN_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    systems.double_well.simulate(n_samples=2000, seed=0)
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1].startswith("double_well: 100%")


def test_package_logger():
    assert progress.logger is __import__("logging").getLogger("xlangevin")


def test_model_html_repr_is_escaped_and_small():
    noise = np.random.default_rng(0).standard_normal((500, 2))
    x = np.zeros_like(noise)
    for t in range(1, len(x)):                                   # AR(1), coefficient 0.8
        x[t] = 0.8 * x[t - 1] + noise[t]
    model = xlangevin.lim(x)
    model = model._replace(attrs={**model.attrs, "note": "<script>alert(1)</script>",
                                  "long": "y" * 1000})
    page = model._repr_html_()
    assert page.startswith("<div class='xlangevin-model'><b>LangevinModel</b>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;LangevinModel d=2" in page                      # the text repr, escaped
    assert "y" * 117 + "..." in page and "y" * 118 not in page
    assert len(page) < 4000


def test_a_notebook_shows_one_widget_per_long_call(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("ipywidgets")
    monkeypatch.delenv("XLANGEVIN_PROGRESS", raising=False)
    code = ("from xlangevin import progress, systems\nprint(progress.mode())\n"
            "a = systems.double_well.simulate(n_samples=5000, seed=0)\n"
            "b = systems.double_well.simulate(n_samples=5000, seed=1)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=300).execute()
    outputs = notebook.cells[0].outputs
    assert outputs[0]["text"].strip() == "widget"
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json"
               in o.get("data", {})]
    assert len(widgets) == 2
    assert not any("\r" in o.get("text", "") for o in outputs)
