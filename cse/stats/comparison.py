"""`compare`: two groups of tokens at every layer, with permutation tests corrected across layers.

Public functions validate, private functions compute: `compare` checks its arguments,
selects the tokens, builds the plain arrays and hands them to
`cse.stats.engine.compare_arrays`, which only computes (a design, one permutation
distribution, every correction from it, the bootstrap intervals).
"""

from __future__ import annotations


import warnings

import numpy as np

from ..docs import fill_doc
from ..errors import CSEInputError
from ..params import check_choice, check_int, check_memory, check_number, draw_seed
from .corrections import CORRECTIONS
from .engine import BOOTSTRAPS, FEW_BLOCKS, NULLS, STATISTICS, compare_arrays
from .result import assemble
from .selection import (
    align_pairs,
    as_dataarray,
    block_design,
    covariate_matrix,
    deprecated_alias,
    finite_values,
    select_groups,
)

TAILS = (0, 1, -1)


def _check_parameters(tail, correction, corrections, n_permutations, n_bootstrap, alpha, cluster_alpha, ci,
                      threshold, tfce_e, tfce_h, covariates, statistic, bootstrap, null="auto") -> dict:  # fmt: skip
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
        "statistic": check_choice("statistic", statistic, STATISTICS),
        "bootstrap": check_choice("bootstrap", bootstrap, BOOTSTRAPS),
        "null": check_choice("null", null, NULLS),
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
        idx_a, idx_b = align_pairs(sel.frame, paired_by, idx_a, idx_b, sel.levels)
    rows = np.r_[idx_a, idx_b]
    in_b = np.r_[np.zeros(len(idx_a), bool), np.ones(len(idx_b), bool)]
    values = np.asarray(sel.da.isel(token=rows).values, dtype=np.float64)  # loads only the selected tokens
    values, n_nonfinite = finite_values(values, sel.da.name)
    out = {"covariates": None, "blocks": None, "n_tokens_incomplete": 0, "single": [], "n_single_tokens": 0,
           "n_nonfinite": n_nonfinite}  # fmt: skip
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
            f"Invalid selection: need at least 2 tokens per group, got {len(out['y_a'])} for {sel.levels[0]!r} "
            f"and {len(out['y_b'])} for {sel.levels[1]!r}"
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


def _warn_few_blocks(res: dict, blocks) -> None:
    """One warning when fewer than `cse.stats.engine.FEW_BLOCKS` blocks hold both labels."""
    if blocks is None or res["n_clusters"] >= FEW_BLOCKS:
        return
    warnings.warn(
        f"Only {res['n_clusters']} exchangeability blocks ({blocks!r}) hold both labels (fewer than {FEW_BLOCKS}): "
        f"inference is weak -- the statistic's null is near t({max(res['n_clusters'] - 1, 1)}), few distinct "
        f"permutations or bootstrap weights exist and the interval is {res['bootstrap']!r}"
        + (f" ({res['interval_note']})" if res["interval_note"] else ""),
        UserWarning, stacklevel=3,
    )  # fmt: skip


