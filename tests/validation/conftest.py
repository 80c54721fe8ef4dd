"""The modules here are the slow science validations (``pytest -m slow``; see README.md).

Each module sets ``pytestmark = pytest.mark.slow``, so the default run (``-m 'not slow'``)
deselects all of them. They reuse helpers of the fast test modules they came from
(``from test_langevin import ...``, as tests/test_current.py does): with pytest's default
"prepend" import mode those modules are importable by their bare names once their folders are
on ``sys.path``, which pytest only does for a folder it collects from, so this adds them here
(``pytest tests/validation`` alone collects neither tests/ nor tests/systems/).
"""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

for folder in (TESTS, TESTS / "systems"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
