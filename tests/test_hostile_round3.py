"""Hostile cases, round three (issue 27): every store read is an input, no silent wrong result.

Each case runs the real command line (``python -m cse.cli``) where the issue's case was a
command: exit status 2, one ``Error:`` line on stderr, no traceback, and the folder unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cse
from cse import CSEInputError
from cse.io import write_result
from cse.measure import reduce_updates
from cse.settings import MeasureSettings

from test_hostile_results import cli, error_line, snapshot

N_TOKENS, N_LAYERS, D_MODEL = 12, 8, 6


def _result(seed: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    """A result with its Gram matrices (as ``--save gram`` stores them) and its updates (token, layer, hidden)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((N_LAYERS, N_TOKENS, D_MODEL)).astype(np.float32)
    first = reduce_updates(u, MeasureSettings.resolve(n_steps=N_LAYERS), gram=True)
    n = N_TOKENS
    ds = xr.Dataset(
        {"cse": (("token", "layer"), first["cse"]), "gram": (("token", "layer", "layer2"), first["gram"])},
        coords={"text": ("token", np.arange(n) // 4), "position": ("token", np.arange(n) % 4),
                "token_id": ("token", rng.integers(3, 500, n)), "is_special": ("token", np.zeros(n, bool)),
                "layer": np.arange(N_LAYERS)},
        attrs={"axis": "depth", "wavelet": "haar", "level": 3, "boundary": "reflect", "saved": "gram,updates"})
    return ds, u.transpose(1, 0, 2)


def _with_store(folder: Path, store_ids=None) -> Path:
    """``r.nc`` and its updates store ``r.nc.updates.zarr`` beside it (token ids `store_ids`, default its own)."""
    ds, u = _result()
    ids = ds["token_id"].values if store_ids is None else store_ids
    store = xr.Dataset({"updates": (("token", "layer", "hidden"), u)},
                       coords={name: ("token", ds[name].values) for name in ("text", "position", "is_special")}
                       | {"token_id": ("token", ids), "layer": ds["layer"].values})
    write_result(store, folder / "r.nc.updates.zarr")
    write_result(ds.assign_attrs(updates_store="r.nc.updates.zarr"), folder / "r.nc")
    return folder / "r.nc"


# --------------------------------------------------------------------------- 1. every store read is an input


@pytest.mark.parametrize("overwrite", [True, False])
def test_the_updates_store_a_result_names_is_an_input(tmp_path, overwrite):
    path = _with_store(tmp_path)
    before = snapshot(tmp_path)
    line = error_line(cli("remeasure", "r.nc", "-o", "r.nc.updates.zarr", "--axis", "hidden",
                          *(["--overwrite"] if overwrite else []), cwd=tmp_path))
    assert "is an input of this command" in line and "--overwrite" not in line
    assert snapshot(tmp_path) == before and path.is_file()


def test_an_input_reached_through_a_linked_folder_is_an_input(tmp_path):
    _with_store(tmp_path)
    (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
    before = snapshot(tmp_path)
    for output in ("alias/r.nc.updates.zarr", "alias/r.nc"):
        line = error_line(cli("remeasure", "r.nc", "-o", output, "--overwrite", cwd=tmp_path))
        assert "is an input of this command" in line and "--overwrite" not in line
    assert snapshot(tmp_path) == before


def test_an_explicit_updates_store_is_an_input(tmp_path):
    _with_store(tmp_path)
    os.rename(tmp_path / "r.nc.updates.zarr", tmp_path / "u.zarr")
    line = error_line(cli("remeasure", "r.nc", "--updates", "u.zarr", "-o", "u.zarr", "--overwrite", cwd=tmp_path))
    assert "is an input of this command" in line


# --------------------------------------------------------------------------- 4. no silent wrong result


def test_an_updates_store_of_other_tokens_with_the_same_counts_is_refused(tmp_path):
    ds, _ = _result()
    _with_store(tmp_path, store_ids=ds["token_id"].values[::-1].copy())
    line = error_line(cli("remeasure", "r.nc", "-o", "o.nc", "--axis", "hidden", cwd=tmp_path))
    assert "its tokens are not those of r.nc ('token_id'" in line
    assert not (tmp_path / "o.nc").exists()


def test_an_updates_store_without_token_ids_is_refused(tmp_path):
    ds, u = _result()
    store = xr.Dataset({"updates": (("token", "layer", "hidden"), u)},
                       coords={"text": ("token", ds["text"].values), "position": ("token", ds["position"].values)})
    write_result(store, tmp_path / "u.zarr")
    with pytest.raises(CSEInputError, match="records no token ids"):
        cse.remeasure(ds.drop_vars("gram"), updates=tmp_path / "u.zarr")


def _gram_with(edit) -> xr.Dataset:
    ds, _ = _result()
    gram = ds["gram"].values.copy()
    edit(gram)
    return ds.assign(gram=(("token", "layer", "layer2"), gram))


def _negative_diagonal(g):
    g[3, 2, 2] = -1.0


def _not_psd(g):  # symmetric, diagonal >= 0, but |G[0, 1]| > sqrt(G[0, 0] G[1, 1])
    g[5, 0, 1] = g[5, 1, 0] = 2 * np.sqrt(g[5, 0, 0] * g[5, 1, 1])


def _not_finite(g):
    g[7, 4, 4] = np.nan


@pytest.mark.parametrize("edit, problem", [(_negative_diagonal, "negative diagonal.*first token 3"),
                                           (_not_psd, "Cauchy-Schwarz.*first token 5"),
                                           (_not_finite, "non-finite values.*first token 7")])
def test_a_gram_matrix_that_is_not_one_is_refused(tmp_path, edit, problem):
    ds = _gram_with(edit)
    with pytest.raises(CSEInputError, match=problem):
        cse.remeasure(ds, wavelet="db2", level=2)
    write_result(ds, tmp_path / "g.nc")
    line = error_line(cli("remeasure", "g.nc", "-o", "o.nc", "--level", "2", cwd=tmp_path))
    assert "not a Gram matrix of layer updates" in line and not (tmp_path / "o.nc").exists()


def test_the_packed_triangle_is_checked_too():
    ds = _gram_with(_not_psd)
    rows, cols = np.triu_indices(N_LAYERS)
    packed = ds.drop_vars("gram").assign(gram_triangle=(("token", "layer_pair"), ds["gram"].values[:, rows, cols]))
    with pytest.raises(CSEInputError, match="'gram_triangle' has entries beyond the Cauchy-Schwarz bound"):
        cse.remeasure(packed)


def test_a_valid_gram_matrix_still_remeasures():
    ds, _ = _result()
    out = cse.remeasure(ds, wavelet="db2", level=2)
    assert np.isfinite(out["cse"].values).all()