@fill_doc
def compare(ds, by, where=None, *, levels=None, var: str = "cse", paired_by: str | None = None,
            exchangeability_blocks: str | None = None, covariates=None, statistic: str = "auto",
            null: str = "auto", n_permutations: int = 10000, correction: str = "cluster", corrections=None,
            tail: int = 0, threshold: float | None = None, cluster_alpha: float = 0.05, tfce_e: float = 0.5,
            tfce_h: float = 2.0,
            alpha: float = 0.05, n_bootstrap: int = 2000, ci: float = 0.95, bootstrap: str = "auto",
            include_special: bool = False, seed=0, groups=None, blocks: str | None = None):  # fmt: skip
    """Compare two groups of tokens at every layer with a permutation test.

    Per layer: a statistic of the second group against the first (`statistic`), its
    null distribution from one set of label permutations (within exchangeability
    blocks), residual permutations (covariates) or sign flips (pairs) -- the whole
    permutation space when it is no larger than `n_permutations` --, every requested
    correction across layers from that one distribution, and the effect size with
    bootstrap intervals.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or ndarray, shape (n_tokens, n_layers)
        A ``cse compute`` result, one of its (token, layer) variables, or a plain
        array (then `by` is the array of group labels, one per token). Non-finite
        values (NaN, inf) are undefined at that layer and left out there; infinite
        ones are counted (``n_nonfinite``) with one warning.
    by : str or array-like
        Token coordinate holding the groups; after selection it must have exactly two
        distinct values unless `levels` picks two. Missing values (NaN/None) are dropped.
    where : %(where)s
    levels : (a, b), optional
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
    covariates : list of str, optional
        Numeric token coordinates or 1-D token variables (``surprisal``,
        ``log_frequency``, ``position`` ...) entered as nuisance regressors; the test
        is then Freedman-Lane (with or without blocks). Tokens with an undefined value
        at any layer or in a covariate are left out (counted in ``n_tokens_incomplete``).
    statistic : {"auto", "cr", "hc2", "pooled", "welch", "paired"}
        The statistic (see Notes). ``auto`` (default): ``welch`` without blocks and
        covariates, ``cr`` with at least two blocks (``hc2`` with one), ``hc2`` with
        covariates but no blocks, ``paired`` for pairs.
    null : {"auto", "permutation", "wild"}
        The null distribution of the statistic, from which the per-layer p-values and
        every correction come. ``permutation``: labels permuted within blocks
        (residuals with covariates, sign flips for pairs). ``wild``: the restricted
        wild cluster bootstrap of the block-clustered statistic (needs ``cr``; one
        Webb six-point weight per block multiplies that block's residuals under H0 at
        every layer; `cse.stats.wild`). ``auto`` (default): ``wild`` for ``cr`` with
        at least two blocks holding both labels, else ``permutation`` -- chosen by
        measured size: when the label effect varies between blocks (mean 0), the
        permutation null's cluster-mass FWER was 0.086 with 5 blocks and 0.066 with
        25, the wild bootstrap's 0.054 and 0.047 (TFCE, max-T and per layer
        0.039-0.057 under both), and in the other designs the two agree within 0.007
        (2,000 data sets per design, ``scripts/stats_null_size.py``,
        ``benchmarks/results/stats_null_size.txt``, `cse.stats.engine.resolve_null`).
        ``attrs["null"]`` records the one used.
    n_permutations : int
        Number of random permutations (or wild bootstrap draws) P >= 1 (the observed labelling is not among
        them), so that p = (b + 1) / (P + 1); when the permutation space holds at most
        P elements it is enumerated instead and p = b / (its size), exact (6**K weight
        vectors of K blocks for ``wild``). Bounded by
        the memory of the stored permutation distribution, P x n_layers float64
        (`cse.params.MEMORY_LIMIT_BYTES`).
    correction : {"cluster", "tfce", "maxT", "maxT_stepdown", "fdr_bh"}
        The primary correction across layers: it gives ``p_corrected`` and
        ``significant``.
    corrections : list of str, optional
        Further corrections, all computed from the same permutations (default: only
        `correction`); each gives ``p_<name>``.
    tail : {0, 1, -1}
        0 two-sided; 1 tests b > a (t > 0); -1 tests b < a.
    threshold : float, optional
        Cluster-forming threshold on the statistic (on its absolute value when
        two-sided), on the scale of ``attrs["scale"]``. Default: the critical value at
        `cluster_alpha` (two-sided when ``tail == 0``) of t(G - 1) for ``cr`` with G
        blocks holding both labels (the statistic's null is near t(G - 1), not N(0, 1):
        2.78 at G = 5), of N(0, 1) for the other studentized statistics, else of
        Student's t with the smallest degrees of freedom over layers (n_a + n_b - 2 for
        Welch's t). ``attrs["threshold_rule"]`` records which.
    cluster_alpha : float
        Level of the default cluster-forming threshold, in (0, 1).
    tfce_e, tfce_h : float
        Extent and height exponents of TFCE, in (0, 10). Default E = 0.5, H = 2 (the
        1-D default of this package).
    alpha : float
        Level for ``significant`` and for Benjamini-Hochberg, in (0, 1).
    n_bootstrap : int
        Bootstrap replicates for the intervals of Hedges' g and of ``diff`` (0 skips
        them: NaN bounds).
    ci : float
        Coverage of the bootstrap intervals, in (0, 1).
    bootstrap : {"auto", "blocks", "t", "cells"}
        The interval. ``t`` (the default with blocks): ``diff +- t(G - 1) SE_CR1``
        with G blocks holding both labels, g's bounds scaled by J(df) / SD; NaN with
        the reason in ``attrs["interval_note"]`` below 2 blocks. ``blocks``: percentile
        bootstrap resampling whole blocks; ``cells``: tokens within each
        block-by-group cell (far too narrow with small blocks), or within each group
        without blocks. Pairs are always resampled whole. ``attrs["bootstrap"]`` says
        which. Measured coverage of 95 % intervals of diff (600 data sets per cell,
        ``scripts/stats_coverage.py``): ``t`` 0.93-0.96 at 5, 8, 10, 15, 30 and 60
        blocks, ``blocks`` 0.82-0.84 at 5 and 0.88-0.90 at 8-10 blocks, ``cells``
        0.50-0.79 (`cse.stats.engine.AUTO_INTERVAL`).
    include_special : %(include_special)s
    seed : %(seed)s
    groups : (a, b), optional
        Deprecated name of `levels` (``DeprecationWarning``; ``groups`` names the
        grouping column in `mixedlm` and statsmodels).
    blocks : str, optional
        Deprecated alias of `exchangeability_blocks` (``DeprecationWarning``); it will
        be removed in the next release.

    Returns
    -------
    xarray.Dataset
        Over ``layer`` (with the ``depth`` and ``boundary_affected`` coordinates where
        the input has them), float64 unless noted: ``mean_a, mean_b`` (raw group
        means), ``diff`` (the effect estimate, see Notes) with ``diff_ci_low``,
        ``diff_ci_high``, ``t`` (the statistic), ``z`` (only where a model-based t was
        put on the z scale), ``df``, ``p_uncorrected``, ``p_corrected``,
        ``significant`` (bool), ``cohens_d``, ``hedges_g``, ``g_ci_low``,
        ``g_ci_high``, ``n_a``, ``n_b`` (int64, tokens or pairs used at the layer),
        ``cluster_id`` (int64, -1 outside clusters), ``p_<name>`` for every computed
        correction and ``tfce`` (signed TFCE score) when TFCE is computed; over
        ``cluster`` (empty unless ``cluster`` is computed): ``cluster_start,
        cluster_stop`` (layer labels, inclusive), ``cluster_mass, cluster_p,
        cluster_sign``. Attributes record every setting and the seed,
        ``statistic`` (which statistic, in words) and ``statistic_name``,
        ``scale`` (``t`` or ``z``: what the corrections combined), ``effect_size``,
        ``bootstrap`` and ``interval_note`` (why an interval is NaN, else ''),
        ``null``, ``corrections`` (the primary first), ``threshold`` with
        ``threshold_rule`` and ``threshold_df``, the null's space
        (``permutation_space``, its ``permutation_space_log10``, ``exact`` 1 when
        enumerated, ``p_min`` the smallest attainable p: 1 / (P + 1) for random
        draws, the fewest elements at a layer's largest value over the size when
        enumerated, 2 / size two-sided for sign-symmetric spaces), the token counts,
        ``n_clusters`` (blocks holding both labels, G), the
        exchangeability blocks (``n_blocks``, ``n_blocks_single_label``,
        ``blocks_single_label``), the covariates, ``n_nonfinite`` and
        ``n_layers_undefined`` (layers where the statistic is NaN).

    Raises
    ------
    CSEInputError
        If ``null="wild"`` is asked without ``cr`` and two blocks holding both labels,
        a coordinate is missing, `where` is refused or cannot be evaluated, `by`
        does not give two groups, pairs are incomplete, no block holds both groups,
        covariates are collinear, the statistic does not fit the design, a parameter
        is out of range, or a count would need more memory than the limit (the
        message names it).
    TypeError
        If `ds`, `where`, `seed` or a count has the wrong type.

    Notes
    -----
    Statistics (``attrs["statistic"]``), all with labels permuted within blocks:

    - ``welch`` (no blocks, no covariates): ``(mean_b - mean_a) / sqrt(v_a / n_a +
      v_b / n_b)`` over the tokens finite at the layer; t scale.
    - ``cr`` (default with blocks): the label coefficient beta of the OLS model
      ``y = beta label (+ gamma' covariates) + alpha_block + e`` over its
      block-clustered (CR1) standard error (`cse.stats.robust`), referred to its
      null distribution (`null`): studentized, so valid when the labels differ in
      variance (Chung & Romano 2013; DiCiccio & Romano 2017) and, per layer, when
      tokens of a block are dependent. Corrections that sum over layers (cluster
      mass) also need the dependence across layers that a block-specific label
      effect adds, which label permutations do not reproduce and the wild bootstrap
      does (the default `null`). Chosen over ``hc2`` by its measured size (README;
      `cse.stats.robust`). With few blocks its null is near t(G - 1); below
      `cse.stats.engine.FEW_BLOCKS` (10) blocks a ``UserWarning`` says inference is
      weak.
    - ``hc2``: the same coefficient over the HC2 standard error with the full
      fixed-effects leverage (default with covariates but no blocks).
    - ``pooled``: the model's t with one pooled residual variance (df = n - n_blocks -
      n_covariates - 1; Student's t without blocks); the default of earlier releases,
      which rejects too often when the labels differ in variance and share.
    - with covariates, Freedman-Lane: the residuals of the nuisance model are permuted
      (within blocks) and the statistic recomputed in the full model (Freedman &
      Lane 1983; Winkler et al. 2014).
    - ``paired`` (sign flips): one-sample t of the differences b - a.

    ``diff`` is beta with blocks or covariates (the label effect within blocks, not
    mean_b - mean_a, which mixes in differences between blocks), else mean_b - mean_a.
    One scale across layers: studentized statistics are z (a name, not a reference:
    their p-values come from the null distribution); a model-based t whose
    degrees of freedom differ across layers (NaN patterns) is converted to the z with
    the same tail probability before the corrections (``z``); Welch's t stays t.

    Effect sizes: Cohen's d = diff / SD and Hedges' g = J(df) d, J = 1 - 3 / (4 df - 1)
    (Hedges 1981). The SD is the pooled SD (no blocks; df = n_a + n_b - 2), the SD of
    the differences (paired; df = n - 1), or the residual SD of the block / covariate
    model with its residual df. The intervals are percentile bootstrap intervals
    (`bootstrap`; `cse.stats.effects`).

    Corrections (`cse.stats.corrections`), all from one matrix of permuted statistics:
    ``cluster`` (runs of layers beyond the threshold, one sign per run, mass = sum of
    the statistic; each against the largest mass of every permutation; layers outside
    every cluster get p = 1; Maris & Oostenveld 2007), ``tfce`` (Smith & Nichols 2009,
    exact in 1-D), ``maxT`` and ``maxT_stepdown`` (Westfall & Young 1993), both FWER;
    ``fdr_bh`` (Benjamini & Hochberg 1995, FDR).

    References
    ----------
    Winkler, A. M., Ridgway, G. R., Webster, M. A., Smith, S. M. & Nichols, T. E. (2014).
    Permutation inference for the general linear model. NeuroImage 92, 381-397.
    Chung, E. & Romano, J. P. (2013). Exact and asymptotically robust permutation tests.
    Ann. Statist. 41, 484-507.
    DiCiccio, C. J. & Romano, J. P. (2017). Robust permutation tests for correlation and
    regression coefficients. J. Am. Stat. Assoc. 112, 1211-1220.
    Freedman, D. & Lane, D. (1983). J. Bus. Econ. Stat. 1, 292-298.
    Maris, E. & Oostenveld, R. (2007). J. Neurosci. Methods 164, 177-190.
    Smith, S. M. & Nichols, T. E. (2009). NeuroImage 44, 83-98.
    Westfall, P. H. & Young, S. S. (1993). Resampling-Based Multiple Testing. Wiley.
    Benjamini, Y. & Hochberg, Y. (1995). J. R. Stat. Soc. B 57, 289-300.
    Phipson, B. & Smyth, G. K. (2010). Stat. Appl. Genet. Mol. Biol. 9(1), 39.
    Hedges, L. V. (1981). J. Educ. Stat. 6, 107-128.

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
    levels = deprecated_alias("groups", groups, "levels", levels)
    exchangeability_blocks = deprecated_alias("blocks", blocks, "exchangeability_blocks", exchangeability_blocks)
    settings = _check_parameters(tail, correction, corrections, n_permutations, n_bootstrap, alpha, cluster_alpha,
                                 ci, threshold, tfce_e, tfce_h, covariates, statistic, bootstrap, null)  # fmt: skip
    if paired_by is not None and (exchangeability_blocks is not None or settings["covariates"]):
        raise CSEInputError(
            "Invalid combination: 'paired_by' (sign flips of pairs) excludes 'exchangeability_blocks' and "
            "'covariates'; give one"
        )
    _check_memory(settings, as_dataarray(ds, var, by)[0].sizes["layer"])
    seed = draw_seed(seed)  # the one seed policy: the int used is recorded
    rng = np.random.default_rng(seed)

    # 2. Select the tokens, the two groups and the arrays.
    sel = select_groups(ds, by, where, levels, var, include_special,
                        extra={"paired_by": paired_by, "exchangeability_blocks": exchangeability_blocks})  # fmt: skip
    data = _comparison_data(sel, paired_by, exchangeability_blocks, settings["covariates"])

    # 3. Compute.
    res = compare_arrays(
        data["y_a"], data["y_b"], paired=paired_by is not None, blocks=data["blocks"], covariates=data["covariates"],
        covariate_names=settings["covariates"], statistic=settings["statistic"], bootstrap=settings["bootstrap"],
        n_permutations=settings["n_permutations"], corrections=settings["corrections"], tail=settings["tail"],
        threshold=settings["threshold"], cluster_alpha=settings["cluster_alpha"], tfce_e=settings["tfce_e"],
        tfce_h=settings["tfce_h"], alpha=settings["alpha"], n_bootstrap=settings["n_bootstrap"], ci=settings["ci"],
        rng=rng, null=settings["null"],
    )  # fmt: skip
    _warn_few_blocks(res, exchangeability_blocks)

    # 4. Assemble the Dataset.
    return assemble(res, sel, data, settings, var=var, where=where, paired_by=paired_by,
                    blocks=exchangeability_blocks, include_special=include_special, seed=seed)  # fmt: skip
