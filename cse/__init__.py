"""Conditional Scale Entropy (CSE) for transformer layer updates.

CSE is the normalized Shannon entropy of the distribution of a layer update's
energy across wavelet scales, per token and per layer. See
`cse.conditional_scale_entropy` and the user guide.

The public surface is this module (`__all__`), `cse.stats`, `cse.plot`, `cse.io` and
the kernel functions of ``cse_kernels``; every other module is private by convention.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _version

try:  # one source of the version: pyproject.toml, through the installed package's metadata
    __version__ = _version("cse")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

_LAZY = {
    "conditional_scale_entropy": "cse.measure",
    "layer_updates": "cse.capture",
    "capture_layer_updates": "cse.capture",
    "forward_with_updates": "cse.capture",
    "model_identity": "cse.models",
    "find_blocks": "cse.capture",
    "load_model": "cse.models",
    "compute": "cse.pipeline",
    "remeasure": "cse.remeasuring",
    "open_result": "cse.io",
    "CSEInputError": "cse.errors",
    "list_models": "cse.models",
}

_SUBPACKAGES = ("io", "plot", "stats")

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    # Lazy imports keep `import cse` and `cse --help` fast (torch and transformers
    # take seconds to import).
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return import_module(f"cse.{name}")
    raise AttributeError(f"module 'cse' has no attribute {name!r}")


def __dir__():
    # Tab completion lists the public surface, not the lazy-loading machinery.
    return sorted(set(__all__) | set(_SUBPACKAGES))
