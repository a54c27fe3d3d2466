"""Every function and class exported in ``__all__`` of the statistics modules documents every parameter (issue 21).

In the spirit of MNE's ``test_docstring_parameters``: the Parameters section is parsed
with numpydoc's ``docscrape``, and every name of the signature must be described there
(names documented together, ``a, b : ...``, count for each).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

numpydoc = pytest.importorskip("numpydoc.docscrape")

MODULES = ["cse.stats", "cse.stats.comparison", "cse.stats.corrections", "cse.stats.depth", "cse.stats.describe",
           "cse.stats.effects", "cse.stats.engine", "cse.stats.frequency", "cse.stats.layers",
           "cse.stats.linear_model", "cse.stats.mixed", "cse.stats.permutation", "cse.stats.replication",
           "cse.stats.result", "cse.stats.robust", "cse.stats.selection", "cse.stats.statistics", "cse.stats.wild",
           "cse.plot"]


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
