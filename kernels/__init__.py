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

Functions (same names and signatures in all three)
--------------------------------------------------
modwt_energies(x, dec_lo, dec_hi, level, boundary="reflect", unit=True)
    (n_series, n_steps, d) -> (n_series, n_steps, level + 1): MODWT band energies
    along axis 1 (the depth axis with series = tokens, the token axis with series = layers).
dwt_energies(x, dec_lo, dec_hi, level)
    (n, d) -> (n, level + 1): periodized DWT band energies over the hidden index.
dwt_null_entropy(x, dec_lo, dec_hi, level, permutations)
    (n, d), (P, d) -> (n, P): CSE under each permutation of the hidden index.
scale_entropy(energies)
    (..., J + 1) -> (cse (...), fractions (..., J + 1)), NaN where undefined.
update_norms(x)
    (..., d) -> (...): L2 norms of the update vectors, accumulated in float64.
"""

from importlib import import_module

from ._numba import dwt_energies, dwt_null_entropy, modwt_energies, scale_entropy, update_norms

__all__ = [
    "modwt_energies",
    "dwt_energies",
    "dwt_null_entropy",
    "scale_entropy",
    "update_norms",
    "reference",
    "torch_twin",
]


def __getattr__(name):
    # `torch_twin` imports torch (seconds); `reference` is cheap but loaded on demand too.
    if name in ("reference", "torch_twin"):
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
