"""Execute the notebooks (``notebooks/*.py``, jupytext percent format) into ``.ipynb`` files
with their outputs: ``python docs/execute_notebooks.py [--out build/notebooks] [--quick]``
(``--quick``: the test size, ``XLANGEVIN_NOTEBOOK_QUICK=1``)."""

import argparse
import os
import pathlib

import jupytext
import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]


def execute(path):
    """The notebook of the jupytext script ``path``, executed in a fresh python3 kernel
    (working directory: the script's folder); raises on the first cell that fails."""
    notebook = jupytext.read(path)
    nbclient.NotebookClient(notebook, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "build" / "notebooks"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        os.environ["XLANGEVIN_NOTEBOOK_QUICK"] = "1"
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        notebook = execute(path)
        target = out / f"{path.stem}.ipynb"
        tmp = target.with_suffix(".ipynb.tmp")
        nbformat.write(notebook, tmp)
        tmp.replace(target)                       # atomic: never a half-written notebook
        print(f"{path.relative_to(ROOT)} -> {target}")


if __name__ == "__main__":
    main()
