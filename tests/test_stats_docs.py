"""Every function and class in ``__all__`` of ``cse.stats`` and ``cse.plot`` documents every parameter (issue 21).

In the spirit of MNE's ``test_docstring_parameters``: the Parameters section is parsed
with numpydoc's ``docscrape``, and every name of the signature must be described there
(names documented together, ``a, b : ...``, count for each).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

numpydoc = pytest.importorskip("numpydoc.docscrape")

# The public faces (issue 25: ``__all__`` only there); tests/test_docstrings.py checks the rest.
MODULES = ["cse.stats", "cse.plot"]


def _exported():
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if inspect.isfunction(obj) or (inspect.isclass(obj) and "__init__" in obj.__dict__):
                yield f"{name}.{attr}", obj


@pytest.mark.parametrize("name, obj", list(_exported()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_parameter_is_documented(name, obj):
    function = obj.__init__ if inspect.isclass(obj) else obj
    doc = numpydoc.ClassDoc(obj) if inspect.isclass(obj) else numpydoc.FunctionDoc(obj)
    documented = set()
    for param in doc["Parameters"]:
        documented.update(part.strip().lstrip("*") for part in param.name.split(","))
    expected = [p for p in inspect.signature(function).parameters if p not in ("self", "cls")]
    missing = [p for p in expected if p not in documented]
    assert not missing, f"{name} does not document {missing}"
