"""Checks shared by the NumPy kernel modules (`reference`, `_numba`): what protects memory."""

from __future__ import annotations

import numpy as np


def check_permutations(permutations, n: int, minimum: int = 0) -> np.ndarray:
    """`permutations` as a C-ordered int64 (P, n) array of indices in 0..n-1, with P >= minimum.

    Raises
    ------
    ValueError
        For another shape, fewer than `minimum` rows, or an index outside 0..n-1.
    TypeError
        For a non-integer array.
    """
    permutations = np.asarray(permutations)
    if permutations.ndim != 2 or permutations.shape[1] != n:
        raise ValueError(f"Invalid shape for 'permutations': expected (P, {n}), got {permutations.shape}")
    if permutations.shape[0] < minimum:
        raise ValueError(f"Invalid shape for 'permutations': expected at least {minimum} rows, "
                         f"got {permutations.shape[0]}")
    if permutations.size and permutations.dtype.kind not in "iu":
        raise TypeError(f"Invalid type for 'permutations': expected integers, got dtype {permutations.dtype}")
    permutations = np.ascontiguousarray(permutations, dtype=np.int64)
    if permutations.size and (permutations.min() < 0 or permutations.max() >= n):
        raise ValueError(f"Invalid value for 'permutations': indices must lie in 0..{n - 1}")
    return permutations


def check_float64(dtype) -> None:
    """The ``dtype`` parameter of the NumPy kernel modules: None or float64 only.

    Raises
    ------
    ValueError
        For any other dtype (the NumPy kernels accumulate and return float64 by design).
    """
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise ValueError(f"Invalid value for 'dtype': the NumPy kernels compute in float64 only; expected None or "
                         f"float64, got {dtype!r}")


def check_gram(gram) -> np.ndarray:
    """`gram` as a C-ordered float64 (n_series, n, n) array (copied only if needed).

    Raises
    ------
    ValueError
        If it is not 3-D with square matrices.
    """
    gram = np.asarray(gram)
    if gram.ndim != 3 or gram.shape[1] != gram.shape[2]:
        raise ValueError(f"Invalid shape for 'gram': expected (n_series, n_steps, n_steps), got {gram.shape}")
    return np.ascontiguousarray(gram, dtype=np.float64)


def check_method(method) -> None:
    """The ``method`` parameter of `modwt_null_moments`: None, 'gram' or 'direct'."""
    if method not in (None, "gram", "direct"):
        raise ValueError(f"Invalid value for 'method': expected None, 'gram' or 'direct', got {method!r}")
