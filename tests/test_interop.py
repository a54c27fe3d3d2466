"""Models as interpretability users hold them: TransformerLens bridges and nnsight wrappers (issue 20).

TransformerLens and nnsight are imported only in subprocesses (`tests/interop_checks.py`):
importing nnsight mounts ``.save()`` on every object and importing TransformerLens
changes warning filters and the transformers logger, which must not reach the rest of
the suite. The subprocesses measure; the assertions are here. The detection by class
name is also checked in-process, on stand-in classes that carry the libraries' module
names, without either library.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cse import layer_updates
from cse.capture import held_model
from cse.errors import CSEInputError
from cse.models import model_identity, model_info
from tiny_models import tiny_model, tiny_tokenizer

HERE = Path(__file__).resolve().parent
TOL = 1e-5
#: The families named by issue 20 run by default; the others are marked slow.
DEFAULT_FAMILIES = ("gpt2", "llama", "gemma3")
SLOW_FAMILIES = ("gpt_neo", "gpt_neox", "qwen2", "gpt_oss")
MODEL_CLASSES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "gemma3": "Gemma3ForCausalLM",
                 "gpt_neo": "GPTNeoForCausalLM", "gpt_neox": "GPTNeoXForCausalLM", "qwen2": "Qwen2ForCausalLM",
                 "gpt_oss": "GptOssForCausalLM"}  # fmt: skip
FAMILIES = [*DEFAULT_FAMILIES, *(pytest.param(f, marks=pytest.mark.slow) for f in SLOW_FAMILIES)]


def _run_checks(*args: str) -> dict:
    """Run tests/interop_checks.py in a fresh interpreter and return its JSON result."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "interop_checks.py"), *args], capture_output=True,
                          text=True, cwd=HERE.parent, env=env, timeout=900)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("CSE-INTEROP-RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1].split(" ", 1)[1])


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install 'cse[interop]')")


def _families(config) -> tuple[str, ...]:
    """The families to measure: the slow ones too unless slow tests are deselected (-m 'not slow')."""
    return DEFAULT_FAMILIES + (() if "not slow" in (config.getoption("markexpr") or "") else SLOW_FAMILIES)


@pytest.fixture(scope="module")
def bridge_results(request):
    _needs("transformer_lens")
    return _run_checks("bridge", *_families(request.config))


@pytest.fixture(scope="module")
def nnsight_results(request):
    _needs("nnsight")
    return _run_checks("nnsight", *_families(request.config))


# --------------------------------------------------------------------------- TransformerLens


@pytest.mark.parametrize("family", FAMILIES)
def test_bridge_gives_the_hugging_face_models_updates(bridge_results, family):
    r = bridge_results[family]
    assert r["attention"] == "eager"  # boot_transformers switched the wrapped model; the reference runs the same
    assert r["blocks_path"] == "blocks" and r["n_layers"] >= 2
    for key in ("updates_vs_hf", "sum_vs_last_block", "batch_updates", "batch_surprisal", "compute_cse",
                "compute_surprisal"):  # fmt: skip
        assert r[key] < TOL, (key, r[key])
    assert r["compute_same_tokens"]
    assert r["hooks_left"] == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_bridge_identity_in_result_attributes(bridge_results, family):
    r = bridge_results[family]
    assert r["attrs"]["wrapper"] == "transformer_lens.TransformerBridge"
    assert r["attrs"]["wrapper_version"].startswith("4.")
    assert r["attrs"]["weight_processing"] == "none"
    assert r["attrs"]["model_class"] == MODEL_CLASSES[family]  # the Hugging Face class inside
    assert r["reference_attrs"] == {"wrapper": "", "wrapper_version": "", "weight_processing": "none"}


@pytest.mark.parametrize("family", FAMILIES)
def test_hugging_face_model_inside_a_bridge_is_refused(bridge_results, family):
    # boot_transformers(hf_model=m) replaces m's modules: m alone would hide processed weights.
    assert "pass the bridge itself" in bridge_results[family]["booted_hf_model_error"]


