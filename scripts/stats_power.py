"""Size and power of the within-block statistics, side by side: the numbers of the README's statistics table.

Simulates data sets with exchangeability blocks (block means differ; AR(1) noise over
layers) and tests each with the studentized default (``cr``), HC2 and the pooled-variance
t of earlier releases, labels permuted within blocks, max-T and cluster mass across layers:

- size: equal means, the labels differing in variance and share (the designs of issue 18),
  the per-layer rejection rate and the max-T familywise error at alpha = 0.05;
- power: a planted within-block effect g = 0.3 (in within-block SD units) at 3 of 10
  layers, equal variances: the share of data sets where the band is found (max-T, cluster)
  and the per-layer rejection rate inside the band (max-T).

Many data sets of one design are tested at once (stacked along the layer axis, one
permutation matrix); designs are redrawn every `--sets` data sets.

Run:  python scripts/stats_power.py [--designs 40] [--sets 12] [--seed 0]
(about a minute on 2 cores with the defaults; prints Markdown tables).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from stats_data import block_design_draw, stacked_data, stacked_rejections  # noqa: E402

STATISTICS = ("cr", "hc2", "pooled")
L = 10
BAND = (3, 4, 5)
SIZE_DESIGNS = {
    "25 blocks of 4-30, share 0.85, SD 2.0 (label 0) vs 0.5": dict(n_blocks=25, sizes=(4, 30), share=0.85, sd=(2.0, 0.5)),
    "25 blocks of 4-30, share 0.85, SD 0.5 vs 2.0": dict(n_blocks=25, sizes=(4, 30), share=0.85, sd=(0.5, 2.0)),
    "25 blocks of 4-30, share 0.75, SD 1.5 vs 1.0": dict(n_blocks=25, sizes=(4, 30), share=0.75, sd=(1.5, 1.0)),
    "60 blocks of 2-4, share 0.7, SD 2.0 vs 0.5": dict(n_blocks=60, sizes=(2, 4), share=0.7, sd=(2.0, 0.5)),
    "40 blocks of 2-40, shares 0.2-0.8, block SDs x0.5-2, t(3) noise": dict(
        n_blocks=40, sizes=(2, 40), share=(0.2, 0.8), sd=(1.0, 1.0), block_sd=(0.5, 2.0), tails="t3"),
}
POWER_DESIGNS = {
    "25 blocks of 4-30, share 0.5": dict(n_blocks=25, sizes=(4, 30), share=0.5),
    "60 blocks of 2-4, share 0.5": dict(n_blocks=60, sizes=(2, 4), share=0.5),
    "8 blocks of 30, share 0.5": dict(n_blocks=8, sizes=(30, 30), share=0.5),
}


def simulate(design: dict, statistic: str, n_designs: int, n_sets: int, seed: int, effect: float = 0.0) -> dict:
    """Rejections of `n_designs * n_sets` data sets: per-layer rates and familywise rates."""
    rng = np.random.default_rng(seed)
    draw = {k: design[k] for k in ("n_blocks", "sizes", "share")}
    data = {k: design[k] for k in ("sd", "block_sd", "tails") if k in design}
    maxT, cluster = [], []
    for _ in range(n_designs):
        group, blocks = block_design_draw(rng, **draw)
        y = stacked_data(rng, group, blocks, n_sets, L, effect=effect, band=BAND if effect else (), **data)
        res = stacked_rejections(y, group, blocks, n_sets, statistic, rng, corrections=("maxT", "cluster"))
        maxT.append(np.stack([res["none"], res["maxT"]]))
        cluster.append(res["cluster"])
    none, maxT = np.concatenate([m[0] for m in maxT]), np.concatenate([m[1] for m in maxT])
    cluster = np.concatenate(cluster)
    band = list(BAND)
    return {"n": len(none), "per_layer": none.mean(), "fwer": maxT.any(axis=1).mean(),
            "found_maxT": maxT[:, band].any(axis=1).mean(), "found_cluster": cluster[:, band].any(axis=1).mean(),
            "layer_power": maxT[:, band].mean()}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", type=int, default=40, help="designs drawn per row (default 40)")
    parser.add_argument("--sets", type=int, default=12, help="data sets per design (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.time()
    n = args.designs * args.sets
    print(f"Size at alpha = 0.05, equal means ({n} data sets per cell, {L} AR(1) layers, 199 permutations; "
          f"per-layer rate / max-T FWER; 2 SE of a rate of 0.05: {2 * np.sqrt(0.05 * 0.95 / n):.3f})\n")
    print("| design | " + " | ".join(STATISTICS) + " |")
    print("| --- |" + " --- |" * len(STATISTICS))
    for k, (name, design) in enumerate(SIZE_DESIGNS.items()):
        cells = [simulate(design, s, args.designs, args.sets, args.seed + k) for s in STATISTICS]
        print(f"| {name} | " + " | ".join(f"{c['per_layer']:.3f} / {c['fwer']:.3f}" for c in cells) + " |")
    print(f"\nPower on a planted within-block g = 0.3 at layers {BAND[0]}-{BAND[-1]} of {L}, equal variances "
          f"({n} data sets per cell; band found by max-T / by cluster mass; per-layer power in the band, max-T)\n")
    print("| design | " + " | ".join(STATISTICS) + " |")
    print("| --- |" + " --- |" * len(STATISTICS))
    for k, (name, design) in enumerate(POWER_DESIGNS.items()):
        cells = [simulate(design, s, args.designs, args.sets, args.seed + 100 + k, effect=0.3) for s in STATISTICS]
        print(f"| {name} | " + " | ".join(
            f"{c['found_maxT']:.2f} / {c['found_cluster']:.2f}; {c['layer_power']:.2f}" for c in cells) + " |")
    print(f"\n({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
