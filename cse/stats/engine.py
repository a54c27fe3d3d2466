"""The computing core of `cse.stats.compare`: a design, one permutation distribution, every correction, intervals.

Everything here takes plain arrays and computes; `cse.stats.compare` validates and
selects. Steps of `compare_arrays`:

1. the design (`make_design`): which statistic, from `STATISTICS`;
2. the null (`resolve_null`): label permutations (`null_distribution`) or the
   restricted wild cluster bootstrap (`cse.stats.wild`), the whole space when it is no
   larger than asked (exact p-values), random draws otherwise;
3. one scale across layers (`common_scale`): studentized statistics are on the z scale
   (a name: their p-values come from the null distribution, never from N(0, 1)); a
   model-based t whose degrees of freedom differ across layers (NaN patterns) is turned
   into the z with the same tail probability; Welch's t stays t;
4. every correction from that one matrix (`cse.stats.corrections.correct`);
5. the intervals of g and of the effect estimate: t(G - 1) on the block-clustered
   standard error with blocks (`cse.stats.wild`), else the bootstrap (`cse.stats.effects`).
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy import stats as sps

from ..errors import CSEInputError
from .corrections import correct, tail_stat
from .effects import bootstrap_interval
from .linear_model import BlockT, FreedmanLaneT
from .permutation import at_least, batch_size
from .robust import DEFAULT_ROBUST, RobustBlockT, RobustFreedmanLaneT
from .statistics import PairedT, WelchT
from .wild import WildCluster

#: Statistics of `compare` by name ("auto": the default of the design, see `resolve_statistic`).
STATISTICS = ("auto", "cr", "hc2", "pooled", "welch", "paired")
#: Intervals ("auto": `AUTO_INTERVAL` with blocks, the bootstrap within groups without blocks, of pairs for pairs).
BOOTSTRAPS = ("auto", "blocks", "t", "cells")
#: The interval "auto" gives with exchangeability blocks: ``beta +- t(G - 1) SE_CR1`` ("t", `cse.stats.wild`). Coverage
#: of 95 % intervals of diff (``scripts/stats_coverage.py``, benchmarks/results/stats_coverage.txt, 600 data sets per
#: cell, blocks of 2-4 or 4-30 tokens, fixed or block-varying effect): "t" 0.93-0.96 at 5, 8, 10, 15, 30 and 60
#: blocks; the whole-block bootstrap ("blocks") 0.82-0.84 at 5 blocks, 0.88-0.90 at 8-10, 0.90-0.95 from 15; the
#: within-cell bootstrap ("cells", the default of earlier releases below 10 blocks) 0.50-0.79. "blocks" and "cells"
#: are used only when asked for.
AUTO_INTERVAL = "t"
#: The null distributions of `compare` ("auto": see `resolve_null`).
NULLS = ("auto", "permutation", "wild")
#: Below this many blocks holding both labels a blocked comparison warns that its inference is weak: the CR1
#: statistic's null is near t(G - 1) (95 % point 2.78 at G = 5), few permutations or bootstrap weights exist,
#: and the t(G - 1) interval widens fast.
FEW_BLOCKS = 10


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


def resolve_null(null: str, statistic: str, n_clusters: int) -> str:
    """The null distribution a design uses: ``auto`` resolved, impossible combinations refused.

    ``auto`` is ``wild`` (the restricted wild cluster bootstrap, `cse.stats.wild`) for the
    block-clustered statistic ``cr`` with at least two blocks holding both labels, and
    ``permutation`` otherwise. The wild bootstrap keeps each block's residuals together
    across layers, so it holds the level of the corrections that sum over layers (cluster
    mass) when the label effect varies between blocks, where permuting labels within
    blocks does not. Measured (``scripts/stats_null_size.py``, 2,000 data sets per
    design, each redrawing design and data, 10 layers, alpha 0.05, bound 0.05 + 2 SE =
    0.0597; ``benchmarks/results/stats_null_size.txt``), FWER of cluster mass with a
    label effect varying between blocks (N(0, 0.5^2) per block, the same at every
    layer): permutation 0.086 (5 blocks) and 0.066 (25 blocks), wild 0.054 and 0.047;
    TFCE, max-T and the per-layer rate 0.039-0.057 under both. Other designs, wild
    (permutation): unequal SD 2.0 / 0.5 with label share 0.85, 25 blocks, cluster 0.058
    (0.055), per layer 0.053 (0.054); 5 blocks, cluster 0.056 (0.054), per layer 0.057
    (0.051); 60 blocks of 2-4 tokens, cluster 0.051 (0.051), TFCE and max-T 0.061 under
    both (the statistic with blocks of 2-4 tokens, not the null).

    Raises
    ------
    CSEInputError
        If ``wild`` is asked for a statistic other than ``cr`` or with fewer than two
        blocks holding both labels.
    """
    if null == "auto":
        return "wild" if statistic == "cr" and n_clusters >= 2 else "permutation"
    if null == "wild" and (statistic != "cr" or n_clusters < 2):
        raise CSEInputError(
            "Invalid value for 'null': 'wild' bootstraps the block-clustered statistic and needs "
            "statistic='cr' with exchangeability blocks, at least 2 of them holding both labels; use "
            "null='permutation'"
        )
    return null


def default_threshold(df: float, tail: int, cluster_alpha: float, scale: str = "t") -> float:
    """Cluster-forming threshold: the t(df) -- or N(0, 1) on the z scale -- critical value at `cluster_alpha`."""
    q = 1 - cluster_alpha / 2 if tail == 0 else 1 - cluster_alpha
    if scale == "z":
        return float(sps.norm.ppf(q))
    return float(sps.t.ppf(q, max(df, 1.0)))


def threshold_rule(statistic: str, scale: str, n_clusters: int, threshold_df: float) -> tuple[str, float]:
    """Which reference the default cluster-forming threshold takes, and its df (inf for N(0, 1)).

    The block-clustered statistic is near t(G - 1) with G blocks (Cameron & Miller 2015;
    its 95 % point is 2.78 at G = 5, not 1.96), so its threshold is the t(G - 1) point;
    other studentized statistics use N(0, 1), model-based t's their t(df).
    """
    if statistic == "cr" and n_clusters >= 2:
        return f"t(G - 1) = t({n_clusters - 1})", float(n_clusters - 1)
    if scale == "z":
        return "N(0, 1)", np.inf
    return f"t({threshold_df:g})", float(threshold_df)


def _space(design, n_permutations: int, permutations) -> dict:
    """How the null is drawn: the whole space when it holds at most `n_permutations` elements."""
    log10 = float(design.scheme.log10_size)
    total = design.scheme.size(10**300) if log10 < 300 else None
    out = {"log10": log10, "total": float(total) if total is not None else float(10.0**log10) if log10 < 308 else
           float("inf")}  # fmt: skip
    size = None if permutations is not None else design.scheme.size(n_permutations)
    return {**out, "exact": size is not None, "size": size}


_NULL_WORDS = {
    "permutation": "permutation distribution",
    "wild": "restricted wild cluster bootstrap distribution (Webb weights, one per block at every layer)",
}


def _null(design, null, n_permutations, rng, permutations) -> tuple[np.ndarray, dict]:
    """The statistic of every draw of the chosen null (P, L) and how it was drawn (`_space`)."""
    if null == "wild":
        wild = WildCluster(design)
        size = wild.space_size(n_permutations)
        space = {"log10": wild.n_blocks * float(np.log10(6)), "total": float(6.0**wild.n_blocks)
                 if wild.n_blocks < 390 else float("inf"), "exact": size is not None, "size": size}  # fmt: skip
        return wild.null(size if size is not None else n_permutations, rng, exact=size is not None), space
    space = _space(design, n_permutations, permutations)
    if space["exact"]:
        return null_distribution(design, space["size"], rng, exact=True), space
    return null_distribution(design, n_permutations, rng, permutations), space


def p_min(s_null: np.ndarray, exact: bool) -> float:
    """The smallest p-value any layer can reach: 1 / (P + 1) for random draws; for an enumerated space the
    fewest elements tied at a layer's largest tail statistic over the space size (2 / size two-sided for
    sign-symmetric spaces such as sign flips and wild weights)."""
    P = len(s_null)
    if not exact:
        return 1.0 / (P + 1.0)
    finite = np.where(np.isfinite(s_null), s_null, -np.inf)
    top = finite.max(axis=0, initial=-np.inf)
    usable = np.isfinite(top)
    if not usable.any():
        return 1.0
    ties = at_least(finite[:, usable], top[None, usable]).sum(axis=0)
    return float(ties.min()) / P


def _intervals(design, out, *, blocks, paired, bootstrap, n_bootstrap, rng, ci, L) -> None:
    """Bootstrap or t(G - 1) intervals of Hedges' g and of the effect estimate, and which (``bootstrap``)."""
    if bootstrap == "blocks" and blocks is None:
        raise CSEInputError("Invalid value for 'bootstrap': 'blocks' resamples exchangeability blocks; give them")
    if bootstrap == "t" and (blocks is None or paired):
        raise CSEInputError("Invalid value for 'bootstrap': 't' is the interval on the block-clustered standard "
                            "error; give exchangeability blocks")  # fmt: skip
    kind = "pairs" if paired else "groups"
    if blocks is not None and not paired:
        kind = bootstrap if bootstrap != "auto" else AUTO_INTERVAL
    out["bootstrap"], out["interval_note"] = kind, ""
    nan = {key: np.full(L, np.nan) for key in ("g_ci_low", "g_ci_high", "diff_ci_low", "diff_ci_high")}
    if kind == "t":
        wild = WildCluster(design)
        if wild.n_clusters < 2:
            out.update(nan, interval_note="no interval: fewer than 2 blocks hold both labels")
        else:
            out.update(wild.interval(design, ci))
    elif n_bootstrap > 0:
        out.update(bootstrap_interval(design, n_bootstrap, rng, ci, by_blocks=kind == "blocks"))
    else:
        out.update(nan, interval_note="no interval: n_bootstrap = 0")


