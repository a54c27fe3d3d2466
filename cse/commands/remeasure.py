"""`cse remeasure`: a stored result under other settings, without the model."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from ..params import AXES, BOUNDARIES, NORMALIZATIONS


@click.command("remeasure")
@click.argument("result", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=True, path_type=Path), required=True,
              help="Result file to write: .nc (netCDF4) or .zarr; never RESULT itself.")
@click.option("--axis", type=click.Choice(AXES), default=None,
              help="Axis to measure [default: RESULT's]. depth needs --save gram (or updates), token and hidden "
                   "need --save updates.")
@click.option("--wavelet", default=None, help="Orthogonal PyWavelets wavelet [default: RESULT's].")
@click.option("--level", type=int, default=None, help="Decomposition level J [default: RESULT's].")
@click.option("--boundary", type=click.Choice(BOUNDARIES), default=None,
              help="MODWT boundary rule [default: RESULT's]; reflect is PyWavelets' 'symmetric' extension.")
@click.option("--normalize", type=click.Choice(NORMALIZATIONS), default=None, help="[default: RESULT's]")
@click.option("--null-permutations", type=int, default=None,
              help="P permutations of the order null (0: none) [default: RESULT's].")
@click.option("--seed", type=int, default=None, help="Seed of the null's permutations [default: RESULT's].")
@click.option("--updates", "updates", type=click.Path(path_type=Path), default=None,
              help="Layer-updates store (.zarr) [default: the one RESULT names, beside it].")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing OUTPUT (a file, or a result store of cse; other folders never).")
def remeasure_command(result, output, axis, wavelet, level, boundary, normalize, null_permutations, seed, updates,
                      overwrite):
    """Re-measure RESULT (.nc or .zarr from 'cse compute') under other settings and write OUTPUT.

    No model runs: the depth axis is recomputed from the Gram matrices that
    'cse compute --save gram' stores (any wavelet, level, boundary, normalization and
    order null), the token and hidden axes from the layer updates that '--save updates'
    stores. Settings not given are RESULT's. OUTPUT keeps RESULT's token coordinates,
    surprisal, update norms and Gram matrices, and is written like every result
    (atomically, never over RESULT, replacing a file only with --overwrite).
    """
    from ..io import check_output, write_result
    from ..io.encoding import utf8_text
    from ..remeasuring import remeasure
    from ..remeasuring.api import read_paths

    # Every store it reads is an input: the result, and the updates store it names beside it (--updates or not).
    check_output(output, inputs=read_paths(result, updates), overwrite=overwrite)
    options = {"axis": axis, "wavelet": wavelet, "level": level, "boundary": boundary, "normalize": normalize,
               "null_permutations": null_permutations, "seed": seed}
    command = utf8_text(shlex.join(["cse", "remeasure", str(result), "-o", str(output)]
                         + [part for name, value in options.items() if value is not None
                            for part in (f"--{name.replace('_', '-')}", str(value))]
                         + (["--updates", str(updates)] if updates else [])))
    with remeasure(result, **options, updates=updates, command=command) as out:
        if out.attrs.get("source_updates_store") and _same_folder(result, output):
            out.attrs["updates_store"] = out.attrs["source_updates_store"]  # still beside the output
        write_result(out, output, overwrite=overwrite)
    a = out.attrs
    click.echo(f"wrote {output}: {out.sizes['token']} tokens x {out.sizes['layer']} layers ({a['axis']} axis, "
               f"{a['wavelet']}, J={a['level']}, {a['boundary']}"
               + (f", null P={a['null_permutations']}" if a["null_permutations"] else "")
               + f"), re-measured from {a['remeasured_with']}", err=True)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a.parent if str(a.parent) else ".", b.parent if str(b.parent) else ".")
    except OSError:
        return False