@pytest.mark.parametrize("family", FAMILIES)
def test_processed_bridge_is_measured_recorded_and_warned_once(bridge_results, family):
    c = bridge_results[family]["compat"]
    assert len(c["warnings"]) == 1, c["warnings"]  # two captures, one identity, one info: one warning
    assert c["weight_processing"].startswith("compatibility_mode,process_weights")
    # What is captured is the bridge's own residual stream, exactly.
    assert c["updates_vs_cache"] < TOL and c["sum_vs_final_stream"] < TOL
    assert c["surprisal_vs_hf"] < TOL  # folding and centring keep the next-token distribution
    assert c["tokenizer_is_bridges"]
    if "writing_weights_centred" in c["weight_processing"]:  # LayerNorm models: every update has mean 0 over d_model
        assert c["update_mean_over_d_model"] < TOL < c["hf_update_mean_over_d_model"]
        assert c["updates_vs_hf"] > 1e-3
        assert "centred" in c["warnings"][0]
    else:  # RMSNorm models: TransformerLens does not centre; the stream is the HF one
        assert c["updates_vs_hf"] < TOL


# --------------------------------------------------------------------------- nnsight


@pytest.mark.parametrize("family", FAMILIES)
def test_nnsight_wrappers_give_the_hugging_face_models_numbers(nnsight_results, family):
    r = nnsight_results[family]
    for key in ("updates_vs_hf", "sum_vs_last_block", "batch_updates", "batch_surprisal", "compute_cse",
                "compute_surprisal", "lazy_updates_vs_hf"):  # fmt: skip
        assert r[key] < TOL, (key, r[key])
    assert r["compute_same_tokens"] and r["hooks_left"] == 0
    assert "CausalLMOutput" in r["trace_after"]  # nnsight's own tracing still works afterwards
    assert r["attrs"]["wrapper"] == "nnsight.LanguageModel" and r["attrs"]["wrapper_version"].startswith("0.")
    assert r["attrs"]["weight_processing"] == "none"
    # A TransformersModel loaded lazily from a folder is dispatched, as its first trace would be.
    assert not r["lazy_was_dispatched"] and r["lazy_wrapper"] == "nnsight.TransformersModel"
    assert r["lazy_tokenizer_is_wrappers"]


def test_nnterp_standardized_transformer():
    _needs("nnsight")
    if importlib.util.find_spec("nnterp") is None:
        pytest.skip("nnterp is not installed; no released nnterp (0.4.9 to 1.3.0) imports with nnsight 0.8.1: "
                    "they import nnsight.intervention.tracing (or .graph), which nnsight 0.8 removed")  # fmt: skip
    r = _run_checks("nnterp")
    if "skip" in r:
        pytest.skip(f"nnterp does not work with the installed nnsight: {r['skip']}")
    assert r["updates_vs_hf"] < TOL and r["compute_cse"] < TOL and r["compute_surprisal"] < TOL
    assert r["attrs"]["wrapper"] == "nnterp.StandardizedTransformer"


# --------------------------------------------------------------------------- without the libraries


def test_bare_models_never_import_the_wrapper_libraries():
    r = _run_checks("bare")
    assert r["imported"] == []
    assert r["attrs"] == {"wrapper": "", "wrapper_version": "", "weight_processing": "none"}


def _stand_in(module: str, name: str, bases=(object,)):
    """A class named like a library's, defined here: detection reads names along the MRO only."""
    return type(name, bases, {"__module__": module})


def test_wrappers_are_recognised_by_class_names_along_the_mro():
    envoy = _stand_in("nnsight.intervention.envoy", "Envoy")
    language_model = _stand_in("nnsight.modeling.language", "LanguageModel", (envoy,))
    standardized = _stand_in("nnterp.standardized_transformer", "StandardizedTransformer", (language_model,))
    hf, reference = tiny_model("llama"), tiny_model("llama")
    wrapper = standardized()
    wrapper._module, wrapper.tokenizer = hf, tiny_tokenizer()
    held = held_model(wrapper)
    assert held.library == "nnsight" and held.module is hf and held.tokenizer is tiny_tokenizer()
    assert held.wrapper == "nnterp.StandardizedTransformer" and held_model(held) is held
    ids = torch.tensor(tiny_tokenizer()("She grasped the idea.")["input_ids"])
    torch.testing.assert_close(layer_updates(wrapper, ids), layer_updates(reference, ids), rtol=0, atol=0)
    info = model_info(wrapper)  # the wrapper's tokenizer by default
    assert info.tokenizer is tiny_tokenizer() and info.identity["wrapper"] == "nnterp.StandardizedTransformer"
    assert info.weights_sha256 == model_info(reference, tiny_tokenizer()).weights_sha256


