"""Restricted wild cluster bootstrap of the block-clustered (CR1) statistic, and the t(G - 1) interval.

With exchangeability blocks the statistic of `cse.stats.robust` (``cr``) is the
within-block label coefficient beta over its CR1 standard error. Permuting labels within
blocks reproduces each layer's null spread, but not the dependence across layers that a
block-specific label effect adds (a text whose effect is positive pushes every layer the
same way); cluster mass, which sums over layers, then rejects too often. The restricted
wild cluster bootstrap (WCR; Cameron, Gelbach & Miller 2008; MacKinnon & Webb 2018)
keeps blocks whole:

1. fit the model under H0 (beta = 0): block means, and covariates if any; its residuals
   u_i are the within-block values (residualized on the covariates);
2. per bootstrap draw, one weight w_k per block from Webb's six-point distribution
   (+-sqrt(1/2), +-1, +-sqrt(3/2), each 1/6; Webb 2023), the same at every layer:
   y*_i = fitted_i + w_k u_i;
3. refit the full model and studentize by the same CR1 arithmetic as the observed
   statistic.

Everything reduces to per-block sums, so a draw costs O(K L): with
``S_k = sum_{i in k} x~_i u_i`` and ``Q_k = sum_{i in k} x~_i^2`` (x~ the label centred
within blocks and residualized on the covariates, R_k and D_k the same sums with the
covariate basis), ``beta* = sum_k w_k S_k / Sxx``, the block scores
``s*_k = w_k S_k - D_k c* - beta* Q_k`` (c* the covariate refit) and
``Var* = G / (G - 1) sum_k s*_k^2 / Sxx^2``. All weights equal to 1 give the observed
statistic. When 6**K draws are no more than asked, every weight vector is enumerated
(the identity among them) and p = b / 6**K.

The same sums give the default interval with blocks (`cse.stats.engine.AUTO_INTERVAL`):
``beta +- t_{G-1}((1 + ci) / 2) SE_CR1`` (Cameron & Miller 2015, section VI), whose
coverage ``scripts/stats_coverage.py`` measures.

References
----------
Cameron, A. C., Gelbach, J. B. & Miller, D. L. (2008). Bootstrap-based improvements for
inference with clustered errors. Rev. Econ. Stat. 90, 414-427.
Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
inference. J. Hum. Resour. 50, 317-372.
MacKinnon, J. G. & Webb, M. D. (2018). The wild bootstrap for few (treated) clusters.
Econometrics J. 21, 114-135.
Webb, M. D. (2023). Reworking wild bootstrap-based inference for clustered errors.
Can. J. Econ. 56, 839-858.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from .effects import hedges_j
from .linear_model import block_indicator
from .permutation import batch_size

#: Webb's six-point weight distribution (mean 0, variance 1, each value with probability 1/6).
WEBB_WEIGHTS = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])


def webb_weights(n_blocks: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random Webb weights, one per block and draw: shape (size, n_blocks), float64.

    Parameters
    ----------
    n_blocks : int
        Blocks K.
    size : int
        Draws B.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (B, K), float64
        Values of `WEBB_WEIGHTS`, each drawn with probability 1/6.
    """
    return WEBB_WEIGHTS[rng.integers(0, 6, size=(size, n_blocks))]


