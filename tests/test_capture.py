"""Layer-update capture is what the model actually added, for every supported family.

The checks use references taken independently of `capture_layer_updates`: Hugging
Face `output_hidden_states` and hooks of the test's own on the final norm.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cse.errors import CSEInputError  # noqa: E402
from cse.capture import (  # noqa: E402
    capture_layer_updates,
    find_blocks,
    forward_with_updates,
    layer_updates,
)

from tests.tiny_models import FAMILIES, hooked_reference, tiny_model, tiny_tokenizer  # noqa: E402


# Block list and final norm of each family (the norm is applied to hidden_states[-1]).
BLOCKS = {
    "gpt2": "transformer.h", "gpt_neo": "transformer.h", "gpt_neox": "gpt_neox.layers",
    "llama": "model.layers", "qwen2": "model.layers", "gpt_oss": "model.layers", "gemma3": "model.layers",
}
FINAL_NORM = {
    "gpt2": "transformer.ln_f", "gpt_neo": "transformer.ln_f", "gpt_neox": "gpt_neox.final_layer_norm",
    "llama": "model.norm", "qwen2": "model.norm", "gpt_oss": "model.norm", "gemma3": "model.norm",
}
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}
TEXTS = [
    "The river of traffic poured through the city as the evening lights came on.",
    "She grasped the idea.",
    "Time is a thief that steals the quiet hours we meant to spend with friends.",
]


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request):
    return request.param, tiny_model(request.param)


def _ids(text: str) -> torch.Tensor:
    return torch.tensor(tiny_tokenizer()(text)["input_ids"])


def _reference(model, family, ids):
    """h_0, hidden_states and the last block's output (the final norm's input), by hand."""
    return hooked_reference(model, ids, FINAL_NORM[family])


def test_blocks_found_structurally(family_model):
    family, model = family_model
    path, blocks = find_blocks(model)
    assert path == BLOCKS[family]
    assert len(blocks) == model.config.num_hidden_layers
    assert blocks is model.get_submodule(BLOCKS[family])


def test_updates_sum_to_last_block_output(family_model):
    family, model = family_model
    ids = _ids(TEXTS[0])
    updates = layer_updates(model, ids)
    hidden_states, last, _ = _reference(model, family, ids)
    assert updates.shape == (model.config.num_hidden_layers, ids.numel(), model.config.hidden_size)
    assert updates.dtype == torch.float32 and updates.device.type == "cpu"
    torch.testing.assert_close(hidden_states[0][0] + updates.sum(0), last, **TOL[torch.float32])


def test_intermediate_updates_equal_hidden_state_differences(family_model):
    family, model = family_model
    ids = _ids(TEXTS[0])
    updates = layer_updates(model, ids)
    hidden_states, last, _ = _reference(model, family, ids)
    n_layers = updates.shape[0]
    assert len(hidden_states) == n_layers + 1
    for layer in range(n_layers - 1):
        torch.testing.assert_close(updates[layer], hidden_states[layer + 1][0] - hidden_states[layer][0], **TOL[torch.float32])
    # The last update is block L-1's own; hidden_states[-1] has the final norm applied.
    torch.testing.assert_close(updates[-1], last - hidden_states[-2][0], **TOL[torch.float32])
    naive = hidden_states[-1][0] - hidden_states[-2][0]
    assert (updates[-1] - naive).abs().max() > 0.1
    norm = model.get_submodule(FINAL_NORM[family])
    with torch.inference_mode():
        torch.testing.assert_close(norm(last), hidden_states[-1][0], **TOL[torch.float32])


def test_input_forms_give_the_same_updates(family_model):
    _, model = family_model
    ids = _ids(TEXTS[1])
    reference = layer_updates(model, ids)
    torch.testing.assert_close(layer_updates(model, ids[None]), reference, rtol=0, atol=0)
    torch.testing.assert_close(layer_updates(model, ids.tolist()), reference, rtol=0, atol=0)


def _batch(texts):
    encoded = tiny_tokenizer()(texts, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def test_padded_batch_matches_single_sequences(family_model):
    _, model = family_model
    ids, mask = _batch(TEXTS)
    assert (mask == 0).any(), "the batch must contain padding"
    updates, surprisal = forward_with_updates(model, ids, mask)
    assert updates.shape == (model.config.num_hidden_layers, *ids.shape, model.config.hidden_size)
    assert updates.dtype == torch.float32
    assert surprisal.shape == ids.shape and surprisal.dtype == torch.float64 and surprisal.device.type == "cpu"
    for b, length in enumerate(mask.sum(1).tolist()):
        single = layer_updates(model, ids[b, :length])
        torch.testing.assert_close(updates[:, b, :length], single, rtol=1e-4, atol=1e-4)
        assert (updates[:, b, length:] == 0).all()


def test_surprisal_matches_direct_computation(family_model):
    family, model = family_model
    ids, mask = _batch(TEXTS)
    _, surprisal = forward_with_updates(model, ids, mask)
    assert torch.isnan(surprisal[:, 0]).all()
    assert torch.isnan(surprisal[mask == 0]).all()
    for b, length in enumerate(mask.sum(1).tolist()):
        seq = ids[b, :length]
        _, _, logits = _reference(model, family, seq)
        log_p = torch.log_softmax(logits.double(), dim=-1)
        expected = -log_p[torch.arange(length - 1), seq[1:]]
        torch.testing.assert_close(surprisal[b, 1:length], expected, rtol=1e-4, atol=1e-4)
        assert torch.isfinite(surprisal[b, 1:length]).all()


def _hook_count(model) -> int:
    _, blocks = find_blocks(model)
    return sum(len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks)


def test_hooks_removed_after_context(family_model):
    _, model = family_model
    before = _hook_count(model)
    with capture_layer_updates(model) as recorder:
        assert _hook_count(model) == before + recorder.n_layers
        with torch.inference_mode():
            model(input_ids=_ids(TEXTS[1])[None], use_cache=False)
        assert recorder.updates.shape[0] == recorder.n_layers
    assert _hook_count(model) == before
    with pytest.raises(KeyError, match="inside"):
        with capture_layer_updates(model):
            raise KeyError("inside")
    assert _hook_count(model) == before


def test_results_are_ordinary_tensors():
    # Callers normalise and mask updates in place after the forward pass.
    model = tiny_model("llama")
    ids, mask = _batch(TEXTS)
    updates, surprisal = forward_with_updates(model, ids, mask)
    single = layer_updates(model, ids[1, : int(mask[1].sum())])
    for tensor in (updates, surprisal, single):
        assert not tensor.is_inference() and not tensor.requires_grad
        tensor.mul_(1.0)


def test_recorder_without_forward_pass_raises():
    model = tiny_model("llama")
    with capture_layer_updates(model) as recorder:
        with pytest.raises(RuntimeError, match="no forward pass"):
            recorder.updates


def test_half_precision_model():
    model = tiny_model("llama").to(torch.bfloat16)
    ids = _ids(TEXTS[0])
    updates = layer_updates(model, ids)
    assert updates.dtype == torch.float32
    batch_updates, surprisal = forward_with_updates(model, ids[None], torch.ones_like(ids)[None])
    assert batch_updates.dtype == torch.bfloat16
    torch.testing.assert_close(batch_updates[:, 0].float(), updates, **TOL[torch.bfloat16])
    assert torch.isfinite(surprisal[0, 1:]).all()


def test_find_blocks_error_names_the_class():
    class LinearProbe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

    with pytest.raises(CSEInputError, match="cannot find the transformer blocks of LinearProbe"):
        find_blocks(LinearProbe())
    with pytest.raises(TypeError, match="'model'"):
        find_blocks("gpt2")


def test_invalid_inputs():
    model = tiny_model("gpt2")
    with pytest.raises(CSEInputError, match="one sequence"):
        layer_updates(model, torch.zeros((2, 5), dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        layer_updates(model, torch.zeros(5))
    with pytest.raises(CSEInputError, match="at least one token"):
        layer_updates(model, [])
    with pytest.raises(CSEInputError, match="context of 128"):
        layer_updates(model, [3] * 129)
    ids = torch.ones((2, 4), dtype=torch.long)
    with pytest.raises(CSEInputError, match="right padding"):
        forward_with_updates(model, ids, torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]]))
    with pytest.raises(CSEInputError, match="'attention_mask'"):
        forward_with_updates(model, ids, torch.ones((2, 3), dtype=torch.long))
