"""t statistics without nuisance structure: Welch's t (label permutations) and the paired t (sign flips).

Each statistic is a *design*: an object that holds the data of one comparison and
computes, for a whole batch of permutations at once, the t of every layer. The
designs with exchangeability blocks and covariates live in `cse.stats.linear_model`.
A design has

- ``t(permutations) -> (B, L)``: t for a batch of permutations (``identity`` gives the
  observed t, computed by the same arithmetic as the null);
- ``observed() -> dict``: means, difference, counts, degrees of freedom, Cohen's d and
  Hedges' g over layers;
- ``effects(weights) -> (g, diff)``, each (R, L): Hedges' g and the effect estimate for
  bootstrap resampling counts;
- ``strata``: the bootstrap strata; ``blocks``: the exchangeability blocks of the
  permutations (None: all tokens exchangeable); ``scheme``: the
  `cse.stats.permutation.PermutationScheme` of its null; ``paired``; ``statistic`` and
  ``effect_size`` (plain words); ``reference``: the distribution the statistic is
  referred to on one scale across layers (``"t"`` with ``df_layers``, ``"normal"``,
  or ``"welch"``: left as it is).

Tokens whose value is NaN (undefined, the definition, user guide) at a layer are left out at that
layer only, through masked sums.
"""

from __future__ import annotations

import warnings

import numpy as np

from .effects import effect_paired, effect_two_sample
from .permutation import PermutationScheme


