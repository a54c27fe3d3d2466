"""The permutation nulls of CSE: which order is permuted, the seeded permutation sets, z-scores.

Every axis has a null with ``null_permutations = P > 0`` (the definition, user guide):

- ``depth``: the layer order of each token's update stream is permuted;
- ``token``: the token order within each text (each model input sequence);
- ``hidden``: the hidden index of each update vector.

One seeded set of P permutations of ``range(n)`` serves every series of an axis of
length n: every token's stream on the depth axis, every layer (and every text of the
same length) on the token axis, every cell on the hidden axis. The set is a function
of ``(seed, P, n)`` only (`permutation_set`), so a run gives the same null whatever
its batches, workers or order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .params import check_int, check_seed
from .settings import NULL_KINDS
from .settings import null_permutations as draw_permutations

#: Below this null standard deviation, CSE differences are rounding noise (CSE is in
#: [0, 1] and computed in float64), so ``cse_z`` is NaN rather than a huge number.
NULL_STD_FLOOR = 1e-12

#: Bytes of permutation sets kept for reuse (token axis: one set per text length).
_CACHE_BYTES = 256 * 2**20
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def permutation_set(seed, n_permutations, n) -> np.ndarray:
    """The seeded set of permutations of ``range(n)`` shared by every series.

    Parameters
    ----------
    seed : int
        In [0, 2**63 - 1].
    n_permutations : int
        P >= 1.
    n : int
        Length of the permuted axis (n_layers, the text's length or d_model), >= 1.

    Returns
    -------
    ndarray of int64, shape (P, n), read-only
        Row p is a uniformly random permutation: the argsort of
        ``numpy.random.default_rng(seed).random((P, n))``. The same arguments give the
        same array (it is cached, up to 256 MiB of sets).

    Raises
    ------
    CSEInputError, TypeError
        For an invalid seed, P or n.
    """
    if seed is None or isinstance(seed, np.random.Generator):
        raise TypeError("Invalid type for 'seed': the permutation set needs an integer seed (recorded in results), "
                        f"got {type(seed).__name__}")
    key = (check_seed(seed), check_int("null_permutations", n_permutations, 1), check_int("n", n, 1))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    perms = draw_permutations(key[0], key[1], key[2])
    perms.setflags(write=False)
    with _cache_lock:
        _cache[key] = perms
        while sum(a.nbytes for a in _cache.values()) > _CACHE_BYTES and len(_cache) > 1:
            _cache.popitem(last=False)
        if perms.nbytes > _CACHE_BYTES:
            _cache.pop(key, None)
    return perms


def null_z(cse, mean, std) -> np.ndarray:
    """``(cse - mean) / std``, NaN where the null's spread is at rounding level (<= 1e-12).

    Parameters
    ----------
    cse, mean, std : ndarray, same shape, float64

    Returns
    -------
    ndarray, float64
        The z-score against the permutation null; NaN where ``std <= NULL_STD_FLOOR``
        or any input is NaN.
    """
    cse, mean, std = (np.asarray(a, dtype=np.float64) for a in (cse, mean, std))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > NULL_STD_FLOOR, (cse - mean) / np.where(std > 0, std, 1.0), np.nan)
