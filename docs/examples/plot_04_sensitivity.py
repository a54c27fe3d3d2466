"""
A sensitivity sweep with cse.remeasure
======================================

The example was computed with ``save=["gram"]``: each token's L x L Gram matrix of layer
updates, a sufficient statistic of depth-axis CSE under every wavelet, level, boundary
rule and order null. ``cse.remeasure`` gives CSE under other settings in seconds, without
the model. Each curve is the mean CSE of the target verbs under one setting; the title of
each panel names its setting.
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
from matplotlib.figure import Figure

settings = [dict(wavelet="haar", level=3), dict(wavelet="db2", level=2),
            dict(wavelet="db4", level=2), dict(wavelet="haar", level=3, boundary="periodic")]
fig = Figure(figsize=(10, 6), layout="constrained")
axes = fig.subplots(2, 2, sharex=True, sharey=True).ravel()
for ax, setting in zip(axes, settings):
    again = cse.remeasure(ds, **setting)
    mask = cse.stats.select_tokens(again, where=verbs)
    for label, colour in (("literal", "tab:blue"), ("metaphorical", "tab:orange")):
        chosen = again.cse[mask & (again.label.values == label)]
        ax.plot(again.layer, chosen.mean("token"), color=colour, label=label)
    boundary = cse.stats.boundary_layers(again)
    ax.axvspan(-0.5, boundary.nonzero()[0].max() + 0.5, color="0.9", zorder=0)
    ax.set_title(", ".join(f"{k}={v}" for k, v in {"boundary": "reflect", **setting}.items()))
    ax.set_xlabel("layer")
    ax.set_ylabel("mean CSE")
axes[0].legend()
