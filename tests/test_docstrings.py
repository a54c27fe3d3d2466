"""The public surface is named once, and every public name is documented (issues 21 and 25).

The public names are the ``__all__`` of the faces `FACES` (``cse``, ``cse.stats``,
``cse.plot``, ``cse.io`` and the kernel functions of ``cse_kernels``); every other module
is private by convention and has no ``__all__``. On every public name:

- numpydoc validation with MNE-Python's check set (``numpydoc_validation_checks =
  {"all"} | error_ignores`` in MNE's ``doc/conf.py``: every check except those in
  `ERROR_IGNORES`);
- every parameter of the signature in the Parameters section (MNE's
  ``test_docstring_parameters``);
- an Examples section on every function and class.

The functions of the private modules keep the Parameters rule (issue 21): a module-level
function or class whose name does not start with ``_`` and whose docstring has a Parameters
section documents every parameter there (a partial section fails; helpers documented in
prose alone are not checked).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

numpydoc = pytest.importorskip("numpydoc.docscrape")
validation = pytest.importorskip("numpydoc.validate")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"cse": ROOT / "cse", "cse_kernels": ROOT / "kernels" / "cse_kernels"}
FACES = ("cse", "cse.stats", "cse.plot", "cse.io", "cse_kernels")
# MNE-Python's doc/conf.py: the checks it does not live by (numpydoc runs all the others).
ERROR_IGNORES = {"GL01", "EX01", "EX02", "ES01", "SA01", "SA04", "YD01", "RT02"}


def public_names() -> dict[str, object]:
    """``{"cse.stats.compare": <function>, ...}``: every name in the faces' ``__all__``."""
    names = {}
    for face in FACES:
        module = importlib.import_module(face)
        for name in module.__all__:
            names[f"{face}.{name}"] = getattr(module, name)
    return names


def _documented_objects() -> list[tuple[str, object]]:
    return [(k, v) for k, v in public_names().items() if inspect.isfunction(v) or inspect.isclass(v)]


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


def _defined(module_name: str):
    """(name, object) of the functions and classes a module defines under a name without ``_``."""
    module = importlib.import_module(module_name)
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", "") == module_name:
            yield name, obj


def _parameters(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    if inspect.isclass(obj) and target in (object.__init__, Exception.__init__, ValueError.__init__):
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


def _is_dataclass_record(cls) -> bool:
    """A dataclass whose generated ``__init__`` takes exactly its documented Attributes."""
    import dataclasses

    if not dataclasses.is_dataclass(cls):
        return False
    documented = {part.strip() for entry in numpydoc.ClassDoc(cls)["Attributes"] for part in entry.name.split(",")}
    return {f.name for f in dataclasses.fields(cls) if f.init} <= documented


def _undocumented(obj) -> list[str]:
    if inspect.isclass(obj) and _is_dataclass_record(obj):
        return []  # a record: its fields are documented as Attributes
    return [p for p in _parameters(obj) if p not in _documented(obj)]


@pytest.mark.parametrize("name, obj", _documented_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_public_name_passes_numpydoc_validation(name, obj):
    """MNE's check set on the object where it is defined (what the API page renders)."""
    result = validation.validate(f"{obj.__module__}.{obj.__qualname__}")
    errors = [f"{code} {message}" for code, message in result["errors"] if code not in ERROR_IGNORES]
    assert not errors, f"{name}: " + "; ".join(errors)
    assert not _undocumented(obj), f"{name}: parameters missing from the Parameters section: {_undocumented(obj)}"
    doc = numpydoc.ClassDoc(obj) if inspect.isclass(obj) else numpydoc.FunctionDoc(obj)
    assert doc["Examples"], f"{name}: no Examples section"


@pytest.mark.parametrize("module_name", _modules())
def test_every_function_documents_every_parameter(module_name):
    missing = [f"{name}({', '.join(_undocumented(obj))})" for name, obj in _defined(module_name)
               if _documented(obj) and _undocumented(obj)]
    assert not missing, f"{module_name}: parameters missing from the Parameters section: {'; '.join(missing)}"


def test_all_only_on_the_faces():
    """``__all__`` names the public surface once: on the faces, nowhere else."""
    offenders = []
    for module_name in _modules():
        if module_name not in FACES and "__all__" in vars(importlib.import_module(module_name)):
            offenders.append(module_name)
    assert not offenders, f"__all__ outside the public faces: {offenders}"


def test_faces_complete_and_resolve():
    """Every public name resolves; lazy faces list their names in ``dir()`` (tab completion)."""
    import cse
    import cse_kernels

    names = public_names()
    assert 40 <= len(names) <= 50, len(names)
    assert {"cse.compute", "cse.stats.compare", "cse.plot.plot_tokens", "cse.io.read_texts",
            "cse_kernels.modwt_energies"} <= set(names)
    assert set(cse.__all__) | {"io", "plot", "stats"} <= set(dir(cse))
    assert set(cse_kernels.__all__) <= set(dir(cse_kernels))
    assert not [n for n in dir(cse) if n.startswith("_") and n != "__version__" and not n.startswith("__")]


def test_the_check_sees_the_package():
    """The walk finds the modules and the functions it is meant to check (it cannot pass empty)."""
    modules = _modules()
    assert "cse.pipeline.api" in modules and "cse.stats.comparison" in modules and "cse_kernels" in modules
    defined = {name for m in modules for name, _ in _defined(m)}
    assert {"compute", "conditional_scale_entropy", "compare", "open_result", "modwt_energies"} <= defined


@pytest.mark.parametrize("name, obj", _documented_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_public_examples_run(name, obj):
    """The Examples of every public name run as doctests (lines that need a model carry ``+SKIP``)."""
    import doctest
    import sys

    module = sys.modules[obj.__module__]
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(obj, name, module=module, globs=dict(vars(module))):
        runner.run(test, out=lambda text: None)
    assert runner.failures == 0, f"{name}: {runner.failures} failing example(s); run python -m doctest on it"


def test_api_page_lists_exactly_the_public_names():
    """docs/api.rst (the API reference) and the faces' ``__all__`` name the same objects."""
    import re

    page, module, listed = (ROOT / "docs" / "api.rst").read_text(), None, set()
    for line in page.splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = match[1]
        elif module and (match := re.match(r"   ([A-Za-z_]\w*)$", line)):
            listed.add(f"{module}.{match[1]}")
    expected = {name for name in public_names() if not name.endswith(".__version__")}
    assert listed == expected, f"only on the page: {sorted(listed - expected)}; only in __all__: {sorted(expected - listed)}"


def test_readme_names_resolve_and_it_is_short():
    """README.md stays a front door (at most 200 lines) and every ``cse.*`` name in it resolves after ``import cse``."""
    import re

    import cse

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    names = set(re.findall(r"(?<![\w/.-])cse(?:\.[A-Za-z_]\w*)+(?![\w-])", readme))
    unresolved = []
    for name in sorted(names):
        obj = cse
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
        if obj is None:
            unresolved.append(name)
    assert names and not unresolved, f"README names that do not resolve after `import cse`: {unresolved}"
