"""`cse info`: a one-screen summary of a result file.

It never fails on a file that `cse stats` accepts: results with 0 tokens, a `cse`
variable with other dims, missing coordinates or attributes, token-axis results. Every
number is reduced lazily (one pass over a Dask-backed store), so a large Zarr store is
never loaded whole. Non-finite values (``inf``, ``-inf``) are undefined like NaN: they
are left out of every mean, minimum and maximum, counted among the undefined cells, and
said once.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np
import xarray as xr


@click.command("info")
@click.argument("result", type=click.Path(path_type=Path))
def info_command(result):
    """Print a one-screen summary of RESULT (.nc or .zarr) from 'cse compute'.

    Shape, model, settings, command and versions; CSE over the tokens that statistics
    use (special tokens excluded) and by layer; which layers (or, on the token axis, how
    many tokens) are boundary_affected; the order/dimension null (cse_z) when present.
    """
    from ..io import check_coordinates, open_result

    ds = check_coordinates(open_result(result, chunks={}), str(result))
    for line in summary_lines(ds, str(result)):
        click.echo(line)


def summary_lines(ds: xr.Dataset, name: str) -> list[str]:
    """The lines `cse info` prints for the result `ds` (read from `name`)."""
    attrs = ds.attrs
    sizes = dict(ds.sizes)
    bands = f" ({', '.join(map(str, ds['scale'].values))})" if "scale" in ds.coords else ""
    n_text = int(np.unique(ds["text"].values).size) if "text" in ds.coords else "?"
    lines = [
        f"{name}: {sizes.get('token', '?')} tokens from {n_text} texts x {sizes.get('layer', '?')} layers "
        f"x {sizes.get('scale', '?')} bands{bands}",
        f"model     {attrs.get('model', '?')}  (d_model {attrs.get('d_model', '?')}, dtype {attrs.get('dtype', '?')})",
        f"measure   axis={attrs.get('axis')} wavelet={attrs.get('wavelet')} level={attrs.get('level')} "
        f"boundary={attrs.get('boundary')} normalize={attrs.get('normalize')} "
        f"null_permutations={attrs.get('null_permutations')} seed={attrs.get('seed')}",
        f"command   {attrs.get('command', '')}",
        f"version   cse {attrs.get('cse_version')}, transformers {attrs.get('transformers_version')}, "
        f"torch {attrs.get('torch_version')}",
    ]
    numbers = _reductions(ds)
    lines += _value_lines(ds, numbers)
    infinite = {k[: -len("_inf")]: int(v) for k, v in numbers.items() if k.endswith("_inf") and int(v)}
    if infinite:
        counts = " and ".join(f"{n} {name} cell{'s' if n != 1 else ''}" for name, n in infinite.items())
        lines.append(f"non-finite {counts} hold inf or -inf: counted as undefined (NaN), left out of every number "
                     f"above")
    lines.append(_boundary_line(ds))
    if "cse_z" in ds.data_vars:
        lines.append(_null_line(ds, numbers))
    own = {"text", "position", "token_id", "token_str", "word", "is_word_start", "is_special", "boundary_affected"}
    extra = [str(c) for c in ds.coords if ds[c].dims == ("token",) and c not in own]
    if extra:
        lines.append(f"input fields on tokens: {', '.join(extra)}")
    lines.append("variables " + ", ".join(f"{k}{tuple(v.dims)}" for k, v in ds.data_vars.items()))
    return lines


def _kept(ds: xr.Dataset, var: xr.DataArray) -> xr.DataArray:
    """`var` with special tokens masked out (NaN), where it has a token dim and is_special exists."""
    if "token" in var.dims and "is_special" in ds.coords and ds["is_special"].dims == ("token",):
        return var.where(~ds["is_special"].astype(bool))
    return var


def _reductions(ds: xr.Dataset) -> dict:
    """Every number the summary needs, computed in one pass (Dask or NumPy)."""
    out = {}
    for name in ("cse", "cse_z", "surprisal"):
        if name not in ds.data_vars or ds[name].dtype.kind not in "biuf":
            continue
        kept = _kept(ds, ds[name])
        var = kept.where(np.isfinite(kept))  # inf is undefined too, never a mean
        out[f"{name}_mean"] = var.mean()
        out[f"{name}_std"] = var.std()
        if var.size:  # min and max of nothing are errors, not NaN
            out[f"{name}_min"] = var.min()
            out[f"{name}_max"] = var.max()
        out[f"{name}_defined"] = var.notnull().sum()
        out[f"{name}_inf"] = np.isinf(kept).sum()
        if name == "cse" and "layer" in var.dims:
            out["cse_by_layer"] = var.mean([d for d in var.dims if d != "layer"])
    if "is_special" in ds.coords:
        out["n_special"] = ds["is_special"].astype(bool).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # means of empty selections are NaN, said as n/a
        computed = xr.Dataset({k: v.variable for k, v in out.items()}).compute()
    return {k: computed[k].values for k in computed.data_vars}


def _number(value, digits: int = 4) -> str:
    value = float(value)
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def _value_lines(ds: xr.Dataset, numbers: dict) -> list[str]:
    cse = ds["cse"]
    if "cse_mean" not in numbers:
        return [f"cse       of dtype {cse.dtype}: no summary"]
    size = int(np.prod([ds.sizes[d] for d in cse.dims]))
    n_special = int(numbers.get("n_special", 0)) if "token" in cse.dims else 0
    cells = size - n_special * (size // ds.sizes["token"]) if n_special else size
    if cells == 0:
        lines = ["cse       no cells (the result has no tokens)" if size == 0 else "cse       only special tokens"]
    else:
        excluded = f" ({n_special} special tokens excluded)" if n_special else ""
        lines = [f"cse       mean {_number(numbers['cse_mean'])}, min {_number(numbers['cse_min'])}, "
                 f"max {_number(numbers['cse_max'])}, undefined (NaN) {cells - int(numbers['cse_defined'])} "
                 f"of {cells} cells{excluded}"]
    if "surprisal_mean" in numbers:
        lines.append(f"surprisal mean {_number(numbers['surprisal_mean'], 3)} nat")
    if "cse_by_layer" in numbers and numbers["cse_by_layer"].size:
        lines.append("mean CSE by layer: " + " ".join(_number(v, 3) for v in np.atleast_1d(numbers["cse_by_layer"])))
    return lines


def _runs(indices) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2, 5'``."""
    indices = [int(i) for i in indices]
    runs, start = [], None
    for k, i in enumerate(indices):
        if start is None:
            start = i
        if k + 1 == len(indices) or indices[k + 1] != i + 1:
            runs.append(f"{start}" if start == i else f"{start}-{i}")
            start = None
    return ", ".join(runs)


