"""Tiny randomly initialised decoder-only models and a real offline tokenizer for tests.

`tiny_model(family)` builds a 2-4 block model of each supported family in under a
second, float32 and in eval mode; `tiny_tokenizer()` trains a small byte-level BPE
on built-in text, with offsets, so that no download is ever needed.

    from tests.tiny_models import FAMILIES, tiny_model, tiny_tokenizer
"""

from __future__ import annotations

import functools

import torch

FAMILIES = ("gpt2", "gpt_neo", "gpt_neox", "llama", "qwen2", "gpt_oss", "gemma3")
VOCAB_SIZE = 512
TOKENIZER_VOCAB_SIZE = 400
BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

# A few hundred words, literal and figurative, so the BPE learns common English pieces.
CORPUS = """\
The committee approved the budget after a long debate about roads, schools and water.
She grasped the rope with both hands and climbed slowly toward the narrow ledge.
He finally grasped the idea that the market would not recover before the winter.
The river of traffic poured through the city as the evening lights came on.
A cold wind swept across the valley and bent the young trees toward the lake.
Time is a thief that steals the quiet hours we meant to spend with our friends.
The teacher explained the experiment twice, then asked the students to repeat it.
Their argument collapsed when the last witness changed her story in court.
The bridge collapsed during the storm, and the village was cut off for a week.
Prices climbed steadily through the spring while wages stayed where they were.
The cat climbed onto the warm roof and watched the birds in the garden below.
Her words cut deeper than any knife, and he left the room without a reply.
The chef cut the bread into thin slices and served it with olive oil and salt.
Ideas spread like fire through the small town once the newspaper printed the letter.
The fire spread from the kitchen to the hall before the neighbours called for help.
We weighed the options carefully, but every choice carried a heavy price.
The farmer weighed the apples on an old scale that hung from the barn door.
A flood of letters arrived after the program, most of them kind and some of them angry.
Heavy rain caused a flood in the lower streets, and the shops closed early.
The company planted the seeds of its later success in a tiny office near the station.
In April we planted tomatoes, beans and a row of sunflowers along the fence.
Numbers tell a story, but the story depends on who is counting and why.
The old man told a story about the sea, the ships and the winters of his youth.
Research on language models asks how meaning is built up layer by layer.
Each layer adds a small update to the residual stream of every token in the text.
Wavelets split a signal into scales, from fine details to the coarse approximation.
Entropy measures how broadly the energy of a signal spreads across those scales.
"""


@functools.lru_cache(maxsize=None)
def tiny_tokenizer(add_bos: bool = False):
    """A real fast byte-level BPE tokenizer trained offline on `CORPUS`.

    Parameters
    ----------
    add_bos : bool
        Prepend the BOS token to every encoded text (as Llama tokenizers do).

    Returns
    -------
    tokenizer : transformers.PreTrainedTokenizerFast
        ``len(tokenizer) <= TOKENIZER_VOCAB_SIZE <= VOCAB_SIZE``; offsets are
        available (``return_offsets_mapping=True``); BOS ``<|bos|>``, EOS
        ``<|eos|>``, PAD ``<|pad|>``; ``padding_side = "right"``. Cached: do
        not mutate it in tests.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
        )
    else:
        backend.post_processor = processors.ByteLevel(trim_offsets=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="right"
    )
    return tokenizer


def _config(family: str, vocab_size: int):
    import transformers as tf

    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    if family == "gpt2":
        return tf.GPT2Config(n_layer=3, n_embd=32, n_head=4, n_positions=128, **common)
    if family == "gpt_neo":
        # Both attention kinds: global, local, global, local with a 4-token window.
        return tf.GPTNeoConfig(
            num_layers=4, hidden_size=32, num_heads=4, max_position_embeddings=128,
            attention_types=[[["global", "local"], 2]], window_size=4, **common,
        )
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(
            num_hidden_layers=3, hidden_size=32, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=128, **common,
        )
    if family == "llama":
        return tf.LlamaConfig(
            num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=64, max_position_embeddings=128, **common,
        )
    if family == "qwen2":
        return tf.Qwen2Config(
            num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=64, max_position_embeddings=128, **common,
        )
    if family == "gpt_oss":
        # Mixture of experts with sliding and full attention layers, as in gpt-oss.
        return tf.GptOssConfig(
            num_hidden_layers=2, hidden_size=32, head_dim=8, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
            layer_types=["sliding_attention", "full_attention"], max_position_embeddings=128,
            rope_parameters={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                             "truncate": False, "original_max_position_embeddings": 4, "rope_theta": 150000.0},
            **common,
        )
    if family == "gemma3":
        # Gemma 3 text model: scaled embeddings, sandwich norms, sliding and full attention layers.
        return tf.Gemma3TextConfig(
            num_hidden_layers=3, hidden_size=32, head_dim=8, num_attention_heads=4, num_key_value_heads=1,
            intermediate_size=64, sliding_window=4, max_position_embeddings=128,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"], **common,
        )
    raise ValueError(f"Invalid value for 'family': expected one of {FAMILIES}, got {family!r}")


def tiny_model(family: str, seed: int = 0, vocab_size: int = VOCAB_SIZE, attn_implementation: str | None = None):
    """A tiny randomly initialised causal LM of one family, float32, eval mode.

    Parameters
    ----------
    family : str
        One of `FAMILIES`.
    seed : int
        Seed of the weight initialisation (the global torch RNG is left untouched).
    vocab_size : int
        Vocabulary size; the default covers `tiny_tokenizer`.
    attn_implementation : str or None
        E.g. ``"eager"`` (what a TransformerLens bridge switches its model to); None
        keeps the transformers default.

    Returns
    -------
    model : transformers.PreTrainedModel
        2-4 blocks, hidden size 32.
    """
    from transformers import AutoModelForCausalLM

    config = _config(family, vocab_size)
    kwargs = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, **kwargs)
    return model.eval()


def save_model_folder(model, folder):
    """Save `model` and `tiny_tokenizer()` to `folder`, a local model folder; return the folder.

    What ``TransformerBridge.boot_transformers(folder, hf_model=model)`` and
    ``nnsight.TransformersModel(folder)`` need to build offline. Saving also records
    the model's class in ``model.config.architectures``, which TransformerLens reads.
    """
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def hooked_reference(model, ids, norm: str):
    """Hidden states, the last block's output (the input of the final norm `norm`, by a hook
    of the test's own) and the logits of one unpadded sequence `ids` (1-D tensor)."""
    import torch

    seen = {}
    handle = model.get_submodule(norm).register_forward_pre_hook(
        lambda module, args: seen.__setitem__("last", args[0].detach().clone()))
    try:
        with torch.inference_mode():
            out = model(input_ids=ids[None], output_hidden_states=True, use_cache=False)
    finally:
        handle.remove()
    return out.hidden_states, seen["last"][0], out.logits[0]
