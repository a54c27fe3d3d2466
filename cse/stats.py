"""Statistics on CSE results: per-layer group comparisons, mixed models, relative depth.

Every function takes the `xarray.Dataset` written by ``cse compute`` (or one of its
`DataArray`s, or a plain ``(n_tokens, n_layers)`` array) and returns a Dataset over
``layer`` (or ``relative_depth``) whose attributes record every setting, the seed and
the token counts, so that a saved result says how it was made.

Public functions validate, private functions compute: `compare` checks its arguments,
selects the tokens and hands plain arrays to `_compare_arrays`, which only computes.
The permutation machinery is vectorized: a batch of B permutations is a ``(B, n)``
group-indicator matrix, and the group sums, counts and sums of squares of every layer
for all B permutations come from one matrix product with the ``(n, 3 L)`` matrix of
masked values, masks and squares. Tokens whose CSE is NaN (undefined, SPEC section 2)
at a layer are left out at that layer only, through these masked sums.

Shared parameters
-----------------
by : str
    Token coordinate that defines the two groups (e.g. ``"label"``).
where : None, str, dict or boolean DataArray over ``token``
    Token selection applied before grouping. A string is a pandas expression over the
    token coordinates (and 1-D token variables such as ``surprisal``), evaluated with
    `pandas.DataFrame.eval` -- never Python `eval` -- e.g. ``"word == verb_idx"`` or
    ``"is_word_start and genre == 'news'"``. A dict ``{coord: value}`` keeps tokens
    whose coordinate equals the value (or is in it, for a list). A boolean DataArray
    over ``token`` is used as is.
include_special : bool
    Keep special tokens (``is_special``, e.g. the attention-sink first position).
    Default False: SPEC section 3 excludes them from statistics.
seed : int, None or numpy.random.Generator
    Seed of every random draw (permutations, sign flips, bootstrap), resolved with
    `cse.params.resolve_seed` and recorded in the result.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as sps

from .errors import CSEInputError
from .params import check_choice, resolve_seed

__all__ = [
    "compare",
    "mixedlm",
    "relative_depth",
    "log_frequency",
    "add_log_frequency",
    "select_tokens",
]

CORRECTIONS = ("cluster", "maxT", "fdr_bh")
TAILS = (0, 1, -1)
RELATIVE_DEPTH_METHODS = ("mean", "interpolate")

# Permutations (and bootstrap replicates) are processed in batches of at most _BATCH
# rows and at most _BATCH_ELEMENTS entries of the (B, n) group matrix, so memory stays
# near _BATCH_ELEMENTS * 8 bytes (32 MB) whatever the number of tokens.
_BATCH = 1000
_BATCH_ELEMENTS = 4_000_000


def _batch_size(n: int) -> int:
    """Rows per batch of a (B, n) permutation or resampling matrix."""
    return int(np.clip(_BATCH_ELEMENTS // max(n, 1), 1, _BATCH))
# Relative tolerance when comparing a permutation statistic with the observed one
# (as scipy.stats.permutation_test does): exact ties up to rounding count as >=.
_TIE_RTOL = 100 * np.finfo(np.float64).eps


# ---------------------------------------------------------------------------------
# token selection
# ---------------------------------------------------------------------------------


def _as_dataarray(data, var: str, by=None) -> tuple[xr.DataArray, str | None, xr.Dataset | None]:
    """Return the (token, layer) DataArray to test, the `by` name and the source Dataset."""
    if isinstance(data, xr.Dataset):
        if var not in data.data_vars:
            raise CSEInputError(
                f"Invalid value for 'var': the result has no variable {var!r}; "
                f"available: {', '.join(map(str, data.data_vars)) or 'none'}"
            )
        da = data[var]
        source = data
    elif isinstance(data, xr.DataArray):
        da = data
        source = None
    elif isinstance(data, np.ndarray) or isinstance(data, Sequence):
        arr = np.asarray(data, dtype=float)
        if arr.ndim != 2:
            raise CSEInputError(
                f"Invalid value for 'ds': a plain array must have shape (n_tokens, n_layers), got shape {arr.shape}"
            )
        da = xr.DataArray(arr, dims=("token", "layer"), name=var)
        da = da.assign_coords(layer=np.arange(arr.shape[1]))
        if by is not None and not isinstance(by, str):
            labels = np.asarray(by)
            if labels.shape != (arr.shape[0],):
                raise CSEInputError(
                    f"Invalid value for 'by': with a plain array, 'by' must be the {arr.shape[0]} group "
                    f"labels of the tokens, got shape {labels.shape}"
                )
            da = da.assign_coords(group=("token", labels))
            by = "group"
        source = None
    else:
        raise TypeError(
            f"Invalid type for 'ds': expected an xarray Dataset, DataArray or a (n_tokens, n_layers) array, "
            f"got {type(data).__name__}"
        )
    missing = [d for d in ("token", "layer") if d not in da.dims]
    if missing:
        raise CSEInputError(
            f"Invalid value for 'ds': {var!r} needs dims ('token', 'layer'), got {da.dims}; "
            f"select other dims (e.g. .sel(scale='d1')) first"
        )
    extra = [d for d in da.dims if d not in ("token", "layer")]
    if extra:
        raise CSEInputError(
            f"Invalid value for 'ds': {var!r} has extra dims {tuple(extra)}; select one value of each first"
        )
    return da.transpose("token", "layer"), by, source


def _token_frame(da: xr.DataArray, source: xr.Dataset | None) -> pd.DataFrame:
    """All 1-D token coordinates (and 1-D token variables of `source`) as a DataFrame."""
    cols = {}
    holders = [da.coords] + ([source.coords, source.data_vars] if source is not None else [])
    for holder in holders:
        for name, v in holder.items():
            if v.dims == ("token",) and name not in cols:
                cols[str(name)] = np.asarray(v.values)
    return pd.DataFrame(cols, index=pd.RangeIndex(da.sizes["token"]))


def _eval_where(frame: pd.DataFrame, where) -> np.ndarray:
    """Evaluate `where` on the token frame; return a boolean mask over tokens."""
    n = len(frame)
    if where is None:
        return np.ones(n, dtype=bool)
    if isinstance(where, xr.DataArray):
        if where.dims != ("token",) or where.sizes["token"] != n or where.dtype != bool:
            raise CSEInputError(
                f"Invalid value for 'where': a DataArray mask must be boolean over ('token',) with {n} tokens, "
                f"got dtype {where.dtype} and dims {where.dims} of sizes {tuple(where.shape)}"
            )
        return np.array(where.values, dtype=bool)
    if isinstance(where, np.ndarray) and where.dtype == bool:
        if where.shape != (n,):
            raise CSEInputError(f"Invalid value for 'where': a boolean mask needs shape ({n},), got {where.shape}")
        return where.copy()
    if isinstance(where, Mapping):
        mask = np.ones(n, dtype=bool)
        for key, value in where.items():
            if key not in frame.columns:
                raise CSEInputError(
                    f"Invalid value for 'where': no token coordinate {key!r}; available: {', '.join(frame.columns)}"
                )
            col = frame[key]
            if isinstance(value, (list, tuple, set, np.ndarray)):
                mask &= np.asarray(col.isin(list(value)), dtype=bool)
            else:
                mask &= np.asarray(col == value, dtype=bool)
        return mask
    if isinstance(where, str):
        expr = where.strip()
        # '@name' would read local variables of the caller; assignments would mutate the frame.
        if "@" in expr or _has_assignment(expr):
            raise CSEInputError(
                f"Invalid value for 'where': {where!r} may only compare token coordinates "
                f"(no '@' references or assignments)"
            )
        try:
            result = frame.eval(expr, engine="python")
        except Exception as exc:  # pandas raises many types for bad expressions
            detail = " ".join(str(exc).split())
            raise CSEInputError(
                f"Invalid value for 'where': cannot evaluate {where!r} on the token coordinates ({detail}); "
                f"available: {', '.join(frame.columns)}"
            ) from None
        values = np.array(result)
        if values.shape != (n,) or values.dtype != bool:
            raise CSEInputError(
                f"Invalid value for 'where': {where!r} must give one True/False per token, "
                f"got {values.dtype} values of shape {values.shape}"
            )
        return values
    raise TypeError(
        f"Invalid type for 'where': expected None, a string expression, a dict or a boolean token DataArray, "
        f"got {type(where).__name__}"
    )


def _has_assignment(expr: str) -> bool:
    """True where `expr` holds a bare '=' (not part of ==, !=, <=, >=)."""
    for i, ch in enumerate(expr):
        if ch != "=":
            continue
        prev = expr[i - 1] if i > 0 else ""
        nxt = expr[i + 1] if i + 1 < len(expr) else ""
        if prev in "=!<>" or nxt == "=":
            continue
        return True
    return False


def _describe_where(where) -> str:
    if where is None:
        return ""
    if isinstance(where, str):
        return where
    if isinstance(where, Mapping):
        return " and ".join(f"{k} == {v!r}" for k, v in where.items())
    return "<boolean mask>"


def _match_groups(values: pd.Series, groups, by: str) -> list:
    """Resolve the two group values, in order; strings match numbers by their text."""
    present = pd.unique(values.dropna())
    try:
        present = np.sort(present)
    except TypeError:
        present = np.asarray(sorted(present, key=str), dtype=object)
    if groups is None:
        if len(present) != 2:
            shown = ", ".join(repr(_py(v)) for v in present[:10]) + (" ..." if len(present) > 10 else "")
            raise CSEInputError(
                f"Invalid value for 'by': {by!r} must have exactly 2 distinct values among the selected tokens, "
                f"found {len(present)}: {shown or 'none'}; pick two with groups=(a, b) / --groups A B"
            )
        return [_py(v) for v in present]
    groups = list(groups)
    if len(groups) != 2:
        raise CSEInputError(f"Invalid value for 'groups': expected two values (a, b), got {len(groups)}: {groups!r}")
    resolved = []
    for g in groups:
        hits = [v for v in present if v == g] or [v for v in present if str(_py(v)) == str(g)]
        if not hits:
            shown = ", ".join(repr(_py(v)) for v in present[:10])
            raise CSEInputError(
                f"Invalid value for 'groups': {by!r} has no value {g!r} among the selected tokens; found {shown}"
            )
        resolved.append(_py(hits[0]))
    if resolved[0] == resolved[1]:
        raise CSEInputError(f"Invalid value for 'groups': the two groups must differ, got {groups!r}")
    return resolved


def _py(v):
    """numpy scalar -> Python scalar (for attributes and messages)."""
    return v.item() if isinstance(v, np.generic) else v


def select_tokens(ds, where=None, include_special: bool = False, var: str = "cse") -> np.ndarray:
    """Boolean mask over tokens: `where`, minus special tokens unless `include_special`.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A ``cse compute`` result (or one of its variables).
    where, include_special
        See the module docstring.
    var : str
        Variable to take from a Dataset (only its token coordinates are used).

    Returns
    -------
    mask : ndarray of bool, shape (n_tokens,)

    Raises
    ------
    CSEInputError
        If `where` names a missing coordinate or does not evaluate to one boolean per token.
    """
    da, _, source = _as_dataarray(ds, var)
    return _token_mask(_token_frame(da, source), where, include_special)


def _token_mask(frame, where, include_special: bool) -> np.ndarray:
    """`where` over the token-coordinate frame, minus special tokens unless `include_special`."""
    mask = _eval_where(frame, where)
    if not include_special and "is_special" in frame.columns:
        mask &= ~np.asarray(frame["is_special"], dtype=bool)
    return mask


# ---------------------------------------------------------------------------------
# permutation matrices
# ---------------------------------------------------------------------------------


def _label_permutations(group: np.ndarray, n_permutations: int, rng: np.random.Generator, blocks=None) -> np.ndarray:
    """Random relabellings of the tokens, shape (n_permutations, n), dtype bool.

    Row k is `group` (True = second group) under the k-th random permutation. With
    `blocks` (integer codes, shape (n,)), labels move only within each block: every
    token draws a uniform key, the key is offset by twice its block code, and an
    argsort of the keys permutes positions inside each block's segment only.
    """
    group = np.asarray(group, dtype=bool)
    n = group.size
    if blocks is None:
        return rng.permuted(np.broadcast_to(group, (n_permutations, n)), axis=1)
    blocks = np.asarray(blocks)
    order = np.argsort(blocks, kind="stable")  # tokens sorted so that each block is one segment
    sorted_blocks = blocks[order].astype(np.float64)
    keys = rng.random((n_permutations, n)) + 2.0 * sorted_blocks
    perm_sorted = np.argsort(keys, axis=1)  # stays inside each block's segment
    out = np.empty((n_permutations, n), dtype=bool)
    # the token at sorted position i takes the label of sorted position perm_sorted[:, i]
    out[:, order] = group[order][perm_sorted]
    return out


def _sign_flips(n_pairs: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Random sign flips of the paired differences, shape (n_permutations, n_pairs), values +-1 (int8)."""
    return (rng.integers(0, 2, size=(n_permutations, n_pairs), dtype=np.int8) * 2 - 1).astype(np.int8)


