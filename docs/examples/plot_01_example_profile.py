"""
The example profile
===================

The main job of ``cse compute --example``: CSE of every token of the built-in example
(12 verbs, each used once metaphorically and once literally) through the default model,
then the mean CSE of the target verbs per layer, by label. Token ids are those
``cse.compute`` takes: the tokenizer's, with a BOS token prepended.
"""

# %%
# Compute (or reopen) the result. Every token is one entry of ``token``; the CSV's
# columns are token coordinates.
import os
from importlib import resources
from pathlib import Path

import cse

example = Path(resources.files("cse.data") / "example.csv")  # pair, verb, label, target_idx, sentence
path = Path(os.environ.get("CSE_GALLERY_DATA", ".")) / "cse-example.nc"
if not path.exists():  # computed once by the first example, with Gram matrices for re-measuring
    cse.compute(example, text_column="sentence", output=path, save=["gram"])
ds = cse.open_result(path)
verbs = "word == target_idx and is_word_start"  # each sentence's target verb
print(ds.sizes, ds.attrs["model"])

# %%
# The target verbs' mean CSE per layer, by label, with 95 % t intervals. Twelve pairs are a
# demonstration, not a test: the hatched layers 0-6 are boundary layers, whose raw CSE the
# boundary rule shapes.
fig = cse.plot.plot_depth_profile(ds, by="label", where=verbs)
