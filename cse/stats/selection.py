"""Token selection: the token frame, ``where``, special tokens, the two groups, pairs, blocks, covariates.

Every function here reads only coordinates (and 1-D token variables), never the
(token, layer) values, so selecting tokens of a Dask-backed result loads nothing.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..docs import fill_doc
from ..errors import CSEInputError
from ..where import evaluate


def as_dataarray(data, var: str, by=None) -> tuple[xr.DataArray, str | None, xr.Dataset | None]:
    """Return the (token, layer) DataArray to test, the `by` name and the source Dataset.

    A plain array of shape (n_tokens, n_layers) becomes a DataArray; `by` may then be
    the array of group labels, stored as the coordinate ``group``.

    Raises
    ------
    CSEInputError
        If `var` is missing or the data do not have the dims (token, layer).
    TypeError
        If `data` is not a Dataset, DataArray or array.
    """
    if isinstance(data, xr.Dataset):
        if var not in data.data_vars:
            raise CSEInputError(
                f"Invalid value for 'var': the result has no variable {var!r}; "
                f"available: {', '.join(map(str, data.data_vars)) or 'none'}"
            )
        da, source = data[var], data
    elif isinstance(data, xr.DataArray):
        da, source = data, None
    elif isinstance(data, (np.ndarray, Sequence)):
        arr = np.asarray(data, dtype=float)
        if arr.ndim != 2:
            raise CSEInputError(
                f"Invalid value for 'ds': a plain array must have shape (n_tokens, n_layers), got shape {arr.shape}"
            )
        da = xr.DataArray(arr, dims=("token", "layer"), name=var).assign_coords(layer=np.arange(arr.shape[1]))
        if by is not None and not isinstance(by, str):
            labels = np.asarray(by)
            if labels.shape != (arr.shape[0],):
                raise CSEInputError(
                    f"Invalid value for 'by': with a plain array, 'by' must be the {arr.shape[0]} group "
                    f"labels of the tokens, got shape {labels.shape}"
                )
            da, by = da.assign_coords(group=("token", labels)), "group"
        source = None
    else:
        raise TypeError(
            f"Invalid type for 'ds': expected an xarray Dataset, DataArray or a (n_tokens, n_layers) array, "
            f"got {type(data).__name__}"
        )
    if any(d not in da.dims for d in ("token", "layer")):
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


def token_frame(da: xr.DataArray, source: xr.Dataset | None) -> pd.DataFrame:
    """All 1-D token coordinates (and 1-D token variables of `source`) as a DataFrame, one row per token."""
    cols = {}
    holders = [da.coords] + ([source.coords, source.data_vars] if source is not None else [])
    for holder in holders:
        for name, v in holder.items():
            if v.dims == ("token",) and str(name) not in cols:
                cols[str(name)] = np.asarray(v.values)
    return pd.DataFrame(cols, index=pd.RangeIndex(da.sizes["token"]))


def where_mask(frame: pd.DataFrame, where) -> np.ndarray:
    """Evaluate `where` on the token frame; return a boolean mask over tokens, shape (n_tokens,).

    Strings go to `cse.where.evaluate` (an `ast` allow-list, never `eval`).
    """
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
        return evaluate(where, frame)
    raise TypeError(
        f"Invalid type for 'where': expected None, a string expression, a dict or a boolean token DataArray, "
        f"got {type(where).__name__}"
    )


def describe_where(where) -> str:
    """The selection in words, for result attributes ('' for none)."""
    if where is None:
        return ""
    if isinstance(where, str):
        return where
    if isinstance(where, Mapping):
        return " and ".join(f"{k} == {v!r}" for k, v in where.items())
    return "<boolean mask>"


def to_python(v):
    """numpy scalar -> Python scalar (for attributes and messages)."""
    return v.item() if isinstance(v, np.generic) else v


def token_mask(frame: pd.DataFrame, where, include_special: bool) -> np.ndarray:
    """`where` over the token frame, minus special tokens unless `include_special`."""
    mask = where_mask(frame, where)
    if not include_special and "is_special" in frame.columns:
        mask &= ~np.asarray(frame["is_special"], dtype=bool)
    return mask


@fill_doc
def select_tokens(ds, where=None, include_special: bool = False, var: str = "cse") -> np.ndarray:
    """Boolean mask over tokens: `where`, minus special tokens unless `include_special`.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A ``cse compute`` result (or one of its variables).
    where : %(where)s
    include_special : %(include_special)s
    var : str
        Variable to take from a Dataset (only its token coordinates are used).

    Returns
    -------
    mask : ndarray of bool, shape (n_tokens,)
        True at the selected tokens.

    Raises
    ------
    CSEInputError
        If `where` is refused, names a missing coordinate or does not evaluate to one
        boolean per token.

    Examples
    --------
    >>> import cse
    >>> ds = cse.open_result("cse-example.nc")  # doctest: +SKIP
    >>> mask = cse.stats.select_tokens(ds, where="word == target_idx and is_word_start")  # doctest: +SKIP
    >>> int(mask.sum())  # one target verb per sentence  # doctest: +SKIP
    24
    """
    da, _, source = as_dataarray(ds, var)
    return token_mask(token_frame(da, source), where, include_special)


def deprecated_alias(old_name: str, old_value, new_name: str, new_value, stacklevel: int = 3):
    """The value of a renamed parameter: `new_value`, or `old_value` with a DeprecationWarning.

    Parameters
    ----------
    old_name, new_name : str
        The parameter's former and present names.
    old_value, new_value : object
        What the caller passed under each (None: not passed).
    stacklevel : int
        Passed to `warnings.warn` (3: the caller of the public function).

    Returns
    -------
    The value to use.

    Raises
    ------
    CSEInputError
        If both names are given different values.
    """
    if old_value is None:
        return new_value
    warnings.warn(f"{old_name!r} is deprecated and will be removed in the next release; use {new_name!r}",
                  DeprecationWarning, stacklevel=stacklevel)  # fmt: skip
    if new_value is not None and not _same(new_value, old_value):
        raise CSEInputError(f"Invalid combination: give {new_name!r} only ({old_name!r} is its old name)")
    return old_value


def _same(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a, dtype=object) == np.asarray(b, dtype=object)))
    except ValueError:
        return False


def finite_values(values: np.ndarray, name=None) -> tuple[np.ndarray, int]:
    """`values` with infinite entries made NaN (undefined), and how many there were; warns once if any.

    Parameters
    ----------
    values : ndarray, float64
        Values of the tested variable (any shape).
    name : str, optional
        The variable's name, for the warning.

    Returns
    -------
    values : ndarray, float64
        A copy where any entry was infinite, else `values` itself.
    n_nonfinite : int
        How many entries were +-inf (NaN ones are not counted: they are undefined
        by contract, the definition, user guide).
    """
    infinite = np.isinf(values)
    count = int(infinite.sum())
    if count:
        warnings.warn(f"{count} infinite value(s) of {name or 'the variable'} treated as undefined (like NaN)",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
        values = np.where(infinite, np.nan, values)
    return values, count


def match_groups(values: pd.Series, levels, by: str) -> list:
    """Resolve the two group values, in order; strings match numbers by their text."""
    present = pd.unique(values.dropna())
    try:
        present = np.sort(present)
    except TypeError:
        present = np.asarray(sorted(present, key=str), dtype=object)
    if levels is None:
        if len(present) != 2:
            shown = ", ".join(repr(to_python(v)) for v in present[:10]) + (" ..." if len(present) > 10 else "")
            raise CSEInputError(
                f"Invalid value for 'by': {by!r} must have exactly 2 distinct values among the selected tokens, "
                f"found {len(present)}: {shown or 'none'}; pick two with levels=(a, b) / --levels A B"
            )
        return [to_python(v) for v in present]
    levels = list(levels)
    if len(levels) != 2:
        raise CSEInputError(f"Invalid value for 'levels': expected two values (a, b), got {len(levels)}: {levels!r}")
    resolved = []
    for g in levels:
        hits = [v for v in present if v == g] or [v for v in present if str(to_python(v)) == str(g)]
        if not hits:
            shown = ", ".join(repr(to_python(v)) for v in present[:10])
            raise CSEInputError(
                f"Invalid value for 'levels': {by!r} has no value {g!r} among the selected tokens; found {shown}"
            )
        resolved.append(to_python(hits[0]))
    if resolved[0] == resolved[1]:
        raise CSEInputError(f"Invalid value for 'levels': the two groups must differ, got {levels!r}")
    return resolved


def _equals(col: pd.Series, value) -> np.ndarray:
    eq = np.asarray(col == value, dtype=bool)
    if not eq.any():
        eq = np.asarray(col.astype(str) == str(value), dtype=bool)
    return eq


@dataclasses.dataclass
class Selection:
    """The selected tokens of a comparison.

    Attributes
    ----------
    da : xarray.DataArray, dims (token, layer)
        The variable tested (all tokens; nothing loaded).
    source : xarray.Dataset or None
        The Dataset it came from.
    frame : pandas.DataFrame
        Token coordinates, one row per token of `da`.
    by : str
        The coordinate holding the groups.
    levels : list
        The two group values, in order (differences are second minus first).
    idx_a, idx_b : ndarray of int64
        Token indices of each group, ascending (aligned by pair after `align_pairs`).
    n_special : int
        Special tokens removed by the default exclusion.
    """

    da: xr.DataArray
    source: xr.Dataset | None
    frame: pd.DataFrame
    by: str
    levels: list
    idx_a: np.ndarray
    idx_b: np.ndarray
    n_special: int


def select_groups(ds, by, where, levels, var, include_special, extra=None) -> Selection:
    """Validate the selection and return the token indices of both groups.

    `extra` maps parameter names to token coordinates that must exist (``paired_by``,
    ``exchangeability_blocks``); None values are skipped.
    """
    da, by, source = as_dataarray(ds, var, by)
    if not isinstance(by, str):
        raise TypeError(f"Invalid type for 'by': expected a token coordinate name, got {type(by).__name__}")
    frame = token_frame(da, source)
    for name, col in (("by", by), *((extra or {}).items())):
        if col is not None and col not in frame.columns:
            raise CSEInputError(
                f"Invalid value for {name!r}: no token coordinate {col!r}; available: {', '.join(frame.columns)}"
            )
    mask = where_mask(frame, where)
    n_special = 0
    if not include_special and "is_special" in frame.columns:
        special = np.asarray(frame["is_special"], dtype=bool)
        n_special = int((mask & special).sum())
        mask &= ~special
    mask &= np.asarray(frame[by].notna(), dtype=bool)
    values = match_groups(frame[by][mask], levels, by)
    idx_a = np.flatnonzero(mask & _equals(frame[by], values[0]))
    idx_b = np.flatnonzero(mask & _equals(frame[by], values[1]))
    return Selection(da, source, frame, by, values, idx_a, idx_b, n_special)


def align_pairs(frame: pd.DataFrame, paired_by: str, idx_a, idx_b, group_values) -> tuple[np.ndarray, np.ndarray]:
    """Order idx_a and idx_b so that row i of each belongs to the same pair."""
    pa = frame[paired_by].iloc[idx_a].to_numpy()
    pb = frame[paired_by].iloc[idx_b].to_numpy()
    ca = pd.Series(pa).value_counts(dropna=False)
    cb = pd.Series(pb).value_counts(dropna=False)
    counts = pd.concat([ca.rename("a"), cb.rename("b")], axis=1).fillna(0)
    bad = counts[(counts["a"] != 1) | (counts["b"] != 1)]
    if len(bad):
        shown = ", ".join(f"{to_python(i)!r} ({int(r.a)} x {group_values[0]!r}, {int(r.b)} x {group_values[1]!r})"
                          for i, r in bad.head(5).iterrows())  # fmt: skip
        raise CSEInputError(
            f"Invalid value for 'paired_by': every {paired_by!r} must hold exactly one selected token of each group; "
            f"{len(bad)} do not, e.g. {shown}; narrow 'where' (e.g. to word starts) or drop those pairs"
        )
    return idx_a[np.argsort(pa, kind="stable")], idx_b[np.argsort(pb, kind="stable")]


def block_design(labels: np.ndarray, in_b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Exchangeability-block codes, the tokens that carry information, the single-label blocks.

    Parameters
    ----------
    labels : ndarray, shape (n,)
        Block label of each selected token (tokens ordered as the comparison's [a; b]).
    in_b : ndarray of bool, shape (n,)
        True for tokens of the second group.
    name : str
        The block coordinate, for messages.

    Returns
    -------
    codes : ndarray of int64, shape (n_kept,)
        Block code (0 .. n_blocks - 1) of each kept token.
    keep : ndarray of bool, shape (n,)
        False for tokens of blocks that hold only one label: within-block permutations
        cannot move their label, and with block fixed effects they carry no information
        on the label effect, so they are left out.
    single : list
        The labels of those blocks (Python scalars), in order of first appearance.

    Raises
    ------
    CSEInputError
        If no block holds tokens of both groups.
    """
    codes, uniques = pd.factorize(pd.Series(labels), use_na_sentinel=False)
    n_blocks = len(uniques)
    has_a = np.bincount(codes[~in_b], minlength=n_blocks) > 0
    has_b = np.bincount(codes[in_b], minlength=n_blocks) > 0
    mixed = has_a & has_b
    if not mixed.any():
        raise CSEInputError(
            f"Invalid value for 'exchangeability_blocks': no {name!r} block holds tokens of both groups, so "
            f"permutations within blocks cannot move a label; choose blocks that cross the groups (e.g. texts or "
            f"verbs with both labels)"
        )
    keep = mixed[codes]
    kept_codes = pd.factorize(codes[keep])[0].astype(np.int64)
    single = [to_python(uniques[k]) for k in np.flatnonzero(~mixed)]
    return kept_codes, keep, single


def covariate_matrix(frame: pd.DataFrame, names: list[str], rows: np.ndarray, reserved: dict) -> np.ndarray:
    """The covariates of the selected tokens as float64, shape (n, n_covariates).

    `reserved` maps parameter names (``by`` ...) to coordinates a covariate may not be.

    Raises
    ------
    CSEInputError
        If a covariate is missing, is not numeric, or is one of the `reserved` coordinates.
    """
    columns = []
    for name in names:
        for param, col in reserved.items():
            if col is not None and name == col:
                raise CSEInputError(f"Invalid value for 'covariates': {name!r} is already the {param!r} coordinate")
        if name not in frame.columns:
            hint = "; add it with cse.stats.add_log_frequency(ds)" if name == "log_frequency" else ""
            raise CSEInputError(
                f"Invalid value for 'covariates': no token coordinate {name!r}{hint}; "
                f"available: {', '.join(frame.columns)}"
            )
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col.dtype):
            raise CSEInputError(
                f"Invalid value for 'covariates': {name!r} holds {col.dtype} values; a covariate must be numeric"
            )
        columns.append(np.asarray(col.iloc[rows], dtype=np.float64))
    return np.column_stack(columns) if columns else np.zeros((len(rows), 0))
