"""`compare`: two groups of tokens at every layer, with permutation tests corrected across layers.

Public functions validate, private functions compute: `compare` checks its arguments,
selects the tokens, builds the plain arrays and hands them to `compare_arrays`, which
only computes (a design from `cse.stats.statistics` / `cse.stats.linear_model`, one
permutation distribution of t, every correction from it, the bootstrap interval).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

from ..docs import fill_doc
from ..errors import CSEInputError
from ..params import check_choice, check_int, check_memory, check_number, resolve_seed
from .corrections import CORRECTIONS, correct
from .effects import bootstrap_interval
from .linear_model import BlockT, FreedmanLaneT
from .permutation import batch_size, permutation_indices, sign_flips
from .result import assemble
from .selection import align_pairs, as_dataarray, block_design, covariate_matrix, select_groups
from .statistics import PairedT, WelchT

__all__ = ["TAILS", "compare", "compare_arrays", "default_threshold", "make_design", "null_distribution"]

TAILS = (0, 1, -1)


def make_design(y_a, y_b, *, paired=False, blocks=None, covariates=None, covariate_names=()):
    """The design of a comparison: `PairedT`, `FreedmanLaneT`, `BlockT` or `WelchT`.

    Tokens are ordered ``[y_a; y_b]``; `blocks` (n_a + n_b,) int codes and
    `covariates` (n_a + n_b, c) follow that order.
    """
    if paired:
        return PairedT(y_a, y_b)
    y = np.concatenate([y_a, y_b], axis=0)
    group = np.r_[np.zeros(len(y_a), bool), np.ones(len(y_b), bool)]
    if covariates is not None and covariates.shape[1]:
        return FreedmanLaneT(y, group, covariates, blocks, names=covariate_names)
    if blocks is not None:
        return BlockT(y, group, blocks)
    return WelchT(y, group)


def null_distribution(design, n_permutations: int, rng: np.random.Generator, permutations=None) -> np.ndarray:
    """t of every permutation, shape (P, L), computed once in batches.

    Permutations are drawn within the design's exchangeability blocks (sign flips for
    pairs) unless `permutations` gives them: shape (P, n) of token indices, or (P,
    n_pairs) of +-1 for a paired design.
    """
    if permutations is not None:
        permutations = np.asarray(permutations)
        n_permutations = len(permutations)
    chunks = []
    step = batch_size(design.n_units)
    for start in range(0, n_permutations, step):
        size = min(step, n_permutations - start)
        if permutations is not None:
            batch = permutations[start : start + size]
        elif design.paired:
            batch = sign_flips(design.n_units, size, rng)
        else:
            batch = permutation_indices(design.n_units, size, rng, blocks=design.blocks)
        chunks.append(design.t(batch))
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, design.t(design.identity).shape[1]))


def default_threshold(df: float, tail: int, cluster_alpha: float) -> float:
    """Cluster-forming threshold: the Student t critical value at `cluster_alpha` (two-sided if tail == 0)."""
    q = 1 - cluster_alpha / 2 if tail == 0 else 1 - cluster_alpha
    return float(sps.t.ppf(q, max(df, 1.0)))


def compare_arrays(y_a, y_b, *, paired=False, blocks=None, covariates=None, covariate_names=(),
                   n_permutations=10000, corrections=("cluster",), tail=0, threshold=None, cluster_alpha=0.05,
                   tfce_e=0.5, tfce_h=2.0, alpha=0.05, n_bootstrap=0, ci=0.95, rng=None,
                   permutations=None) -> dict:  # fmt: skip
    """Compute everything `compare` reports from plain arrays.

    Parameters
    ----------
    y_a, y_b : ndarray, shape (n_a, L) and (n_b, L), float64
        Values of the two groups (NaN = undefined at that layer). When `paired`, row i
        of each forms pair i.
    blocks : ndarray of int, shape (n_a + n_b,), optional
        Exchangeability block codes (0 .. K - 1), tokens ordered ``[y_a; y_b]``.
    covariates : ndarray, shape (n_a + n_b, c), optional
        Nuisance regressors (finite; the values must be finite too).
    corrections : sequence of str
        Corrections to compute from the one permutation distribution; the first is
        the primary (``p_corrected``, ``significant``).
    permutations : ndarray, optional
        Permutations to use instead of random ones (see `null_distribution`), so that
        tests can feed identical permutations to an independent implementation.
    rng : numpy.random.Generator

    Returns
    -------
    dict
        Per-layer arrays (see `compare`), ``clusters``, ``cluster_p``, the design's
        ``statistic`` and ``effect_size`` words, ``threshold``, ``threshold_df``,
        ``n_permutations``.
    """
    rng = np.random.default_rng() if rng is None else rng
    design = make_design(y_a, y_b, paired=paired, blocks=blocks, covariates=covariates,
                         covariate_names=covariate_names)  # fmt: skip
    # 1. Observed statistics and effect sizes.
    out = design.observed()
    t_obs = design.t(design.identity)[0]
    out["t"] = t_obs
    # 2. One permutation distribution of t.
    t_null = null_distribution(design, n_permutations, rng, permutations)
    # 3. Every correction from it.
    if threshold is None:
        threshold = default_threshold(out["threshold_df"], tail, cluster_alpha)
    out.update(correct(t_obs, t_null, corrections, tail=tail, threshold=threshold, tfce_e=tfce_e, tfce_h=tfce_h,
                       alpha=alpha))  # fmt: skip
    out["p_corrected"] = out[f"p_{corrections[0]}"]
    out["significant"] = np.where(np.isfinite(out["p_corrected"]), out["p_corrected"] <= alpha, False)
    out.update(threshold=float(threshold), n_permutations=int(len(t_null)), statistic=design.statistic,
               effect_size=design.effect_size)  # fmt: skip
    # 4. Bootstrap interval of Hedges' g.
    if n_bootstrap > 0:
        out["g_ci_low"], out["g_ci_high"] = bootstrap_interval(design, n_bootstrap, rng, ci)
    else:
        out["g_ci_low"] = out["g_ci_high"] = np.full(t_obs.size, np.nan)
    return out


def _check_parameters(tail, correction, corrections, n_permutations, n_bootstrap, alpha, cluster_alpha, ci,
                      threshold, tfce_e, tfce_h, covariates) -> dict:  # fmt: skip
    """Validate the numeric and choice parameters of `compare`; return them resolved."""
    if isinstance(tail, bool) or tail not in TAILS:
        raise CSEInputError(f"Invalid value for 'tail': expected 0 (two-sided), 1 (b > a) or -1 (b < a), got {tail!r}")
    check_choice("correction", correction, CORRECTIONS)
    if isinstance(corrections, str):
        corrections = [corrections]
    chosen = [correction] + [check_choice("corrections", c, CORRECTIONS) for c in (corrections or [])]
    if isinstance(covariates, str):
        covariates = [covariates]
    covariates = list(covariates or [])
    for name in covariates:
        if not isinstance(name, str):
            raise TypeError(f"Invalid type for 'covariates': expected token coordinate names, got {name!r}")
    return {
        "tail": int(tail),
        "corrections": list(dict.fromkeys(chosen)),
        "n_permutations": check_int("n_permutations", n_permutations, 1),
        "n_bootstrap": check_int("n_bootstrap", n_bootstrap, 0),
        "alpha": check_number("alpha", alpha, 0, 1),
        "cluster_alpha": check_number("cluster_alpha", cluster_alpha, 0, 1),
        "ci": check_number("ci", ci, 0, 1),
        "threshold": None if threshold is None else check_number("threshold", threshold, 0, None),
        "tfce_e": check_number("tfce_e", tfce_e, 0, 10),
        "tfce_h": check_number("tfce_h", tfce_h, 0, 10),
        "covariates": list(dict.fromkeys(covariates)),
    }


def _check_memory(settings: dict, n_layers: int) -> None:
    """Refuse permutation and bootstrap counts whose stored statistics would exceed the memory limit."""
    check_memory("n_permutations", settings["n_permutations"], settings["n_permutations"] * n_layers * 8 * 3,
                 "the permutation distribution of t and its working copies (n_permutations x n_layers float64)")
    check_memory("n_bootstrap", settings["n_bootstrap"], settings["n_bootstrap"] * n_layers * 8 * 2,
                 "the bootstrap replicates of g (n_bootstrap x n_layers float64)")  # fmt: skip


def _comparison_data(sel, paired_by, blocks, covariates) -> dict:
    """The arrays of the comparison: values, blocks, covariates, after leaving out what carries nothing.

    Covariates need complete tokens (finite at every layer and in every covariate);
    blocks holding one label only are left out (see `block_design`).
    """
    idx_a, idx_b = sel.idx_a, sel.idx_b
    if paired_by is not None:
        idx_a, idx_b = align_pairs(sel.frame, paired_by, idx_a, idx_b, sel.groups)
    rows = np.r_[idx_a, idx_b]
    in_b = np.r_[np.zeros(len(idx_a), bool), np.ones(len(idx_b), bool)]
    values = np.asarray(sel.da.isel(token=rows).values, dtype=np.float64)  # loads only the selected tokens
    out = {"covariates": None, "blocks": None, "n_tokens_incomplete": 0, "single": [], "n_single_tokens": 0}
    if covariates:
        z = covariate_matrix(sel.frame, covariates, rows, {"by": sel.by, "exchangeability_blocks": blocks})
        complete = np.isfinite(values).all(axis=1) & np.isfinite(z).all(axis=1)
        out["n_tokens_incomplete"] = int((~complete).sum())
        rows, in_b, values, z = rows[complete], in_b[complete], values[complete], z[complete]
        out["covariates"] = z
    if blocks is not None:
        labels = sel.frame[blocks].to_numpy()[rows]
        codes, keep, single = block_design(labels, in_b, blocks)
        out.update(blocks=codes, single=single, n_single_tokens=int((~keep).sum()))
        in_b, values = in_b[keep], values[keep]
        if out["covariates"] is not None:
            out["covariates"] = out["covariates"][keep]
    out["y_a"], out["y_b"] = values[~in_b], values[in_b]
    if len(out["y_a"]) < 2 or len(out["y_b"]) < 2:
        raise CSEInputError(
            f"Invalid selection: need at least 2 tokens per group, got {len(out['y_a'])} for {sel.groups[0]!r} "
            f"and {len(out['y_b'])} for {sel.groups[1]!r}"
            + (" after leaving out incomplete tokens and single-label blocks" if covariates or blocks else "")
        )
    n_blocks = 0 if out["blocks"] is None else int(out["blocks"].max()) + 1
    n_params = max(n_blocks, 1) + len(covariates) + 1
    if (covariates or blocks is not None) and len(values) - n_params < 1:
        raise CSEInputError(
            f"Invalid selection: {len(values)} tokens leave no residual degrees of freedom for {n_blocks} blocks, "
            f"{len(covariates)} covariates and the label; select more tokens or use fewer blocks"
        )
    return out


@fill_doc
def compare(ds, by, where=None, *, groups=None, var: str = "cse", paired_by: str | None = None,
            exchangeability_blocks: str | None = None, blocks: str | None = None, covariates=None,
            n_permutations: int = 10000, correction: str = "cluster", corrections=None, tail: int = 0,
            threshold: float | None = None, cluster_alpha: float = 0.05, tfce_e: float = 0.5, tfce_h: float = 2.0,
            alpha: float = 0.05, n_bootstrap: int = 2000, ci: float = 0.95, include_special: bool = False,
            seed=0):  # fmt: skip
    """Compare two groups of tokens at every layer with a permutation test.

    Per layer: a t statistic of the second group against the first -- Welch's t; the
    within-block t of a model with block fixed effects when `exchangeability_blocks`
    are given; a Freedman-Lane t when `covariates` are given; the paired t when
    `paired_by` is given -- its null distribution from one set of label permutations
    (within blocks) or sign flips, every requested correction across layers from that
    one distribution, and the matching effect size with a bootstrap interval.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or ndarray, shape (n_tokens, n_layers)
        A ``cse compute`` result, one of its (token, layer) variables, or a plain
        array (then `by` is the array of group labels, one per token).
    by : str or array-like
        Token coordinate holding the groups; after selection it must have exactly two
        distinct values unless `groups` picks two. Missing values (NaN/None) are dropped.
    %(where)s
    groups : (a, b), optional
        The two values of `by` to compare, in this order. Default: the two values found,
        sorted. Every reported difference is second minus first (b - a).
    var : str
        Variable of a Dataset to test (``cse``, ``cse_z``, ``update_norm`` ...).
    paired_by : str, optional
        Token coordinate identifying pairs: each pair id must hold exactly one selected
        token of each group. The test is then a sign-flip test of the paired differences
        b - a (one-sample t). Excludes `exchangeability_blocks` and `covariates`.
    exchangeability_blocks : str, optional
        Token coordinate of exchangeability blocks (e.g. ``"verb"`` or ``"text"``).
        Labels are permuted only within blocks and the statistic and effect size are
        the within-block ones (block fixed effects; see Notes). Blocks whose selected
        tokens all carry one label are left out and reported.
    blocks : str, optional
        Deprecated alias of `exchangeability_blocks` (``DeprecationWarning``); it will
        be removed in the next release.
    covariates : list of str, optional
        Numeric token coordinates or 1-D token variables (``surprisal``,
        ``log_frequency``, ``position`` ...) entered as nuisance regressors; the test
        is then Freedman-Lane (with or without blocks). Tokens with a NaN value at any
        layer or in a covariate are left out (counted in ``n_tokens_incomplete``).
    n_permutations : int
        Number of random permutations P >= 1 (the observed labelling is not among
        them), so that p = (b + 1) / (P + 1). Bounded by the memory of the stored
        permutation distribution, P x n_layers float64 (`cse.params.MEMORY_LIMIT_BYTES`).
    correction : {"cluster", "tfce", "maxT", "maxT_stepdown", "fdr_bh"}
        The primary correction across layers: it gives ``p_corrected`` and
        ``significant``.
    corrections : list of str, optional
        Further corrections, all computed from the same permutations (default: only
        `correction`); each gives ``p_<name>``.
    tail : {0, 1, -1}
        0 two-sided; 1 tests b > a (t > 0); -1 tests b < a.
    threshold : float, optional
        Cluster-forming threshold on t (on |t| when two-sided). Default: the Student t
        critical value at `cluster_alpha` (two-sided when ``tail == 0``) with the
        smallest degrees of freedom over layers (n_a + n_b - 2 for Welch's t,
        n_pairs - 1 paired, the residual df of the block or covariate model).
    cluster_alpha : float
        Level of the default cluster-forming threshold, in (0, 1).
    tfce_e, tfce_h : float
        Extent and height exponents of TFCE, in (0, 10). Default E = 0.5, H = 2 (the
        1-D default of this package).
    alpha : float
        Level for ``significant`` and for Benjamini-Hochberg, in (0, 1).
    n_bootstrap : int
        Bootstrap replicates for the interval of Hedges' g (0 skips it: NaN bounds).
    ci : float
        Coverage of the bootstrap interval, in (0, 1).
    %(include_special)s
    %(seed)s

    Returns
    -------
    xarray.Dataset
        Over ``layer`` (with the ``depth`` and ``boundary_affected`` coordinates where
        the input has them), float64 unless noted: ``mean_a, mean_b`` (raw group
        means), ``diff`` (the effect estimate, see Notes), ``t``, ``df``,
        ``p_uncorrected``, ``p_corrected``, ``significant`` (bool), ``cohens_d``,
        ``hedges_g``, ``g_ci_low``, ``g_ci_high``, ``n_a``, ``n_b`` (int64, tokens or
        pairs used at the layer), ``cluster_id`` (int64, -1 outside clusters),
        ``p_<name>`` for every computed correction and ``tfce`` (signed TFCE score)
        when TFCE is computed; over ``cluster`` (empty unless ``cluster`` is computed):
        ``cluster_start, cluster_stop`` (layer labels, inclusive), ``cluster_mass,
        cluster_p, cluster_sign``. Attributes record every setting and the seed,
        ``statistic`` (which t, in words), ``effect_size`` (in words),
        ``corrections`` (comma-separated, the primary first), the token counts, the
        exchangeability blocks (``n_blocks``, ``n_blocks_single_label``,
        ``blocks_single_label``) and the covariates.

    Raises
    ------
    CSEInputError
        If a coordinate is missing, `where` is refused or cannot be evaluated, `by`
        does not give two groups, pairs are incomplete, no block holds both groups,
        covariates are collinear, a parameter is out of range, or a count would need
        more memory than the limit (the message names it).
    TypeError
        If `ds`, `where`, `seed` or a count has the wrong type.

    Notes
    -----
    Statistics (``attrs["statistic"]``):

    - Welch t (no blocks, no covariates): ``(mean_b - mean_a) / sqrt(v_a / n_a + v_b /
      n_b)`` over the tokens finite at the layer; labels permuted over all tokens.
    - within-block t (block fixed effects): the t of the label in the OLS model
      ``y = beta label + alpha_block + e``, i.e. computed on data centred within
      blocks, df = n - n_blocks - 1; labels permuted within blocks, so its permutation
      distribution is centred at 0 (Winkler et al. 2014). ``diff`` is beta, the label
      effect within blocks (not mean_b - mean_a, which mixes in differences between
      blocks that differ in mean and in label share).
    - Freedman-Lane t: the t of the label in ``y = beta label + gamma' covariates
      (+ alpha_block) + e``; the residuals of the nuisance model are permuted (within
      blocks) (Freedman & Lane 1983); df = n - n_blocks - n_covariates - 1 (one block
      without blocks). ``diff`` is beta.
    - paired t (sign flips): one-sample t of the differences b - a.

    Effect sizes: Cohen's d = diff / SD and Hedges' g = J(df) d, J = 1 - 3 / (4 df - 1)
    (Hedges 1981). The SD is the pooled SD (Welch; df = n_a + n_b - 2), the SD of the
    differences (paired; df = n - 1), or the residual SD of the block / covariate model
    with its residual df (so g is the within-block effect in units of the within-block
    noise). The interval is the percentile bootstrap, resampling tokens within each
    group, within each block-by-group cell with blocks, or pairs.

    Corrections (`cse.stats.corrections`), all from one matrix of permuted t:
    ``cluster`` (runs of layers with t beyond the threshold, one sign per run, mass =
    sum of t; each against the largest mass of every permutation; layers outside every
    cluster get p = 1; Maris & Oostenveld 2007), ``tfce`` (TFCE over layers with
    E = 0.5, H = 2 by default, computed exactly; each layer's |score| against the
    largest |score| of every permutation; two-sided enhances both signs; Smith &
    Nichols 2009), ``maxT`` (single step) and ``maxT_stepdown`` (Westfall & Young 1993,
    Algorithm 2.8), both FWER; ``fdr_bh`` (Benjamini & Hochberg 1995, FDR).

    References
    ----------
    Winkler, A. M., Ridgway, G. R., Webster, M. A., Smith, S. M. & Nichols, T. E. (2014).
    Permutation inference for the general linear model. NeuroImage 92, 381-397.
    Freedman, D. & Lane, D. (1983). A nonstochastic interpretation of reported
    significance levels. J. Bus. Econ. Stat. 1, 292-298.
    Maris, E. & Oostenveld, R. (2007). Nonparametric statistical testing of EEG- and
    MEG-data. J. Neurosci. Methods 164, 177-190.
    Smith, S. M. & Nichols, T. E. (2009). Threshold-free cluster enhancement.
    NeuroImage 44, 83-98.
    Westfall, P. H. & Young, S. S. (1993). Resampling-Based Multiple Testing. Wiley.
    Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate.
    J. R. Stat. Soc. B 57, 289-300.
    Phipson, B. & Smyth, G. K. (2010). Permutation p-values should never be zero.
    Stat. Appl. Genet. Mol. Biol. 9(1), 39.
    Hedges, L. V. (1981). Distribution theory for Glass's estimator of effect size.
    J. Educ. Stat. 6, 107-128.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(40, 6)); y[20:, 2:4] += 1.5
    >>> res = compare(y, by=np.repeat(["a", "b"], 20), n_permutations=999, seed=1)
    >>> res.significant.values.tolist()
    [False, False, True, True, False, False]
    """
    # 1. Validate every parameter before any work.
    if blocks is not None:
        warnings.warn("'blocks' is deprecated and will be removed in the next release; use 'exchangeability_blocks'",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
        if exchangeability_blocks is not None and exchangeability_blocks != blocks:
            raise CSEInputError("Invalid combination: give 'exchangeability_blocks' only ('blocks' is its old name)")
        exchangeability_blocks = blocks
    settings = _check_parameters(tail, correction, corrections, n_permutations, n_bootstrap, alpha, cluster_alpha,
                                 ci, threshold, tfce_e, tfce_h, covariates)  # fmt: skip
    if paired_by is not None and (exchangeability_blocks is not None or settings["covariates"]):
        raise CSEInputError(
            "Invalid combination: 'paired_by' (sign flips of pairs) excludes 'exchangeability_blocks' and "
            "'covariates'; give one"
        )
    _check_memory(settings, as_dataarray(ds, var, by)[0].sizes["layer"])
    rng = resolve_seed(seed)

    # 2. Select the tokens, the two groups and the arrays.
    sel = select_groups(ds, by, where, groups, var, include_special,
                        extra={"paired_by": paired_by, "exchangeability_blocks": exchangeability_blocks})  # fmt: skip
    data = _comparison_data(sel, paired_by, exchangeability_blocks, settings["covariates"])

    # 3. Compute.
    res = compare_arrays(
        data["y_a"], data["y_b"], paired=paired_by is not None, blocks=data["blocks"], covariates=data["covariates"],
        covariate_names=settings["covariates"], n_permutations=settings["n_permutations"],
        corrections=settings["corrections"], tail=settings["tail"], threshold=settings["threshold"],
        cluster_alpha=settings["cluster_alpha"], tfce_e=settings["tfce_e"], tfce_h=settings["tfce_h"],
        alpha=settings["alpha"], n_bootstrap=settings["n_bootstrap"], ci=settings["ci"], rng=rng,
    )  # fmt: skip

    # 4. Assemble the Dataset.
    return assemble(res, sel, data, settings, var=var, where=where, paired_by=paired_by,
                    blocks=exchangeability_blocks, include_special=include_special, seed=seed)  # fmt: skip
