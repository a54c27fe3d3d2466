"""The structure of the tree (issue 9): every module imports alone, dependencies point one way,
no private names cross modules, and modules and functions stay small enough to read.

Read from the source with `ast`, so these checks run in a second and fail with the offending
module, line and name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"cse": ROOT / "cse", "cse_kernels": ROOT / "kernels" / "cse_kernels",
            "cse_studies": ROOT / "studies" / "cse_studies"}
MAX_MODULE_LINES = 460  # "about 450"; kernels/ is exempt (issue 9)
MAX_FUNCTION_BODY = 80

#: Layers of `cse`, bottom to top: a module may import its own layer and those below, never above.
LAYERS = [
    {"errors", "schema", "hashing", "docs", "data"},
    {"params", "settings"},
    {"boundary", "nulls"},
    {"where", "io", "capture", "reduce", "measure", "layout", "models"},
    {"stats", "pipeline", "plot", "example", "remeasuring"},
    {"commands", "cli", "__main__"},
]


def _modules():
    """(dotted name, path) of every module of the three packages."""
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


MODULES = dict(_modules())


def _imports(name: str, path: Path):
    """(imported module, imported names, line) for every import of a module, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [alias.name for alias in node.names], node.lineno


def _layer(name: str) -> int | None:
    parts = name.split(".")
    if parts[0] != "cse" or len(parts) < 2:
        return None
    for rank, members in enumerate(LAYERS):
        if parts[1] in members:
            return rank
    raise AssertionError(f"module {name} is in no layer of tests/test_architecture.py: add it to LAYERS")


def test_every_module_imports_alone():
    """Import each module in a fresh set of package modules: an import cycle fails here."""
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ('cse', 'cse_kernels', 'cse_studies')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as error:\n"
        "        failed.append(f'{name}: {type(error).__name__}: {error}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(bool(failed))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


def test_dependencies_point_down_the_layers():
    wrong = []
    for name, path in MODULES.items():
        own = _layer(name)
        if own is None:
            continue
        for module, _, line in _imports(name, path):
            other = _layer(module) if module.startswith("cse.") else None
            if other is not None and other > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module} (layer {other} > {own})")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_a_module():
    wrong = []
    for name, path in MODULES.items():
        for module, names, line in _imports(name, path):
            if module.split(".")[0] not in PACKAGES:
                continue
            private_module = any(part.startswith("_") and not part.startswith("__") for part in module.split("."))
            private_names = [n for n in names if n.startswith("_") and not n.startswith("__")]
            # The kernel package's own private modules (its Numba build, its shared checks)
            # are imported within that package; nothing outside it reaches them but `cse`'s
            # choice of the compiled kernels.
            inside_kernels = name.startswith("cse_kernels") and module.startswith("cse_kernels")
            allowed = inside_kernels or module.endswith("._jit") or module.endswith("._numba")
            if (private_module and not allowed) or private_names:
                wrong.append(f"{path.relative_to(ROOT)}:{line} from {module} import {', '.join(names)}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("cse_kernels")))
def test_module_and_function_sizes(name):
    path = MODULES[name]
    source = path.read_text()
    n_lines = source.count("\n")
    assert n_lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {n_lines} lines (limit {MAX_MODULE_LINES})"
    long = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]  # the docstring is not body
            if body:
                size = body[-1].end_lineno - body[0].lineno + 1
                if size > MAX_FUNCTION_BODY:
                    long.append(f"{node.name} ({size} lines, line {node.lineno})")
    assert not long, f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_BODY} lines of body: {', '.join(long)}"


def _import_graph() -> dict[str, set[str]]:
    """Module -> modules of the three packages it imports, at any depth of its code (imports
    inside functions included: they make circles that only show when that function runs)."""
    graph = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, set())
        for module, names, _ in _imports(name, path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
            if len(targets) < len(names) and module in MODULES:
                targets.append(module)  # names defined in the module (or its package) itself
            edges.update(t for t in targets if t != name)
    return graph


def test_no_import_circle_even_through_imports_inside_functions():
    """Strongly connected components of the import graph (Tarjan), a package's __init__ excepted
    where it only gathers its own submodules' names."""
    graph = _import_graph()
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    # A package's __init__ re-exporting its submodules, which import each other only below it,
    # is no circle: drop the edges from a submodule up to its own package's __init__ and look again.
    real = []
    for component in circles:
        members = set(component)
        sub = {m: {o for o in graph[m] & members if not (m.startswith(o + ".") and MODULES[o].name == "__init__.py")}
               for m in members}
        if _has_cycle(sub):
            real.append(component)
    assert not real, "import circles:\n" + "\n".join(" <-> ".join(c) for c in real)


def _has_cycle(graph: dict[str, set[str]]) -> bool:
    state = {}

    def visit(node):
        state[node] = 1
        for other in graph.get(node, ()):
            if state.get(other) == 1 or (other not in state and visit(other)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in graph)
