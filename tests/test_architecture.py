"""The package's shape stays as docs/architecture.md draws it: layers, no import circle, sizes.

Read from the source with ``ast`` (every ``from .`` / ``from ..`` import, including those inside
functions), so a lazy import cannot hide a circle or an upward edge.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / "xlangevin"

#: the data flow, bottom to top: a unit imports only from lower layers (and from itself)
LAYERS = [
    {"_version"},
    {"io", "progress", "resources"},
    {"data", "backends"},
    {"base", "systems"},
    {"partition", "datasets", "testing", "analysis"},
    {"score"},
    {"dynamics", "samplers"},
    {"linear_response", "tangent"},
    {"accessors"},
    {"demo"},
    {"cli", "__init__"},
    {"__main__"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: numba kernels that must stay one loop nest (docs/architecture.md)
ONE_LOOP_NEST = {"em_blocks", "_reduce_rows"}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        name = parts[:-1] if parts[-1] == "__init__" else parts
        yield path, parts[:-1], name


def _imports():
    """``(importer, imported)`` dotted module names of every relative import."""
    for path, package, name in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                yield name, base + node.module.split(".")
            else:  # from . import a, b: submodules (or names of the package itself)
                for alias in node.names:
                    sub = base + [alias.name]
                    is_module = (ROOT.joinpath(*sub).with_suffix(".py").exists()
                                 or ROOT.joinpath(*sub).is_dir())
                    yield name, sub if is_module else base


def _unit(name):
    return name[0] if name else "__init__"


def test_every_unit_has_a_layer():
    units = {_unit(name) for _, _, name in _modules()}
    assert units <= set(LAYER), f"place these in LAYERS: {sorted(units - set(LAYER))}"


def test_imports_go_down_the_layers():
    upward = sorted({(".".join(a), ".".join(b)) for a, b in _imports()
                     if _unit(a) != _unit(b) and LAYER[_unit(b)] >= LAYER[_unit(a)]})
    assert not upward, f"imports from the same or a higher layer: {upward}"


def test_no_import_circle():
    graph = {}
    for a, b in _imports():
        if a != b:
            graph.setdefault(".".join(a), set()).add(".".join(b))
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _function_lengths(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                length -= first.end_lineno - first.lineno + 1  # the docstring does not count
            yield node.name, node.lineno, length


def test_modules_and_functions_stay_small():
    too_long = []
    for path, _, _ in _modules():
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(text.splitlines())} lines")
        for name, line, length in _function_lengths(ast.parse(text)):
            if length > MAX_FUNCTION_LINES and name not in ONE_LOOP_NEST:
                too_long.append(f"{rel}:{line} {name}: {length} lines")
    assert not too_long, "split these into named steps: " + "; ".join(too_long)
