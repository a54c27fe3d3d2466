"""Every public function documents every parameter (issue 21), in the spirit of MNE's test_docstring_parameters.

For each module of `cse` and `cse_kernels`, every function (and class) listed in its
``__all__`` and defined there must have a numpydoc docstring whose Parameters section
names every parameter of its signature (``self``, ``cls``, ``*args`` and ``**kwargs``
excepted); a class documents the parameters of its ``__init__``. The docstrings are
parsed with `numpydoc.docscrape`, so a malformed section fails too.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

numpydoc = pytest.importorskip("numpydoc.docscrape")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"cse": ROOT / "cse", "cse_kernels": ROOT / "kernels" / "cse_kernels"}


def _modules() -> list[str]:
    names = []
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if any(part.startswith("_") for part in parts):
                continue  # private modules export nothing public
            names.append(".".join((package, *parts)))
    return names


def _exported(module_name: str):
    """(name, object) of the functions and classes a module exports and defines."""
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name, None)
        if obj is None or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        home = getattr(obj, "__module__", "") or ""
        if home != module_name and not (home.startswith(module_name + ".") or home.split(".")[:1] == ["cse_kernels"]
                                        and module_name.startswith("cse_kernels") and home.endswith("._numba")):
            continue  # re-exported: checked where it is defined
        yield name, obj


def _parameters(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    if inspect.isclass(obj) and target is object.__init__:
        return []
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _documented(obj) -> set[str]:
    doc = numpydoc.ClassDoc(obj) if inspect.isclass(obj) else numpydoc.FunctionDoc(obj)
    names = set()
    for entry in doc["Parameters"] + doc["Other Parameters"]:
        names.update(part.strip().lstrip("*") for part in entry.name.split(","))
    return names


@pytest.mark.parametrize("module_name", _modules())
def test_every_exported_function_documents_every_parameter(module_name):
    missing = []
    for name, obj in _exported(module_name):
        if inspect.isclass(obj) and _is_dataclass_record(obj):
            continue  # a record: its fields are documented as Attributes
        params = _parameters(obj)
        if not params:
            continue
        undocumented = [p for p in params if p not in _documented(obj)]
        if undocumented:
            missing.append(f"{name}({', '.join(undocumented)})")
    assert not missing, f"{module_name}: parameters missing from the Parameters section: {'; '.join(missing)}"


def _is_dataclass_record(cls) -> bool:
    """A dataclass whose generated ``__init__`` takes exactly its documented Attributes."""
    import dataclasses

    if not dataclasses.is_dataclass(cls):
        return False
    documented = {part.strip() for entry in numpydoc.ClassDoc(cls)["Attributes"] for part in entry.name.split(",")}
    return {f.name for f in dataclasses.fields(cls) if f.init} <= documented


def test_the_check_sees_the_package():
    """The walk finds the modules and the exported functions it is meant to check (it cannot pass empty)."""
    modules = _modules()
    assert "cse.pipeline.api" in modules and "cse.stats.comparison" in modules and "cse_kernels" in modules
    exported = {name for m in modules for name, _ in _exported(m)}
    assert {"compute", "conditional_scale_entropy", "compare", "open_result", "modwt_energies"} <= exported
