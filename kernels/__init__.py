"""Numeric kernels of cse (import name ``cse_kernels``).

Plain ndarrays in and out, shapes and dtypes in every docstring, no xarray and no
model code: this package plays the compiled core under `cse.measure`, as
``pywt/_extensions`` does under PyWavelets' Python API.

Layout
------
`cse_kernels.reference`
    The NumPy reference: the transforms of SPEC section 2 written plainly. It is the
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
    (NumPy): the boundary coefficients and the Gram identity that the order-null
    kernels use.

Functions (same names and signatures in all three)
--------------------------------------------------
modwt_energies(x, dec_lo, dec_hi, level, boundary="reflect", unit=True)
    (n_series, n_steps, d) -> (n_series, n_steps, level + 1): MODWT band energies
    along axis 1 (the depth axis with series = tokens, the token axis with series = layers).
modwt_null_moments(x, dec_lo, dec_hi, level, permutations, boundary="reflect", unit=True)
    (n_series, n_steps, d), (P, n_steps) -> (mean, std), each (n_series, n_steps): CSE
    under permutations of the order of each series' steps (the order null), summarized.
dwt_energies(x, dec_lo, dec_hi, level)
    (n, d) -> (n, level + 1): periodized DWT band energies over the hidden index.
dwt_null_entropy(x, dec_lo, dec_hi, level, permutations)
    (n, d), (P, d) -> (n, P): CSE under each permutation of the hidden index.
dwt_null_moments(x, dec_lo, dec_hi, level, permutations)
    (n, d), (P, d) -> (mean, std), each (n,): the same, summarized without an (n, P) array.
scale_entropy(energies)
    (..., J + 1) -> (cse (...), fractions (..., J + 1)), NaN where undefined.
update_norms(x)
    (..., d) -> (...): L2 norms of the update vectors, accumulated in float64.
"""

from importlib import import_module

from ._numba import (
    ARRAYS,
    dwt_energies,
    dwt_null_entropy,
    dwt_null_moments,
    modwt_energies,
    modwt_null_moments,
    scale_entropy,
    update_norms,
)

__all__ = [
    "modwt_energies",
    "modwt_null_moments",
    "dwt_energies",
    "dwt_null_entropy",
    "dwt_null_moments",
    "scale_entropy",
    "update_norms",
    "filters",
    "reference",
    "torch_twin",
]


def __getattr__(name):
    # `torch_twin` imports torch (seconds); `reference` and `filters` are cheap but loaded on demand too.
    if name in ("filters", "reference", "torch_twin"):
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
