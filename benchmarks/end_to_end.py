"""End-to-end cost of CSE: `cse.compute` on MOH-X against a bare forward pass, and memory growth.

1. Overhead: the same batches of the first 240 and of all 647 MOH-X sentences (default
   model, CPU) through
   (a) a bare forward pass (``model(input_ids, attention_mask)``, no hooks),
   (b) `cse.compute(..., output=...nc)`: hooks, surprisal, CSE, streaming writes and the
   final netCDF file, and
   (c) the same with the depth axis' layer-order null (``null_permutations=100``).
   The model is loaded once, before any is timed; ``--repeats`` rounds alternate the
   three, and the overhead is the median of the per-round ratios.
2. Memory: peak resident memory of ``cse.compute`` in a fresh process on N texts and on
   10 N texts (MOH-X repeated), to show that memory does not grow with the corpus. The
   peak is reset after the model is loaded (``/proc/self/clear_refs``), so the figure is
   the computation's own peak, not the GGUF dequantization's.

Run: ``.venv/bin/python benchmarks/end_to_end.py [--data ../shared/data/metaphor] [--skip-memory]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, save, table  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "metaphor"


def overhead(data: Path, repeats: int, batch_size: int, null_permutations: int = 100,
             sizes=(240, None)) -> dict:
    """The rounds of the overhead comparison, for each corpus size (None: all of MOH-X).

    In every round the three runs of each size are timed one after the other (bare
    forward, cse.compute, cse.compute with the depth null), so that each round's ratio
    compares runs taken under the same load; the reported overhead is the median of the
    per-round ratios.
    """
    import torch

    import cse
    from cse.io import read_texts
    from cse.pipeline import pad_batch, plan_tokens

    full = read_texts(data / "moh-x.csv", text_column="sentence")
    model, tok = cse.load_model(None, device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="cse-bench-"))
    cases = {}
    for size in sizes:
        frame = full if size is None else full.iloc[:size]
        plan = plan_tokens(frame, tok, max_length=model.config.max_position_embeddings)
        batches = [pad_batch([plan.sequences[i] for i in b], tok.pad_token_id) for b in plan.batches(batch_size)]

        def bare(batches=batches):
            with torch.inference_mode():
                for ids, mask in batches:
                    model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), use_cache=False)

        def with_cse(frame=frame, name=f"moh-x-{len(frame)}.nc"):
            cse.compute(frame, model, tok, batch_size=batch_size, output=tmp / name, overwrite=True)

        def with_null(frame=frame, name=f"moh-x-{len(frame)}-null.nc"):
            cse.compute(frame, model, tok, batch_size=batch_size, output=tmp / name, overwrite=True,
                        null_permutations=null_permutations)

        cases[len(frame)] = {"tokens": plan.n_tokens,
                             "runs": {"bare forward": bare, "cse.compute": with_cse,
                                      f"cse.compute, depth null P={null_permutations}": with_null}}
    for case in cases.values():  # warm-up: Numba compilation or cache load, first-touch allocations
        for fn in case["runs"].values():
            fn()
    times = {n: {name: [] for name in case["runs"]} for n, case in cases.items()}
    for _ in range(repeats):
        for n, case in cases.items():
            for name, fn in case["runs"].items():
                start = time.perf_counter()
                fn()
                times[n][name].append(time.perf_counter() - start)
    out = {}
    for n, case in cases.items():
        t = times[n]
        names = list(t)
        ratios = {name: [a / b - 1 for a, b in zip(t[name], t[names[0]])] for name in names[1:]}
        out[str(n)] = {
            "texts": n, "tokens": case["tokens"], "batch_size": batch_size, "times_s": t,
            "median_s": {k: statistics.median(v) for k, v in t.items()},
            "per_round_overhead": ratios,
            "overhead": statistics.median(ratios["cse.compute"]),
            "overhead_null": statistics.median(ratios[names[2]]),
            "null_permutations": null_permutations,
        }
    return out


PEAK_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    import cse
    from cse.io import read_texts

    def high_water_kib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    frame = read_texts(sys.argv[1], text_column="sentence")
    frame = pd.concat([frame] * int(sys.argv[2]), ignore_index=True)
    model, tok = cse.load_model(None, device="cpu")
    after_load = high_water_kib()
    # Reset the peak (Linux >= 4.0) so that the model load's dequantization peak does not
    # mask what the computation itself needs.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = high_water_kib()
    start = time.perf_counter()
    cse.compute(frame, model, tok, batch_size=16, output=sys.argv[3], overwrite=True)
    elapsed = time.perf_counter() - start
    print(after_load, baseline, high_water_kib(), elapsed, len(frame))
    """
)


