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
