"""Block-adjusted t statistics: the label's t in a linear model with block fixed effects (and covariates).

With exchangeability blocks (verbs, texts) the statistic of a layer is the t of the
label in the ordinary least-squares model

    y = beta * label + gamma' covariates + alpha_block + error,

i.e. the label effect *within* blocks: by the Frisch-Waugh-Lovell theorem it is
computed on the label and the values centred within blocks, with residual degrees of
freedom df = n - n_blocks - n_covariates - 1 (n_blocks counts the blocks with a token
at that layer). Without blocks, the block term is the intercept (one block).

Two designs, both permuting within blocks (Winkler et al. 2014):

- `BlockT` (blocks, no covariates): the labels are permuted within blocks and the t of
  the permuted label is recomputed exactly at every layer, over the tokens finite at
  that layer. (This is the Freedman-Lane procedure with the blocks as the only
  nuisance: within-block permutations of the within-block residuals give the same t.)
- `FreedmanLaneT` (covariates, with or without blocks): the residuals of the nuisance
  model (covariates and blocks) are permuted within blocks, added back to its fitted
  values, and the label's t is recomputed in the full model (Freedman & Lane 1983;
  Winkler et al. 2014, table 2). Every token must be finite at every layer and in
  every covariate (`cse.stats.compare` leaves incomplete tokens out).

The effect size is the within-block one: d = beta / residual SD of the full model and
Hedges' g = J(df) d with the residual df (see `cse.stats.effects`); the bootstrap
resamples tokens within each block-by-label cell and refits the model with the
resampling counts as frequency weights (`weighted_fit`).

References
----------
Freedman, D. & Lane, D. (1983). A nonstochastic interpretation of reported significance
levels. J. Bus. Econ. Stat. 1, 292-298.
Winkler, A. M., Ridgway, G. R., Webster, M. A., Smith, S. M. & Nichols, T. E. (2014).
Permutation inference for the general linear model. NeuroImage 92, 381-397.
Frisch, R. & Waugh, F. V. (1933). Partial time regressions as compared with individual
trends. Econometrica 1, 387-401; Lovell, M. C. (1963). J. Am. Stat. Assoc. 58, 993-1010.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import sparse

from ..errors import CSEInputError
from .effects import hedges_j
from .permutation import PermutationScheme


def block_indicator(codes: np.ndarray, n_blocks: int) -> sparse.csr_matrix:
    """Sparse (n, n_blocks) indicator matrix of the block codes."""
    n = codes.size
    return sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, n_blocks))


def mask_patterns(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group the layers by their set of finite tokens.

    Returns a list of ``(tokens, layers)`` index arrays: the tokens finite at every
    layer of the group. Without NaN there is one group holding every layer.
    """
    unique, inverse = np.unique(mask.T, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    return [(np.flatnonzero(unique[k]), np.flatnonzero(inverse == k)) for k in range(len(unique))]


def weighted_fit(weights, regressors, y, codes, n_blocks, block_copies: bool = False) -> dict:
    """OLS of y on the regressors and block fixed effects, with frequency weights.

    Parameters
    ----------
    weights : ndarray, shape (R, n), float64
        Frequency weight of each token in each of R fits (ones for the plain fit,
        bootstrap resampling counts otherwise).
    regressors : ndarray, shape (n, p), float64
        The label (0/1) first, then the covariates.
    y : ndarray, shape (n, L), float64, finite
    codes : ndarray of int, shape (n,)
        Block code of each token (all 0 for an intercept-only model).
    n_blocks : int
    block_copies : bool
        The weights are whole-block multiplicities (cluster bootstrap): each copy of a
        block is a distinct block, so a block drawn m times costs m degrees of freedom
        (its block fixed effect is the same for every copy). False: a block costs one.

    Returns
    -------
    dict of ndarray
        ``beta`` (R, L): the label's coefficient; ``t`` (R, L): its t; ``sd`` (R, L):
        the residual SD; ``df`` (R,): residual degrees of freedom, sum of weights -
        blocks with weight (or block copies) - p. NaN where the fit is singular or df < 1.
    """
    n, p = regressors.shape
    L = y.shape[1]
    # 1. Centre every column once (block centring is shift invariant; less cancellation).
    a = regressors - regressors.mean(axis=0)
    y = y - y.mean(axis=0)
    # 2. Weighted block totals of weights, regressors and y: one sparse product.
    cols = np.concatenate([np.ones((n, 1)), a, y], axis=1)  # (n, 1 + p + L)
    m = cols.shape[1]
    scatter = sparse.csr_matrix(
        (cols.ravel(), (np.repeat(np.arange(n), m), (codes[:, None] * m + np.arange(m)).ravel())),
        shape=(n, n_blocks * m),
    )
    totals = np.asarray((scatter.T @ weights.T).T).reshape(len(weights), n_blocks, m)
    nw, sa, sy = totals[:, :, 0], totals[:, :, 1 : 1 + p], totals[:, :, 1 + p :]
    inv = np.divide(1.0, nw, out=np.zeros_like(nw), where=nw > 0)
    # 3. Within-block weighted cross-products: raw products minus block-mean terms.
    caa = (weights @ (a[:, :, None] * a[:, None, :]).reshape(n, p * p)).reshape(-1, p, p)
    caa -= np.einsum("rki,rkj,rk->rij", sa, sa, inv)
    cay = (weights @ (a[:, :, None] * y[:, None, :]).reshape(n, p * L)).reshape(-1, p, L)
    cay -= np.einsum("rki,rkl,rk->ril", sa, sy, inv)
    cyy = weights @ (y * y) - np.einsum("rkl,rkl,rk->rl", sy, sy, inv)
    # 4. Solve the normal equations of every fit; t, residual SD and df of the label.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        singular = ~(np.linalg.cond(caa) < 1e10)
        cinv = np.linalg.pinv(caa)
        beta = cinv @ cay  # (R, p, L)
        rss = np.maximum(cyy - np.einsum("ril,ril->rl", cay, beta), 0.0)
        if block_copies:  # a block's multiplicity: its weight over its token count
            present = np.bincount(codes, minlength=n_blocks).astype(np.float64)
            used = (nw / np.where(present > 0, present, 1.0)).sum(axis=1)
        else:
            used = (nw > 0).sum(axis=1)
        df = nw.sum(axis=1) - used - p
        s2 = rss / df[:, None]
        t = beta[:, 0] / np.sqrt(s2 * cinv[:, 0, 0][:, None])
    bad = singular[:, None] | (df < 1)[:, None] | ~(s2 > 0)
    nan = np.where(bad, np.nan, 1.0)
    return {"beta": beta[:, 0] * nan, "t": t * nan, "sd": np.sqrt(s2) * nan, "df": np.where(df >= 1, df, np.nan)}


@dataclasses.dataclass
class _Pattern:
    """The tokens finite at a group of layers and what the permutations of `BlockT` reuse."""

    tokens: np.ndarray  # (n_p,) token indices
    layers: np.ndarray  # (L_p,) layer indices
    indicator: sparse.csr_matrix  # (n_p, K)
    inv_counts: np.ndarray  # (K,) 1 / tokens per block (0 for empty blocks)
    resid: np.ndarray  # (n_p, L_p) values centred within blocks
    syy: np.ndarray  # (L_p,) sum of squares of resid
    df: float  # n_p - blocks present - 1


class RegressionEffects:
    """Observed effects and bootstrap effects of the block / covariate models (shared by their designs).

    A subclass sets ``y`` (n, L), ``group`` (n,) bool, ``codes`` (n,) block codes,
    ``n_blocks``, ``regressors`` (n, p), the label first, and ``fit_patterns`` (the
    ``(tokens, layers)`` groups of `mask_patterns`).
    """

    paired = False
    reference = "t"

    def fit(self, weights: np.ndarray, block_copies: bool = False) -> dict:
        """`weighted_fit` per group of layers, assembled over all layers."""
        R, L = len(weights), self.y.shape[1]
        out = {k: np.full((R, L), np.nan) for k in ("beta", "t", "sd", "df")}
        for tokens, layers in self.fit_patterns:
            reg = self.regressors[tokens]
            res = weighted_fit(weights[:, tokens], reg, self.y[np.ix_(tokens, layers)], self.codes[tokens],
                               self.n_blocks, block_copies)  # fmt: skip
            for k in ("beta", "t", "sd"):
                out[k][:, layers] = res[k]
            out["df"][:, layers] = res["df"][:, None]
        return out

    def effects(self, weights: np.ndarray, block_copies: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Hedges' g and the label coefficient (R, L) for bootstrap weights (R, n)."""
        fit = self.fit(weights, block_copies)
        with np.errstate(divide="ignore", invalid="ignore"):
            return hedges_j(fit["df"]) * fit["beta"] / fit["sd"], fit["beta"]

    def observed(self) -> dict:
        fit = {k: v[0] for k, v in self.fit(np.ones((1, len(self.y)))).items()}
        mask = np.isfinite(self.y)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            d = fit["beta"] / fit["sd"]
            mean_a, mean_b = np.nanmean(self.y[~self.group], axis=0), np.nanmean(self.y[self.group], axis=0)
        df = fit["df"]
        return {
            "mean_a": mean_a, "mean_b": mean_b, "diff": fit["beta"],
            "n_a": mask[~self.group].sum(axis=0), "n_b": mask[self.group].sum(axis=0),
            "cohens_d": d, "hedges_g": hedges_j(df) * d, "df": df, "t_model": fit["t"],
            "threshold_df": float(np.nanmin(df)) if np.isfinite(df).any() else 1.0,
        }  # fmt: skip


class BlockT(RegressionEffects):
    """Within-block t of the label (block fixed effects), labels permuted within blocks.

    Parameters
    ----------
    y : ndarray, shape (n, L), float64
        Values (NaN = undefined at that layer).
    group : ndarray of bool, shape (n,)
        True for the second group.
    blocks : ndarray of int, shape (n,)
        Block codes 0 .. n_blocks - 1; every block should hold both groups.
    """

    statistic = "within-block t (block fixed effects)"
    effect_size = ("Hedges' g within blocks: label coefficient of the block fixed-effects model over its "
                   "residual SD, J(residual df) small-sample correction")  # fmt: skip

    def __init__(self, y: np.ndarray, group: np.ndarray, blocks: np.ndarray):
        self.y, self.group = y, np.asarray(group, dtype=bool)
        self.blocks = self.codes = np.asarray(blocks, dtype=np.int64)
        self.n_blocks = int(self.blocks.max()) + 1
        self.regressors = self.group.astype(np.float64)[:, None]
        self.fit_patterns = [(tok, lay) for tok, lay in mask_patterns(np.isfinite(y)) if tok.size]
        self.patterns = [self._pattern(tok, lay) for tok, lay in self.fit_patterns]
        self.strata = self.blocks * 2 + self.group
        self.identity = np.arange(len(y))[None, :]
        self.n_units = len(y)
        self.bootstrap_columns = max(len(y), self.n_blocks * (2 + y.shape[1]))
        self.df_layers = np.full(y.shape[1], np.nan)
        for pat in self.patterns:
            self.df_layers[pat.layers] = pat.df
        self.scheme = PermutationScheme("labels", len(y), self.blocks, self.group)
        if self.n_blocks == 1:  # one block: the block fixed effect is the intercept
            self.statistic = "Student t (pooled variance)"
            self.effect_size = ("Hedges' g: difference of means over the pooled SD, J(n_a + n_b - 2) small-sample "
                                "correction")  # fmt: skip

    def _pattern(self, tokens, layers) -> _Pattern:
        codes = self.blocks[tokens]
        indicator = block_indicator(codes, self.n_blocks)
        counts = np.bincount(codes, minlength=self.n_blocks).astype(np.float64)
        inv = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
        yt = self.y[np.ix_(tokens, layers)]
        yt = yt - yt.mean(axis=0)
        resid = yt - (indicator.T @ yt * inv[:, None])[codes]
        df = tokens.size - np.count_nonzero(counts) - 1
        return _Pattern(tokens, layers, indicator, inv, resid, (resid * resid).sum(axis=0), float(df))

    def t(self, permutations: np.ndarray) -> np.ndarray:
        labels = self.group[permutations]
        out = np.full((len(labels), self.y.shape[1]), np.nan)
        for pat in self.patterns:
            x = labels[:, pat.tokens].astype(np.float64)  # (B, n_p)
            sxy = x @ pat.resid  # (B, L_p): the label's covariance with the within-block values
            sx = np.asarray((pat.indicator.T @ x.T).T)  # (B, K): label count per block
            sxx = x.sum(axis=1) - (sx * sx) @ pat.inv_counts  # within-block sum of squares of the label
            with np.errstate(divide="ignore", invalid="ignore"):
                beta = sxy / sxx[:, None]
                rss = pat.syy - beta * sxy
                t = beta / np.sqrt(rss / pat.df / sxx[:, None])
            bad = (sxx[:, None] <= 1e-9) | (pat.df < 1) | ~(rss > 0)
            out[:, pat.layers] = np.where(bad, np.nan, t)
        return out


class FreedmanLaneT(RegressionEffects):
    """Label t with covariates (and optional block fixed effects) by Freedman-Lane permutation.

    Parameters
    ----------
    y : ndarray, shape (n, L), float64, finite
    group : ndarray of bool, shape (n,)
    covariates : ndarray, shape (n, c), float64, finite
        Nuisance regressors (e.g. surprisal, log frequency, position).
    blocks : ndarray of int, shape (n,), optional
        Block codes; None for an intercept-only nuisance model with free permutations.
    names : sequence of str
        Covariate names, for messages.

    Raises
    ------
    CSEInputError
        If the covariates are collinear (with each other or with the blocks, e.g. a
        covariate constant within blocks) or explain the label entirely.
    """

    def __init__(self, y, group, covariates, blocks=None, names=()):
        self.y, self.group = y, np.asarray(group, dtype=bool)
        n = len(y)
        self.blocks = None if blocks is None else np.asarray(blocks, dtype=np.int64)
        self.codes = np.zeros(n, dtype=np.int64) if blocks is None else self.blocks
        self.n_blocks = int(self.codes.max()) + 1
        self.regressors = np.column_stack([self.group.astype(np.float64), covariates])
        self.fit_patterns = [(np.arange(n), np.arange(y.shape[1]))]
        covariates = self._within(covariates)
        q, r = np.linalg.qr(covariates)
        scale = np.maximum(np.linalg.norm(covariates, axis=0).max(initial=0.0), 1e-300)
        if covariates.shape[1] and np.abs(np.diag(r)).min() <= 1e-10 * scale:
            where = "constant within blocks or " if blocks is not None else "constant or "
            raise CSEInputError(
                f"Invalid value for 'covariates': {', '.join(names)} are {where}collinear with each other among "
                f"the selected tokens; drop one"
            )
        self.q = q  # orthonormal basis of the covariates, within-block centred (n, c)
        x = self._within(self.group.astype(np.float64))
        self.x = x - q @ (q.T @ x)  # the label, residualized on the nuisance
        self.sxx = float(self.x @ self.x)
        if not self.sxx > 1e-9 * max(float(x @ x), 1e-300):
            raise CSEInputError(
                f"Invalid value for 'covariates': {', '.join(names)} explain the label entirely among the selected "
                f"tokens, so no label effect can be estimated; drop them"
            )
        resid = self._within(y)
        self.resid = resid - q @ (q.T @ resid)  # residuals of the nuisance model (n, L)
        self.see = (self.resid * self.resid).sum(axis=0)
        self.df = n - self.n_blocks - covariates.shape[1] - 1
        self.strata = self.codes * 2 + self.group
        self.identity = np.arange(n)[None, :]
        self.n_units = n
        self.bootstrap_columns = max(n, self.n_blocks * (1 + self.regressors.shape[1] + y.shape[1]))
        self.df_layers = np.full(y.shape[1], float(self.df))
        self.scheme = PermutationScheme("residuals", n, self.blocks)
        words = ", ".join(names)
        fe = "; block fixed effects" if blocks is not None else ""
        self.statistic = f"Freedman–Lane t (covariates: {words}{fe})"
        self.effect_size = (f"Hedges' g adjusted for {words}{' within blocks' if blocks is not None else ''}: label "
                            f"coefficient over the residual SD of the full model, J(residual df) small-sample "
                            f"correction")  # fmt: skip

    def _within(self, v: np.ndarray) -> np.ndarray:
        """`v` (n,) or (n, m) minus its block means (its mean without blocks)."""
        flat = v.reshape(len(v), -1)
        counts = np.bincount(self.codes, minlength=self.n_blocks).astype(np.float64)
        means = np.stack([np.bincount(self.codes, col, minlength=self.n_blocks) for col in flat.T], axis=1)
        return (flat - (means / counts[:, None])[self.codes]).reshape(v.shape)

    def t(self, permutations: np.ndarray) -> np.ndarray:
        # Permuting the nuisance residuals by pi and regressing on the label equals taking the
        # label's residual permuted by pi^-1 against the unpermuted residuals: x[perm] @ resid.
        beta = self.x[permutations] @ self.resid / self.sxx  # (B, L)
        rss = self.see - beta * beta * self.sxx
        for j in range(self.q.shape[1]):  # the part of the permuted residuals the covariates explain
            rss = rss - (self.q[permutations, j] @ self.resid) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t = beta / np.sqrt(rss / self.df / self.sxx)
        return np.where((self.df >= 1) & (rss > 0), t, np.nan)
