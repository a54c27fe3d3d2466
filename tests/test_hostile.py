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
    with pytest.raises(CSEInputError, match=r"line 2 is not valid utf-8 .*try encoding='cp1252'"):
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
    # Refused before tokenization: its characters alone cannot fit 128 tokens (issue 17).
    with pytest.raises(CSEInputError, match=r"text 0 has [\d,]+ characters, more than the model's context of 128 "
                                            r"tokens can hold.*window=N"):
        compute(path, model, tokenizer, output=tmp_path / "r.nc")
    assert not list(tmp_path.glob("r.nc*")) and not list(tmp_path.glob(".r.nc*"))
    ds = compute(path, model, tokenizer, window=128, batch_size=8)
    assert ds.sizes["token"] > 128 * 10 and (ds["position"].values < 128).all()


def _cli(*args, cwd, env=None, timeout=600):
    """Run ``cse ARGS`` in a subprocess (the real entry point: signal handlers, exit codes)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {}),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "cse.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


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
    with pytest.raises(CSEInputError, match=r"NaN or infinite layer updates for \d+ token\(s\) of text\(s\) 0;"):
        compute(texts, model, tokenizer, batch_size=2, output=tmp_path / "refused.zarr")  # the default (issue 27)
    with pytest.warns(UserWarning, match=r"NaN or infinite layer updates for \d+ token\(s\) of 1 text\(s\)"):
        ds = compute(texts, model, tokenizer, batch_size=2, output=tmp_path / "r.zarr", non_finite="warn")
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


# --------------------------------------------------------------------------- issue 10: the audit's cases on the CLI


def _error_line(proc) -> str:
    """The one stderr line of a refused command (exit 2, no traceback, nothing else)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("name", ["keep.nc", "photos.zarr"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_compute_never_deletes_a_folder_it_did_not_write(tmp_path, model_dir, name, overwrite):
    _write(tmp_path, "t.txt", b"The cat sat on the mat.\n")
    (tmp_path / name).mkdir()
    (tmp_path / name / "notes.txt").write_text("precious")
    line = _error_line(_cli("compute", "t.txt", "-o", name, "--model", model_dir, "-q", *overwrite, cwd=tmp_path))
    assert "existing folder that cse did not write" in line or "is a folder, not a file; cse never replaces it" in line
    assert (tmp_path / name / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.txt", name])


def test_the_output_may_not_be_an_input(tmp_path, model_dir):
    _write(tmp_path, "texts.nc", b"The cat sat on the mat.\n")
    for extra in ([], ["--overwrite"]):
        line = _error_line(_cli("compute", "texts.nc", "-o", "texts.nc", "--model", model_dir, *extra, cwd=tmp_path))
        assert "is an input of this command" in line
    assert (tmp_path / "texts.nc").read_bytes() == b"The cat sat on the mat.\n"


def _labelled_result(path):
    from cse.io import write_result

    rng = np.random.default_rng(0)
    ds = xr.Dataset({"cse": (("token", "layer"), rng.random((20, 8)))},
                    coords={"label": ("token", np.arange(20) % 2), "is_special": ("token", np.zeros(20, bool)),
                            "text": ("token", np.arange(20)), "layer": np.arange(8)})
    write_result(ds, path)
    return path.read_bytes()


def test_stats_cannot_replace_its_own_result(tmp_path):
    before = _labelled_result(tmp_path / "res.nc")
    for extra in ([], ["--overwrite"]):
        proc = _cli("stats", "res.nc", "--by", "label", "--n-permutations", "99", "-o", "res.nc", *extra, cwd=tmp_path)
        assert "is an input of this command" in _error_line(proc)
    assert (tmp_path / "res.nc").read_bytes() == before


def test_a_pickle_store_is_refused_whatever_the_environment(tmp_path):
    from test_io_results import pickle_store

    marker = tmp_path / "PAYLOAD_RAN"
    pickle_store(tmp_path / "evil.zarr", marker)
    env = {"NUMCODECS_ALLOW_UNSAFE_PICKLE_DECODE": "1"}
    for args in (["info", "evil.zarr"], ["stats", "evil.zarr", "--by", "label"]):
        proc = _cli(*args, cwd=tmp_path, env=env)
        assert "refused: array 'cse' uses the codec 'pickle'" in _error_line(proc)
    assert not marker.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_no_command_hangs_on_a_fifo(tmp_path, model_dir):
    os.mkfifo(tmp_path / "r.nc")
    os.mkfifo(tmp_path / "in.txt")
    cases = [(["info", "r.nc"], "is a FIFO"), (["stats", "r.nc", "--by", "label"], "is a FIFO"),
             (["compute", "in.txt", "-o", "out.nc", "--model", model_dir], "is a FIFO"),
             (["compute", "t.txt", "-o", "r.nc", "--model", model_dir, "--overwrite"], "is a FIFO")]
    _write(tmp_path, "t.txt", b"The cat sat on the mat.\n")
    for args, message in cases:
        proc = _cli(*args, cwd=tmp_path, timeout=60)
        assert message in _error_line(proc)


def test_a_zarr_path_that_is_a_file_is_refused_before_the_model_loads(tmp_path):
    _write(tmp_path, "t.txt", b"The cat sat on the mat.\n")
    _write(tmp_path, "out.zarr", b"my file")
    proc = _cli("compute", "t.txt", "-o", "out.zarr", "--model", "/nonexistent/model", "--overwrite", cwd=tmp_path)
    assert "is a regular file, not a Zarr store" in _error_line(proc)
    assert (tmp_path / "out.zarr").read_bytes() == b"my file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr", "t.txt"]


def test_colliding_columns_keep_the_package_coordinates(tmp_path, model_dir):
    _write(tmp_path, "in.csv", b"text,word,is_special,position,layer,cse,a/b,label\n"
                               b"The cat sat on the mat.,cat,0,9,1,2,3,x\nA dog ran.,dog,0,9,1,2,3,y\n")
    proc = _cli("compute", "in.csv", "-o", "out.nc", "--model", model_dir, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "renamed 6 input column(s)" in proc.stderr
    ds = open_result(tmp_path / "out.nc")
    assert ds["word"].dtype.kind == "i" and ds["is_special"].dtype == bool and ds["is_special"].values.any()
    assert ds["position"].values.min() == 0
    assert (ds["input_word"].values[ds["text"].values == 0] == "cat").all()
    assert {"input_is_special", "input_position", "input_layer", "input_cse", "input_a_b", "label"} <= set(ds.coords)


def test_nul_in_texts_and_fields_round_trips_through_netcdf(tmp_path, model_dir):
    _write(tmp_path, "in.jsonl", b'{"text": "a\\u0000b c", "tag": "x\\u0000\\u2400y"}\n{"text": "plain words", "tag": "z"}\n')
    proc = _cli("compute", "in.jsonl", "-o", "out.nc", "--model", model_dir, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ds = open_result(tmp_path / "out.nc")
    assert set(ds["tag"].values.tolist()) == {"x\x00\u2400y", "z"}
    assert "\x00" in "".join(ds["token_str"].values[ds["text"].values == 0].tolist())
