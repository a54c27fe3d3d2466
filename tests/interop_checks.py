"""Measurements on models held by TransformerLens and nnsight, run in a fresh interpreter.

Importing nnsight patches objects process-wide (it mounts ``.save()`` on every object),
and importing TransformerLens changes warning filters and the transformers logger, so
`tests/test_interop.py` runs these checks in a subprocess and keeps the rest of the
suite away from both libraries. Each check prints one JSON object of measured numbers
and observations; the assertions live in the test file.

    python tests/interop_checks.py bare
    python tests/interop_checks.py bridge gpt2 llama gemma3
    python tests/interop_checks.py nnsight gpt2 llama gemma3
    python tests/interop_checks.py nnterp

The reference is always a separate Hugging Face model built from the same seed, never
the wrapped one (booting a bridge replaces modules of the model it wraps); for a bridge
it runs with eager attention, as ``boot_transformers`` switches its model to.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import cse  # noqa: E402
from cse.models import model_info  # noqa: E402
from tiny_models import save_model_folder, tiny_model, tiny_tokenizer  # noqa: E402

TEXTS = [
    "The river of traffic poured through the city as the evening lights came on.",
    "She grasped the idea.",
    "Time is a thief that steals the quiet hours.",
]
LIBRARIES = ("transformer_lens", "nnsight", "nnterp")
# Where the final norm reads the last block's output (its input is h_L).
FINAL_NORM = {"gpt2": "transformer.ln_f", "gpt_neo": "transformer.ln_f", "gpt_neox": "gpt_neox.final_layer_norm"}


def _max(a, b) -> float:
    return float((torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64))
                 .nan_to_num(nan=0.0).abs().max())  # fmt: skip


def _ids(text: str) -> torch.Tensor:
    return torch.tensor(tiny_tokenizer()(text)["input_ids"])


def _hf_reference(model, family: str, ids: torch.Tensor):
    """HF hidden states, the last block's output (the final norm's input, by a hook) and the logits."""
    seen = {}
    norm = model.get_submodule(FINAL_NORM.get(family, "model.norm"))
    handle = norm.register_forward_pre_hook(lambda module, args: seen.__setitem__("last", args[0].detach().clone()))
    try:
        with torch.inference_mode():
            out = model(input_ids=ids[None], output_hidden_states=True, use_cache=False)
    finally:
        handle.remove()
    return [h[0] for h in out.hidden_states], seen["last"][0]


def _compare_compute(wrapped, reference, tokenizer=None) -> dict:
    """cse.compute on the wrapped model (its own tokenizer unless given) against the HF model."""
    expected = cse.compute(TEXTS, reference, tiny_tokenizer(), level=1, batch_size=2)
    got = cse.compute(TEXTS, wrapped, tokenizer, level=1, batch_size=2)
    return {
        "compute_cse": _max(got.cse.values, expected.cse.values),
        "compute_surprisal": _max(got.surprisal.values, expected.surprisal.values),
        "compute_same_tokens": bool((got.token_id.values == expected.token_id.values).all()),
        "attrs": {k: got.attrs[k] for k in ("model_class", "wrapper", "wrapper_version", "weight_processing")},
        "reference_attrs": {k: expected.attrs[k] for k in ("wrapper", "wrapper_version", "weight_processing")},
    }


def _batch_against(wrapped, reference) -> dict:
    encoded = tiny_tokenizer()(TEXTS, padding=True, padding_side="right", return_tensors="pt")  # nnsight sets "left"
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    got_u, got_s = cse.forward_with_updates(wrapped, ids, mask)
    ref_u, ref_s = cse.forward_with_updates(reference, ids, mask)
    return {"batch_updates": _max(got_u, ref_u), "batch_surprisal": _max(got_s, ref_s)}


def _single_against(wrapped, reference, family: str) -> dict:
    """Updates of one sequence against the HF reference: each update, their sum, and the blocks."""
    ids = _ids(TEXTS[0])
    updates = cse.layer_updates(wrapped, ids)
    hidden, last = _hf_reference(reference, family, ids)
    diffs = [hidden[l + 1] - hidden[l] for l in range(len(hidden) - 2)] + [last - hidden[-2]]
    return {
        "n_layers": int(updates.shape[0]),
        "updates_vs_hf": _max(updates, torch.stack(diffs)),
        "sum_vs_last_block": _max(hidden[0] + updates.sum(0), last),
        "blocks_path": cse.find_blocks(wrapped)[0],
    }


def _hook_count(modules) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules)


def bare() -> dict:
    """A bare HF model through every entry point: neither wrapper library gets imported."""
    model = tiny_model("llama")
    cse.layer_updates(model, _ids(TEXTS[1]))
    model_info(model, tiny_tokenizer())
    ds = cse.compute(TEXTS[:2], model, tiny_tokenizer(), level=1)
    return {"imported": [name for name in LIBRARIES if name in sys.modules],
            "attrs": {k: ds.attrs[k] for k in ("wrapper", "wrapper_version", "weight_processing")}}


def bridge(family: str) -> dict:
    from transformer_lens.model_bridge import TransformerBridge

    hf = tiny_model(family)
    folder = save_model_folder(hf, tempfile.mkdtemp(prefix=f"cse-bridge-{family}-"))
    reference = tiny_model(family, attn_implementation="eager")
    wrapped = TransformerBridge.boot_transformers(folder, hf_model=hf, device="cpu")
    points = [p for block in wrapped.blocks for p in (block.hook_in, block.hook_out)]
    hooks_before = _hook_count(points)
    out = {"attention": hf.config._attn_implementation, **_single_against(wrapped, reference, family),
           **_batch_against(wrapped, reference), **_compare_compute(wrapped, reference)}
    out["hooks_left"] = _hook_count(points) - hooks_before
    try:
        cse.layer_updates(hf, _ids(TEXTS[1]))
        out["booted_hf_model_error"] = ""
    except cse.CSEInputError as error:
        out["booted_hf_model_error"] = str(error)
    out["compat"] = _compatibility_mode(wrapped, reference)
    return out


def _compatibility_mode(wrapped, reference) -> dict:
    """A bridge with processed weights: recorded, warned once, and its own residual stream is captured."""
    wrapped.enable_compatibility_mode()
    ids = _ids(TEXTS[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        updates = cse.layer_updates(wrapped, ids)
        cse.layer_updates(wrapped, ids)
        identity = cse.model_identity(wrapped)
        info = model_info(wrapped)
    with torch.inference_mode():
        _, cache = wrapped.run_with_cache(ids[None])
    last = len(wrapped.blocks) - 1
    stream = [cache[f"blocks.{l}.hook_resid_pre"][0] for l in range(last + 1)] + [cache["ln_final.hook_in"][0]]
    ref_updates = cse.layer_updates(reference, ids)
    ref_s = cse.forward_with_updates(reference, ids[None], torch.ones_like(ids)[None])[1]
    got_s = cse.forward_with_updates(wrapped, ids[None], torch.ones_like(ids)[None])[1]
    return {
        "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                     and "TransformerBridge" in str(w.message)],  # fmt: skip
        "weight_processing": identity["weight_processing"],
        "updates_vs_cache": _max(updates, torch.stack([stream[l + 1] - stream[l] for l in range(last + 1)])),
        "sum_vs_final_stream": _max(stream[0] + updates.sum(0), stream[-1]),
        "updates_vs_hf": _max(updates, ref_updates),
        "update_mean_over_d_model": float(updates.mean(-1).abs().max()),
        "hf_update_mean_over_d_model": float(ref_updates.mean(-1).abs().max()),
        "surprisal_vs_hf": _max(got_s, ref_s),
        "tokenizer_is_bridges": info.tokenizer is wrapped.tokenizer,
    }


def nnsight_wrappers(family: str) -> dict:
    from nnsight import LanguageModel
    from nnsight.modeling.transformers import TransformersModel

    warnings.simplefilter("ignore")  # LanguageModel's deprecation notice
    hf, reference = tiny_model(family), tiny_model(family)
    wrapped = LanguageModel(hf, tokenizer=tiny_tokenizer())
    blocks = list(cse.find_blocks(hf)[1])
    hooks_before = _hook_count(blocks)
    out = {**_single_against(wrapped, reference, family), **_batch_against(wrapped, reference),
           **_compare_compute(wrapped, reference)}
    out["hooks_left"] = _hook_count(blocks) - hooks_before
    with wrapped.trace(_ids(TEXTS[1])[None]):
        saved = wrapped.output.save()
    out["trace_after"] = type(saved).__name__
    folder = save_model_folder(tiny_model(family), tempfile.mkdtemp(prefix=f"cse-nnsight-{family}-"))
    lazy = TransformersModel(folder, tokenizer=tiny_tokenizer(), task="text-generation")
    out["lazy_was_dispatched"] = bool(lazy.dispatched)
    ids = _ids(TEXTS[0])
    out["lazy_updates_vs_hf"] = _max(cse.layer_updates(lazy, ids), cse.layer_updates(reference, ids))
    out["lazy_wrapper"] = cse.model_identity(lazy)["wrapper"]
    out["lazy_tokenizer_is_wrappers"] = model_info(lazy).tokenizer is lazy.tokenizer
    return out


def nnterp() -> dict:
    try:
        from nnterp import StandardizedTransformer
    except Exception as error:  # no release works with the installed nnsight
        return {"skip": f"{type(error).__name__}: {error}"}
    hf, reference = tiny_model("llama"), tiny_model("llama")
    wrapped = StandardizedTransformer(hf, tokenizer=tiny_tokenizer())
    return {**_single_against(wrapped, reference, "llama"), **_compare_compute(wrapped, reference)}


if __name__ == "__main__":
    kind, families = sys.argv[1], sys.argv[2:]
    with warnings.catch_warnings():
        runs = {"bare": bare, "nnterp": nnterp}
        if kind in runs:
            result = runs[kind]()
        else:
            run = {"bridge": bridge, "nnsight": nnsight_wrappers}[kind]
            result = {family: run(family) for family in families}
    print("CSE-INTEROP-RESULT " + json.dumps(result))
