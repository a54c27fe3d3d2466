"""
Two models on relative depth
============================

SmolLM2-135M has 30 blocks, Gemma 3 270M 18: ``cse.stats.relative_depth`` bins each
model's layers on relative depth ``(layer + 1) / L``, so their profiles share an axis.
Raw CSE is compared only outside each model's boundary layers; ``cse_z`` (against the
layer-order null) at every layer.
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

gemma = cse.compute(example, text_column="sentence", model="gemma-3-270m", null_permutations=20)
small = cse.remeasure(ds, null_permutations=20)  # SmolLM2's null, from the Gram matrices
fig = Figure(figsize=(7, 3.5), layout="constrained")
ax = fig.subplots()
for name, result in (("SmolLM2-135M (30 blocks)", small), ("Gemma 3 270M (18 blocks)", gemma)):
    mask = cse.stats.select_tokens(result, where=verbs)
    profile = cse.stats.relative_depth(result.cse_z[mask], bins=10).mean("token")
    ax.plot(profile.relative_depth, profile, marker="o", label=name)
ax.axhline(0, color="0.5", lw=0.8)
ax.set(xlabel="relative depth", ylabel="mean cse_z of the target verbs",
       title="Two models on relative depth (haar, J = 3, P = 20)")
ax.legend()
