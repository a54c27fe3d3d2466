"""The computing core of `cse.stats.compare`: a design, one permutation distribution, every correction, intervals.

Everything here takes plain arrays and computes; `cse.stats.compare` validates and
selects. Steps of `compare_arrays`:

1. the design (`make_design`): which statistic, from `STATISTICS`;
2. the permutations: the whole space when it is no larger than asked (exact p-values),
   random ones otherwise (`null_distribution`);
3. one scale across layers (`common_scale`): studentized statistics are referred to
   N(0, 1); a model-based t whose degrees of freedom differ across layers (NaN
   patterns) is turned into the z with the same tail probability; Welch's t stays t;
4. every correction from that one matrix (`cse.stats.corrections.correct`);
5. the bootstrap intervals of g and of the effect estimate (`cse.stats.effects`).
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy import stats as sps

from ..errors import CSEInputError
from .corrections import correct
from .effects import bootstrap_interval
from .linear_model import BlockT, FreedmanLaneT
from .permutation import batch_size
from .robust import DEFAULT_ROBUST, RobustBlockT, RobustFreedmanLaneT
from .statistics import PairedT, WelchT

#: Statistics of `compare` by name ("auto": the default of the design, see `resolve_statistic`).
STATISTICS = ("auto", "cr", "hc2", "pooled", "welch", "paired")
#: Bootstrap schemes of the intervals ("auto": whole blocks with at least `MIN_BOOTSTRAP_BLOCKS` blocks, else
#: within block-by-group cells, within groups without blocks, pairs for pairs).
BOOTSTRAPS = ("auto", "blocks", "cells")
#: Fewest blocks for which "auto" resamples whole blocks: with 10 blocks of 40 tokens the block bootstrap covered
#: 0.92 of 1000 data sets and the within-cell one 0.93; with 60 blocks of 2-4 tokens 0.94 against 0.56.
MIN_BOOTSTRAP_BLOCKS = 10


def resolve_statistic(statistic: str, *, paired: bool, blocks: bool, covariates: bool, n_blocks: int = 2) -> str:
    """The statistic a design uses: ``auto`` resolved, combinations refused.

    ``auto`` is ``paired`` for pairs, ``welch`` without blocks and covariates,
    `cse.stats.robust.DEFAULT_ROBUST` (``cr``) with at least two blocks (holding both
    labels), and ``hc2`` with covariates but no blocks or with a single block (where
    the block-clustered error is undefined).

    Raises
    ------
    CSEInputError
        If the statistic does not fit the design (e.g. ``welch`` with blocks, ``cr``
        without blocks, anything but ``paired`` for pairs).
    """
    if statistic == "auto":
        if paired:
            return "paired"
        if blocks:
            return DEFAULT_ROBUST if n_blocks >= 2 else "hc2"
        return "hc2" if covariates else "welch"
    if paired != (statistic == "paired"):
        raise CSEInputError(
            f"Invalid value for 'statistic': {statistic!r} "
            + ("does not apply to pairs; use 'paired' or 'auto'" if paired else "needs 'paired_by'")
        )
    if statistic == "welch" and (blocks or covariates):
        raise CSEInputError(
            "Invalid value for 'statistic': 'welch' pools over all tokens and takes no exchangeability blocks or "
            "covariates; use 'cr' (the default), 'hc2' or 'pooled'"
        )
    if statistic == "cr" and not blocks:
        raise CSEInputError("Invalid value for 'statistic': 'cr' clusters by exchangeability blocks; give them")
    return statistic


def make_design(y_a, y_b, *, paired=False, blocks=None, covariates=None, covariate_names=(), statistic="auto"):
    """The design of a comparison (`cse.stats.statistics`, `cse.stats.linear_model`, `cse.stats.robust`).

    Tokens are ordered ``[y_a; y_b]``; `blocks` (n_a + n_b,) int codes and
    `covariates` (n_a + n_b, c) follow that order. `statistic` is a name of
    `STATISTICS`; ``pooled`` without blocks is Student's t.
    """
    has_cov = covariates is not None and covariates.shape[1] > 0
    statistic = resolve_statistic(statistic, paired=paired, blocks=blocks is not None, covariates=has_cov)
    if statistic == "paired":
        return PairedT(y_a, y_b)
    y = np.concatenate([y_a, y_b], axis=0)
    group = np.r_[np.zeros(len(y_a), bool), np.ones(len(y_b), bool)]
    if has_cov:
        if statistic == "pooled":
            return FreedmanLaneT(y, group, covariates, blocks, names=covariate_names)
        return RobustFreedmanLaneT(y, group, covariates, blocks, names=covariate_names, kind=statistic)
    if statistic == "welch":
        return WelchT(y, group)
    codes = np.zeros(len(y), np.int64) if blocks is None else blocks
    if statistic == "pooled":
        return BlockT(y, group, codes)
    return RobustBlockT(y, group, codes, kind=statistic)


def null_distribution(design, n_permutations: int, rng: np.random.Generator, permutations=None,
                      exact: bool = False) -> np.ndarray:  # fmt: skip
    """The statistic of every permutation, shape (P, L), computed once in batches.

    Permutations are drawn within the design's exchangeability blocks (sign flips for
    pairs) unless `permutations` gives them -- shape (P, n) of token indices, or (P,
    n_pairs) of +-1 for a paired design -- or `exact` asks for the whole space
    (`n_permutations` elements of ``design.scheme``, the identity among them).
    """
    if permutations is not None:
        permutations = np.asarray(permutations)
        n_permutations = len(permutations)
    chunks = []
    step = batch_size(getattr(design, "batch_columns", design.n_units))
    for start in range(0, n_permutations, step):
        size = min(step, n_permutations - start)
        if permutations is not None:
            batch = permutations[start : start + size]
        elif exact:
            batch = design.scheme.enumerate(start, start + size)
        else:
            batch = design.scheme.random(size, rng)
        chunks.append(design.t(batch))
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, design.t(design.identity).shape[1]))


def t_to_z(t, df):
    """The standard normal quantile with the tail probability of Student's t(df): sign(t) Phi^-1(F(|t|)).

    Parameters
    ----------
    t : array_like, float64
        t statistics.
    df : array_like, float64
        Their degrees of freedom (broadcast against `t`).

    Returns
    -------
    ndarray, float64
        z, computed on the log scale (``scipy.special.ndtri_exp`` of ``t.logsf``) so
        that large |t| keep their order; NaN where t or df is NaN.
    """
    t, df = np.asarray(t, dtype=np.float64), np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return -np.sign(t) * special.ndtri_exp(sps.t.logsf(np.abs(t), df))


def common_scale(design, t_obs: np.ndarray, t_null: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The statistics on one scale across layers, and its name (``"t"``, ``"z"``).

    A model-based t (``design.reference == "t"``) whose degrees of freedom differ
    across layers becomes z (`t_to_z`, per layer, the same df for the observed and
    every permuted value); studentized statistics already are z; Welch's t and a
    model-based t with one df at every layer stay t.
    """
    if design.reference == "normal":
        return t_obs, t_null, "z"
    if design.reference == "t":
        df = design.df_layers
        finite = df[np.isfinite(df)]
        if finite.size and finite.min() != finite.max():
            return t_to_z(t_obs, df), t_to_z(t_null, df[None, :]), "z"
    return t_obs, t_null, "t"


