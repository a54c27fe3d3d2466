"""`cse info`: a one-screen summary of a result file."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np


@click.command("info")
@click.argument("result", type=click.Path(path_type=Path))
def info_command(result):
    """Print a one-screen summary of RESULT (.nc or .zarr) from 'cse compute'."""
    from ..io import open_result

    ds = open_result(result, chunks={})
    attrs = ds.attrs
    n_text = int(np.unique(ds["text"].values).size)
    click.echo(f"{result}: {ds.sizes['token']} tokens from {n_text} texts x {ds.sizes['layer']} layers "
               f"x {ds.sizes['scale']} bands ({', '.join(map(str, ds['scale'].values))})")
    click.echo(f"model     {attrs.get('model', '?')}  (d_model {attrs.get('d_model')}, dtype {attrs.get('dtype')})")
    click.echo(f"measure   axis={attrs.get('axis')} wavelet={attrs.get('wavelet')} level={attrs.get('level')} "
               f"boundary={attrs.get('boundary')} normalize={attrs.get('normalize')} "
               f"null_permutations={attrs.get('null_permutations')} seed={attrs.get('seed')}")
    click.echo(f"command   {attrs.get('command', '')}")
    click.echo(f"version   cse {attrs.get('cse_version')}, transformers {attrs.get('transformers_version')}, "
               f"torch {attrs.get('torch_version')}")
    special = ds["is_special"].values.astype(bool)
    cse = ds["cse"].values[~special]
    click.echo(f"cse       mean {np.nanmean(cse):.4f}, min {np.nanmin(cse):.4f}, max {np.nanmax(cse):.4f}, "
               f"undefined (NaN) {int(np.isnan(cse).sum())} of {cse.size} (special tokens excluded)")
    sur = ds["surprisal"].values[~special]
    click.echo(f"surprisal mean {np.nanmean(sur):.3f} nat")
    by_layer = np.nanmean(cse, axis=0)
    click.echo("mean CSE by layer: " + " ".join(f"{v:.3f}" for v in by_layer))
    extra = [c for c in ds.coords if ds[c].dims == ("token",)
             and c not in ("text", "position", "token_id", "token_str", "word", "is_word_start", "is_special")]
    if extra:
        click.echo(f"input fields on tokens: {', '.join(extra)}")
    variables = ", ".join(f"{k}{tuple(v.dims)}" for k, v in ds.data_vars.items())
    click.echo(f"variables {variables}")