def _boundary_line(ds: xr.Dataset) -> str:
    if "boundary_affected" not in ds.coords:
        return "boundary  no boundary_affected coordinate (hidden axis, or a result without it)"
    flag = ds["boundary_affected"]
    values = np.asarray(flag.values).astype(bool)
    if flag.dims == ("layer",):
        layers = ds["layer"].values[values] if "layer" in ds.coords else np.flatnonzero(values)
        if not len(layers):
            return f"boundary  no layer of {values.size} is boundary_affected"
        return (f"boundary  layers {_runs(layers)} of {values.size} are boundary_affected (MODWT boundary "
                f"coefficients): compare raw CSE across layers or models outside them, or use cse_z")
    if flag.dims == ("token",):
        return (f"boundary  {int(values.sum())} of {values.size} tokens are boundary_affected (token axis: the first "
                f"positions of each sequence)")
    return f"boundary  boundary_affected over {tuple(flag.dims)}: {int(values.sum())} of {values.size} marked"


def _null_line(ds: xr.Dataset, numbers: dict) -> str:
    if "cse_z_min" not in numbers:
        return "null      cse_z present (no numeric summary)"
    return (f"null      cse_z mean {_number(numbers['cse_z_mean'], 3)}, sd {_number(numbers['cse_z_std'], 3)}, "
            f"min {_number(numbers['cse_z_min'], 2)}, max {_number(numbers['cse_z_max'], 2)} over "
            f"{int(numbers['cse_z_defined'])} defined cells; {ds.attrs.get('null_permutations', '?')} permutations")
