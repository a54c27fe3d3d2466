"""
One text, token by token
========================

Every token of one text against the layers, as a heatmap of CSE (``cse plot RESULT
--text N``): the target verb outlined, the special BOS token in grey, the boundary
layers hatched.
"""

# %%
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
print(" ".join(ds.token_str.values[ds.text.values == 2]))

# %%
fig = cse.plot.plot_tokens(ds, text=2, where=verbs)
