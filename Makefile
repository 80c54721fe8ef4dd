# Two commands on a fresh machine:  `make demo` (main job)  and  `make test` (test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench datasets notebooks docs clean

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

# the documentation site into build/html (offline; warnings are errors; the notebooks are
# executed at their quick size); installs the docs extra and, if missing, Debian's chromium
# (for the browser test: pytest -m slow tests/test_docs.py)
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[test,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	@command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
		|| echo "chromium is missing (apt-get install chromium) for the browser test")
	rm -rf docs/api/generated build/html build/doctrees
	$(PY) -m sphinx -W --keep-going -b html -d build/doctrees docs build/html

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f; done

clean:
	rm -rf $(VENV) demo_output build .pytest_cache docs/api/generated
