"""Numeric kernels of cse (import name ``cse_kernels``).

Plain ndarrays in and out, shapes and dtypes in every docstring, no xarray and no
model code: this package plays the compiled core under `cse.measure`, as
``pywt/_extensions`` does under PyWavelets' Python API.

Layout
------
`cse_kernels.reference`
    The NumPy reference: the transforms of the definition (user guide) written plainly. It is the
    specification in code; every other implementation must reproduce it.
`cse_kernels._numba`
    The fast path, re-exported here as the package's public functions: Numba
    kernels, parallel over tokens (``prange``), float32 or float64 in, float64
    accumulation. Numba is configured in one place, `cse_kernels._jit`.
`cse_kernels.torch_twin`
    The GPU path: the same transforms in torch, on the tensors' device, so that
    layer updates are reduced to scale energies where the model runs. Imported
    lazily: ``import cse_kernels`` never imports torch.
`cse_kernels.filters`
    MODWT equivalent filters and the matrices they define on a finite series
    (NumPy): the boundary coefficients and the Gram identity.

The three kernel modules have the same functions with the same signatures, each
documented once (`cse_kernels._docs`, one table filled into every module):

"""

from importlib import import_module

from ._docs import summary as _summary
from ._numba import (
    ARRAYS,
    dwt_energies,
    dwt_null_entropy,
    dwt_null_moments,
    gram_energies,
    gram_matrices,
    gram_null_moments,
    modwt_energies,
    modwt_null_moments,
    scale_entropy,
    update_norms,
)

__doc__ += _summary() + "\n"

__all__ = [
    "modwt_energies",
    "modwt_null_moments",
    "gram_matrices",
    "gram_energies",
    "gram_null_moments",
    "dwt_energies",
    "dwt_null_entropy",
    "dwt_null_moments",
    "scale_entropy",
    "update_norms",
]
_SUBMODULES = ("filters", "reference", "torch_twin")


def __getattr__(name):
    # `torch_twin` imports torch (seconds); `reference` and `filters` are cheap but loaded on demand too.
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | set(_SUBMODULES))