def center(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked values centred per layer (exact shift invariance, better conditioning) and the mask.

    Returns ``y0`` (NaN replaced by 0) and the finite mask as float64 (1.0 / 0.0), both (n, L).
    """
    mask = np.isfinite(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(np.where(mask, y, np.nan), axis=0)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    return np.where(mask, y - centre, 0.0), mask.astype(np.float64)


def welch_from_sums(n_a, s_a, q_a, n_b, s_b, q_b):
    """Welch t, difference b - a, both variances and the Welch-Satterthwaite df from counts, sums, squares."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m_a, m_b = s_a / n_a, s_b / n_b
        v_a = np.maximum(q_a - s_a * m_a, 0.0) / (n_a - 1)
        v_b = np.maximum(q_b - s_b * m_b, 0.0) / (n_b - 1)
        se2 = v_a / n_a + v_b / n_b
        diff = m_b - m_a
        t = diff / np.sqrt(se2)
        df = se2**2 / ((v_a / n_a) ** 2 / (n_a - 1) + (v_b / n_b) ** 2 / (n_b - 1))
    bad = (n_a < 2) | (n_b < 2) | ~(se2 > 0)
    return np.where(bad, np.nan, t), diff, v_a, v_b, np.where(bad, np.nan, df)


def welch_t_batch(stacked: np.ndarray, groups_b: np.ndarray) -> np.ndarray:
    """Welch t of group b minus group a at every layer for each row of `groups_b`.

    Parameters
    ----------
    stacked : ndarray, shape (n, 3 L), float64
        ``[mask, y0, y0 ** 2]`` of the centred values (see `center`).
    groups_b : ndarray, shape (B, n), bool
        True where the token is in the second group.

    Returns
    -------
    t : ndarray, shape (B, L), float64 (NaN where a group has < 2 tokens or zero variance)
    """
    L = stacked.shape[1] // 3
    part_b = groups_b.astype(np.float64) @ stacked  # (B, 3L): counts, sums, squares of group b
    part_a = stacked.sum(axis=0) - part_b
    t, *_ = welch_from_sums(*np.split(part_a, [L, 2 * L], axis=1), *np.split(part_b, [L, 2 * L], axis=1))
    return t


def paired_t_batch(d0: np.ndarray, mask: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """One-sample t of the signed paired differences at every layer, for each row of `signs`.

    `d0` (m, L) holds the differences b - a with NaN replaced by 0 (not centred: the
    null is symmetry about 0), `mask` (m, L) the finite mask, `signs` (B, m) +-1.
    The sum of squares does not change under sign flips, so only the sums need a product.
    """
    n = mask.sum(axis=0)
    q = (d0 * d0).sum(axis=0)
    s = signs.astype(np.float64) @ d0  # (B, L)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = np.maximum(q - s * mean, 0.0) / (n - 1)
        t = mean / np.sqrt(var / n)
    return np.where((n < 2) | ~(var > 0), np.nan, t)


def _nanmean(y: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(y, axis=0)


class WelchT:
    """Welch's t of the second group minus the first, pooled over all tokens.

    Parameters
    ----------
    y : ndarray, shape (n, L), float64
        Values, tokens of the first group first (NaN = undefined at that layer).
    group : ndarray of bool, shape (n,)
        True for tokens of the second group.
    blocks : ndarray of int, shape (n,), optional
        Exchangeability blocks of the permutations only; the statistic stays the
        pooled Welch t (used by tests to reproduce the construction that mixes block
        differences into t and g; `cse.stats.compare` uses `BlockT` with blocks).
    """

    paired = False
    reference = "welch"
    statistic = "Welch t"
    effect_size = "Hedges' g: difference of means over the pooled SD, J(n_a + n_b - 2) small-sample correction"

    def __init__(self, y: np.ndarray, group: np.ndarray, blocks=None):
        self.y = y
        self.group = np.asarray(group, dtype=bool)
        y0, mask = center(y)
        self.stacked = np.concatenate([mask, y0, y0 * y0], axis=1)  # (n, 3L)
        self.blocks = blocks
        self.strata = self.group.astype(np.int64)
        self.identity = np.arange(len(y))[None, :]
        self.n_units = len(y)
        self.scheme = PermutationScheme("labels", len(y), blocks, self.group)

    def t(self, permutations: np.ndarray) -> np.ndarray:
        return welch_t_batch(self.stacked, self.group[permutations])

    def sums(self, weights_b: np.ndarray, weights_a: np.ndarray):
        L = self.stacked.shape[1] // 3
        part_a = weights_a @ self.stacked
        part_b = weights_b @ self.stacked
        return (*np.split(part_a, [L, 2 * L], axis=1), *np.split(part_b, [L, 2 * L], axis=1))

    def observed(self) -> dict:
        sums = [s[0] for s in self.sums(self.group[None, :].astype(float), (~self.group)[None, :].astype(float))]
        n_a, n_b = sums[0], sums[3]
        _, _, _, _, df = welch_from_sums(*sums)
        d, g = effect_two_sample(*sums)
        mean_a, mean_b = _nanmean(self.y[~self.group]), _nanmean(self.y[self.group])
        nn = n_a + n_b
        return {
            "mean_a": mean_a, "mean_b": mean_b, "diff": mean_b - mean_a, "n_a": n_a, "n_b": n_b,
            "cohens_d": d, "hedges_g": g, "df": df,
            "threshold_df": float(np.min(nn[nn > 0])) - 2 if (nn > 0).any() else 1.0,
        }  # fmt: skip

    def effects(self, weights: np.ndarray, block_copies: bool = False) -> tuple[np.ndarray, np.ndarray]:
        sums = self.sums(weights * self.group, weights * ~self.group)
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = sums[4] / sums[3] - sums[1] / sums[0]
        return effect_two_sample(*sums)[1], diff


class PairedT:
    """One-sample t of the paired differences b - a; the null flips the sign of each pair's difference.

    Parameters
    ----------
    y_a, y_b : ndarray, shape (m, L), float64
        Row i of each is pair i.
    """

    paired = True
    blocks = None
    reference = "t"
    statistic = "paired t (sign flips)"
    effect_size = "Hedges' g_z: mean over SD of the paired differences, J(n_pairs - 1) small-sample correction"

    def __init__(self, y_a: np.ndarray, y_b: np.ndarray):
        d = y_b - y_a
        valid = np.isfinite(d)
        self.y_a, self.y_b = np.where(valid, y_a, np.nan), np.where(valid, y_b, np.nan)
        self.d0 = np.where(valid, d, 0.0)
        self.mask = valid.astype(np.float64)
        self.stacked = np.concatenate([self.mask, self.d0, self.d0 * self.d0], axis=1)
        self.strata = np.zeros(len(d), dtype=np.int64)
        self.identity = np.ones((1, len(d)), dtype=np.int8)
        self.n_units = len(d)
        n = self.mask.sum(axis=0)
        self.df_layers = np.where(n >= 2, n - 1.0, np.nan)
        self.scheme = PermutationScheme("signs", len(d))

    def t(self, signs: np.ndarray) -> np.ndarray:
        return paired_t_batch(self.d0, self.mask, signs)

    def observed(self) -> dict:
        n = self.mask.sum(axis=0)
        d, g = effect_paired(n, self.d0.sum(axis=0), (self.d0 * self.d0).sum(axis=0))
        mean_a, mean_b = _nanmean(self.y_a), _nanmean(self.y_b)
        return {
            "mean_a": mean_a, "mean_b": mean_b, "diff": mean_b - mean_a, "n_a": n, "n_b": n,
            "cohens_d": d, "hedges_g": g, "df": np.where(n >= 2, n - 1.0, np.nan),
            "threshold_df": float(np.min(n[n > 0])) - 1 if (n > 0).any() else 1.0,
        }  # fmt: skip

    def effects(self, weights: np.ndarray, block_copies: bool = False) -> tuple[np.ndarray, np.ndarray]:
        L = self.d0.shape[1]
        p = weights @ self.stacked
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = p[:, L : 2 * L] / p[:, :L]
        return effect_paired(p[:, :L], p[:, L : 2 * L], p[:, 2 * L :])[1], mean
