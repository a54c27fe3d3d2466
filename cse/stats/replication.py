"""Replication across corpora or models: a conjunction test on the per-layer permutation p-values.

Clusters found separately in two corpora cannot say whether an effect replicates: each
controls its own error, and clusters of opposite sign at the same depth look alike in a
list. `conjunction` asks at every layer (or bin of relative depth) whether at least u of
the n results show an effect of the same sign:

1. per result and direction s (+ or -), the layer's permutation p-value when the
   statistic has sign s, else 1 (a valid p-value of "no effect of sign s");
2. per layer and direction, the partial conjunction p-value of Benjamini & Heller
   (2008): a combination of the n - u + 1 largest p-values p_(u) <= ... <= p_(n) --
   Simes (default), ``min_j (n - u + 1) / j p_(u - 1 + j)``, Fisher, the chi2(2 (n -
   u + 1)) tail of ``-2 sum log p_(i)``, both for independent results (separate corpora;
   Simes also under positive dependence), or Bonferroni, ``min(1, (n - u + 1) p_(u))``,
   under any dependence; for u = n all three are the largest p, the minimum-statistic
   conjunction test of Nichols et al. (2005), valid under the conjunction null (some
   result has no effect);
3. per layer the smaller of the two directions (only one can hold u results when
   u > n / 2), then a correction across layers: Holm (FWER, any dependence; default) or
   Benjamini-Hochberg (FDR, as Heller et al. 2007).

Results with different layers (models of different depth) are compared on bins of
relative depth: a result's p-value of a bin is the Bonferroni-adjusted smallest p of its
layers in the bin (valid for "no layer of the bin has an effect of sign s").

References
----------
Nichols, T., Brett, M., Andersson, J., Wager, T. & Poline, J.-B. (2005). Valid
conjunction inference with the minimum statistic. NeuroImage 25, 653-660.
Heller, R., Golland, Y., Malach, R. & Benjamini, Y. (2007). Conjunction group analysis:
an alternative to mixed/random effect analysis. NeuroImage 37, 1178-1185.
Benjamini, Y. & Heller, R. (2008). Screening for partial conjunction hypotheses.
Biometrics 64, 1215-1222.
Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J.
Stat. 6, 65-70.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import CSEInputError
import warnings

from scipy import stats as sps

from ..params import check_choice, check_int, check_number
from .corrections import benjamini_hochberg, holm

CONJUNCTION_CORRECTIONS = ("holm", "fdr_bh")
#: How the partial conjunction combines the n - u + 1 largest p-values.
COMBINATIONS = ("simes", "fisher", "bonferroni")


def _named(results) -> dict:
    """Validate `results`: name -> compare result with ``t`` and ``p_uncorrected`` over ``layer``."""
    if isinstance(results, Mapping):
        named = {str(k): v for k, v in results.items()}
    elif isinstance(results, (list, tuple)):
        named = {str(k): v for k, v in enumerate(results)}
    else:
        raise TypeError(f"Invalid type for 'results': expected a dict or list of compare results, got "
                        f"{type(results).__name__}")  # fmt: skip
    if len(named) < 2:
        raise CSEInputError(f"Invalid value for 'results': a conjunction needs at least 2 results, got {len(named)}")
    for name, res in named.items():
        if not isinstance(res, xr.Dataset) or "p_uncorrected" not in res or "t" not in res:
            raise CSEInputError(
                f"Invalid value for 'results': {name!r} is not a cse.stats.compare result (needs 't' and "
                f"'p_uncorrected' over 'layer')"
            )
    return named


def _directional(res: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """p-values of "no effect of sign +" and "no effect of sign -" per layer (1 where the sign differs)."""
    p = np.asarray(res["p_uncorrected"].values, dtype=np.float64)
    t = np.asarray(res["t"].values, dtype=np.float64)
    tail = int(res.attrs.get("tail", 0))
    pos = np.where((t > 0) & (tail >= 0), p, 1.0)
    neg = np.where((t < 0) & (tail <= 0), p, 1.0)
    undefined = ~np.isfinite(p) | ~np.isfinite(t)
    return np.where(undefined, 1.0, pos), np.where(undefined, 1.0, neg)


def _depth(res: xr.Dataset) -> np.ndarray:
    if "depth" in res.coords and res["depth"].dims == ("layer",):
        return np.asarray(res["depth"].values, dtype=np.float64)
    L = res.sizes["layer"]
    return np.arange(1, L + 1) / L


def _binned(p: np.ndarray, depth: np.ndarray, bins: int) -> np.ndarray:
    """Per bin of relative depth: min(1, m * smallest p of the m layers in the bin); 1 for an empty bin."""
    index = np.clip(np.ceil(depth * bins - 1e-9).astype(np.int64) - 1, 0, bins - 1)
    out = np.ones(bins)
    for k in range(bins):
        inside = p[index == k]
        if inside.size:
            out[k] = min(1.0, inside.size * inside.min())
    return out


def _partial(p: np.ndarray, u: int, combination: str = "bonferroni") -> np.ndarray:
    """Partial conjunction p of u out of n (rows) per column, from the n - u + 1 largest p (Benjamini & Heller 2008)."""
    n = p.shape[0]
    largest = np.sort(p, axis=0)[u - 1 :]  # p_(u) .. p_(n)
    m = n - u + 1
    if combination == "simes":
        return np.minimum(1.0, (m / np.arange(1, m + 1)[:, None] * largest).min(axis=0))
    if combination == "fisher":
        with np.errstate(divide="ignore"):
            return sps.chi2.sf(-2.0 * np.log(largest).sum(axis=0), 2 * m)
    return np.minimum(1.0, m * largest[0])


def _reachable(named: dict, u: int, correction: str, n_tests: int, bins: int | None, combination: str) -> float:
    """The smallest corrected conjunction p that the results' permutation counts allow (from their ``p_min``).

    Every combination is increasing in each p, so its smallest value is at the results'
    floors (times the Bonferroni factor of the fewest layers in a bin); Holm's first step
    multiplies it by the number of tests, Benjamini-Hochberg's smallest adjusted p can
    equal it.
    """
    floors = []
    for res in named.values():
        factor = 1
        if bins is not None:
            index = np.clip(np.ceil(_depth(res) * bins - 1e-9).astype(np.int64) - 1, 0, bins - 1)
            factor = int(np.bincount(index, minlength=bins)[np.bincount(index, minlength=bins) > 0].min())
        floors.append(min(1.0, factor * float(res.attrs.get("p_min", 0.0))))
    smallest = float(_partial(np.array(floors)[:, None], u, combination)[0])
    return min(1.0, smallest * (max(n_tests, 1) if correction == "holm" else 1))


def conjunction(results, *, u: int | None = None, alpha: float = 0.05, correction: str = "holm",
                bins: int | None = None, combination: str = "simes") -> xr.Dataset:  # fmt: skip
    """Find where at least u of several `cse.stats.compare` results agree on an effect of the same sign.

    Parameters
    ----------
    results : dict of str to xarray.Dataset, or list of xarray.Dataset
        `cse.stats.compare` results (one per corpus, or one per model), with ``t`` and
        ``p_uncorrected`` over ``layer`` (two-sided, or one-sided per ``attrs["tail"]``).
    u : int, optional
        How many results must show the effect, 1 <= u <= n (default n: all of them,
        the minimum-statistic conjunction).
    alpha : float
        Level of ``replicated``, in (0, 1).
    correction : {"holm", "fdr_bh"}
        Correction of the conjunction p-values across layers (or bins): Holm (FWER,
        default) or Benjamini-Hochberg (FDR).
    bins : int, optional
        Compare on this many equal bins of relative depth (``depth`` coordinate, or
        (i + 1) / L) instead of layers; required when the results' layers differ.
    combination : {"simes", "fisher", "bonferroni"}
        How the n - u + 1 largest p-values are combined (see the module docstring);
        irrelevant for u = n.

    Returns
    -------
    xarray.Dataset
        Over ``layer`` (or ``relative_depth``, the bin centres, with ``depth_low`` and
        ``depth_high``): ``p_conjunction`` (per layer, uncorrected), ``p_corrected``,
        ``sign`` (int64: +1 or -1, the direction of the smaller p; 0 where neither
        direction has u results below 1), ``replicated`` (bool, p_corrected <= alpha);
        over (``result``, layer): ``p_positive``, ``p_negative`` (the directional
        p-values entering the test) and ``direction`` (int64, sign of t). Attributes:
        ``u``, ``n_results``, ``alpha``, ``correction``, ``combination``, ``method``,
        ``p_min_corrected`` (the smallest corrected p the results' permutation counts
        allow, from their ``p_min``) and ``alpha_reachable`` (1 or 0; a
        ``UserWarning`` says when 0: nothing can replicate whatever the data).

    Raises
    ------
    CSEInputError
        If fewer than two results are given, one is not a compare result, `u` or
        `alpha` is out of range, or the layers differ and `bins` is not given.
    TypeError
        If `results` is neither a dict nor a list.

    Notes
    -----
    At a single layer the test has level alpha under the conjunction null (fewer than
    u results with an effect of that sign; Nichols et al. 2005; Benjamini & Heller
    2008). Across layers Holm controls the familywise error of the layers where the
    conjunction null holds (``tests/test_stats_simulation.py`` measures it where one
    corpus has an effect and the other none). Directional p-values are the two-sided
    permutation p-values restricted to one sign of t, so the test is conservative by
    up to a factor of 2.

    Examples
    --------
    >>> import cse, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> runs = []
    >>> for seed in (1, 2):
    ...     y = rng.normal(size=(40, 6)); y[20:, 2:4] += 1.5
    ...     runs.append(cse.stats.compare(y, by=np.repeat(["a", "b"], 20), n_permutations=199, seed=seed))
    >>> cse.stats.conjunction(runs).replicated.values.tolist()  # doctest: +SKIP
    [False, False, True, True, False, False]
    """
    named = _named(results)
    n = len(named)
    u = n if u is None else check_int("u", u, 1, n)
    alpha = check_number("alpha", alpha, 0, 1)
    correction = check_choice("correction", correction, CONJUNCTION_CORRECTIONS)
    combination = check_choice("combination", combination, COMBINATIONS)
    first = next(iter(named.values()))
    same = all(np.array_equal(r["layer"].values, first["layer"].values) for r in named.values())
    if bins is None and not same:
        raise CSEInputError("Invalid value for 'bins': the results have different layers; compare them on bins of "
                            "relative depth, e.g. bins=10")  # fmt: skip
    pos, neg, sign_t = [], [], []
    for res in named.values():
        p_pos, p_neg = _directional(res)
        if bins is not None:
            bins = check_int("bins", bins, 1, 10_000)
            depth = _depth(res)
            p_pos, p_neg = _binned(p_pos, depth, bins), _binned(p_neg, depth, bins)
            sign_t.append(np.where(p_pos < p_neg, 1, np.where(p_neg < p_pos, -1, 0)))
        else:
            sign_t.append(np.sign(np.nan_to_num(np.asarray(res["t"].values, dtype=np.float64))).astype(np.int64))
        pos.append(p_pos)
        neg.append(p_neg)
    conj_pos, conj_neg = _partial(np.array(pos), u, combination), _partial(np.array(neg), u, combination)
    p_conj = np.minimum(conj_pos, conj_neg)
    sign = np.where(p_conj >= 1.0, 0, np.where(conj_pos <= conj_neg, 1, -1))
    p_corr = holm(p_conj) if correction == "holm" else benjamini_hochberg(p_conj)
    if bins is None:
        dim, coords = "layer", {"layer": first["layer"].values}
        if "depth" in first.coords and first["depth"].dims == ("layer",):
            coords["depth"] = ("layer", first["depth"].values)
    else:
        dim = "relative_depth"
        coords = {dim: (np.arange(bins) + 0.5) / bins, "depth_low": (dim, np.arange(bins) / bins),
                  "depth_high": (dim, np.arange(1, bins + 1) / bins)}  # fmt: skip
    coords["result"] = list(named)
    out = xr.Dataset({
        "p_conjunction": (dim, p_conj), "p_corrected": (dim, p_corr), "sign": (dim, sign.astype(np.int64)),
        "replicated": (dim, (p_corr <= alpha) & (sign != 0)),
        "p_positive": (("result", dim), np.array(pos)), "p_negative": (("result", dim), np.array(neg)),
        "direction": (("result", dim), np.array(sign_t, dtype=np.int64)),
    }, coords=coords)  # fmt: skip
    floor = _reachable(named, u, correction, int(np.sum(np.isfinite(p_conj))), bins, combination)
    out.attrs = {"u": int(u), "n_results": n, "alpha": alpha, "correction": correction, "combination": combination,
                 "method": f"partial conjunction ({u} of {n}), {combination} combination of the {n - u + 1} largest "
                           f"per-layer permutation p-values restricted to one sign; {correction} across "
                           f"{dim.replace('_', ' ')}s",
                 "p_min_corrected": floor, "alpha_reachable": int(floor <= alpha)}  # fmt: skip
    if floor > alpha:
        warnings.warn(f"The results' permutations cannot reach alpha = {alpha} after the {correction} correction "
                      f"(smallest attainable corrected p {floor:.3g}): nothing can replicate; use more permutations",
                      UserWarning, stacklevel=2)  # fmt: skip
    return out


def replicated_bands(results, *, u: int | None = None, alpha: float = 0.05, correction: str = "holm",
                     bins: int | None = None, combination: str = "simes") -> pd.DataFrame:  # fmt: skip
    """The runs of consecutive layers (or bins) where `conjunction` finds a replicated effect, with its sign.

    Parameters
    ----------
    results : dict of str to xarray.Dataset, or list of xarray.Dataset
        `cse.stats.compare` results, as in `conjunction`.
    u, alpha, correction, bins, combination : int, float, str, int or None, str
        As in `conjunction` (e.g. ``u=2``: at least two results show the effect).

    Returns
    -------
    pandas.DataFrame
        One row per band: ``first``, ``last`` (layer labels, or bin centres of
        relative depth, inclusive), ``depth_low``, ``depth_high`` (relative depth of
        the first and last layer, or the bin edges; NaN where unknown), ``sign``
        (+1 / -1), ``n`` (layers or bins in the band), ``p`` (the smallest corrected
        p in the band). Empty when nothing replicates. ``attrs`` holds the
        conjunction's attributes (``alpha_reachable``, ``p_min_corrected`` ...).

    Raises
    ------
    CSEInputError, TypeError
        As `conjunction`.

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> runs = [cse.stats.compare(ds.where(ds.pair < 6, drop=True), by="label"),  # doctest: +SKIP
    ...         cse.stats.compare(ds.where(ds.pair >= 6, drop=True), by="label")]
    >>> cse.stats.replicated_bands(runs)  # doctest: +SKIP
    """
    res = conjunction(results, u=u, alpha=alpha, correction=correction, bins=bins, combination=combination)
    dim = "layer" if "layer" in res.dims else "relative_depth"
    labels = np.asarray(res[dim].values)
    low = res["depth_low"].values if "depth_low" in res.coords else (
        res["depth"].values if "depth" in res.coords else np.full(labels.size, np.nan))
    high = res["depth_high"].values if "depth_high" in res.coords else low
    key = np.where(res["replicated"].values, res["sign"].values, 0)
    rows, start = [], None
    for k in range(labels.size + 1):
        if start is not None and (k == labels.size or key[k] != key[start]):
            rows.append({"first": labels[start], "last": labels[k - 1], "depth_low": float(low[start]),
                         "depth_high": float(high[k - 1]), "sign": int(key[start]), "n": k - start,
                         "p": float(np.min(res["p_corrected"].values[start:k]))})  # fmt: skip
            start = None
        if k < labels.size and key[k] != 0 and start is None:
            start = k
    frame = pd.DataFrame(rows, columns=["first", "last", "depth_low", "depth_high", "sign", "n", "p"])
    frame.attrs.update(res.attrs)
    return frame
