"""Capture layer updates from decoder-only models as users hold them (loading them is `cse.models`).

The layer update of block l at token t is ``u[l, t] = h_{l+1}[t] - h_l[t]``, the
difference between what leaves block l and what enters it (the definition, user guide). It is
taken with forward hooks on the blocks themselves, never from
``output_hidden_states``: in GPT-2, Llama and most Hugging Face decoders the last
entry of ``hidden_states`` has the final norm (``ln_f`` / ``model.norm``) applied, so
``hidden_states[-1] - hidden_states[-2]`` is not the last block's update.

Every entry point takes a Hugging Face causal LM, a TransformerLens ``TransformerBridge``
(hooks on its ``blocks.{l}.hook_in`` / ``hook_out``) or an nnsight model (hooks on the
Hugging Face module it wraps); see `held_model`. Neither library is imported.

Modules
-------
wrappers
    `held_model`: look through a wrapper to the modules that run, and what it did to
    the weights.
blocks
    `find_blocks`: locate the model's list of transformer blocks structurally.
recorder
    `capture_layer_updates`: context manager that records the per-block updates of
    each forward pass.
forward
    `layer_updates` (one sequence) and `forward_with_updates` (a right-padded batch,
    with surprisal).
"""

from .blocks import find_blocks
from .forward import forward_with_updates, layer_updates
from .recorder import LayerUpdateRecorder, capture_layer_updates
from .wrappers import HeldModel, held_model