def memory(data: Path, base_texts: int) -> dict:
    """Peak RSS (KiB) of computing N and 10 N texts, each in a fresh process."""
    out = {}
    src = Path(tempfile.mkdtemp(prefix="cse-bench-mem-"))
    import pandas as pd

    frame = pd.read_csv(data / "moh-x.csv").iloc[:base_texts]
    frame.to_csv(src / "base.csv", index=False)
    for factor in (1, 10):
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, str(src / "base.csv"), str(factor), str(src / f"x{factor}.nc")],
            capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        after_load, baseline, peak, elapsed, n = proc.stdout.split()[-5:]
        out[f"{factor}x"] = {"texts": int(n), "peak_rss_mib_model_load": int(after_load) / 1024,
                             "rss_mib_before_compute": int(baseline) / 1024,
                             "peak_rss_mib_compute": int(peak) / 1024, "compute_s": float(elapsed)}
    out["ratio_10x_over_1x"] = out["10x"]["peak_rss_mib_compute"] / out["1x"]["peak_rss_mib_compute"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=7, help="alternating rounds")
    parser.add_argument("--null-permutations", type=int, default=100, help="P of the depth null row")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--memory-texts", type=int, default=200, help="N for the N vs 10 N memory comparison")
    parser.add_argument("--skip-memory", action="store_true",
                        help="measure the overhead only and keep the memory entry of --out")
    parser.add_argument("--only-memory", action="store_true",
                        help="measure memory only and update the memory entry of --out")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "end_to_end.json")
    args = parser.parse_args(argv)
    if not (args.data / "moh-x.csv").is_file():
        parser.error(f"MOH-X not found under {args.data}; pass --data")

    results = {}
    if (args.only_memory or args.skip_memory) and args.out.is_file():
        import json

        results = json.loads(args.out.read_text())  # keep the part not measured this time
    results["machine"] = machine()
    if not args.only_memory:
        results["overhead"] = o = overhead(args.data, args.repeats, args.batch_size, args.null_permutations)
        for case in o.values():
            print(f"MOH-X: {case['texts']} texts, {case['tokens']} tokens, batch size {case['batch_size']}, "
                  f"default model on CPU, {args.repeats} alternating rounds")
            rows = [{"run": k, "median s": round(v, 2), "tokens/s": round(case["tokens"] / v)}
                    for k, v in case["median_s"].items()]
            print(table(rows, ["run", "median s", "tokens/s"]))
            print(f"CSE overhead over the bare forward pass (median of the per-round ratios): "
                  f"{100 * case['overhead']:+.1f}%; with the depth null (P = {case['null_permutations']}): "
                  f"{100 * case['overhead_null']:+.1f}%")
    if not args.skip_memory:
        results["memory"] = m = memory(args.data, args.memory_texts)
        print(f"peak RSS of the computation (after the model load): {m['1x']['texts']} texts "
              f"{m['1x']['peak_rss_mib_compute']:.0f} MiB, {m['10x']['texts']} texts "
              f"{m['10x']['peak_rss_mib_compute']:.0f} MiB (ratio {m['ratio_10x_over_1x']:.3f}); "
              f"model load peak {m['1x']['peak_rss_mib_model_load']:.0f} MiB")
    save(results, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
