"""Size of the blocked comparison under H0: the label-permutation null against the restricted wild bootstrap.

Every data set redraws its design (block sizes, labels) and its data, with its own seed,
and is tested by `cse.stats.engine.compare_arrays` (statistic ``cr``) under both nulls,
from the same data: the per-layer rejection rate (mean over layers of p_uncorrected <=
0.05) and the familywise error of cluster mass, TFCE and max-T (any layer rejected).
Designs:

- ``varying``: the label effect varies between blocks (b_k ~ N(0, tau^2), the same at
  every layer of the block, mean 0 over blocks: a text- or verb-specific effect), 5 or
  25 blocks of 4-30 tokens, label share 0.5, AR(1) noise over 10 layers (rho 0.5), tau 0.5;
- ``unequal``: 25 blocks of 4-30 tokens, label-1 share 0.85, SD 2.0 against 0.5;
- ``small``: 60 blocks of 2-4 tokens, share 0.5;
- ``few``: 5 blocks of 4-30 tokens, share 0.5, no varying effect.

The bound printed beside each rate is 0.05 + 2 binomial SE at the number of data sets
(0.0597 at 2,000). Output: ``benchmarks/results/stats_null_size.txt`` (written to a
temporary file, then renamed).

Usage::

    nice python scripts/stats_null_size.py --sets 2000 --draws 199
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cse.io.paths import atomic_path  # noqa: E402
from cse.stats.engine import compare_arrays  # noqa: E402
from stats_data import block_design_draw, noise, ordered  # noqa: E402

DESIGNS = {
    "varying, 5 blocks": {"n_blocks": 5, "share": 0.5, "tau": 0.5},
    "varying, 25 blocks": {"n_blocks": 25, "share": 0.5, "tau": 0.5},
    "unequal SD, 25 blocks, share 0.85": {"n_blocks": 25, "share": 0.85, "sd": (0.5, 2.0)},
    "60 blocks of 2-4": {"n_blocks": 60, "sizes": (2, 4), "share": 0.5},
    "few, 5 blocks": {"n_blocks": 5, "share": 0.5},
}
CORRECTIONS = ("cluster", "tfce", "maxT")
N_LAYERS = 10


def one_set(design: dict, rng: np.random.Generator):
    """One data set: y (n, L), labels, blocks."""
    group, blocks = block_design_draw(rng, design["n_blocks"], design.get("sizes", (4, 30)), design["share"])
    sd = design.get("sd", (1.0, 1.0))
    scale = np.where(group, sd[1], sd[0])[:, None]
    y = scale * noise(rng, blocks.size, N_LAYERS, 0.5) + rng.normal(size=blocks.max() + 1)[blocks][:, None]
    if design.get("tau"):
        effect = rng.normal(0.0, design["tau"], blocks.max() + 1)
        y[group] += effect[blocks[group]][:, None]  # block-specific effects, mean 0 in expectation
    return y, group, blocks


def simulate(design: dict, n_sets: int, n_draws: int, seed: int) -> dict:
    """Rejection counts per null: per-layer (summed over layers) and familywise per correction."""
    counts = {null: {"layer": 0, **{c: 0 for c in CORRECTIONS}} for null in ("permutation", "wild")}
    for k in range(n_sets):
        rng = np.random.default_rng([seed, k])
        y, group, blocks = one_set(design, rng)
        y_a, y_b, codes, _ = ordered(y, group, blocks)
        for null in counts:
            res = compare_arrays(y_a, y_b, blocks=codes, statistic="cr", null=null, n_permutations=n_draws,
                                 corrections=CORRECTIONS, rng=rng)  # fmt: skip
            counts[null]["layer"] += int(np.sum(res["p_uncorrected"] <= 0.05))
            for c in CORRECTIONS:
                counts[null][c] += int(np.any(res[f"p_{c}"] <= 0.05))
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=199)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stats_null_size.txt"))
    args = parser.parse_args(argv)
    bound = 0.05 + 2 * np.sqrt(0.05 * 0.95 / args.sets)
    lines = [f"# scripts/stats_null_size.py --sets {args.sets} --draws {args.draws} --seed {args.seed}",
             f"# rejection rates at alpha 0.05; bound 0.05 + 2 SE = {bound:.4f} (per-layer rate: SE smaller)",
             f"{'design':36s} {'null':12s} {'per-layer':>9s} " + " ".join(f"{c:>8s}" for c in CORRECTIONS)]
    start = time.time()
    for d, (name, design) in enumerate(DESIGNS.items()):
        counts = simulate(design, args.sets, args.draws, args.seed * 1000 + d)
        for null, c in counts.items():
            lines.append(f"{name:36s} {null:12s} {c['layer'] / (args.sets * N_LAYERS):9.4f} "
                         + " ".join(f"{c[k] / args.sets:8.4f}" for k in CORRECTIONS))  # fmt: skip
        print("\n".join(lines[-2:]), flush=True)
    lines.append(f"# {time.time() - start:.0f} s")
    with atomic_path(args.out, overwrite=True) as tmp:  # written beside it, then renamed into place
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
