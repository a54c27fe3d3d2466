"""Hostile input: random bytes, long lines, mixed encodings, empty texts, non-finite activations.

Every case ends in a valid result or one clear error (CSEInputError; on the command
line one stderr line and exit status 2), never a traceback or a corrupt file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse import CSEInputError
from cse.capture import find_blocks
from cse.models import load_model
from cse.io import open_result, read_texts
from cse.pipeline import compute
from saved_models import TEXTS, save_tiny_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(scope="module")
def tiny(model_dir):
    return load_model(model_dir, device="cpu")


def _read(tmp_path, suffix, data: bytes, **kwargs):
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frame = read_texts(path, **kwargs)
        except CSEInputError as error:
            assert "\n" not in str(error) and str(error)
            return None
    assert isinstance(frame, pd.DataFrame) and "text" in frame.columns
    assert frame["text"].map(lambda t: isinstance(t, str) and t.strip() != "").all()
    return frame


_lines = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
        st.sampled_from(["", " ", "\t", "\u00a0", "{}", "[]", '{"text": 1}', '{"text": null}', "a,b", '"', ",,,"]),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".txt", ".jsonl", ".csv", ".tsv", ".bin"]))
def test_random_bytes_give_a_frame_or_one_clear_error(tmp_path, data, suffix):
    _read(tmp_path, suffix, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_lines, suffix=st.sampled_from([".txt", ".jsonl", ".csv"]),
       encoding=st.sampled_from(["utf-8", "cp1252", "utf-16", "latin-1"]))
def test_random_lines_in_any_encoding_give_a_frame_or_one_clear_error(tmp_path, lines, suffix, encoding):
    content = "\n".join(lines)
    data = content.encode(encoding, errors="replace")
    _read(tmp_path, suffix, data, encoding="utf-8")
    _read(tmp_path, suffix, data, encoding=encoding)


def test_mixed_encodings_name_the_line_and_an_encoding(tmp_path):
    data = "first line é\n".encode() + "second line é\n".encode("cp1252")
    with pytest.raises(CSEInputError, match=r"line 2 is not valid utf-8 .*try --encoding cp1252"):
        read_texts(_write(tmp_path, "mixed.txt", data))


def _write(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_empty_and_whitespace_only_texts(tmp_path, tiny):
    model, tokenizer = tiny
    with pytest.raises(CSEInputError, match="blank.txt' is empty"):
        read_texts(_write(tmp_path, "blank.txt", b"  \n\t\n\xc2\xa0\n"))
    with pytest.raises(CSEInputError, match="every text is empty"):
        read_texts(_write(tmp_path, "blank.csv", b"text,label\n  ,1\n\t,0\n"))
    with pytest.raises(CSEInputError, match="is empty"):
        read_texts(_write(tmp_path, "empty.txt", b""))
    path = _write(tmp_path, "some.txt", f"\n   \n{TEXTS[0]}\n\t\n{TEXTS[1]}\n".encode())
    with pytest.warns(UserWarning, match=r"skipped 3 empty text\(s\) at row\(s\) 0, 1, 3"):
        ds = compute(path, model, tokenizer)
    assert sorted(set(ds["text"].values.tolist())) == [2, 4]


def test_very_long_line_is_one_clear_error_or_windows(tmp_path, tiny):
    model, tokenizer = tiny
    path = _write(tmp_path, "long.txt", (" ".join(TEXTS) * 40).encode() + b"\n" + TEXTS[0].encode())
    with pytest.raises(CSEInputError, match=r"text 0 has \d+ tokens, more than the model's context of 128; .*--window"):
        compute(path, model, tokenizer, output=tmp_path / "r.nc")
    assert not list(tmp_path.glob("r.nc*")) and not list(tmp_path.glob(".r.nc*"))
    ds = compute(path, model, tokenizer, window=128, batch_size=8)
    assert ds.sizes["token"] > 128 * 10 and (ds["position"].values < 128).all()


def _cli(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "cse.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "name, data, extra, message",
    [
        ("noise.txt", bytes(range(256)) * 4, [], r"line \d+ is not valid utf-8"),
        ("empty.csv", b"", [], "is empty"),
        ("cols.csv", b"a,b\n1,2\n", [], "no 'text' or 'sentence' column"),
        ("bad.jsonl", b'{"text": "ok"}\n{"text": \n', [], "line 2 is not valid JSON"),
        ("ok.txt", b"A short text.\n", ["--model", "/nonexistent/model"], "cannot load model"),
        ("ok.txt", b"A short text.\n", ["--batch-size", "0"], r"'batch_size': expected an integer in \[1, 65536\]"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_no_output(tmp_path, name, data, extra, message):
    _write(tmp_path, name, data)
    proc = _cli("compute", name, "-o", "out.zarr", *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert pytest.importorskip("re").search(message, errors[0]), errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no staging


@pytest.fixture
def poisoned(tiny):
    """The tiny model with block 3 emitting `value` at text 0, position 2 of a batch."""
    model, tokenizer = tiny
    state = {"value": None}

    def poison(module, args, output):
        if state["value"] is not None:
            hidden = output[0] if isinstance(output, tuple) else output
            hidden[0, 2] = state["value"]
        return output

    handle = find_blocks(model)[1][3].register_forward_hook(poison)
    yield model, tokenizer, state
    handle.remove()


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_activations_give_nan_cells_never_zero(tmp_path, poisoned, value):
    model, tokenizer, state = poisoned
    texts = TEXTS[:2]
    clean = compute(texts, model, tokenizer, batch_size=2)
    state["value"] = value
    ds = compute(texts, model, tokenizer, batch_size=2, output=tmp_path / "r.zarr")
    state["value"] = None
    ds = ds.load()
    first = ds["text"].values == 0
    # The poisoned token: undefined at every layer (the depth transform mixes all layers), never 0.
    bad = first & (ds["position"].values == 2)
    assert np.isnan(ds["cse"].values[bad]).all()
    assert np.isnan(ds["scale_fraction"].values[bad]).all()
    # Elsewhere in the text a cell is undefined where the non-finite value reached it (attention
    # multiplies masked-out values by 0, and 0 * inf is NaN, so even earlier tokens' later layers
    # can be hit) or else exactly the clean value; the other text of the batch is untouched.
    hit = np.isnan(ds["cse"].values)
    np.testing.assert_array_equal(ds["cse"].values[~hit], clean["cse"].values[~hit])
    np.testing.assert_array_equal(ds["cse"].values[~first], clean["cse"].values[~first])
    assert not hit[~first].any()
    finite = np.isfinite(ds["cse"].values)
    assert ((ds["cse"].values[finite] >= 0) & (ds["cse"].values[finite] <= 1)).all()
    # The file holds exactly what was computed, NaN included.
    xr.testing.assert_identical(open_result(tmp_path / "r.zarr"), ds)


def test_huge_activations_stay_defined(poisoned):
    model, tokenizer, state = poisoned
    state["value"] = 3e38  # near the float32 maximum: squares overflow in float32, not in float64
    ds = compute(TEXTS[:2], model, tokenizer, batch_size=2)
    state["value"] = None
    values = ds["cse"].values[~ds["is_special"].values]
    finite = np.isfinite(values)
    assert finite.any()
    assert ((values[finite] >= 0) & (values[finite] <= 1)).all()
    bad = (ds["text"].values == 0) & (ds["position"].values == 2)
    cell = ds["cse"].values[bad]
    assert np.isnan(cell).all() or ((cell >= 0) & (cell <= 1)).all()
