# Two commands on a fresh machine:  `make demo` (main job)  and  `make test` (test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench datasets notebooks clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m xlangevin demo --out demo_output

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

datasets: $(STAMP)
	$(PY) datasets/make_datasets.py

# the notebooks (jupytext percent scripts) executed into build/notebooks/*.ipynb, with outputs
notebooks: $(STAMP)
	$(PY) docs/execute_notebooks.py --out build/notebooks

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f; done

clean:
	rm -rf $(VENV) demo_output build .pytest_cache
