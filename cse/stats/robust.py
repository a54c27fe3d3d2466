"""Studentized within-block statistics that stay valid when the labels differ in variance.

The label coefficient beta of the block fixed-effects model (and, with covariates, of the
Freedman-Lane full model; see `cse.stats.linear_model`) over a standard error that does
not assume one residual variance:

- ``hc2``: heteroscedasticity-consistent HC2 (MacKinnon & White 1985) with the full
  fixed-effects leverage. With x~ the label centred within its block (and residualized
  on the covariates), e the residuals of the full model and
  ``h_i = 1 / n_k + |q_i|^2 + x~_i^2 / sum x~^2`` (q_i: token i's row of an orthonormal
  basis of the within-block covariates),
  ``Var(beta) = sum_i x~_i^2 e_i^2 / (1 - h_i) / (sum x~^2)^2``. A token with x~ = 0
  contributes nothing; a layer where a token with x~ != 0 has leverage 1 is undefined
  (NaN). Without blocks and covariates HC2 is Welch's standard error exactly.
- ``cr``: block-clustered (CR1): ``Var(beta) = G / (G - 1) sum_k (sum_{i in k} x~_i
  e_i)^2 / (sum x~^2)^2`` over the G blocks holding both labels; it also allows
  dependent tokens within a block (tokens of one text).

The statistic z = beta / SE is recomputed for every within-block permutation (or wild
bootstrap draw, `cse.stats.wild`) by the same arithmetic; its p-values come from that
null distribution (with G blocks it is near t(G - 1), not N(0, 1)). Studentizing makes the
permutation distribution of the statistic and its sampling distribution under equal
means agree asymptotically, so that a permutation test of equal means stays valid when
the variances differ (Janssen 1997; Chung & Romano 2013; DiCiccio & Romano 2017);
fixed effects with many small blocks lie outside those proofs (Stock & Watson 2008), so
the choice of the default (`DEFAULT_ROBUST`) rests on measured size: with 25 blocks of
4-30 tokens, a label-1 share of 0.85 and SD 2.0 vs 0.5 (960 data sets, 10 AR(1)
layers), CR gave a per-layer rate of 0.051 and a max-T FWER of 0.046, HC2 0.062 and
0.084; with 60 blocks of 2-4 tokens CR 0.052 / 0.047, HC2 0.066 / 0.079
(``scripts/stats_power.py``; ``tests/test_stats_simulation.py``). Without blocks
(covariates only) the default is HC2, which is then Welch's standard error up to the
covariates.

References
----------
Chung, E. & Romano, J. P. (2013). Exact and asymptotically robust permutation tests.
Ann. Statist. 41, 484-507.
DiCiccio, C. J. & Romano, J. P. (2017). Robust permutation tests for correlation and
regression coefficients. J. Am. Stat. Assoc. 112, 1211-1220.
Janssen, A. (1997). Studentized permutation tests for non-i.i.d. hypotheses and the
generalized Behrens-Fisher problem. Stat. Probab. Lett. 36, 9-21.
MacKinnon, J. G. & White, H. (1985). Some heteroskedasticity-consistent covariance matrix
estimators with improved finite sample properties. J. Econometrics 29, 305-325.
Stock, J. H. & Watson, M. W. (2008). Heteroskedasticity-robust standard errors for fixed
effects panel data regression. Econometrica 76, 155-174.
Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
inference. J. Hum. Resour. 50, 317-372.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .linear_model import BlockT, FreedmanLaneT, block_indicator

#: The studentized statistics offered, by name.
ROBUST_KINDS = ("cr", "hc2")
#: The default with exchangeability blocks, chosen by the measured size (README): CR held the level in every
#: design simulated (per-layer rate and max-T FWER), HC2 exceeded it with a minority label of larger variance.
DEFAULT_ROBUST = "cr"
#: Leverage this close to 1 leaves a token's residual undefined.
_LEVERAGE_TOL = 1e-10

_WORDS = {
    "hc2": "HC2 SE (full fixed-effects leverage)",
    "cr": "block-clustered (CR1) SE",
}


def block_scatter(values: np.ndarray, codes: np.ndarray, n_blocks: int) -> sparse.csr_matrix:
    """Sparse (n, n_blocks * m) matrix: token i's m values in the columns of its block.

    ``x @ block_scatter(v, codes, K)`` reshaped to (B, K, m) gives, for each row of x,
    the per-block sums of x_i v_i.
    """
    n, m = values.shape
    cols = (codes[:, None] * m + np.arange(m)[None, :]).ravel()
    return sparse.csr_matrix((values.ravel(), (np.repeat(np.arange(n), m), cols)), shape=(n, n_blocks * m))


def _rows_times(x: np.ndarray, matrix: sparse.csr_matrix) -> np.ndarray:
    """Dense (B, n) times sparse (n, c) -> dense (B, c)."""
    return np.asarray((matrix.T @ x.T).T)


def _studentize(beta, var):
    with np.errstate(divide="ignore", invalid="ignore"):
        z = beta / np.sqrt(var)
    return np.where(np.isfinite(var) & (var > 0), z, np.nan)


class RobustBlockT(BlockT):
    """Within-block label coefficient over an HC2 or block-clustered standard error, labels permuted within blocks.

    Parameters
    ----------
    y : ndarray, shape (n, L), float64
        Values (NaN = undefined at that layer).
    group : ndarray of bool, shape (n,)
        True for the second group.
    blocks : ndarray of int, shape (n,)
        Block codes 0 .. n_blocks - 1.
    kind : {"cr", "hc2"}
    """

    reference = "normal"

    def __init__(self, y: np.ndarray, group: np.ndarray, blocks: np.ndarray, kind: str = DEFAULT_ROBUST):
        super().__init__(y, group, blocks)
        self.kind = kind
        within = "within-block" if self.n_blocks > 1 else "two-sample"
        self.statistic = f"{within} z: label effect over its {_WORDS[kind]}"
        self.extras = [self._extra(pat) for pat in self.patterns]
        widest = max([e["columns"] for e in self.extras], default=1)
        self.batch_columns = max(len(y), widest)

    def _extra(self, pat) -> dict:
        """Per-pattern constants: per-block sums of squares, and the fixed-label-count shortcut of HC2."""
        codes = self.blocks[pat.tokens]
        counts = np.bincount(codes, minlength=self.n_blocks).astype(np.float64)
        everyone = np.bincount(self.blocks, minlength=self.n_blocks).astype(np.float64)
        out = {"codes": codes, "counts": counts, "syy": np.asarray(pat.indicator.T @ (pat.resid**2)),
               "scatter_y": block_scatter(pat.resid, codes, self.n_blocks),
               "scatter_yy": block_scatter(pat.resid**2, codes, self.n_blocks),
               "columns": self.n_blocks * (2 * pat.layers.size + 1), "fixed": None}  # fmt: skip
        complete = np.all((counts == everyone) | (counts == 0))
        if self.kind == "hc2" and complete:  # label counts per block are the same in every permutation
            n1 = np.bincount(codes, self.group[pat.tokens].astype(float), minlength=self.n_blocks)
            w1, w0, x1, x0, sxx = self._weights(n1[None, :], counts)
            w1, w0, x1, x0 = w1[0], w0[0], x1[0], x0[0]
            if not (np.isfinite(w1).all() and np.isfinite(w0).all()):  # leverage 1: undefined at these layers
                w1, w0 = np.full_like(w1, np.nan), np.full_like(w0, np.nan)
            out["fixed"] = {
                "sxx": sxx[0], "c0": w0 @ out["syy"], "c2": float(n1 @ (w1 * x1**2) + (counts - n1) @ (w0 * x0**2)),
                "g": (w1 - w0)[codes][:, None] * pat.resid**2, "h": (w1 * x1 - w0 * x0)[codes][:, None] * pat.resid,
            }  # fmt: skip
        return out

    @staticmethod
    def _weights(n1, counts):
        """HC2 weights x~^2 / (1 - h) and centred labels of the label-1 and label-0 cells, per block; Sxx."""
        inv = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
        p = n1 * inv
        sxx = (counts * p * (1 - p)).sum(axis=1)
        x1, x0 = 1.0 - p, -p
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = []
            for x, n_cell in ((x1, n1), (x0, counts - n1)):
                h = inv + x**2 / sxx[:, None]
                w = np.where((n_cell > 0) & (x**2 > 0), x**2 / (1.0 - h), 0.0)
                bad = (n_cell > 0) & (x**2 > 0) & (1.0 - h <= _LEVERAGE_TOL)
                weights.append(np.where(bad, np.inf, w))  # inf: undefined, the layer becomes NaN
        return weights[0], weights[1], x1, x0, sxx

    def t(self, permutations: np.ndarray) -> np.ndarray:
        labels = self.group[permutations]
        out = np.full((len(labels), self.y.shape[1]), np.nan)
        for pat, extra in zip(self.patterns, self.extras):
            x = labels[:, pat.tokens].astype(np.float64)  # (B, n_p)
            if extra["fixed"] is not None:
                out[:, pat.layers] = self._fixed(x, pat, extra["fixed"])
            else:
                out[:, pat.layers] = self._cells(x, pat, extra)
        return out

    @staticmethod
    def _fixed(x, pat, fixed):
        """HC2 when every block's label counts are fixed: three dense products per batch."""
        with np.errstate(invalid="ignore"):
            beta = (x @ pat.resid) / fixed["sxx"]
            num = fixed["c0"] + x @ fixed["g"] - 2 * beta * (x @ fixed["h"]) + beta**2 * fixed["c2"]
        return _studentize(beta, num / fixed["sxx"] ** 2)

    def _cells(self, x, pat, extra):
        """Per block-by-label cell sums of the within-block values: HC2 or CR for any pattern."""
        B, K, Lp = len(x), self.n_blocks, pat.layers.size
        counts = extra["counts"]
        n1 = np.asarray((pat.indicator.T @ x.T).T)  # (B, K)
        t1 = _rows_times(x, extra["scatter_y"]).reshape(B, K, Lp)  # sum of y~ over label-1 tokens
        p = n1 * np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
        sxx = (counts * p * (1 - p)).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = t1.sum(axis=1) / sxx[:, None]
        if self.kind == "cr":
            mixed = (p > 0) & (p < 1)
            g = mixed.sum(axis=1).astype(np.float64)
            score = t1 - beta[:, None, :] * (counts * p * (1 - p))[:, :, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                num = (g / (g - 1))[:, None] * (score**2).sum(axis=1)
            num = np.where((g > 1)[:, None], num, np.nan)
        else:
            a1 = _rows_times(x, extra["scatter_yy"]).reshape(B, K, Lp)
            w1, w0, x1, x0, _ = self._weights(n1, counts)
            b = beta[:, None, :]
            with np.errstate(invalid="ignore"):
                cell1 = w1[:, :, None] * (a1 - 2 * b * x1[:, :, None] * t1 + b**2 * (x1**2 * n1)[:, :, None])
                a0 = extra["syy"][None, :, :] - a1
                cell0 = w0[:, :, None] * (a0 + 2 * b * x0[:, :, None] * t1
                                          + b**2 * (x0**2 * (counts - n1))[:, :, None])  # fmt: skip
                num = (np.where((w1 == 0)[:, :, None], 0.0, cell1) + np.where((w0 == 0)[:, :, None], 0.0, cell0)).sum(
                    axis=1)
        return _studentize(beta, num / (sxx**2)[:, None])


class RobustFreedmanLaneT(FreedmanLaneT):
    """Freedman-Lane with covariates (and block fixed effects), the label coefficient over an HC2 or CR error.

    Parameters
    ----------
    y, group, covariates, blocks, names
        As `cse.stats.linear_model.FreedmanLaneT`.
    kind : {"cr", "hc2"}
        ``cr`` needs blocks.
    """

    reference = "normal"

    def __init__(self, y, group, covariates, blocks=None, names=(), kind: str = DEFAULT_ROBUST):
        super().__init__(y, group, covariates, blocks, names)
        self.kind = kind
        words = ", ".join(names)
        fe = "; block fixed effects" if blocks is not None else ""
        self.statistic = (f"Freedman–Lane z (covariates: {words}{fe}): label effect over its {_WORDS[kind]}")
        counts = np.bincount(self.codes, minlength=self.n_blocks).astype(np.float64)
        h = 1.0 / counts[self.codes] + (self.q**2).sum(axis=1) + self.x**2 / self.sxx
        x2 = self.x**2
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(x2 > 0, x2 / (1.0 - h), 0.0)
        self.undefined = bool(np.any((x2 > 0) & (1.0 - h <= _LEVERAGE_TOL)))
        self.w = np.where(np.isfinite(w), w, 0.0)
        self.wq = self.w[:, None] * self.q
        self.k_qq = self.q.T @ self.wq  # (c, c): sum_i w_i q_ij q_im, the same in every permutation
        self.k_xq = self.wq.T @ self.x  # (c,)
        self.k_xx = float(self.w @ x2)
        if kind == "cr":
            self.scatter = block_scatter(self.resid, self.codes, self.n_blocks)
            ind = block_indicator(self.codes, self.n_blocks)
            self.d_block = np.asarray(ind.T @ (self.x[:, None] * self.q))  # (K, c)
            self.e_block = np.asarray(ind.T @ x2)  # (K,)
            self.batch_columns = max(len(y), self.n_blocks * y.shape[1])

    def t(self, permutations: np.ndarray) -> np.ndarray:
        # The design's rows move with the permutation, the residuals stay (see FreedmanLaneT.t).
        r = self.resid
        xp = self.x[permutations]  # (B, n)
        beta = xp @ r / self.sxx
        c = np.stack([self.q[permutations, j] @ r for j in range(self.q.shape[1])], axis=0)  # (c, B, L)
        if self.kind == "cr":
            B, K, L = len(xp), self.n_blocks, r.shape[1]
            score = _rows_times(xp, self.scatter).reshape(B, K, L)
            score = score - np.einsum("kj,jbl->bkl", self.d_block, c) - beta[:, None, :] * self.e_block[None, :, None]
            g = float(K)
            num = g / (g - 1) * (score**2).sum(axis=1) if K > 1 else np.full(beta.shape, np.nan)
        else:
            wp = self.w[permutations]
            num = wp @ (r * r) - 2 * beta * ((wp * xp) @ r) + beta**2 * self.k_xx
            for j in range(self.q.shape[1]):
                num -= 2 * c[j] * (self.wq[permutations, j] @ r)
                num += 2 * beta * c[j] * self.k_xq[j]
                num += c[j] * np.einsum("m,mbl->bl", self.k_qq[j], c)
        z = _studentize(beta, num / self.sxx**2)
        return np.full(z.shape, np.nan) if self.undefined else z