# ---------------------------------------------------------------------------------
# vectorized statistics
# ---------------------------------------------------------------------------------


def _center(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked values centred per layer (exact shift invariance, better conditioning) and the mask."""
    mask = np.isfinite(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(np.where(mask, y, np.nan), axis=0)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    y0 = np.where(mask, y - centre, 0.0)
    return y0, mask.astype(np.float64)


def _welch_from_sums(n_a, s_a, q_a, n_b, s_b, q_b):
    """Welch t, difference of means b - a and both variances from counts, sums and sums of squares."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m_a, m_b = s_a / n_a, s_b / n_b
        v_a = np.maximum(q_a - s_a * m_a, 0.0) / (n_a - 1)
        v_b = np.maximum(q_b - s_b * m_b, 0.0) / (n_b - 1)
        se = np.sqrt(v_a / n_a + v_b / n_b)
        diff = m_b - m_a
        t = diff / se
    bad = (n_a < 2) | (n_b < 2) | ~(se > 0)
    t = np.where(bad, np.nan, t)
    return t, diff, m_a, m_b, v_a, v_b


def _welch_t_batch(y0: np.ndarray, mask: np.ndarray, groups_b: np.ndarray) -> np.ndarray:
    """Welch t of group b minus group a at every layer for each row of `groups_b`.

    Parameters
    ----------
    y0, mask : ndarray, shape (n, L), float64
        Centred values with NaN replaced by 0, and the finite mask (1.0 / 0.0).
    groups_b : ndarray, shape (B, n), bool
        True where the token is in the second group.

    Returns
    -------
    t : ndarray, shape (B, L), float64 (NaN where a group has < 2 tokens or zero variance)
    """
    L = y0.shape[1]
    stacked = np.concatenate([mask, y0, y0 * y0], axis=1)  # (n, 3L)
    totals = stacked.sum(axis=0)
    part_b = groups_b.astype(np.float64) @ stacked  # (B, 3L): counts, sums, squares of group b
    part_a = totals - part_b
    t, *_ = _welch_from_sums(
        part_a[:, :L], part_a[:, L : 2 * L], part_a[:, 2 * L :], part_b[:, :L], part_b[:, L : 2 * L], part_b[:, 2 * L :]
    )
    return t


def _paired_t_batch(d0: np.ndarray, mask: np.ndarray, signs: np.ndarray) -> np.ndarray:
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


def _tail_stat(t: np.ndarray, tail: int) -> np.ndarray:
    """The statistic whose large values count against H0: |t|, t or -t."""
    return np.abs(t) if tail == 0 else tail * t


def _ge(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """null >= observed, with ties up to rounding counted (NaN never counts)."""
    return null >= observed - _TIE_RTOL * np.abs(observed)


def _max_cluster_mass(t: np.ndarray, threshold: float, tail: int) -> np.ndarray:
    """Largest cluster mass of each row of t, shape (B, L) -> (B,).

    A cluster is a run of contiguous layers whose t exceeds `threshold` with one sign
    (NaN ends a run); its mass is the sum of t over the run, in the tested direction
    (|mass| for negative clusters when two-sided). Rows without a cluster give 0. The
    running sum inside runs is ``cumsum - (cumsum at the last layer outside a run)``,
    whose maximum over layers is the largest mass, so no loop over rows is needed.
    """
    t = np.atleast_2d(t)
    best = np.zeros(t.shape[0])
    for sign in ((1, -1) if tail == 0 else (tail,)):
        x = sign * t
        supra = x > threshold  # NaN -> False
        part = np.where(supra, x, 0.0)
        cs = np.cumsum(part, axis=1)
        base = np.maximum.accumulate(np.where(supra, 0.0, cs), axis=1)
        best = np.maximum(best, (cs - base).max(axis=1))
    return best


def _find_clusters(t: np.ndarray, threshold: float, tail: int) -> list[tuple[int, int, float, int]]:
    """Clusters of the observed t, shape (L,): (first index, last index, mass >= 0 in the tested direction, sign)."""
    out = []
    for sign in ((1, -1) if tail == 0 else (tail,)):
        supra = np.concatenate([[False], sign * t > threshold, [False]])
        edges = np.flatnonzero(np.diff(supra.astype(np.int8)))
        for start, stop in zip(edges[::2], edges[1::2]):
            out.append((int(start), int(stop - 1), float(np.sum(sign * t[start:stop])), sign))
    out.sort(key=lambda c: c[0])
    return out


def _permutation_pvalues(
    t_obs: np.ndarray, t_null: np.ndarray, *, tail: int, correction: str, threshold: float, alpha: float
) -> dict:
    """p-values from the observed t (L,) and the permutation t (P, L).

    p = (b + 1) / (P + 1) with b the number of permutations at least as extreme.
    Uncorrected: per layer. ``maxT``: against the maximum over layers of each
    permutation (Westfall & Young 1993, single step). ``fdr_bh``: Benjamini-Hochberg
    on the uncorrected p-values. ``cluster``: each observed cluster against the largest
    cluster mass of each permutation (Maris & Oostenveld 2007); layers take their
    cluster's p and layers outside every cluster p = 1.
    """
    n_perm = t_null.shape[0]
    s_obs = _tail_stat(t_obs, tail)
    s_null = _tail_stat(t_null, tail)
    finite = np.isfinite(s_obs)
    p_unc = np.where(finite, (_ge(s_null, s_obs[None, :]).sum(axis=0) + 1.0) / (n_perm + 1.0), np.nan)
    L = t_obs.size
    clusters: list = []
    cluster_p = np.zeros(0)
    cluster_id = np.full(L, -1, dtype=np.int64)
    if correction == "maxT":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            null_max = np.nanmax(np.where(np.isfinite(s_null), s_null, -np.inf), axis=1)
        p_corr = np.where(finite, (_ge(null_max[:, None], s_obs[None, :]).sum(axis=0) + 1.0) / (n_perm + 1.0), np.nan)
    elif correction == "fdr_bh":
        from statsmodels.stats.multitest import multipletests

        p_corr = np.full(L, np.nan)
        if finite.any():
            p_corr[finite] = multipletests(p_unc[finite], alpha=alpha, method="fdr_bh")[1]
    elif correction == "cluster":
        null_max = _max_cluster_mass(t_null, threshold, tail)
        clusters = _find_clusters(t_obs, threshold, tail)
        masses = np.array([c[2] for c in clusters])
        cluster_p = (_ge(null_max[:, None], masses[None, :]).sum(axis=0) + 1.0) / (n_perm + 1.0)
        p_corr = np.where(finite, 1.0, np.nan)
        for k, (start, stop, _, _) in enumerate(clusters):
            p_corr[start : stop + 1] = cluster_p[k]
            cluster_id[start : stop + 1] = k
    else:  # pragma: no cover - validated by the public function
        raise ValueError(correction)
    return {
        "p_uncorrected": p_unc,
        "p_corrected": p_corr,
        "significant": np.where(np.isfinite(p_corr), p_corr <= alpha, False),
        "clusters": clusters,
        "cluster_p": cluster_p,
        "cluster_id": cluster_id,
    }


def _hedges_j(df):
    """Small-sample correction of Cohen's d (Hedges 1981): J = 1 - 3 / (4 df - 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - 3.0 / (4.0 * df - 1.0)


def _effect_two_sample(n_a, s_a, q_a, n_b, s_b, q_b):
    """Cohen's d and Hedges' g (pooled SD, g = J(n_a + n_b - 2) d) from sums; arrays broadcast."""
    _, diff, _, _, v_a, v_b = _welch_from_sums(n_a, s_a, q_a, n_b, s_b, q_b)
    df = n_a + n_b - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(((n_a - 1) * v_a + (n_b - 1) * v_b) / df)
        d = diff / sd
    d = np.where((n_a < 2) | (n_b < 2) | ~(sd > 0), np.nan, d)
    return d, _hedges_j(df) * d


def _effect_paired(n, s, q):
    """Cohen's d_z (mean / SD of the differences) and Hedges' g_z = J(n - 1) d_z."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        sd = np.sqrt(np.maximum(q - s * mean, 0.0) / (n - 1))
        d = mean / sd
    d = np.where((n < 2) | ~(sd > 0), np.nan, d)
    return d, _hedges_j(n - 1) * d


def _bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial resampling counts, shape (n_boot, n): row r says how often each unit is drawn."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def _bootstrap_g_two_sample(y0_a, m_a, y0_b, m_b, n_boot, rng, ci):
    """Percentile bootstrap interval of Hedges' g, resampling tokens within each group."""
    reps = []
    stacked_a = np.concatenate([m_a, y0_a, y0_a * y0_a], axis=1)
    stacked_b = np.concatenate([m_b, y0_b, y0_b * y0_b], axis=1)
    L = y0_a.shape[1]
    batch = _batch_size(max(len(y0_a), len(y0_b)))
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        pa = _bootstrap_weights(len(y0_a), size, rng) @ stacked_a
        pb = _bootstrap_weights(len(y0_b), size, rng) @ stacked_b
        _, g = _effect_two_sample(
            pa[:, :L], pa[:, L : 2 * L], pa[:, 2 * L :], pb[:, :L], pb[:, L : 2 * L], pb[:, 2 * L :]
        )
        reps.append(g)
    return _percentile_interval(np.concatenate(reps), ci)


def _bootstrap_g_paired(d0, mask, n_boot, rng, ci):
    """Percentile bootstrap interval of Hedges' g_z, resampling pairs."""
    L = d0.shape[1]
    stacked = np.concatenate([mask, d0, d0 * d0], axis=1)
    reps = []
    batch = _batch_size(len(d0))
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        p = _bootstrap_weights(len(d0), size, rng) @ stacked
        _, g = _effect_paired(p[:, :L], p[:, L : 2 * L], p[:, 2 * L :])
        reps.append(g)
    return _percentile_interval(np.concatenate(reps), ci)


def _percentile_interval(reps: np.ndarray, ci: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(reps, [50 * (1 - ci), 50 * (1 + ci)], axis=0)
    return lo, hi


def _default_threshold(df: float, tail: int, cluster_alpha: float) -> float:
    """Cluster-forming threshold: the t critical value at `cluster_alpha` (two-sided if tail == 0)."""
    q = 1 - cluster_alpha / 2 if tail == 0 else 1 - cluster_alpha
    return float(sps.t.ppf(q, max(df, 1.0)))


def _compare_arrays(
    y_a: np.ndarray,
    y_b: np.ndarray,
    *,
    paired: bool,
    blocks=None,
    n_permutations: int,
    correction: str,
    tail: int,
    threshold: float | None,
    cluster_alpha: float,
    alpha: float,
    n_bootstrap: int,
    ci: float,
    rng: np.random.Generator,
    permutations: np.ndarray | None = None,
) -> dict:
    """Compute everything `compare` reports from plain arrays.

    Parameters
    ----------
    y_a, y_b : ndarray, shape (n_a, L) and (n_b, L), float64
        Values of the two groups (NaN = undefined at that layer). When `paired`,
        row i of `y_a` and row i of `y_b` form pair i (n_a == n_b).
    blocks : ndarray of int, shape (n_a + n_b,), optional
        Exchangeability block code of each token, tokens ordered as ``[y_a; y_b]``.
    permutations : ndarray, optional
        The permutations to use instead of random ones: shape (P, n_a + n_b) bool
        (True = token goes to group b; tokens ordered as ``[y_a; y_b]``), or for
        `paired` shape (P, n_pairs) of +-1 sign flips. Lets tests feed identical
        permutations to an independent implementation.

    Returns
    -------
    dict of per-layer arrays (see `compare`) and the list of clusters.
    """
    L = y_a.shape[1]
    out: dict = {}
    # 1. Observed statistics and effect sizes.
    if paired:
        d = y_b - y_a
        d_mask = np.isfinite(d)
        d0 = np.where(d_mask, d, 0.0)
        mask_f = d_mask.astype(np.float64)
        n_pairs = mask_f.sum(axis=0)
        t_obs = _paired_t_batch(d0, mask_f, np.ones((1, len(d)), dtype=np.int8))[0]
        ya_m = np.where(d_mask, y_a, np.nan)
        yb_m = np.where(d_mask, y_b, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["mean_a"], out["mean_b"] = np.nanmean(ya_m, axis=0), np.nanmean(yb_m, axis=0)
        out["diff"] = out["mean_b"] - out["mean_a"]
        out["n_a"] = out["n_b"] = n_pairs.astype(np.int64)
        out["cohens_d"], out["hedges_g"] = _effect_paired(n_pairs, d0.sum(axis=0), (d0 * d0).sum(axis=0))
        df = float(np.min(n_pairs[n_pairs > 0])) - 1 if (n_pairs > 0).any() else 1.0
    else:
        y = np.concatenate([y_a, y_b], axis=0)
        y0, mask_f = _center(y)
        group = np.r_[np.zeros(len(y_a), bool), np.ones(len(y_b), bool)]
        t_obs = _welch_t_batch(y0, mask_f, group[None, :])[0]
        n_a = mask_f[~group].sum(axis=0)
        n_b = mask_f[group].sum(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["mean_a"], out["mean_b"] = np.nanmean(y_a, axis=0), np.nanmean(y_b, axis=0)
        out["diff"] = out["mean_b"] - out["mean_a"]
        out["n_a"], out["n_b"] = n_a.astype(np.int64), n_b.astype(np.int64)
        sa, sb = y0[~group].sum(axis=0), y0[group].sum(axis=0)
        qa, qb = (y0[~group] ** 2).sum(axis=0), (y0[group] ** 2).sum(axis=0)
        out["cohens_d"], out["hedges_g"] = _effect_two_sample(n_a, sa, qa, n_b, sb, qb)
        nn = n_a + n_b
        df = float(np.min(nn[nn > 0])) - 2 if (nn > 0).any() else 1.0
    out["t"] = t_obs

    # 2. Null distribution of t, in batches of permutations.
    if permutations is not None:
        permutations = np.asarray(permutations)
        n_permutations = permutations.shape[0]
    chunks = []
    batch = _batch_size(len(y_a) + len(y_b))
    for start in range(0, n_permutations, batch):
        size = min(batch, n_permutations - start)
        if paired:
            signs = permutations[start : start + size] if permutations is not None else _sign_flips(len(d0), size, rng)
            chunks.append(_paired_t_batch(d0, mask_f, signs))
        else:
            if permutations is not None:
                perm = permutations[start : start + size].astype(bool)
            else:
                perm = _label_permutations(group, size, rng, blocks=blocks)
            chunks.append(_welch_t_batch(y0, mask_f, perm))
    t_null = np.concatenate(chunks, axis=0) if chunks else np.zeros((0, L))

    # 3. p-values and correction across layers.
    if threshold is None:
        threshold = _default_threshold(df, tail, cluster_alpha)
    out.update(
        _permutation_pvalues(t_obs, t_null, tail=tail, correction=correction, threshold=threshold, alpha=alpha)
    )
    out["threshold"] = float(threshold)
    out["df"] = df
    out["n_permutations"] = int(n_permutations)

    # 4. Bootstrap interval of Hedges' g.
    if n_bootstrap > 0:
        if paired:
            out["g_ci_low"], out["g_ci_high"] = _bootstrap_g_paired(d0, mask_f, n_bootstrap, rng, ci)
        else:
            out["g_ci_low"], out["g_ci_high"] = _bootstrap_g_two_sample(
                y0[~group], mask_f[~group], y0[group], mask_f[group], n_bootstrap, rng, ci
            )
    else:
        out["g_ci_low"] = out["g_ci_high"] = np.full(L, np.nan)
    return out


# ---------------------------------------------------------------------------------
# public: compare
# ---------------------------------------------------------------------------------

_LONG_NAMES = {
    "mean_a": ("mean of the first group", "1"),
    "mean_b": ("mean of the second group", "1"),
    "diff": ("difference of means, second group minus first", "1"),
    "t": ("Welch t (one-sample t of paired differences when paired)", "1"),
    "p_uncorrected": ("permutation p-value per layer, (b + 1) / (P + 1)", "1"),
    "p_corrected": ("p-value corrected across layers", "1"),
    "significant": ("p_corrected <= alpha", "1"),
    "cohens_d": ("Cohen's d (d_z when paired)", "1"),
    "hedges_g": ("Hedges' g (g_z when paired)", "1"),
    "g_ci_low": ("lower bound of the percentile bootstrap interval of Hedges' g", "1"),
    "g_ci_high": ("upper bound of the percentile bootstrap interval of Hedges' g", "1"),
    "n_a": ("tokens (pairs when paired) of the first group used at the layer", "1"),
    "n_b": ("tokens (pairs when paired) of the second group used at the layer", "1"),
    "cluster_id": ("index of the cluster holding the layer, -1 if none", "1"),
    "cluster_start": ("first layer of the cluster", "1"),
    "cluster_stop": ("last layer of the cluster (inclusive)", "1"),
    "cluster_mass": ("cluster mass, sum of t over the cluster's layers", "1"),
    "cluster_p": ("cluster p-value against the permutation distribution of the largest cluster mass", "1"),
}


def compare(
    ds,
    by,
    where=None,
    *,
    groups=None,
    var: str = "cse",
    paired_by: str | None = None,
    blocks: str | None = None,
    n_permutations: int = 10000,
    correction: str = "cluster",
    tail: int = 0,
    threshold: float | None = None,
    cluster_alpha: float = 0.05,
    alpha: float = 0.05,
    n_bootstrap: int = 2000,
    ci: float = 0.95,
    include_special: bool = False,
    seed=0,
) -> xr.Dataset:
    """Compare two groups of tokens at every layer with a permutation test.

    Per layer: the difference of means (second group minus first) and Welch's t;
    its null distribution from label permutations (optionally only within
    exchangeability blocks) or, for paired designs, sign flips of the paired
    differences; a correction across layers; Cohen's d / Hedges' g with a bootstrap
    interval.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or ndarray, shape (n_tokens, n_layers)
        A ``cse compute`` result, one of its (token, layer) variables, or a plain
        array (then `by` is the array of group labels, one per token).
    by : str or array-like
        Token coordinate holding the groups; after selection it must have exactly two
        distinct values unless `groups` picks two. Missing values (NaN/None) are dropped.
    where, include_special, seed
        See the module docstring.
    groups : (a, b), optional
        The two values of `by` to compare, in this order. Default: the two values found,
        sorted. Every reported difference is ``mean(b) - mean(a)``.
    var : str
        Variable of a Dataset to test (``cse``, ``cse_z``, ``update_norm`` ...).
    paired_by : str, optional
        Token coordinate identifying pairs: each pair id must hold exactly one selected
        token of each group. The test is then a sign-flip test of the paired differences
        b - a (one-sample t).
    blocks : str, optional
        Token coordinate of exchangeability blocks (e.g. ``"verb"`` or ``"text"``):
        labels are permuted only within blocks. Not combined with `paired_by`.
    n_permutations : int
        Number of random permutations P (the observed labelling is not among them),
        so that p = (b + 1) / (P + 1) (Phipson & Smyth 2010).
    correction : {"cluster", "maxT", "fdr_bh"}
        Correction across layers; see Notes.
    tail : {0, 1, -1}
        0 two-sided; 1 tests b > a (t > 0); -1 tests b < a.
    threshold : float, optional
        Cluster-forming threshold on t (on |t| when two-sided). Default: the Student t
        critical value at `cluster_alpha` (two-sided when ``tail == 0``) with
        df = n_a + n_b - 2 (n_pairs - 1 when paired) at the layer with fewest tokens.
    cluster_alpha : float
        Level of the default cluster-forming threshold.
    alpha : float
        Level for `significant` and for Benjamini-Hochberg.
    n_bootstrap : int
        Bootstrap replicates for the interval of Hedges' g (0 skips it: NaN bounds).
    ci : float
        Coverage of the bootstrap interval.

    Returns
    -------
    xarray.Dataset
        Over ``layer`` (with the ``depth`` coordinate where the input has one):
        ``mean_a, mean_b, diff, t, p_uncorrected, p_corrected, significant,
        cohens_d, hedges_g, g_ci_low, g_ci_high, n_a, n_b, cluster_id``; over
        ``cluster`` (cluster correction only, possibly empty): ``cluster_start,
        cluster_stop`` (layer labels, inclusive), ``cluster_mass, cluster_p,
        cluster_sign``. Attributes record by, groups, where, var, correction, tail,
        threshold, alpha, n_permutations, seed, test, the token counts and the
        exchangeability scheme.

    Raises
    ------
    CSEInputError
        If a coordinate is missing, `where` cannot be evaluated, `by` does not give
        two groups, pairs are incomplete, or a parameter is out of range.
    TypeError
        If `ds`, `where` or `seed` has the wrong type.

    Notes
    -----
    Welch's t at layer l is ``(mean_b - mean_a) / sqrt(v_a / n_a + v_b / n_b)`` with
    the unbiased variances, over the tokens whose value is finite at l. Permuting the
    labels (within blocks) keeps the group sizes; with ``P`` permutations and ``b`` of
    them at least as extreme, ``p = (b + 1) / (P + 1)``. Corrections:

    - ``cluster``: runs of contiguous layers with t beyond the threshold (one sign per
      run) form clusters; a cluster's mass is the sum of its t. Each observed cluster
      is compared with the largest |mass| of every permutation (Maris & Oostenveld
      2007). A layer takes its cluster's p; layers outside every cluster get p = 1.
    - ``maxT``: each layer's |t| against the largest |t| over layers of every
      permutation (Westfall & Young 1993, single step); controls the FWER.
    - ``fdr_bh``: Benjamini-Hochberg on the uncorrected permutation p-values
      (`statsmodels.stats.multitest.multipletests`); controls the FDR.

    Effect sizes: unpaired, Cohen's d = diff / pooled SD and Hedges' g = J d with
    J = 1 - 3 / (4 (n_a + n_b - 2) - 1); paired, d_z = mean / SD of the differences
    and g_z = J d_z with J = 1 - 3 / (4 (n - 1) - 1). The interval is the percentile
    bootstrap, resampling tokens within each group (pairs when paired).

    References
    ----------
    Maris, E. & Oostenveld, R. (2007). Nonparametric statistical testing of EEG- and
    MEG-data. J. Neurosci. Methods 164, 177-190.
    Westfall, P. H. & Young, S. S. (1993). Resampling-Based Multiple Testing. Wiley.
    Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate: a practical
    and powerful approach to multiple testing. J. R. Stat. Soc. B 57, 289-300.
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
    # 1. Validate the parameters.
    correction = check_choice("correction", correction, CORRECTIONS)
    if isinstance(tail, bool) or tail not in TAILS:
        raise CSEInputError(f"Invalid value for 'tail': expected 0 (two-sided), 1 (b > a) or -1 (b < a), got {tail!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise CSEInputError(f"Invalid value for 'n_permutations': expected an integer >= 1, got {n_permutations!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise CSEInputError(f"Invalid value for 'n_bootstrap': expected an integer >= 0, got {n_bootstrap!r}")
    for name, value in (("alpha", alpha), ("cluster_alpha", cluster_alpha), ("ci", ci)):
        if not 0 < float(value) < 1:
            raise CSEInputError(f"Invalid value for {name!r}: expected a number in (0, 1), got {value!r}")
    if threshold is not None and not float(threshold) > 0:
        raise CSEInputError(f"Invalid value for 'threshold': expected a positive t value, got {threshold!r}")
    if paired_by is not None and blocks is not None:
        raise CSEInputError(
            "Invalid combination: 'paired_by' (sign flips of pairs) and 'blocks' (within-block permutations) "
            "exclude each other; give one"
        )
    seed_record = seed if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None
    rng = resolve_seed(seed)

    # 2. Select the tokens and the two groups.
    sel = _select_groups(ds, by, where, groups, var, include_special, extra={"paired_by": paired_by, "blocks": blocks})
    da, frame, group_values, idx_a, idx_b = sel["da"], sel["frame"], sel["groups"], sel["idx_a"], sel["idx_b"]
    by, source, n_special = sel["by"], sel["source"], sel["n_special"]
    if paired_by is not None:
        idx_a, idx_b = _align_pairs(frame, paired_by, idx_a, idx_b, group_values)
    block_codes = None
    if blocks is not None:
        block_codes = pd.factorize(frame[blocks].iloc[np.r_[idx_a, idx_b]], use_na_sentinel=False)[0]
        in_b = np.r_[np.zeros(len(idx_a), bool), np.ones(len(idx_b), bool)]
        n_blocks = block_codes.max() + 1
        has_a = np.bincount(block_codes[~in_b], minlength=n_blocks) > 0
        has_b = np.bincount(block_codes[in_b], minlength=n_blocks) > 0
        if not (has_a & has_b).any():
            raise CSEInputError(
                f"Invalid value for 'blocks': no {blocks!r} block holds tokens of both groups, so permutations "
                f"within blocks cannot move a label; choose blocks that cross the groups (e.g. texts or verbs "
                f"with both labels)"
            )

    # 3. Load only the selected tokens (works for Dask-backed inputs).
    values = np.asarray(da.isel(token=np.r_[idx_a, idx_b]).values, dtype=np.float64)
    y_a, y_b = values[: len(idx_a)], values[len(idx_a) :]
    if len(idx_a) < 2 or len(idx_b) < 2:
        raise CSEInputError(
            f"Invalid selection: need at least 2 tokens per group, got {len(idx_a)} for {group_values[0]!r} "
            f"and {len(idx_b)} for {group_values[1]!r}"
        )

    # 4. Compute.
    res = _compare_arrays(
        y_a,
        y_b,
        paired=paired_by is not None,
        blocks=block_codes,
        n_permutations=int(n_permutations),
        correction=correction,
        tail=int(tail),
        threshold=None if threshold is None else float(threshold),
        cluster_alpha=float(cluster_alpha),
        alpha=float(alpha),
        n_bootstrap=int(n_bootstrap),
        ci=float(ci),
        rng=rng,
    )

    # 5. Assemble the Dataset.
    layer = da["layer"]
    layer_coords = {"layer": layer.values}
    if "depth" in da.coords and da["depth"].dims == ("layer",):
        layer_coords["depth"] = ("layer", np.asarray(da["depth"].values))
    names = [
        "mean_a", "mean_b", "diff", "t", "p_uncorrected", "p_corrected", "significant",
        "cohens_d", "hedges_g", "g_ci_low", "g_ci_high", "n_a", "n_b", "cluster_id",
    ]  # fmt: skip
    data_vars = {k: ("layer", np.asarray(res[k])) for k in names}
    clusters = res["clusters"]
    layer_values = np.asarray(layer.values)
    data_vars["cluster_start"] = ("cluster", np.array([layer_values[c[0]] for c in clusters], dtype=layer_values.dtype))
    data_vars["cluster_stop"] = ("cluster", np.array([layer_values[c[1]] for c in clusters], dtype=layer_values.dtype))
    data_vars["cluster_mass"] = ("cluster", np.array([c[3] * c[2] for c in clusters], dtype=np.float64))
    data_vars["cluster_sign"] = ("cluster", np.array([c[3] for c in clusters], dtype=np.int64))
    data_vars["cluster_p"] = ("cluster", np.asarray(res["cluster_p"], dtype=np.float64))
    out = xr.Dataset(data_vars, coords={**layer_coords, "cluster": np.arange(len(clusters))})
    for k, (long_name, units) in _LONG_NAMES.items():
        if k in out:
            out[k].attrs.update(long_name=long_name, units=units)
    out["cluster_sign"].attrs.update(long_name="sign of t in the cluster", units="1")
    if paired_by is not None:
        test = "sign-flip"
    elif blocks is not None:
        test = "welch-t within-block permutation"
    else:
        test = "welch-t label permutation"
    src_attrs = source.attrs if source is not None else da.attrs
    out.attrs = {
        "title": f"CSE group comparison per layer: {var} by {by}",
        "test": test,
        "var": var,
        "by": by,
        "groups": [str(g) for g in group_values],
        "group_a": str(group_values[0]),
        "group_b": str(group_values[1]),
        "difference": f"mean({group_values[1]}) - mean({group_values[0]})",
        "where": _describe_where(where),
        "include_special": int(bool(include_special)),
        "n_special_excluded": n_special,
        "paired_by": paired_by or "",
        "blocks": blocks or "",
        "n_blocks": int(len(np.unique(block_codes))) if block_codes is not None else 0,
        "correction": correction,
        "n_permutations": res["n_permutations"],
        "tail": int(tail),
        "threshold": res["threshold"] if correction == "cluster" else np.nan,
        "cluster_alpha": float(cluster_alpha),
        "threshold_df": res["df"],
        "alpha": float(alpha),
        "n_bootstrap": int(n_bootstrap),
        "ci": float(ci),
        "seed": -1 if seed_record is None else int(seed_record),
        "seed_note": "" if seed_record is not None else "seed was None or a Generator; not reproducible from attrs",
        "effect_size": "hedges_g_z (paired differences)" if paired_by else "hedges_g (pooled SD)",
        "n_tokens": int(len(idx_a) + len(idx_b)),
        "n_tokens_a": int(len(idx_a)),
        "n_tokens_b": int(len(idx_b)),
        "p_value": "(b + 1) / (P + 1)",
    }
    for key in ("model", "n_layers", "axis", "wavelet", "level", "boundary", "normalize"):
        if key in src_attrs:
            out.attrs[f"source_{key}"] = src_attrs[key]
    return out


def _select_groups(ds, by, where, groups, var, include_special, extra=None) -> dict:
    """Validate the selection and return the token indices of both groups.

    Returns a dict with ``da`` (the (token, layer) DataArray), ``source`` (the Dataset
    or None), ``frame`` (token coordinates), ``by`` (the coordinate name), ``groups``
    (the two values, in order), ``idx_a``/``idx_b`` (token indices, ascending) and
    ``n_special`` (special tokens removed by the default exclusion).
    """
    da, by, source = _as_dataarray(ds, var, by)
    if not isinstance(by, str):
        raise TypeError(f"Invalid type for 'by': expected a token coordinate name, got {type(by).__name__}")
    frame = _token_frame(da, source)
    for name, col in (("by", by), *((extra or {}).items())):
        if col is not None and col not in frame.columns:
            raise CSEInputError(
                f"Invalid value for {name!r}: no token coordinate {col!r}; available: {', '.join(frame.columns)}"
            )
    mask = _eval_where(frame, where)
    n_special = 0
    if not include_special and "is_special" in frame.columns:
        special = np.asarray(frame["is_special"], dtype=bool)
        n_special = int((mask & special).sum())
        mask &= ~special
    mask &= np.asarray(frame[by].notna(), dtype=bool)
    group_values = _match_groups(frame[by][mask], groups, by)
    idx_a = np.flatnonzero(mask & _equals(frame[by], group_values[0]))
    idx_b = np.flatnonzero(mask & _equals(frame[by], group_values[1]))
    return {"da": da, "source": source, "frame": frame, "by": by, "groups": group_values,
            "idx_a": idx_a, "idx_b": idx_b, "n_special": n_special}  # fmt: skip


def _equals(col: pd.Series, value) -> np.ndarray:
    eq = np.asarray(col == value, dtype=bool)
    if not eq.any():
        eq = np.asarray(col.astype(str) == str(value), dtype=bool)
    return eq


def _align_pairs(frame, paired_by, idx_a, idx_b, group_values):
    """Order idx_a and idx_b so that row i of each belongs to the same pair."""
    pa = frame[paired_by].iloc[idx_a].to_numpy()
    pb = frame[paired_by].iloc[idx_b].to_numpy()
    ca = pd.Series(pa).value_counts(dropna=False)
    cb = pd.Series(pb).value_counts(dropna=False)
    counts = pd.concat([ca.rename("a"), cb.rename("b")], axis=1).fillna(0)
    bad = counts[(counts["a"] != 1) | (counts["b"] != 1)]
    if len(bad):
        shown = ", ".join(f"{_py(i)!r} ({int(r.a)} x {group_values[0]!r}, {int(r.b)} x {group_values[1]!r})"
                          for i, r in bad.head(5).iterrows())  # fmt: skip
        raise CSEInputError(
            f"Invalid value for 'paired_by': every {paired_by!r} must hold exactly one selected token of each group; "
            f"{len(bad)} do not, e.g. {shown}; narrow 'where' (e.g. to word starts) or drop those pairs"
        )
    order_a = np.argsort(pa, kind="stable")
    order_b = np.argsort(pb, kind="stable")
    return idx_a[order_a], idx_b[order_b]


# ---------------------------------------------------------------------------------
# word frequency
# ---------------------------------------------------------------------------------

_SUBWORD_MARKS = "\u0120\u2581\u010a "  # GPT-2 'Ġ', SentencePiece '▁', 'Ċ', space


def log_frequency(words, lang: str = "en") -> np.ndarray:
    """Word frequency on the Zipf scale, from `wordfreq`.

    Parameters
    ----------
    words : sequence of str, shape (n,)
        Words (or token strings: leading GPT-2 'Ġ' and SentencePiece '▁' marks and
        whitespace are stripped). ``None``/NaN/empty gives NaN.
    lang : str
        wordfreq language code.

    Returns
    -------
    ndarray, shape (n,), float64
        Zipf frequency = log10(frequency per billion words), i.e. log10 of the
        per-word probability plus 9: about 7 for "the", 3 for rare words, 0 for words
        wordfreq does not know.

    References
    ----------
    Speer, R. (2022). wordfreq (v3). https://github.com/rspeer/wordfreq
    van Heuven, W. J. B. et al. (2014). SUBTLEX-UK. Q. J. Exp. Psychol. 67, 1176-1190
    (the Zipf scale).
    """
    from wordfreq import zipf_frequency

    arr = pd.Series(list(words) if not isinstance(words, (pd.Series, np.ndarray)) else words, dtype=object)
    cleaned = arr.map(lambda w: w.strip(_SUBWORD_MARKS) if isinstance(w, str) else None)
    uniq = pd.unique(cleaned.dropna())
    table = {w: (float(zipf_frequency(w, lang)) if w else np.nan) for w in uniq}  # one lookup per distinct word
    return np.asarray(cleaned.map(lambda w: table.get(w, np.nan) if w is not None else np.nan), dtype=np.float64)


def add_log_frequency(ds: xr.Dataset, words: str = "word_str", lang: str = "en", name: str = "log_frequency"):
    """Add a token coordinate `name` with the Zipf frequency of each token's word.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A result with token coordinates.
    words : str
        Token coordinate holding the text of each token's word (or ``"token_str"``).
    lang, name
        wordfreq language and the name of the new coordinate.

    Returns
    -------
    Same type as `ds`, with coordinate `name` (token), units "Zipf" (log10 per 10^9
    words). Special tokens get NaN.

    Raises
    ------
    CSEInputError
        If `words` is not a token coordinate.
    """
    if words not in ds.coords or ds[words].dims != ("token",):
        available = [str(k) for k, v in ds.coords.items() if v.dims == ("token",)]
        raise CSEInputError(
            f"Invalid value for 'words': no token coordinate {words!r} with the word text; "
            f"available: {', '.join(available)}"
        )
    freq = log_frequency(np.asarray(ds[words].values, dtype=object), lang=lang)
    if "is_special" in ds.coords:
        freq = np.where(np.asarray(ds["is_special"].values, dtype=bool), np.nan, freq)
    coord = xr.DataArray(
        freq,
        dims=("token",),
        attrs={"long_name": f"Zipf word frequency of {words} (wordfreq, {lang})", "units": "Zipf"},
    )
    return ds.assign_coords({name: coord})


# ---------------------------------------------------------------------------------
# mixed models per layer
# ---------------------------------------------------------------------------------


def mixedlm(
    ds,
    formula: str,
    groups: str,
    where=None,
    *,
    re_formula: str | None = None,
    include_special: bool = False,
    reml: bool = True,
    method=None,
) -> xr.Dataset:
    """Fit a linear mixed model per layer with `statsmodels` MixedLM.

    At each layer the frame holds one row per selected token: every 1-D token
    coordinate and variable (``label``, ``position``, ``surprisal``,
    ``log_frequency`` ...) and every (token, layer) variable at that layer (``cse``,
    ``update_norm`` ...). Rows with NaN in a variable of the formula are dropped.

    Parameters
    ----------
    ds : xarray.Dataset
        A ``cse compute`` result (use `add_log_frequency` first for ``log_frequency``).
    formula : str
        Patsy formula, e.g. ``"cse ~ label + surprisal + log_frequency + position"``.
        The response must be a (token, layer) variable.
    groups : str
        Token coordinate of the random-intercept groups (e.g. ``"verb"``).
    where, include_special
        See the module docstring.
    re_formula : str, optional
        Random-effects formula (default: random intercept only).
    reml : bool
        REML (default) or maximum likelihood.
    method : str or list of str, optional
        Optimizer(s) passed to ``MixedLM.fit`` (statsmodels' default when None).

    Returns
    -------
    xarray.Dataset
        ``coef, se, z, p`` (float64) of shape (n_layers, n_terms) over (layer, term),
        in the units of the response per unit of each term; ``converged`` (bool), ``warnings``
        (text of statsmodels' ConvergenceWarnings, or the error of a failed fit),
        ``group_var`` (random-intercept variance), ``n_obs``, ``n_groups`` over layer.
        A layer whose fit fails has NaN estimates and ``converged`` False; a fit whose
        optimizer reported failure is kept but flagged ``converged`` False. Warnings that
        the estimate is on the boundary (group variance ~ 0) leave ``converged`` True
        and are reported in ``warnings``.

    Raises
    ------
    CSEInputError
        If the response, a formula variable or `groups` is missing.

    Notes
    -----
    p-values are statsmodels' Wald z tests of the fixed effects, uncorrected across layers.

    References
    ----------
    Lindstrom, M. J. & Bates, D. M. (1988). Newton-Raphson and EM algorithms for linear
    mixed-effects models for repeated-measures data. J. Am. Stat. Assoc. 83, 1014-1022
    (the model statsmodels' MixedLM fits).
    """
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"Invalid type for 'ds': expected an xarray Dataset, got {type(ds).__name__}")
    if not isinstance(formula, str) or "~" not in formula:
        raise CSEInputError(f"Invalid value for 'formula': expected a patsy formula 'y ~ x + ...', got {formula!r}")
    response = formula.split("~", 1)[0].strip()
    if response not in ds.data_vars or ds[response].dims != ("token", "layer"):
        layer_vars = [str(k) for k, v in ds.data_vars.items() if set(v.dims) == {"token", "layer"}]
        raise CSEInputError(
            f"Invalid value for 'formula': the response {response!r} must be a (token, layer) variable; "
            f"available: {', '.join(layer_vars)}"
        )
    da, _, source = _as_dataarray(ds, response)
    frame = _token_frame(da, source)
    if groups not in frame.columns:
        raise CSEInputError(
            f"Invalid value for 'groups': no token coordinate {groups!r}; available: {', '.join(frame.columns)}"
        )
    idx = np.flatnonzero(_token_mask(frame, where, include_special))
    base = frame.iloc[idx].reset_index(drop=True)
    sub = ds.isel(token=idx)
    layer_vars = {k: np.asarray(v.transpose("token", "layer").values, dtype=np.float64)
                  for k, v in sub.data_vars.items() if set(v.dims) == {"token", "layer"}}  # fmt: skip
    if "log_frequency" in formula and "log_frequency" not in base.columns:
        raise CSEInputError(
            "Invalid value for 'formula': it uses 'log_frequency' but the result has no such coordinate; "
            "add it with cse.stats.add_log_frequency(ds, words=...)"
        )

    L = ds.sizes["layer"]
    fits = []
    for li in range(L):  # one model per layer; the model itself is the cost, not this loop
        df = base.copy()
        for k, v in layer_vars.items():
            df[k] = v[:, li]
        fits.append(_fit_mixedlm(smf, ConvergenceWarning, formula, df, groups, re_formula, reml, method))
    terms = []
    for f in fits:
        for term in (f["params"].index if f["params"] is not None else []):
            if term not in terms:
                terms.append(term)
    if not terms:
        raise CSEInputError(f"mixedlm: no layer could be fitted with {formula!r}; first error: {fits[0]['error']}")

    def grid(key):
        arr = np.full((L, len(terms)), np.nan)
        for li, f in enumerate(fits):
            if f[key] is not None:
                arr[li] = f[key].reindex(terms).to_numpy(dtype=float)
        return arr

    out = xr.Dataset(
        {
            "coef": (("layer", "term"), grid("params"), {"long_name": "fixed-effect estimate", "units": "1"}),
            "se": (("layer", "term"), grid("bse"), {"long_name": "standard error", "units": "1"}),
            "z": (("layer", "term"), grid("z"), {"long_name": "Wald z", "units": "1"}),
            "p": (("layer", "term"), grid("p"), {"long_name": "Wald p-value", "units": "1"}),
            "converged": ("layer", np.array([f["converged"] for f in fits], dtype=bool)),
            "warnings": ("layer", np.array([f["warnings"] or f["error"] for f in fits], dtype=object)),
            "group_var": ("layer", np.array([f["group_var"] for f in fits]), {"long_name": "group variance"}),
            "n_obs": ("layer", np.array([f["n_obs"] for f in fits], dtype=np.int64)),
            "n_groups": ("layer", np.array([f["n_groups"] for f in fits], dtype=np.int64)),
        },
        coords={"layer": da["layer"].values, "term": np.array(terms, dtype=object)},
    )
    if "depth" in da.coords:
        out = out.assign_coords(depth=("layer", np.asarray(da["depth"].values)))
    errors = sorted({f["error"] for f in fits if f["error"]})
    out.attrs = {
        "title": f"per-layer mixed model: {formula}",
        "formula": formula,
        "groups": groups,
        "re_formula": re_formula or "1",
        "where": _describe_where(where),
        "include_special": int(bool(include_special)),
        "reml": int(bool(reml)),
        "method": str(method) if method is not None else "statsmodels default",
        "n_tokens": int(len(idx)),
        "errors": "; ".join(errors),
    }
    return out


def _failed(w) -> bool:
    """A statsmodels ConvergenceWarning that reports a failed optimization.

    Warnings that the estimate lies on the boundary of the parameter space (a random
    effect variance near 0) or that the Hessian is not positive definite describe a
    converged fit; they are kept in the per-layer ``warnings`` text instead.
    """
    text = str(w.message).lower()
    return not ("boundary" in text or "hessian" in text)


def _fit_mixedlm(smf, ConvergenceWarning, formula, df, groups, re_formula, reml, method):
    result = {"params": None, "bse": None, "z": None, "p": None, "converged": False,
              "group_var": np.nan, "n_obs": 0, "n_groups": 0, "error": "", "warnings": ""}  # fmt: skip
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = smf.mixedlm(formula, df, groups=df[groups], re_formula=re_formula, missing="drop")
            fit = model.fit(reml=reml, method=method) if method is not None else model.fit(reml=reml)
    except Exception as exc:  # singular designs, all-NaN layers ...
        result["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())
        return result
    convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    fe = fit.fe_params.index
    result.update(
        params=fit.fe_params,
        bse=fit.bse.reindex(fe),
        z=fit.tvalues.reindex(fe),
        p=fit.pvalues.reindex(fe),
        converged=bool(getattr(fit, "converged", True)) and not any(_failed(w) for w in convergence),
        warnings="; ".join(sorted({" ".join(str(w.message).split()) for w in convergence})),
        group_var=float(np.asarray(fit.cov_re)[0, 0]) if np.size(fit.cov_re) else np.nan,
        n_obs=int(fit.nobs),
        n_groups=int(len(model.group_labels)),
    )
    return result


# ---------------------------------------------------------------------------------
# relative depth
# ---------------------------------------------------------------------------------


def relative_depth(ds, bins: int = 10, method: str = "mean"):
    """Map layers onto relative depth so models with different numbers of layers compare.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Anything with a ``layer`` dim: a ``cse compute`` result, a `compare` result...
        Its relative depth is the ``depth`` coordinate, ``(layer + 1) / L``; without
        one it is computed from the layer's position, ``(i + 1) / n_layers``.
    bins : int
        Number of equal bins of relative depth over (0, 1].
    method : {"mean", "interpolate"}
        ``mean``: each bin (k/bins, (k+1)/bins] averages the layers whose depth falls in
        it (NaN skipped; a bin without layers is NaN, which happens when L < bins).
        ``interpolate``: linear interpolation in depth to the bin centres (centres below
        the first layer's depth take the first layer's value). ``mean`` pools; use it
        unless L is small.

    Returns
    -------
    Same type as `ds`
        ``layer`` replaced by ``relative_depth`` (the bin centres (k + 0.5) / bins),
        with coordinates ``depth_low``/``depth_high`` (bin edges) and ``n_layers_in_bin``;
        variables without a ``layer`` dim are kept. Profiles of different models then
        share a coordinate and can be concatenated along a new ``model`` dim and pooled.

    Raises
    ------
    CSEInputError
        If there is no ``layer`` dim, or `bins`/`method` are invalid.
    """
    method = check_choice("method", method, RELATIVE_DEPTH_METHODS)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise CSEInputError(f"Invalid value for 'bins': expected an integer >= 1, got {bins!r}")
    if not isinstance(ds, (xr.Dataset, xr.DataArray)):
        raise TypeError(f"Invalid type for 'ds': expected an xarray Dataset or DataArray, got {type(ds).__name__}")
    if "layer" not in ds.dims:
        raise CSEInputError(f"Invalid value for 'ds': relative depth needs a 'layer' dim, got dims {tuple(ds.dims)}")
    L = ds.sizes["layer"]
    attrs = dict(ds.attrs)
    if "depth" in ds.coords and ds["depth"].dims == ("layer",):
        depth = np.asarray(ds["depth"].values, dtype=np.float64)
    else:
        depth = np.arange(1, L + 1) / L
    # bin k holds depth in (k/bins, (k+1)/bins]; the 1e-9 absorbs rounding of e.g. 3/10 * 10
    bin_index = np.clip(np.ceil(depth * bins - 1e-9).astype(np.int64) - 1, 0, bins - 1)
    centres = (np.arange(bins) + 0.5) / bins
    counts = np.bincount(bin_index, minlength=bins)
    dropped = [str(c) for c in ds.coords if "layer" in ds[c].dims and c != "layer"]
    kept = None
    if isinstance(ds, xr.Dataset):  # variables without a layer dim pass through unchanged
        kept = ds[[k for k, v in ds.data_vars.items() if "layer" not in v.dims]]
        kept = kept.drop_vars([c for c in kept.coords if "layer" in kept[c].dims])
        ds = ds[[k for k, v in ds.data_vars.items() if "layer" in v.dims]]
    if method == "mean":
        obj = ds.drop_vars(dropped).assign_coords(_bin=("layer", bin_index))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = obj.groupby("_bin").mean("layer", skipna=True, keep_attrs=True)
        out = out.reindex(_bin=np.arange(bins)).rename({"_bin": "relative_depth"})
        out = out.assign_coords(relative_depth=centres)
    else:
        obj = ds.drop_vars(dropped).assign_coords(layer=depth)
        # centres below the first layer's depth take the first layer's value
        out = obj.interp(layer=np.maximum(centres, depth[0]), method="linear")
        out = out.rename({"layer": "relative_depth"}).assign_coords(relative_depth=centres)
    out = out.assign_coords(
        depth_low=("relative_depth", np.arange(bins) / bins),
        depth_high=("relative_depth", np.arange(1, bins + 1) / bins),
        n_layers_in_bin=("relative_depth", counts),
    )
    if kept is not None:
        out = xr.merge([out, kept], combine_attrs="override", join="outer", compat="override")
    out["relative_depth"].attrs.update(long_name="relative depth, bin centre of (layer + 1) / L", units="1")
    out.attrs = attrs
    out.attrs.update(relative_depth_bins=int(bins), relative_depth_method=method, relative_depth_n_layers=int(L))
    return out
