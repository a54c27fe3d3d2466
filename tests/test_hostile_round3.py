"""Hostile cases, round three (issue 27): every store read is an input, no silent wrong result.

Each case runs the real command line (``python -m cse.cli``) where the issue's case was a
command: exit status 2, one ``Error:`` line on stderr, no traceback, and the folder unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import cse
from cse import CSEInputError
from cse.io import write_result
from cse.measure import reduce_updates
from cse.settings import MeasureSettings

from test_hostile_results import REPO, cli, error_line, snapshot

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


# --------------------------------------------------------------------------- 2. a full disk is one line, never a crash


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only; skipped where mounting is not permitted)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _big_result(folder: Path, n_tokens: int = 3000) -> Path:
    """A result whose Gram matrices alone take 1.5 MiB uncompressed."""
    rng = np.random.default_rng(1)
    u = rng.standard_normal((N_LAYERS, n_tokens, D_MODEL)).astype(np.float32)
    first = reduce_updates(u, MeasureSettings.resolve(n_steps=N_LAYERS), gram=True)
    ds = xr.Dataset({"cse": (("token", "layer"), first["cse"]), "gram": (("token", "layer", "layer2"), first["gram"])},
                    coords={"text": ("token", np.arange(n_tokens) // 10), "position": ("token", np.arange(n_tokens) % 10),
                            "layer": np.arange(N_LAYERS)},
                    attrs={"axis": "depth", "wavelet": "haar", "level": 3, "boundary": "reflect", "saved": "gram"})
    return write_result(ds, folder / "big.nc")


def test_remeasure_onto_a_full_disk_is_one_line(tmp_path, small_disk):
    _big_result(tmp_path)
    line = error_line(cli("remeasure", "big.nc", "-o", small_disk / "o.nc", "--level", "2", cwd=tmp_path))
    assert "cannot write" in line and "no space left on device" in line
    assert list(small_disk.iterdir()) == []  # no temporary file left


FAILING_WRITE = """
import sys
import numpy as np, xarray as xr
import cse.io.results
cse.io.results.check_room = lambda *args: None  # the disk fills after the check: libhdf5 meets ENOSPC/EFBIG
from cse.cli import main
main(sys.argv[1:])
"""


def _limit_file_size(nbytes):
    def limit():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


@pytest.mark.parametrize("checked", [True, False])
def test_a_write_past_the_file_size_limit_is_one_line_not_a_segfault(tmp_path, checked):
    _big_result(tmp_path)
    script = tmp_path / "failing.py"
    script.write_text(FAILING_WRITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "cse.cli"] if checked else [sys.executable, str(script)]
    proc = subprocess.run([*command, "remeasure", "big.nc", "-o", "o.nc", "--level", "2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(2**20))
    line = error_line(proc)
    assert "cannot write o.nc: file too large" in line and "ulimit -f" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.nc", "failing.py"]


@pytest.mark.parametrize("checked", [True, False])
def test_a_full_disk_without_the_check_is_still_one_line(tmp_path, small_disk, checked):
    """The fallback: libhdf5 meets ENOSPC while closing; the process reports it and lives (it used to segfault)."""
    _big_result(tmp_path)
    script = tmp_path / "failing.py"
    script.write_text(FAILING_WRITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "cse.cli"] if checked else [sys.executable, str(script)]
    proc = subprocess.run([*command, "remeasure", "big.nc", "-o", small_disk / "o.nc", "--level", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "no space left on device" in error_line(proc)
    assert list(small_disk.iterdir()) == []


@pytest.mark.slow
def test_compute_whose_final_netcdf_does_not_fit_keeps_its_batches(tmp_path):
    """The staging (small batch files) fits under the file-size limit, the final .nc does not: one line, resumable."""
    from saved_models import TEXTS, save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    (tmp_path / "in.txt").write_text("\n".join(TEXTS[:6]) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "cse.cli", "compute", "in.txt", "-o", "out.nc", "--model", str(model),
            "--batch-size", "1", "--save", "gram", "-q"]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limit_file_size(48 * 2**10))
    line = error_line(proc)
    assert "cannot write out.nc: file too large" in line and "--resume" in line, line
    assert not (tmp_path / "out.nc").exists() and (tmp_path / ".out.nc.partial").is_dir()
    resumed = subprocess.run([*args, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert cse.open_result(tmp_path / "out.nc")["gram"].shape[0] > 0


# --------------------------------------------------------------------------- 6. a broken plugin


@pytest.fixture
def broken_plugin(monkeypatch):
    from importlib.metadata import EntryPoint

    import cse.cli

    plugin = EntryPoint(name="study", value="cse_no_such_package_27.cli:study_command", group="cse.commands")
    monkeypatch.setattr(cse.cli, "plugin_commands", lambda: {"study": plugin})


def test_a_plugin_that_fails_to_import_is_named_under_help(broken_plugin, capsys):
    from cse.cli import run

    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    study = [line for line in out.splitlines() if line.strip().startswith("study")]
    assert len(study) == 1 and "broken plugin" in study[0] and "ModuleNotFoundError" in study[0]
    assert "compute" in out and "remeasure" in out


@pytest.mark.parametrize("args", [["study"], ["study", "run", "--corpus", "x"], ["study", "--help"]])
def test_running_a_broken_plugin_is_one_line(broken_plugin, capsys, args):
    from cse.cli import run

    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'study'" in err and "failed to import" in err and "cse_no_such_package_27" in err
    assert "Traceback" not in err


def test_built_in_commands_work_beside_a_broken_plugin(broken_plugin, tmp_path, capsys):
    from cse.cli import run

    ds, _ = _result()
    write_result(ds, tmp_path / "r.nc")
    assert run(["info", str(tmp_path / "r.nc")]) == 0


# --------------------------------------------------------------------------- 3. bounded decoding of tables


def _peak_of(code: str, cwd: Path, limit: str) -> tuple:
    """(returncode, stderr, peak resident MiB) of `code` run in a fresh interpreter with CSE_MAX_RESULT_BYTES=limit."""
    env = {**os.environ, "CSE_MAX_RESULT_BYTES": limit,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    probe = code + "\nimport resource, sys\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr, int(proc.stderr.strip().splitlines()[-1]) / 1024


BASELINE = "import cse.io, pyarrow.parquet, pandas\n"
READ = """
from cse import CSEInputError
from cse.io import read_texts
try:
    read_texts({path!r})