def test_unusable_models_fail_with_one_clear_error():
    remote = _stand_in("transformer_lens.model_bridge.remote_bridge", "RemoteBridge",
                       (_stand_in("transformer_lens.model_bridge.bridge_core", "BridgeCore"),))  # fmt: skip
    with pytest.raises(CSEInputError, match="holds no local torch module"):
        layer_updates(remote(), [1, 2, 3])
    empty = _stand_in("nnsight.modeling.base", "NNsight", (_stand_in("nnsight.intervention.envoy", "Envoy"),))
    with pytest.raises(CSEInputError, match="holds no torch module"):
        model_identity(empty())
    with pytest.raises(TypeError, match="TransformerBridge or an nnsight model, got str"):
        layer_updates("gpt2", [1, 2, 3])
    with pytest.raises(TypeError, match="'tokenizer': required"):
        model_info(tiny_model("gpt2"))


class _HookPoint(torch.nn.Identity):
    """Stands in for TransformerLens' HookPoint: an identity module whose output is the residual stream."""


def _stand_in_bridge():
    """A toy residual model shaped like a TransformerBridge: blocks with hook_in/hook_out, logits from forward."""
    bridge_class = _stand_in("transformer_lens.model_bridge.transformer_bridge", "TransformerBridge",
                             (torch.nn.Module,))  # fmt: skip

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hook_in, self.hook_out, self.mix = _HookPoint(), _HookPoint(), torch.nn.Linear(8, 8)

        def forward(self, x):
            x = self.hook_in(x)
            return self.hook_out(x + torch.tanh(self.mix(x)))

    class Bridge(bridge_class):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed, self.unembed = torch.nn.Embedding(16, 8), torch.nn.Linear(8, 16)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(4))
            self.original_model, self.compatibility_mode, self.tokenizer = self.embed, False, None

        def forward(self, input, return_type="logits", use_cache=False, attention_mask=None):
            x = self.embed(input)
            for block in self.blocks:
                x = block(x)
            return self.unembed(x)

    return Bridge().eval()


def test_bridge_hook_points_give_what_each_block_added():
    from cse.capture import capture_layer_updates, forward_with_updates

    bridge = _stand_in_bridge()
    ids = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0]])
    with torch.inference_mode():
        stream = [bridge.embed(ids)]
        for block in bridge.blocks:
            stream.append(stream[-1] + torch.tanh(block.mix(stream[-1])))
    with torch.inference_mode(), capture_layer_updates(bridge) as recorder:
        logits = bridge(ids)
        assert sum(len(p._forward_hooks) for b in bridge.blocks for p in (b.hook_in, b.hook_out)) == 8
    assert recorder.path == "blocks" and recorder.n_layers == 4
    torch.testing.assert_close(recorder.updates, torch.stack([b - a for a, b in zip(stream, stream[1:])]))
    torch.testing.assert_close(stream[0] + recorder.updates.sum(0), stream[-1])
    assert sum(len(p._forward_hooks) for b in bridge.blocks for p in (b.hook_in, b.hook_out)) == 0
    updates, surprisal = forward_with_updates(bridge, ids, torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]))
    torch.testing.assert_close(updates[:, 0], recorder.updates[:, 0])
    assert (updates[:, 1, 3:] == 0).all()
    expected = -torch.log_softmax(logits[0, :-1].double(), -1).gather(-1, ids[0, 1:, None])[:, 0]
    torch.testing.assert_close(surprisal[0, 1:], expected, rtol=1e-5, atol=1e-5)
    assert model_identity(bridge)["weight_processing"] == "none"
