"""Every notebook (``notebooks/*.py``, jupytext percent format) executes without error at its
test size (``XLANGEVIN_NOTEBOOK_QUICK=1``) in a fresh Jupyter kernel, and shows its figures."""

import importlib.util
import pathlib

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def _executor():
    spec = importlib.util.spec_from_file_location("execute_notebooks",
                                                  ROOT / "docs" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.execute


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("XLANGEVIN_NOTEBOOK_QUICK", "1")
    notebook = _executor()(path)          # raises CellExecutionError on a failing cell
    outputs = [out for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    text = path.read_text()
    if "matplotlib" in text or "figure(" in text:
        assert [out for out in outputs if "image/png" in out.get("data", {})], \
            "the notebook's figures were not displayed"
