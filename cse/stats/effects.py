"""Effect sizes: Cohen's d, Hedges' g and their percentile bootstrap intervals.

Every effect size here is a standardized difference with Hedges' small-sample
correction ``g = J(df) d``, ``J(df) = 1 - 3 / (4 df - 1)`` (Hedges 1981), where df are
the degrees of freedom of the SD in the denominator:

- two groups: d = (mean_b - mean_a) / pooled SD, df = n_a + n_b - 2;
- pairs: d_z = mean / SD of the differences, df = n_pairs - 1;
- within exchangeability blocks (and with covariates): d = the label's coefficient in
  the linear model with block fixed effects (and covariates) over the model's residual
  SD, df = the residual degrees of freedom (see `cse.stats.linear_model`). Without
  blocks and covariates this is the two-group d.

The interval is the percentile bootstrap (Efron & Tibshirani 1993, ch. 13) of g and of
the effect estimate ``diff``, the design's effects recomputed from the resampling
counts. With exchangeability blocks the default interval is not a bootstrap but
t(G - 1) on the block-clustered standard error (`cse.stats.wild`; it covered 0.93-0.96
from 5 to 60 blocks where the block bootstrap covered 0.82-0.90 below 15); asked for by
name (``blocks``), whole blocks are resampled (the cluster
bootstrap; Field & Welsh 2007; Cameron, Gelbach & Miller 2008): each resampled copy of
a block is a distinct block in the degrees of freedom, so tokens of one block vary
together and a block of few tokens varies at all. The previous scheme, tokens within
each block-by-group cell, is kept by name (``cells``): a cell of one token never varies,
and with many small blocks its interval covers far less than asked (README). Without
blocks the tokens are resampled within each group; pairs are resampled whole.

References
----------
Hedges, L. V. (1981). Distribution theory for Glass's estimator of effect size and
related estimators. J. Educ. Stat. 6, 107-128.
Efron, B. & Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
Field, C. A. & Welsh, A. H. (2007). Bootstrapping clustered data. J. R. Stat. Soc. B 69,
369-390.
Cameron, A. C., Gelbach, J. B. & Miller, D. L. (2008). Bootstrap-based improvements for
inference with clustered errors. Rev. Econ. Stat. 90, 414-427.
"""

from __future__ import annotations

import warnings

import numpy as np

from .permutation import batch_size, block_weights, stratified_weights


def hedges_j(df):
    """Small-sample correction of Cohen's d (Hedges 1981): J = 1 - 3 / (4 df - 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - 3.0 / (4.0 * np.asarray(df, dtype=np.float64) - 1.0)


def effect_two_sample(n_a, s_a, q_a, n_b, s_b, q_b):
    """Cohen's d and Hedges' g (pooled SD) from counts, sums and sums of squares; arrays broadcast."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m_a, m_b = s_a / n_a, s_b / n_b
        ss = np.maximum(q_a - s_a * m_a, 0.0) + np.maximum(q_b - s_b * m_b, 0.0)
        df = n_a + n_b - 2
        sd = np.sqrt(ss / df)
        d = (m_b - m_a) / sd
    d = np.where((n_a < 2) | (n_b < 2) | ~(sd > 0), np.nan, d)
    return d, hedges_j(df) * d


def effect_paired(n, s, q):
    """Cohen's d_z (mean / SD of the differences) and Hedges' g_z = J(n - 1) d_z."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        sd = np.sqrt(np.maximum(q - s * mean, 0.0) / (n - 1))
        d = mean / sd
    d = np.where((n < 2) | ~(sd > 0), np.nan, d)
    return d, hedges_j(n - 1) * d


def percentile_interval(reps: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the replicates (R, L) at coverage `ci`, NaN replicates skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(reps, [50 * (1 - ci), 50 * (1 + ci)], axis=0)
    return lo, hi


def bootstrap_interval(design, n_boot: int, rng: np.random.Generator, ci: float, by_blocks: bool = False) -> dict:
    """Percentile bootstrap intervals of the design's Hedges' g and effect estimate over layers.

    Parameters
    ----------
    design : object
        A design of `cse.stats.statistics`, `cse.stats.linear_model` or
        `cse.stats.robust` (``strata``, ``n_units``, ``effects(weights, block_copies)``;
        ``codes`` for `by_blocks`; ``bootstrap_columns``, the widest matrix per
        replicate, where it exceeds ``n_units``).
    n_boot : int
        Replicates R (> 0).
    rng : numpy.random.Generator
    ci : float
        Coverage in (0, 1).
    by_blocks : bool
        Resample whole exchangeability blocks (`block_weights`) instead of units
        within the design's strata (`stratified_weights`).

    Returns
    -------
    dict of ndarray, shape (L,), float64
        ``g_ci_low``, ``g_ci_high``, ``diff_ci_low``, ``diff_ci_high``.
    """
    g_reps, diff_reps = [], []
    batch = batch_size(getattr(design, "bootstrap_columns", design.n_units))
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        if by_blocks:
            weights = block_weights(design.codes, size, rng)[0]
        else:
            weights = stratified_weights(design.strata, size, rng)
        g, diff = design.effects(weights, by_blocks)
        g_reps.append(g)
        diff_reps.append(diff)
    g_low, g_high = percentile_interval(np.concatenate(g_reps, axis=0), ci)
    d_low, d_high = percentile_interval(np.concatenate(diff_reps, axis=0), ci)
    return {"g_ci_low": g_low, "g_ci_high": g_high, "diff_ci_low": d_low, "diff_ci_high": d_high}
