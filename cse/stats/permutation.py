"""The permutation engine: label permutations within exchangeability blocks, sign flips, resampling.

A batch of B permutations of n tokens is a ``(B, n)`` integer matrix of token indices
(row k, column i: the token whose label -- or residual -- token i receives under the
k-th permutation); a batch of sign flips of m pairs is a ``(B, m)`` matrix of +-1.
Batches are at most `batch_size` rows, so memory stays near ``BATCH_ELEMENTS * 8``
bytes whatever the number of tokens. p-values count permutations at least as extreme
as the observed statistic, ``p = (b + 1) / (P + 1)`` (Phipson & Smyth 2010).

References
----------
Phipson, B. & Smyth, G. K. (2010). Permutation p-values should never be zero.
Stat. Appl. Genet. Mol. Biol. 9(1), 39.
Winkler, A. M., Ridgway, G. R., Webster, M. A., Smith, S. M. & Nichols, T. E. (2014).
Permutation inference for the general linear model. NeuroImage 92, 381-397
(exchangeability blocks: permutations only within blocks).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BATCH",
    "BATCH_ELEMENTS",
    "TIE_RTOL",
    "at_least",
    "batch_size",
    "label_permutations",
    "permutation_indices",
    "permutation_p",
    "sign_flips",
    "stratified_weights",
]

#: Most rows of one batch of permutations or bootstrap replicates.
BATCH = 1000
#: Most entries of one batch's largest matrix (about 32 MB of float64).
BATCH_ELEMENTS = 4_000_000
#: Relative tolerance when comparing a permutation statistic with the observed one
#: (as `scipy.stats.permutation_test` does): exact ties up to rounding count as >=.
TIE_RTOL = 100 * np.finfo(np.float64).eps


def batch_size(n_columns: int) -> int:
    """Rows per batch of a (B, n_columns) permutation, resampling or statistic matrix."""
    return int(np.clip(BATCH_ELEMENTS // max(int(n_columns), 1), 1, BATCH))


def permutation_indices(n: int, n_permutations: int, rng: np.random.Generator, blocks=None) -> np.ndarray:
    """Random permutations of n tokens, optionally only within exchangeability blocks.

    Parameters
    ----------
    n : int
        Number of tokens.
    n_permutations : int
        Rows to draw, B.
    rng : numpy.random.Generator
    blocks : ndarray of int, shape (n,), optional
        Block code of each token. Each token draws a uniform key, the key is offset by
        twice its block code, and an argsort of the keys permutes positions inside each
        block's segment only.

    Returns
    -------
    ndarray of int64, shape (B, n)
        Row k is a permutation of ``range(n)`` that maps every token to a token of
        its own block.
    """
    if blocks is None:
        return rng.permuted(np.broadcast_to(np.arange(n), (n_permutations, n)), axis=1)
    blocks = np.asarray(blocks)
    order = np.argsort(blocks, kind="stable")  # tokens sorted so that each block is one segment
    keys = rng.random((n_permutations, n)) + 2.0 * blocks[order].astype(np.float64)
    perm_sorted = np.argsort(keys, axis=1)  # stays inside each block's segment
    out = np.empty((n_permutations, n), dtype=np.int64)
    out[:, order] = order[perm_sorted]
    return out


def label_permutations(group: np.ndarray, n_permutations: int, rng: np.random.Generator, blocks=None) -> np.ndarray:
    """Random relabellings, shape (B, n), dtype bool: ``group[permutation_indices(...)]``.

    Row k is `group` (True = second group) under the k-th permutation; with `blocks`
    every block keeps its number of tokens of each group.
    """
    group = np.asarray(group, dtype=bool)
    return group[permutation_indices(group.size, n_permutations, rng, blocks)]


def sign_flips(n_pairs: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Random sign flips of the paired differences, shape (B, n_pairs), values +-1 (int8)."""
    return (rng.integers(0, 2, size=(n_permutations, n_pairs), dtype=np.int8) * 2 - 1).astype(np.int8)


def stratified_weights(strata: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap resampling counts within strata, shape (n_boot, n), float64.

    Row r says how often each unit is drawn in replicate r; within each stratum
    (e.g. each group, or each block-by-group cell) the units are drawn with replacement,
    as many as the stratum holds, so every replicate keeps the design's cell sizes.
    Strata are drawn in ascending order of their code.
    """
    strata = np.asarray(strata)
    out = np.zeros((n_boot, strata.size))
    for code in np.unique(strata):
        members = np.flatnonzero(strata == code)
        size = members.size
        out[:, members] = rng.multinomial(size, np.full(size, 1.0 / size), size=n_boot)
    return out


def at_least(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """null >= observed, with ties up to rounding counted (NaN never counts)."""
    return null >= observed - TIE_RTOL * np.abs(observed)


def permutation_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(b + 1) / (P + 1) per column: b permutations of `null` (P, m) at least `observed` (m,); NaN stays NaN."""
    count = at_least(null, observed[None, :]).sum(axis=0)
    return np.where(np.isfinite(observed), (count + 1.0) / (null.shape[0] + 1.0), np.nan)
