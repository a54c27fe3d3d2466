"""Coverage of the intervals of a blocked comparison's effect (``diff``) by the number of blocks.

Each data set redraws its design (blocks of `--sizes` tokens, label share 0.5) and its
data (block means, AR(1) noise over 4 layers, label effect 0.5 at every layer, plus a
block-specific part N(0, tau^2) in the ``varying`` design) with its own seed, and
computes the ``t`` interval (beta +- t(G - 1) CR1 SE, `cse.stats.wild`), the whole-block
percentile bootstrap (``blocks``) and the within-cell bootstrap (``cells``) of
`cse.stats.engine.compare_arrays`; coverage is the share of (set, layer) intervals
holding 0.5, the effect averaged over blocks. Output:
``benchmarks/results/stats_coverage.txt`` (temporary file, then renamed).

Usage::

    nice python scripts/stats_coverage.py --sets 1000 --bootstrap 499
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

BLOCKS = (5, 8, 10, 15, 30, 60)
INTERVALS = ("t", "blocks", "cells")
EFFECT, N_LAYERS = 0.5, 4


def one_set(n_blocks: int, sizes, tau: float, rng: np.random.Generator):
    group, blocks = block_design_draw(rng, n_blocks, sizes, 0.5)
    y = noise(rng, blocks.size, N_LAYERS, 0.5) + rng.normal(size=n_blocks)[blocks][:, None]
    effect = EFFECT + rng.normal(0.0, tau, n_blocks) if tau else np.full(n_blocks, EFFECT)
    y[group] += effect[blocks[group]][:, None]
    return ordered(y, group, blocks)


def coverage(n_blocks: int, sizes, tau: float, n_sets: int, n_boot: int, seed: int) -> dict:
    hits = {k: 0 for k in INTERVALS}
    for k in range(n_sets):
        rng = np.random.default_rng([seed, n_blocks, k])
        y_a, y_b, codes, _ = one_set(n_blocks, sizes, tau, rng)
        for kind in INTERVALS:
            res = compare_arrays(y_a, y_b, blocks=codes, statistic="cr", null="permutation", n_permutations=1,
                                 corrections=("maxT",), bootstrap=kind, n_bootstrap=n_boot, rng=rng)  # fmt: skip
            hits[kind] += int(np.sum((res["diff_ci_low"] <= EFFECT) & (EFFECT <= res["diff_ci_high"])))
    return {k: v / (n_sets * N_LAYERS) for k, v in hits.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=499)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stats_coverage.txt"))
    args = parser.parse_args(argv)
    lines = [f"# scripts/stats_coverage.py --sets {args.sets} --bootstrap {args.bootstrap} --seed {args.seed}",
             "# coverage of 95 % intervals of diff (share of set x layer intervals holding the effect); "
             f"SE about {np.sqrt(0.95 * 0.05 / args.sets):.4f} per cell (layers of a set are dependent)",
             f"{'design':32s} {'blocks':>6s} " + " ".join(f"{k:>7s}" for k in INTERVALS)]
    start = time.time()
    for name, sizes, tau in (("blocks of 2-4, fixed effect", (2, 4), 0.0), ("blocks of 2-4, varying effect", (2, 4), 0.5),
                             ("blocks of 4-30, varying effect", (4, 30), 0.5)):  # fmt: skip
        for n_blocks in BLOCKS:
            cov = coverage(n_blocks, sizes, tau, args.sets, args.bootstrap, args.seed)
            lines.append(f"{name:32s} {n_blocks:6d} " + " ".join(f"{cov[k]:7.3f}" for k in INTERVALS))
            print(lines[-1], flush=True)
    lines.append(f"# {time.time() - start:.0f} s")
    with atomic_path(args.out, overwrite=True) as tmp:  # written beside it, then renamed into place
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