def compare_arrays(y_a, y_b, *, paired=False, blocks=None, covariates=None, covariate_names=(), statistic="auto",
                   bootstrap="auto", n_permutations=10000, corrections=("cluster",), tail=0, threshold=None,
                   cluster_alpha=0.05, tfce_e=0.5, tfce_h=2.0, alpha=0.05, n_bootstrap=0, ci=0.95, rng=None,
                   permutations=None, null="auto") -> dict:  # fmt: skip
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
        A name of `BOOTSTRAPS`; ``blocks`` and ``t`` need `blocks`.
    corrections : sequence of str
        Corrections to compute from the one null distribution; the first is the
        primary (``p_corrected``, ``significant``).
    permutations : ndarray, optional
        Permutations to use instead of random ones (see `null_distribution`; only
        with ``null="permutation"``), so that tests can feed identical permutations to
        an independent implementation.
    null : {"auto", "permutation", "wild"}
        The null distribution (`resolve_null`).
    rng : numpy.random.Generator
    n_permutations, tail, threshold, cluster_alpha, tfce_e, tfce_h, alpha, n_bootstrap, ci : int or float
        As in `cse.stats.compare` (`n_permutations` also counts wild bootstrap draws).

    Returns
    -------
    dict
        Per-layer arrays (see `compare`), ``clusters``, ``cluster_p``, the design's
        ``statistic`` and ``effect_size`` words, ``statistic_name``, ``scale``,
        ``null``, ``n_blocks``, ``n_clusters``, ``threshold``, ``threshold_rule``,
        ``threshold_df``, ``reference``, ``n_permutations``, ``exact``, ``space_size``,
        ``space_log10``, ``p_min``, ``bootstrap``, ``interval_note``.
    """
    rng = np.random.default_rng() if rng is None else rng
    has_cov = covariates is not None and covariates.shape[1] > 0
    n_blocks = 0 if blocks is None else int(np.max(blocks)) + 1
    statistic = resolve_statistic(statistic, paired=paired, blocks=blocks is not None, covariates=has_cov,
                                  n_blocks=n_blocks)  # fmt: skip
    design = make_design(y_a, y_b, paired=paired, blocks=blocks, covariates=covariates,
                         covariate_names=covariate_names, statistic=statistic)  # fmt: skip
    n_clusters = WildCluster(design).n_clusters if blocks is not None and not paired else 0
    null = resolve_null(null, statistic, n_clusters)
    if null == "wild" and permutations is not None:
        raise CSEInputError("Invalid value for 'permutations': given permutations need null='permutation'")
    # 1. Observed statistics and effect sizes.
    out = design.observed()
    t_obs = design.t(design.identity)[0]
    out["t"] = t_obs
    # 2. One null distribution: the whole space when it is small enough.
    t_null, space = _null(design, null, n_permutations, rng, permutations)
    # 3. One scale across layers, then every correction from the one distribution.
    s_obs, s_null, scale = common_scale(design, t_obs, t_null)
    if scale == "z" and design.reference == "t":
        out["z"] = s_obs
    rule, rule_df = threshold_rule(statistic, scale, n_clusters, out["threshold_df"])
    if threshold is None:
        threshold = default_threshold(rule_df, tail, cluster_alpha, "z" if np.isinf(rule_df) else "t")
    else:
        rule = "given"
    out.update(correct(s_obs, s_null, corrections, tail=tail, threshold=threshold, tfce_e=tfce_e, tfce_h=tfce_h,
                       alpha=alpha, exact=space["exact"]))  # fmt: skip
    out["p_corrected"] = out[f"p_{corrections[0]}"]
    out["significant"] = np.where(np.isfinite(out["p_corrected"]), out["p_corrected"] <= alpha, False)
    out.update(threshold=float(threshold), threshold_rule=rule, n_permutations=int(len(t_null)), null=null,
               statistic=design.statistic, reference=_NULL_WORDS[null], statistic_name=statistic,
               n_blocks=n_blocks, n_clusters=n_clusters, p_min=p_min(tail_stat(s_null, tail), space["exact"]),
               effect_size=design.effect_size, scale=scale, exact=space["exact"], space_size=space["size"],
               space_log10=space["log10"], space_total=space["total"], n_layers_undefined=int(np.sum(~np.isfinite(t_obs))),
               threshold_df=rule_df if rule != "given" else np.inf if scale == "z" else out["threshold_df"],
               )  # fmt: skip
    # 4. Intervals of Hedges' g and of the effect estimate.
    _intervals(design, out, blocks=blocks, paired=paired, bootstrap=bootstrap, n_bootstrap=n_bootstrap, rng=rng,
               ci=ci, L=t_obs.size)  # fmt: skip
    return out