def _enumerated(n_blocks: int, start: int, stop: int) -> np.ndarray:
    """Weight vectors start .. stop - 1 of all 6**K (mixed-radix order); element 0 is all ones."""
    order = np.array([4, 0, 1, 2, 3, 5])  # digit 0 -> weight 1, so that element 0 is the identity
    digits = (np.arange(start, stop)[:, None] // 6 ** np.arange(n_blocks)[None, :]) % 6
    return WEBB_WEIGHTS[order[digits]]


class WildCluster:
    """The restricted wild cluster bootstrap of a design's CR1 statistic (see the module docstring).

    Parameters
    ----------
    design : RobustBlockT or RobustFreedmanLaneT
        A design of `cse.stats.robust` with exchangeability blocks (``kind`` need not be
        ``cr``: the bootstrap always studentizes by CR1).

    Attributes
    ----------
    n_blocks : int
        Blocks K (one weight each).
    n_clusters : int
        Blocks holding both labels, G (the smallest over groups of layers with the same
        finite tokens).
    """

    def __init__(self, design):
        self.n_blocks = int(design.n_blocks)
        self.L = design.y.shape[1]
        self.parts = []
        if hasattr(design, "patterns"):  # RobustBlockT: per group of layers, labels centred within blocks
            for pat in design.patterns:
                codes = design.blocks[pat.tokens]
                ind = block_indicator(codes, self.n_blocks)
                counts = np.bincount(codes, minlength=self.n_blocks).astype(np.float64)
                n1 = np.bincount(codes, design.group[pat.tokens].astype(np.float64), minlength=self.n_blocks)
                p = n1 / np.where(counts > 0, counts, 1.0)
                x = design.group[pat.tokens] - p[codes]
                S = np.asarray(ind.T @ (x[:, None] * pat.resid))
                self._add(pat.layers, S, counts * p * (1 - p), None, None, int(((p > 0) & (p < 1)).sum()))
        else:  # RobustFreedmanLaneT: the label and the residuals already residualized on the nuisance
            ind = block_indicator(design.codes, self.n_blocks)
            x, r, q = design.x, design.resid, design.q
            S = np.asarray(ind.T @ (x[:, None] * r))
            R = np.stack([np.asarray(ind.T @ (q[:, j : j + 1] * r)) for j in range(q.shape[1])], axis=1)
            D = np.asarray(ind.T @ (x[:, None] * q))
            self._add(np.arange(self.L), S, np.asarray(ind.T @ (x * x)), R, D, self.n_blocks)
        self.n_clusters = min([part["g"] for part in self.parts], default=0)

    def _add(self, layers, S, Q, R, D, g):
        self.parts.append({"layers": layers, "S": S, "Q": Q, "sxx": float(Q.sum()), "R": R, "D": D, "g": g})

    def space_size(self, cap: int) -> int | None:
        """6**K when it is at most `cap`, else None."""
        return 6**self.n_blocks if self.n_blocks * math.log10(6) <= math.log10(max(cap, 1)) else None

    def _beta_var(self, W: np.ndarray, part: dict) -> tuple[np.ndarray, np.ndarray]:
        """beta* and its CR1 variance for weights W (B, K): each (B, L_part)."""
        S, Q, sxx, g = part["S"], part["Q"], part["sxx"], part["g"]
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = (W @ S) / sxx
            score = W[:, :, None] * S[None] - beta[:, None, :] * Q[None, :, None]
            if part["R"] is not None and part["R"].shape[1]:
                c = np.einsum("bk,kjl->bjl", W, part["R"])
                score -= np.einsum("kj,bjl->bkl", part["D"], c)
            var = g / (g - 1.0) * (score**2).sum(axis=1) / sxx**2 if g > 1 else np.full(beta.shape, np.nan)
        return beta, var

    def t(self, W: np.ndarray) -> np.ndarray:
        """The CR1 statistic for weights W (B, K): (B, L), NaN where undefined."""
        out = np.full((len(W), self.L), np.nan)
        for part in self.parts:
            beta, var = self._beta_var(W, part)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = beta / np.sqrt(var)
            out[:, part["layers"]] = np.where(np.isfinite(var) & (var > 0), z, np.nan)
        return out

    def null(self, n_draws: int, rng: np.random.Generator, exact: bool = False) -> np.ndarray:
        """The statistic of `n_draws` draws (all 6**K when `exact`), shape (B, L), in batches."""
        chunks = []
        step = batch_size(self.n_blocks * max(self.L, 1))
        for start in range(0, n_draws, step):
            stop = min(n_draws, start + step)
            W = _enumerated(self.n_blocks, start, stop) if exact else webb_weights(self.n_blocks, stop - start, rng)
            chunks.append(self.t(W))
        return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, self.L))

    def interval(self, design, ci: float) -> dict:
        """``beta +- t_{G-1}((1 + ci) / 2) SE_CR1`` per layer, and Hedges' g's bounds scaled alike.

        Returns
        -------
        dict of ndarray, shape (L,), float64
            ``diff_ci_low``, ``diff_ci_high``, ``g_ci_low``, ``g_ci_high``: the g bounds
            are the diff bounds times J(df) / residual SD (the SD taken as known); NaN
            where fewer than 2 blocks hold both labels.
        """
        low, high = np.full(self.L, np.nan), np.full(self.L, np.nan)
        ones = np.ones((1, self.n_blocks))
        for part in self.parts:
            beta, var = self._beta_var(ones, part)
            if part["g"] < 2:
                continue
            half = sps.t.ppf(0.5 + ci / 2, part["g"] - 1) * np.sqrt(var[0])
            low[part["layers"]], high[part["layers"]] = beta[0] - half, beta[0] + half
        fit = design.fit(np.ones((1, len(design.y))))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = hedges_j(fit["df"][0]) / fit["sd"][0]
        return {"diff_ci_low": low, "diff_ci_high": high, "g_ci_low": low * scale, "g_ci_high": high * scale}
