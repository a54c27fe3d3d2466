"""A tiny model saved to disk with its tokenizer, so that `cse compute --model DIR`,
subprocesses and Dask workers load it like any local model (no test hook needed).

    from saved_models import save_tiny_model, TEXTS
"""

from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import CORPUS, VOCAB_SIZE, tiny_tokenizer

#: Real sentences, one per line (27 of them).
TEXTS = [line for line in CORPUS.splitlines() if line.strip()]


def save_tiny_model(folder, n_layers: int = 8, seed: int = 0) -> Path:
    """Save a tiny random Llama (8 blocks, so the default level J = 3 fits) and its tokenizer.

    Returns
    -------
    Path
        The folder, loadable with ``cse.load_model(str(folder))``.
    """
    import transformers as tf

    folder = Path(folder)
    config = tf.LlamaConfig(
        num_hidden_layers=n_layers, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=128, vocab_size=VOCAB_SIZE,
        bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