except CSEInputError as exc:
    print("Error:", exc, file=sys.stderr)
"""


def test_a_dictionary_encoded_parquet_bomb_is_refused_within_the_limit(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # 200,000 rows of one 1,000-character string: 22 KB on disk, 200 MB decoded
    pq.write_table(pa.table({"text": pa.array(["x" * 1000] * 200_000).dictionary_encode()}), tmp_path / "b.parquet",
                   compression="zstd")
    assert (tmp_path / "b.parquet").stat().st_size < 100_000
    _, _, base = _peak_of("import sys\n" + BASELINE, tmp_path, "16M")
    code, err, peak = _peak_of("import sys\n" + BASELINE + READ.format(path="b.parquet"), tmp_path, "16M")
    assert "of column data, more than may be read at once" in err and "16.0 MiB (CSE_MAX_RESULT_BYTES)" in err, err
    assert peak - base < 3 * 16, (peak, base)  # stopped within a batch of the limit, not at 200 MB


def test_a_compressed_arrow_file_in_a_datasets_folder_is_counted_as_decoded(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    from cse.io import read_texts

    folder = tmp_path / "ds"
    folder.mkdir()
    table = pa.table({"text": pa.array(["y" * 1000] * 40_000)})  # 40 MB decoded, a few hundred KB compressed
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
        writer = pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd"))
        for batch in table.to_batches(max_chunksize=4_000):
            writer.write_batch(batch)
        writer.close()
    (folder / "state.json").write_text('{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}')
    assert (folder / "data-00000-of-00001.arrow").stat().st_size < 8 * 2**20
    monkeypatch.setenv("CSE_MAX_RESULT_BYTES", "8M")
    with pytest.raises(CSEInputError, match=r"ds holds .* of column data, more than may be read at once"):
        read_texts(folder)


# --------------------------------------------------------------------------- 5. nothing outside a datasets folder


def _datasets_dict(folder: Path, splits=("train",)) -> Path:
    pa = pytest.importorskip("pyarrow")
    import json

    for split in splits:
        (folder / split).mkdir(parents=True)
        with pa.OSFile(str(folder / split / "data.arrow"), "wb") as sink:
            writer = pa.ipc.new_stream(sink, pa.schema([("text", pa.string())]))
            writer.write_table(pa.table({"text": ["a b", "c d"]}))
            writer.close()
        (folder / split / "state.json").write_text('{"_data_files": [{"filename": "data.arrow"}]}')
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    return folder


def test_a_split_folder_that_is_a_link_outside_is_refused(tmp_path):
    from cse.io import read_texts

    outside = _datasets_dict(tmp_path / "outside")
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "train").symlink_to(outside / "train", target_is_directory=True)
    (inside / "dataset_dict.json").write_text('{"splits": ["train"]}')
    with pytest.raises(CSEInputError, match="split folder 'train' is a symbolic link"):
        read_texts(inside, split="train")


def test_the_input_hash_follows_no_link(tmp_path):
    from cse.io import input_sha256

    folder = _datasets_dict(tmp_path / "d")
    before = input_sha256(folder)
    big = tmp_path / "elsewhere.arrow"
    big.write_bytes(b"z" * 2**20)
    (folder / "train" / "extra.arrow").symlink_to(big)
    (folder / "linked").symlink_to(tmp_path, target_is_directory=True)
    assert input_sha256(folder) == before


def test_sixty_thousand_split_names_make_a_short_line(tmp_path):
    import json

    from cse.io import read_texts

    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": [f"split_{k:05d}" for k in range(60_000)]}))
    for split in (None, "nope"):
        with pytest.raises(CSEInputError) as error:
            read_texts(folder, split=split)
        assert len(str(error.value)) < 1_000 and "(60000 in all)" in str(error.value)


# --------------------------------------------------------------------------- 4. non-finite forward pass, per-word rows


def test_a_forward_pass_giving_nan_is_an_error_naming_the_texts():
    import torch
    from tiny_models import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = tiny_model("gpt2")
    texts = ["the cat sat on the mat", "a cold wind swept the valley", "the river poured through the city"]
    ids = [set(tokenizer(text)["input_ids"]) for text in texts]
    poisoned = sorted(ids[1] - ids[0] - ids[2])[0]  # a token of text 1 only
    with torch.no_grad():
        model.get_input_embeddings().weight[poisoned] = float("nan")
    with pytest.raises(CSEInputError, match=r"NaN or infinite layer updates for \d+ token\(s\) of text\(s\) 1;"):
        cse.compute(texts, model, tokenizer, progress=False, batch_size=2, level=1)


def test_a_per_word_column_with_rows_of_the_wrong_length_names_the_rows(tmp_path):
    import json

    from cse.io import read_texts

    rows = [{"text": "a b c", "label_seq": [0, 1, 0]}, {"text": "d e", "label_seq": [1, 0]},
            {"text": "f g h", "label_seq": [0, 1]}, {"text": "i j", "label_seq": [0, 0]}]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(CSEInputError, match=r"column 'label_seq' holds one entry per word in 3 of 4 rows but not in "
                                            r"data row\(s\) 2 \(2 entries, 3 words\)"):
        read_texts(path)
    # a column of lists that is per-text (most rows do not fit the words) stays a per-text column
    rows = [{"text": "a b c", "tags": [1]}, {"text": "d e", "tags": [1, 2, 3, 4]}, {"text": "f", "tags": [7]}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    assert len(read_texts(path)) == 3


# --------------------------------------------------------------------------- 8. the recorded command


def test_the_recorded_command_says_how_the_result_was_made():
    from cse.commands.compute import recorded_command

    assert recorded_command(["compute", "in.txt", "-o", "r.zarr", "--workers", "2", "--threads", "1", "--resume",
                             "-q"]) == "cse compute in.txt -o r.zarr --workers 2 --threads 1"
    assert recorded_command(["compute", "in.txt", "-o", "r.zarr", "--scheduler", "tcp://10.0.0.5:8786"]) == \
        "cse compute in.txt -o r.zarr"  # an address of the computing site's network is not recorded


# --------------------------------------------------------------------------- 7. smaller items


def test_the_first_run_compilation_is_announced(monkeypatch, caplog):
    import logging

    import cse.reduce
    from tiny_models import tiny_model, tiny_tokenizer

    monkeypatch.setattr(cse.reduce, "kernels_compiled", lambda: False)
    with caplog.at_level(logging.INFO, logger="cse"):
        cse.compute(["the cat sat on the mat"], tiny_model("gpt2"), tiny_tokenizer(), progress=False, level=1)
    assert any("compiling the wavelet kernels" in record.getMessage() for record in caplog.records)


def test_kernels_compiled_reads_the_numba_cache(tmp_path, monkeypatch):
    from cse.reduce import kernels_compiled

    (tmp_path / "_numba._gram_block-1.py311.nbi").write_bytes(b"")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert kernels_compiled()


def test_model_file_is_a_name_not_a_path(monkeypatch):
    from cse.models import identity
    from tiny_models import tiny_model

    monkeypatch.setattr(identity, "model_source", lambda model: {"file": "/home/someone/private/models/tiny.gguf"})
    monkeypatch.setattr(identity, "file_sha256", lambda path: "0" * 64)
    got = identity.model_identity(tiny_model("gpt2"))
    assert got["model_file"] == "tiny.gguf" and got["model_sha256"] == "0" * 64
    assert not any("/home" in str(value) for value in got.values())


def test_a_non_ascii_path_under_a_non_utf8_locale_is_written(tmp_path):
    folder = tmp_path / "donn\u00e9es"
    folder.mkdir()
    _with_store(folder)
    env = {**os.environ, "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "C", "LANG": "C",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"], env=env,
                          capture_output=True, text=True)
    if proc.stdout.strip().lower() in ("utf-8", "utf8"):
        pytest.skip("this Python decodes file names as UTF-8 whatever the locale")
    proc = subprocess.run([sys.executable, "-m", "cse.cli", "remeasure", os.fsencode(folder / "r.nc"), "-o",
                           os.fsencode(folder / "o.nc"), "--level", "2"], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
    with cse.open_result(folder / "o.nc") as ds:
        assert "donn\u00e9es" in ds.attrs["command"]


def test_a_fake_bridge_object_is_one_line():
    from tiny_models import tiny_tokenizer

    fake = type("TransformerBridge", (), {"__module__": "transformer_lens.model_bridge", "original_model": "gpt2"})()
    with pytest.raises(CSEInputError, match=r"original_model is a str, not a torch module"):
        cse.compute(["a b"], fake, tiny_tokenizer(), progress=False)

    class Slotted:  # takes no weak reference
        __slots__ = ()
        __module__ = "transformer_lens.model_bridge"
        original_model = "gpt2"

    Slotted.__name__ = Slotted.__qualname__ = "TransformerBridge"
    with pytest.raises(CSEInputError, match=r"not a torch module"):
        cse.compute(["a b"], Slotted(), tiny_tokenizer(), progress=False)


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_with_two_workers_is_one_line(tmp_path):
    """Ctrl-C reaches the whole process group (the workers too): cse's line, and no "leaked semaphore" lines."""
    import signal
    import time

    from saved_models import TEXTS, save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    (tmp_path / "in.txt").write_text("\n".join(TEXTS * 40) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "cse.cli", "compute", "in.txt", "-o", "out.zarr", "--model",
                             str(model), "--batch-size", "1", "-q", "--workers", "2"], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    done = tmp_path / ".out.zarr.partial" / "done"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not (
            done.is_dir() and sum(len(p.read_bytes().split(b"\n")) - 1 for p in done.glob("*.log")) >= 2):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "--resume" in lines[0], err


