"""The study's plan cuts target-word sentences after their target: exact for a causal model (issue 26)."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from tiny_models import VOCAB_SIZE, tiny_tokenizer

import cse
from cse_studies.common.corpora import TARGET_WORD
from cse_studies.metaphor.plan import plan_results

FRAME = pd.DataFrame({
    "text": ["She devoured the novel in a single sitting .", "Rain flooded the streets after the storm .",
             "He grasped the idea at once and smiled .", "The price climbed to the roof this year ."],
    "target": [1, 1, 1, 2], "label": [1, 0, 1, 1], "exchangeability_block": [0, 1, 0, 1], "row": [0, 1, 2, 3],
})  # fmt: skip


def _corpus():
    return types.SimpleNamespace(name="mohx", kind=TARGET_WORD, frame=FRAME.copy())


def test_plan_cuts_target_word_depth_and_hidden_inputs_after_the_target():
    plan = plan_results([_corpus()], None)
    for name in ("mohx-depth", "mohx-hidden"):
        frame, _ = plan[name]
        assert [len(t.split()) for t in frame["text"]] == (FRAME["target"] + 1).tolist(), name
    assert plan["mohx-token"][0]["text"].tolist() == FRAME["text"].tolist()  # the token axis needs the sentence


def _target_rows(ds):
    """Per sentence: the first tokens of the word before the target and of the target, in that order."""
    word, start, row = ds["word"].values, ds["is_word_start"].values.astype(bool), ds["row"].values
    out = {}
    for i, t in enumerate(FRAME["target"]):
        rows = np.flatnonzero(start & (row == i) & ((word == t) | (word == t - 1)))
        out[i] = rows[np.argsort(word[rows])]
    return out


def test_depth_values_at_the_target_and_control_tokens_equal_the_whole_sentence_compute():
    """cse, its scale fractions, the update norms, surprisal and position of the target token and the word before
    it, computed on the sentences cut after the target, equal those of the whole sentences (causal model)."""
    torch = pytest.importorskip("torch")
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        num_hidden_layers=8, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        max_position_embeddings=64, vocab_size=VOCAB_SIZE, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    model, tok = transformers.LlamaForCausalLM(config).eval(), tiny_tokenizer()
    full = cse.compute(FRAME, model, tok, batch_size=2)
    cut = cse.compute(plan_results([_corpus()], None)["mohx-depth"][0], model, tok, batch_size=2)
    full_rows, cut_rows = _target_rows(full), _target_rows(cut)
    for i in range(len(FRAME)):
        assert len(full_rows[i]) == 2 and len(cut_rows[i]) == 2, i
        for var in ("cse", "scale_fraction", "update_norm", "surprisal", "position", "token_id"):
            if var in full:
                np.testing.assert_allclose(cut[var].values[cut_rows[i]], full[var].values[full_rows[i]], rtol=1e-5,
                                           atol=1e-6, err_msg=f"{var}, sentence {i}")  # fmt: skip