def default_threshold(df: float, tail: int, cluster_alpha: float, scale: str = "t") -> float:
    """Cluster-forming threshold: the t(df) -- or N(0, 1) on the z scale -- critical value at `cluster_alpha`."""
    q = 1 - cluster_alpha / 2 if tail == 0 else 1 - cluster_alpha
    if scale == "z":
        return float(sps.norm.ppf(q))
    return float(sps.t.ppf(q, max(df, 1.0)))


def _space(design, n_permutations: int, permutations) -> dict:
    """How the null is drawn: the whole space when it holds at most `n_permutations` elements."""
    log10 = float(design.scheme.log10_size)
    total = design.scheme.size(10**300) if log10 < 300 else None
    out = {"log10": log10, "total": float(total) if total is not None else float(10.0**log10) if log10 < 308 else
           float("inf")}  # fmt: skip
    size = None if permutations is not None else design.scheme.size(n_permutations)
    return {**out, "exact": size is not None, "size": size}


def compare_arrays(y_a, y_b, *, paired=False, blocks=None, covariates=None, covariate_names=(), statistic="auto",
                   bootstrap="auto", n_permutations=10000, corrections=("cluster",), tail=0, threshold=None,
                   cluster_alpha=0.05, tfce_e=0.5, tfce_h=2.0, alpha=0.05, n_bootstrap=0, ci=0.95, rng=None,
                   permutations=None) -> dict:  # fmt: skip
    """Compute everything `compare` reports from plain arrays.

    Parameters
    ----------
    y_a, y_b : ndarray, shape (n_a, L) and (n_b, L), float64
        Values of the two groups (NaN = undefined at that layer). When `paired`, row i
        of each forms pair i.
    paired : bool
        Sign-flip test of the differences y_b - y_a (row i of each is pair i).
    blocks : ndarray of int, shape (n_a + n_b,), optional
        Exchangeability block codes (0 .. K - 1), tokens ordered ``[y_a; y_b]``.
    covariates : ndarray, shape (n_a + n_b, c), optional
        Nuisance regressors (finite; the values must be finite too).
    covariate_names : sequence of str
        Names of the covariates, for messages and the statistic's description.
    statistic : str
        A name of `STATISTICS`.
    bootstrap : str
        A name of `BOOTSTRAPS`; ``blocks`` needs `blocks`.
    corrections : sequence of str
        Corrections to compute from the one permutation distribution; the first is
        the primary (``p_corrected``, ``significant``).
    permutations : ndarray, optional
        Permutations to use instead of random ones (see `null_distribution`), so that
        tests can feed identical permutations to an independent implementation.
    rng : numpy.random.Generator
    n_permutations, tail, threshold, cluster_alpha, tfce_e, tfce_h, alpha, n_bootstrap, ci : int or float
        As in `cse.stats.compare`.

    Returns
    -------
    dict
        Per-layer arrays (see `compare`), ``clusters``, ``cluster_p``, the design's
        ``statistic`` and ``effect_size`` words, ``statistic_name``, ``scale``, ``threshold``,
        ``threshold_df``, ``n_permutations``, ``exact``, ``space_size``,
        ``space_log10``, ``bootstrap``.
    """
    rng = np.random.default_rng() if rng is None else rng
    has_cov = covariates is not None and covariates.shape[1] > 0
    n_blocks = 0 if blocks is None else int(np.max(blocks)) + 1
    statistic = resolve_statistic(statistic, paired=paired, blocks=blocks is not None, covariates=has_cov,
                                  n_blocks=n_blocks)  # fmt: skip
    design = make_design(y_a, y_b, paired=paired, blocks=blocks, covariates=covariates,
                         covariate_names=covariate_names, statistic=statistic)  # fmt: skip
    # 1. Observed statistics and effect sizes.
    out = design.observed()
    t_obs = design.t(design.identity)[0]
    out["t"] = t_obs
    # 2. One permutation distribution: the whole space when it is small enough.
    space = _space(design, n_permutations, permutations)
    if space["exact"]:
        t_null = null_distribution(design, space["size"], rng, exact=True)
    else:
        t_null = null_distribution(design, n_permutations, rng, permutations)
    # 3. One scale across layers, then every correction from the one distribution.
    s_obs, s_null, scale = common_scale(design, t_obs, t_null)
    if scale == "z" and design.reference == "t":
        out["z"] = s_obs
    if threshold is None:
        threshold = default_threshold(out["threshold_df"], tail, cluster_alpha, scale)
    out.update(correct(s_obs, s_null, corrections, tail=tail, threshold=threshold, tfce_e=tfce_e, tfce_h=tfce_h,
                       alpha=alpha, exact=space["exact"]))  # fmt: skip
    out["p_corrected"] = out[f"p_{corrections[0]}"]
    out["significant"] = np.where(np.isfinite(out["p_corrected"]), out["p_corrected"] <= alpha, False)
    out.update(threshold=float(threshold), n_permutations=int(len(t_null)), statistic=design.statistic,
               statistic_name=statistic,
               effect_size=design.effect_size, scale=scale, exact=space["exact"], space_size=space["size"],
               space_log10=space["log10"], space_total=space["total"], n_layers_undefined=int(np.sum(~np.isfinite(t_obs))),
               threshold_df=np.inf if scale == "z" else out["threshold_df"])  # fmt: skip
    # 4. Bootstrap intervals of Hedges' g and of the effect estimate.
    if bootstrap == "blocks" and blocks is None:
        raise CSEInputError("Invalid value for 'bootstrap': 'blocks' resamples exchangeability blocks; give them")
    by_blocks = blocks is not None and not paired and (
        bootstrap == "blocks" or (bootstrap == "auto" and n_blocks >= MIN_BOOTSTRAP_BLOCKS))
    out["bootstrap"] = "blocks" if by_blocks else ("pairs" if paired else "cells" if blocks is not None else "groups")
    if n_bootstrap > 0:
        out.update(bootstrap_interval(design, n_bootstrap, rng, ci, by_blocks=by_blocks))
    else:
        for key in ("g_ci_low", "g_ci_high", "diff_ci_low", "diff_ci_high"):
            out[key] = np.full(t_obs.size, np.nan)
    return out
