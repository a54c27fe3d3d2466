"""The permutation engine: label permutations within exchangeability blocks, sign flips, resampling.

A batch of B permutations of n tokens is a ``(B, n)`` integer matrix of token indices
(row k, column i: the token whose label -- or residual -- token i receives under the
k-th permutation); a batch of sign flips of m pairs is a ``(B, m)`` matrix of +-1.
Batches are at most `batch_size` rows, so memory stays near ``BATCH_ELEMENTS * 8``
bytes whatever the number of tokens. p-values count permutations at least as extreme
as the observed statistic, ``p = (b + 1) / (P + 1)`` (Phipson & Smyth 2010).

When the permutation space -- the distinct within-block relabellings, prod_k
C(n_k, n_k1); the within-block permutations of residuals (Freedman-Lane), prod_k n_k!;
or the 2**m sign flips of m pairs -- holds no more elements than the permutations
asked for, a `PermutationScheme` enumerates it whole (the identity included) and the
p-value is exact: ``p = (elements with a statistic at least the observed) / (size of
the space)``; its smallest attainable value is 1 / size.

References
----------
Phipson, B. & Smyth, G. K. (2010). Permutation p-values should never be zero.
Stat. Appl. Genet. Mol. Biol. 9(1), 39.
Winkler, A. M., Ridgway, G. R., Webster, M. A., Smith, S. M. & Nichols, T. E. (2014).
Permutation inference for the general linear model. NeuroImage 92, 381-397
(exchangeability blocks: permutations only within blocks).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

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


def block_weights(blocks: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster bootstrap: whole exchangeability blocks drawn with replacement.

    Parameters
    ----------
    blocks : ndarray of int, shape (n,)
        Block code 0 .. K - 1 of each token.
    n_boot : int
        Replicates R.
    rng : numpy.random.Generator

    Returns
    -------
    weights : ndarray, shape (R, n), float64
        How often each token's block is drawn in each replicate (K draws per replicate).
    copies : ndarray, shape (R,), float64
        Blocks drawn with a token, copies counted: each resampled copy of a block is a
        distinct block in the degrees of freedom of the refitted model.
    """
    blocks = np.asarray(blocks, dtype=np.int64)
    n_blocks = int(blocks.max()) + 1
    counts = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_boot).astype(np.float64)
    return counts[:, blocks], counts.sum(axis=1)


def at_least(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """null >= observed, with ties up to rounding counted (NaN never counts)."""
    return null >= observed - TIE_RTOL * np.abs(observed)


def permutation_p(null: np.ndarray, observed: np.ndarray, exact: bool = False) -> np.ndarray:
    """Permutation p-value per column; NaN stays NaN.

    Parameters
    ----------
    null : ndarray, shape (P, m)
        The statistic of every permutation, large values against H0.
    observed : ndarray, shape (m,)
        The observed statistic.
    exact : bool
        The rows enumerate the whole permutation space, the identity among them.

    Returns
    -------
    ndarray, shape (m,)
        ``(b + 1) / (P + 1)`` for random permutations (the observed labelling is not
        among the P rows), ``b / P`` when `exact`; b counts rows at least the observed
        value (ties up to rounding count).
    """
    count = at_least(null, observed[None, :]).sum(axis=0)
    extra = 0.0 if exact else 1.0
    return np.where(np.isfinite(observed), (count + extra) / (null.shape[0] + extra), np.nan)


class PermutationScheme:
    """How a design's null is drawn: relabellings, residual permutations or sign flips, random or enumerated.

    Parameters
    ----------
    kind : {"labels", "residuals", "signs"}
        ``labels``: the labels are permuted within blocks (distinct outcomes: the
        relabellings, prod_k C(n_k, n_k1)); ``residuals``: tokens' residuals are
        permuted within blocks (Freedman-Lane; prod_k n_k!); ``signs``: sign flips of
        the paired differences (2**m).
    n : int
        Tokens (pairs for ``signs``).
    blocks : ndarray of int, shape (n,), optional
        Exchangeability blocks (None: all tokens exchangeable).
    group : ndarray of bool, shape (n,), optional
        The labels (needed for ``labels``).
    """

    def __init__(self, kind: str, n: int, blocks=None, group=None):
        self.kind, self.n = kind, int(n)
        self.blocks = None if blocks is None else np.asarray(blocks, dtype=np.int64)
        if self.blocks is not None and np.unique(self.blocks).size <= 1:
            self.blocks = None  # one block: the same draws as no blocks
        codes = np.zeros(self.n, dtype=np.int64) if self.blocks is None else self.blocks
        self.members = [np.flatnonzero(codes == k) for k in range(int(codes.max(initial=0)) + 1)]
        self.group = None if group is None else np.asarray(group, dtype=bool)
        if kind == "signs":
            self.sizes = [2] * self.n
        elif kind == "residuals":
            self.sizes = [math.factorial(m.size) if m.size < 21 else 10**19 for m in self.members]
        else:
            self.sizes = [math.comb(m.size, int(self.group[m].sum())) for m in self.members]

    @property
    def log10_size(self) -> float:
        """log10 of the number of distinct elements of the space."""
        if self.kind == "residuals":
            return float(sum(math.lgamma(m.size + 1) for m in self.members) / math.log(10))
        return float(sum(math.log10(s) for s in self.sizes if s > 0))

    def size(self, cap: int) -> int | None:
        """The size of the space when it is at most `cap`, else None."""
        if self.log10_size > math.log10(cap) + 1:
            return None
        total = math.prod(self.sizes)
        return total if total <= cap else None

    def random(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """`size` random elements: (size, n) token indices, or (size, n) +-1 for sign flips."""
        if self.kind == "signs":
            return sign_flips(self.n, size, rng)
        return permutation_indices(self.n, size, rng, blocks=self.blocks)

    def enumerate(self, start: int, stop: int) -> np.ndarray:
        """Elements start .. stop - 1 of the whole space (mixed-radix order; element 0 is the identity)."""
        if self.kind == "signs":
            bits = (np.arange(start, stop)[:, None] >> np.arange(self.n)[None, :]) & 1
            return (1 - 2 * bits).astype(np.int8)
        choices = [self._block_choices(m) for m in self.members]
        digits = np.unravel_index(np.arange(start, stop), [len(c) for c in choices])
        out = np.empty((stop - start, self.n), dtype=np.int64)
        for members, options, digit in zip(self.members, choices, digits):
            out[:, members] = options[digit]
        return out

    def _block_choices(self, members: np.ndarray) -> np.ndarray:
        """Every arrangement of one block's tokens, (C, n_k) token indices, the identity first."""
        if self.kind == "residuals":
            return members[np.array(list(itertools.permutations(range(members.size))), dtype=np.int64)]
        ones, zeros = members[self.group[members]], members[~self.group[members]]
        rows = []
        for chosen in itertools.combinations(range(members.size), ones.size):
            row = np.empty(members.size, dtype=np.int64)
            mask = np.zeros(members.size, dtype=bool)
            mask[list(chosen)] = True
            row[mask], row[~mask] = ones, zeros  # positions given label 1 receive the label-1 tokens
            rows.append(row)
        rows = np.array(rows, dtype=np.int64).reshape(-1, members.size)
        identity = np.flatnonzero((rows == members[None, :]).all(axis=1))
        return np.concatenate([rows[identity], np.delete(rows, identity, axis=0)])