def test_resume_racing_a_finishing_run_stops_without_recomputing(tmp_path, monkeypatch):
    """The other run renames its output between this run's output check and its lock: nothing is recomputed."""
    import cse.pipeline.request
    from tiny_models import tiny_model, tiny_tokenizer

    output = tmp_path / "out.nc"
    write_result(_result()[0], output)  # what the other run has just written
    before = output.read_bytes()
    monkeypatch.setattr(cse.pipeline.request, "check_output", lambda path, **kwargs: Path(path))  # checked "before"
    with pytest.raises(CSEInputError, match="was completed by another run while this one started; nothing to compute"):
        cse.compute(["the cat sat on the mat"], tiny_model("gpt2"), tiny_tokenizer(), progress=False, level=1,
                    output=output, resume=True)
    assert output.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


def test_a_text_input_over_the_limit_is_refused_from_its_size(tmp_path, monkeypatch):
    from cse.io import read_texts

    path = tmp_path / "in.csv"
    path.write_text("text\n" + "a b\n" * 600_000)  # 2.4 MB
    monkeypatch.setenv("CSE_MAX_RESULT_BYTES", "1M")
    with pytest.raises(CSEInputError, match=r"in.csv holds 2.3 MiB of text, more than may be read at once; the limit is "
                                            r"1.0 MiB \(CSE_MAX_RESULT_BYTES\)"):
        read_texts(path)


def test_a_huge_csv_field_peaks_near_three_times_the_file(tmp_path):
    """Measured: a 200 MiB field peaked at 1605 MiB above the imports (8x) and now at 606 MiB (3.03x)."""
    size = 40 * 2**20
    (tmp_path / "big.csv").write_text('text,note\n"a b","' + "x" * size + '"\n')
    _, _, base = _peak_of("import sys\n" + BASELINE, tmp_path, "1G")
    code, err, peak = _peak_of("import sys\n" + BASELINE + READ.format(path="big.csv"), tmp_path, "1G")
    assert "the field 'note' holds 41943040 characters" in err, err
    assert peak - base <= 3.2 * size / 2**20, (peak, base)
