"""Re-measuring against the model: the 24-setting sensitivity grid of MOH-X from its Gram matrices.

Side by side in one run, on the 647 MOH-X sentences (default model, CPU, batches of 16):

1. the bare forward pass of the model over every batch (``model(input_ids,
   attention_mask)``, no hooks), against
2. re-measuring the MOH-X result from its stored Gram matrices (`cse.remeasure`, no
   model) under the 24 settings {haar, db2, db4, sym4} x J {2, 3, 4} x {reflect,
   periodic}, without the null; the two alternate, ``--repeats`` rounds, medians.

Then, once each: the same 24 settings read lazily from the result file (netCDF),
the order null's cost per setting (P = 2 and P = 10, the difference per permutation,
extrapolated to P = 100), the bytes per token of what ``--save`` stores, and the
error of CSE re-measured from float16 updates against float32 updates (depth, token
and hidden axes, the first ``--float16-texts`` sentences).

The Gram matrices come from the same batches as `cse.compute` (hooks on the blocks,
`cse.measure.reduce_updates(..., gram=True)`); a check states that re-measuring them
under the result's own settings gives back its CSE.

Run: ``.venv/bin/python benchmarks/remeasure.py [--data ../shared/data/metaphor] [--repeats 3]
[--out benchmarks/results/remeasure.json]`` (the machine is shared: the load average before and after is
recorded).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, save, table  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "metaphor"
GRID = list(itertools.product(["haar", "db2", "db4", "sym4"], [2, 3, 4], ["reflect", "periodic"]))


def batches_of(frame, model, tok, batch_size):
    """The padded batches `cse.compute` runs: (ids, mask) tensors, from the package's own plan."""
    import torch

    from cse.pipeline import plan_tokens

    plan = plan_tokens(frame, tok, max_length=model.config.max_position_embeddings)
    out = []
    for batch in plan.batches(batch_size):
        seqs = [plan.sequences[i] for i in batch]
        ids = torch.full((len(seqs), max(len(s) for s in seqs)), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.from_numpy(s)
            mask[b, : len(s)] = 1
        out.append((ids, mask))
    return plan, out


def captured(model, batches, keep_tokens: int):
    """Gram matrices (n_tokens, L, L) of every real token, and the float32 updates of the first tokens."""
    import torch

    from cse import forward_with_updates
    from cse.measure import reduce_updates
    from cse.settings import MeasureSettings

    settings = MeasureSettings.resolve("depth", "haar", 3)
    grams, kept = [], []
    n_kept = 0
    for ids, mask in batches:
        updates, _ = forward_with_updates(model, ids, mask, dtype=torch.float32, zero_padding=False)
        u = updates.flatten(1, 2)[:, mask.reshape(-1).bool()].numpy()  # (L, tokens, d)
        grams.append(reduce_updates(u, settings, gram=True)["gram"])
        if n_kept < keep_tokens:
            kept.append(u[:, : keep_tokens - n_kept].transpose(1, 0, 2).copy())
            n_kept += kept[-1].shape[0]
    return np.concatenate(grams), np.concatenate(kept)


def remeasure_grid(ds, null_permutations: int = 0):
    import cse

    for wavelet, level, boundary in GRID:
        cse.remeasure(ds, wavelet=wavelet, level=level, boundary=boundary, null_permutations=null_permutations)


def null_costs(ds) -> list[dict]:
    """Per setting: re-measuring with P = 2 and P = 10, per permutation, and extrapolated to P = 100."""
    import cse

    rows = []
    cse.remeasure(ds.isel(token=slice(0, 64)), null_permutations=2)  # warm-up: the null kernel's first call
    for wavelet, level, boundary in GRID:
        times = {}
        for p in (0, 2, 10):
            start = time.perf_counter()
            cse.remeasure(ds, wavelet=wavelet, level=level, boundary=boundary, null_permutations=p, seed=0)
            times[p] = time.perf_counter() - start
        per = (times[10] - times[2]) / 8
        rows.append({"setting": f"{wavelet} J={level} {boundary}", "no null s": round(times[0], 3),
                     "P=2 s": round(times[2], 3), "P=10 s": round(times[10], 3),
                     "per permutation ms": round(1e3 * per, 2), "P=100 s (extrapolated)": round(times[2] + 98 * per, 2)})
    return rows


def float16_errors(ds, updates, n_tokens: int) -> list[dict]:
    """|CSE from float16 updates - CSE from float32 updates| on each axis, the same tokens."""
    import cse

    part = ds.isel(token=slice(0, n_tokens))
    rows = []
    for axis, settings in (("depth", {}), ("token", {"level": 2}), ("hidden", {})):
        values = {}
        for dtype in (np.float32, np.float16):
            stored = part.assign(updates=(("token", "layer", "hidden"), updates[:n_tokens].astype(dtype)))
            stored = stored.drop_vars([v for v in ("gram",) if v in stored])
            values[dtype] = cse.remeasure(stored, axis=axis, null_permutations=0, **settings)["cse"].values
        diff = np.abs(values[np.float16] - values[np.float32])
        rows.append({"axis": axis, "cells": int(np.isfinite(diff).sum()), "max": float(np.nanmax(diff)),
                     "p99": float(np.nanpercentile(diff, 99)), "mean": float(np.nanmean(diff))})
    return rows


def round_ratios(times: dict) -> list[float]:
    """Re-measuring over the forward pass, round by round (the two ran back to back in each round)."""
    return [r / f for r, f in zip(times[REMEASURE], times[FORWARD])]


FORWARD = "bare forward pass (MOH-X)"
REMEASURE = "cse.remeasure, 24 settings, no null (in memory)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--float16-texts", type=int, default=100)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "remeasure.json"))
    args = parser.parse_args(argv)

    import torch

    import cse
    from cse.io import read_texts, write_result

    load_before = os.getloadavg()
    frame = read_texts(args.data / "moh-x.csv", text_column="sentence")
    model, tok = cse.load_model(None, device="cpu")
    plan, batches = batches_of(frame, model, tok, args.batch_size)
    keep = int(plan.starts[min(args.float16_texts, len(plan.sequences))])
    gram, updates = captured(model, batches, keep)
    ds = cse.compute(frame, model, tok, batch_size=args.batch_size, progress=False)
    ds = ds.assign(gram=(("token", "layer", "layer2"), gram)).assign_coords(layer2=ds["layer"].values)
    check = float(np.nanmax(np.abs(cse.remeasure(ds)["cse"].values - ds["cse"].values)))

    def bare():
        with torch.inference_mode():
            for ids, mask in batches:
                model(input_ids=ids, attention_mask=mask, use_cache=False)

    runs = {FORWARD: bare, REMEASURE: lambda: remeasure_grid(ds)}
    for fn in runs.values():
        fn()  # warm-up: Numba cache load, first-touch allocations
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}

    folder = Path(tempfile.mkdtemp(prefix="cse-bench-remeasure-"))
    write_result(ds, folder / "moh-x-gram.nc")
    start = time.perf_counter()
    with cse.open_result(folder / "moh-x-gram.nc", chunks={}) as lazy:
        remeasure_grid(lazy)
    from_file = time.perf_counter() - start

    null_rows = null_costs(ds)
    f16 = float16_errors(ds, updates, keep)
    n_layers, d_model = ds.sizes["layer"], int(ds.attrs["d_model"])
    sizes = {"gram (float64)": 8 * n_layers**2, "gram_triangle (float64)": 4 * n_layers * (n_layers + 1),
             "updates (float16)": 2 * n_layers * d_model, "updates (float32)": 4 * n_layers * d_model}
    results = {
        "machine": machine(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "texts": len(frame), "tokens": int(ds.sizes["token"]), "n_layers": n_layers, "d_model": d_model,
        "batch_size": args.batch_size, "settings": [f"{w} J={j} {b}" for w, j, b in GRID],
        "times_s": times, "median_s": medians,
        "ratio_remeasure_over_forward": medians[REMEASURE] / medians[FORWARD],
        "ratios_per_round": round_ratios(times),
        "remeasure_24_from_file_s": from_file, "file_bytes": os.path.getsize(folder / "moh-x-gram.nc"),
        "check_default_settings_max_abs_diff": check, "null": null_rows, "float16": f16,
        "float16_tokens": keep, "bytes_per_token": sizes,
    }
    save(results, args.out)
    print(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; load average before "
          f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"MOH-X: {len(frame)} texts, {ds.sizes['token']} tokens, {n_layers} layers; re-measured under the "
          f"result's own settings: max |diff| {check:.2g}")
    print(table([{"run": k, "median s": f"{v:.2f}", "runs (s)": ", ".join(f"{t:.2f}" for t in times[k])}
                 for k, v in medians.items()], ["run", "median s", "runs (s)"]))
    print(f"ratio re-measure / forward: {results['ratio_remeasure_over_forward']:.3f} (medians), per round "
          f"{', '.join(f'{r:.3f}' for r in results['ratios_per_round'])}; the 24 settings read lazily "
          f"from the netCDF file ({results['file_bytes'] / 2**20:.1f} MiB): {from_file:.2f} s")
    print("\norder null per setting\n" + table(null_rows, list(null_rows[0])))
    print("\nCSE from float16 updates vs float32 updates (first texts)\n" + table(f16, list(f16[0])))
    print("\nbytes per token: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
