"""`cse.remeasure`: validate, resolve the settings once, read in chunks, lay out the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..docs import fill_doc
from ..errors import CSEInputError
from ..io import open_result
from ..layout import measure_coords
from ..params import AXES, check_choice
from ..schema import COORD_ATTRS, NULL_VARIABLES, VARIABLES, variable_attrs
from ..settings import MeasureSettings
from .sources import open_source, updates_path

#: Variables that depend on the measure's settings: replaced by `remeasure`.
MEASURE_VARIABLES = ("cse", "scale_fraction") + NULL_VARIABLES

#: Attributes of the input that do not describe the re-measured result.
_DROPPED_ATTRS = ("study_key", "study_reused", "null", "boundary_width", "updates_store")

_SETTINGS = ("axis", "wavelet", "level", "boundary", "normalize", "null_permutations", "seed")


@fill_doc
def remeasure(ds, *, axis=None, wavelet=None, level=None, boundary=None, normalize=None, null_permutations=None,
              seed=None, updates=None, command=None) -> xr.Dataset:
    r"""Re-measure a CSE result under other settings, without the model.

    Parameters
    ----------
    ds : xarray.Dataset, str or Path
        A result of `cse.compute` that holds what the asked axis needs: for the depth
        axis the Gram matrices (``gram (token, layer, layer2)`` or ``gram_triangle
        (token, layer_pair)``, from ``save=["gram"]`` / ``--save gram``) or the
        updates; for the token and hidden axes the updates (``--save updates``: a
        variable ``updates (token, layer, hidden)``, or the Zarr store named in the
        attribute ``updates_store``). A path is opened lazily with `cse.open_result`
        (result files from others are untrusted).
    axis : {None, 'depth', 'token', 'hidden'}
        None: the result's axis.
    wavelet, level : optional
        As in `cse.conditional_scale_entropy`. None: the result's value on the
        result's axis, else that axis' default (haar and J = 3 for depth and token,
        db4 at the maximum level for hidden).
    boundary : {None, 'reflect', 'periodic'}
        MODWT boundary rule (depth and token axes); None: the result's, else
        ``'reflect'`` (PyWavelets calls this extension ``symmetric``).
    normalize : {None, 'unit', 'none'}
        As in `cse.conditional_scale_entropy`; None: the result's, else the axis' default.
    null_permutations : int, optional
        P of the order null (0: none; >= 2: adds ``cse_null_mean``, ``cse_null_std``
        and ``cse_z``). None: the result's.
    seed : int, optional
        Seed of the null's permutations, in [0, 2**63 - 1]. None: the result's (0 if
        it has none).
    updates : str or Path, optional
        The layer-updates store (``.zarr``) to read for the token and hidden axes (or
        the depth axis without Gram matrices). Default: the store named in the
        result's ``updates_store`` attribute, in the result file's folder.
    command : str, optional
        Recorded in the ``command`` attribute (default: this call, with its settings).

    Returns
    -------
    xarray.Dataset
        The result as `cse.compute` would give it with these settings: ``cse``,
        ``scale_fraction`` (new ``scale`` dimension) and, with a null, ``cse_null_mean``,
        ``cse_null_std``, ``cse_z``; ``boundary_affected`` recomputed for the new
        filter width (on ``layer`` for depth, on ``token`` for token, none for
        hidden); every other coordinate and variable of ``ds`` kept as it is (lazy
        where ``ds`` is). Attributes: the input's, with the new settings
        (`cse.settings.MeasureSettings.attrs`), ``remeasured_from`` (the input's path, or
        ``'in-memory result'``), ``remeasured_with`` (``gram``, ``gram_triangle`` or
        ``updates (<dtype>)``), ``source_settings`` and ``source_command`` (how the
        input was computed), ``source_updates_store`` (the input's ``updates_store``,
        which names a store beside the input, not beside the output) and ``command``.
        Closing it (``with remeasure(path) as out:``) closes the input it reads.

    Raises
    ------
    CSEInputError
        In one line: the result holds nothing the asked axis can be re-measured from
        (naming what to save: ``cse compute --save gram`` / ``--save updates``); a
        stored array of the wrong shape, dims or dtype, an asymmetric Gram matrix, an
        updates store that does not match the result's tokens or whose name is not a
        plain file name; an invalid setting (asked, or read from the result).
    TypeError
        For a wrongly typed ``level``, ``null_permutations`` or ``seed``.

    See Also
    --------
    cse.compute : Stores them with ``save=["gram"]`` or ``save=["updates"]``.

    Notes
    -----
    From the Gram matrices the result equals a fresh ``cse.compute`` with the same
    settings to rounding (tested: largest absolute difference <= 1e-9 for haar, db2, db4, sym4 x
    J = 2, 3, 4 x reflect, periodic, NaN cells equal): the energies are the same
    quadratic forms the compute path uses, energies that round below zero are
    clamped at 0. From float16 updates the CSE differs from the float32 compute by the
    rounding of the stored updates (relative 2**-11 per entry; the measured
    differences are stated in the README).

    References
    ----------
    .. [1] D. B. Percival and A. T. Walden, *Wavelet Methods for Time Series
       Analysis*, Cambridge University Press, 2000, sections 5.4-5.5.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from cse.measure import reduce_updates
    >>> from cse.settings import MeasureSettings
    >>> u = np.random.default_rng(0).standard_normal((16, 5, 8)).astype(np.float32)
    >>> first = reduce_updates(u, MeasureSettings.resolve(n_steps=16), gram=True)
    >>> ds = xr.Dataset({"cse": (("token", "layer"), first["cse"]),
    ...                  "gram": (("token", "layer", "layer2"), first["gram"])},
    ...                 attrs={"axis": "depth", "wavelet": "haar", "level": 3, "boundary": "reflect"})
    >>> again = remeasure(ds, wavelet="db2", level=2)
    >>> again.attrs["wavelet"], again.sizes["scale"], int(again.boundary_affected.sum())
    ('db2', 3, 9)
    """
    opened = isinstance(ds, (str, Path))
    ds, origin, folder = _open(ds)
    try:
        # 1. What the result holds for the asked axis, and the settings.
        settings, source = _resolve_settings(ds, origin, axis=axis, wavelet=wavelet, level=level, boundary=boundary,
                                             normalize=normalize, null_permutations=null_permutations, seed=seed,
                                             updates=updates, folder=folder)
        settings.check_memory(source.n_steps(settings.axis))
        # 2. The measure, chunk by chunk, then the result's layout.
        return _assemble(ds, source.measure(settings), settings, source, origin, command)
    except BaseException:
        if opened:
            ds.close()  # a result this call opened is not left open by a refusal or an interrupt
        raise


def read_paths(result, updates=None) -> list:
    """The files and stores `remeasure` of the result file `result` reads: the result and its updates store.

    The updates store is `updates`, or the one the result's attribute ``updates_store``
    names beside it (read lazily from the result's metadata only); an output must be
    none of them (`cse.io.check_output`).

    Parameters
    ----------
    result : str or Path
        A result file (``.nc`` or ``.zarr``).
    updates : str or Path, optional
        The updates store given explicitly.

    Returns
    -------
    list of Path

    Raises
    ------
    CSEInputError
        As `cse.open_result` for an unreadable result, or an ``updates_store``
        attribute that is not a plain ``.zarr`` file name.
    """
    path = Path(result)
    if updates is not None:
        return [path, Path(updates)]
    with open_result(path, chunks={}) as ds:
        store = updates_path(ds, str(path), None, path.parent)
    return [path] + ([store] if store is not None else [])


def _open(ds):
    """(Dataset, origin for messages and attributes, folder of the file or None)."""
    if isinstance(ds, (str, Path)):
        path = Path(ds)
        return open_result(path, chunks={}), str(path), path.parent
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"Invalid type for 'ds': expected an xarray.Dataset or a result path, got "
                        f"{type(ds).__name__}")
    source = ds.encoding.get("source")
    return ds, "in-memory result", Path(source).parent if source else None


def _resolve_settings(ds, origin, *, updates, folder, **asked) -> tuple:
    """The re-measured result's settings and the source to read: the ONE place they are resolved.

    A setting left None takes the result's value (wavelet, level, normalize and the
    boundary only when the axis is the result's own), then the package default; every
    value, asked or inherited, goes through `cse.settings.MeasureSettings.resolve`.
    """
    attrs = ds.attrs
    axis = asked["axis"] or str(attrs.get("axis", "depth"))
    if asked["axis"] is None and axis not in AXES:
        raise CSEInputError(f"{origin}: its attribute axis={axis[:40]!r} is not an axis; pass axis explicitly (--axis)")
    check_choice("axis", axis, AXES)
    same_axis = axis == attrs.get("axis")
    inherited = {}
    values = {}
    for name in _SETTINGS[1:]:
        value = asked[name]
        if value is None and (same_axis or name in ("null_permutations", "seed")) and name in attrs:
            value = attrs[name]
            if isinstance(value, np.generic):
                value = value.item()
            inherited[name] = value
        values[name] = value
    if axis == "hidden":
        values["boundary"] = "reflect"  # no MODWT boundary on the hidden axis ('periodization' in attributes)
    source = open_source(ds, axis, origin, updates=updates, folder=folder)
    try:
        settings = MeasureSettings.resolve(
            axis, values["wavelet"], values["level"], values["boundary"] or "reflect", values["normalize"],
            0 if values["null_permutations"] is None else values["null_permutations"], values["seed"],
            n_steps=source.n_steps(axis))
    except (CSEInputError, TypeError) as exc:
        taken = ", ".join(f"{k}={v!r}" for k, v in inherited.items() if f"'{k}'" in str(exc))
        if not taken:
            raise
        raise type(exc)(f"{exc} (taken from {origin}: {taken}; pass it explicitly)") from None
    return settings, source


def _assemble(ds: xr.Dataset, arrays: dict, settings: MeasureSettings, source, origin: str, command) -> xr.Dataset:
    """The input with its measure's variables, scale, boundary flags and settings replaced."""
    drop = [name for name in (*MEASURE_VARIABLES, "scale", "boundary_affected") if name in ds.variables]
    out = ds.drop_vars(drop)
    new = {name: (VARIABLES[name][0], arrays[name], variable_attrs(name)) for name in MEASURE_VARIABLES
           if name in arrays}
    if "update_norm" not in out.data_vars and "update_norm" in arrays:
        new["update_norm"] = (("token", "layer"), arrays["update_norm"], variable_attrs("update_norm"))
    out = out.assign(new)
    position = ds["position"].values if settings.axis == "token" else None
    coords = measure_coords(settings, ds.sizes["layer"], position)  # the layout's own rule, new filter width
    out = out.assign_coords({name: (*coords[name], COORD_ATTRS[name]) for name in ("scale", "boundary_affected")
                             if name in coords})
    before = " ".join(f"{name}={ds.attrs[name]}" for name in _SETTINGS if name in ds.attrs)
    attrs = {k: v for k, v in ds.attrs.items() if k not in _DROPPED_ATTRS}
    attrs.update(settings.attrs())
    if ds.attrs.get("updates_store"):
        attrs["source_updates_store"] = str(ds.attrs["updates_store"])  # beside the input, not the output
    attrs.update(remeasured_from=origin, remeasured_with=source.kind, source_settings=before,
                 source_command=str(ds.attrs.get("command", "")),
                 command=command or "cse.remeasure(" + ", ".join(f"{k}={v!r}" for k, v in settings.attrs().items())
                 + ")")
    out.attrs = attrs
    for name, var in out.variables.items():
        var.encoding = {}  # a new result: none of the input file's storage settings carry over
        if var.dtype.kind == "O" and var.chunks is not None:
            out[name] = var.load()  # strings (token_str): a writer must see them to choose their dtype
    out.set_close(ds.close)  # closing the result closes the input it reads lazily
    return out
