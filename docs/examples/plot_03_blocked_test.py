"""
A blocked test with clusters and TFCE
=====================================

Metaphorical against literal target verbs, with each verb as an exchangeability block
(labels permuted within verbs, the block-clustered studentized statistic), cluster mass
and TFCE across layers from one set of permutations. With 12 blocks of 2 tokens the
permutation space is small (2**12 relabellings), so the test is exact.
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
res = cse.stats.compare(ds, by="label", where=verbs, levels=("literal", "metaphorical"),
                        exchangeability_blocks="verb", corrections=["cluster", "tfce"], seed=0)
print(res.attrs["statistic"])
print(res[["diff", "hedges_g", "p_corrected"]].to_dataframe().round(3).head(12))

# %%
# The profile with the test's clusters shaded; the legend gives the tokens the test used
# and says whether anything was significant.
fig = cse.plot.plot_depth_profile(ds, by="label", where=verbs, stats=res,
                                  levels=("literal", "metaphorical"))
