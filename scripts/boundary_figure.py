"""Boundary effects on white noise: mean CSE and mean cse_z per layer under reflect and periodic.

Independent Gaussian layer updates (no layer is special) through the default measure
(depth axis, haar, J = 3, unit normalization) with the layer-order null. Raw CSE of
the boundary layers (shaded: ``boundary_affected``) differs from the rest under
``reflect`` (and, under ``periodic``, mixes in the last layers); ``cse_z`` is about 0
at every layer under both rules. Writes ``docs/figures/boundary_white_noise.png``.

Run: ``.venv/bin/python scripts/boundary_figure.py [--out PATH] [--tokens 2000]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cse.measure import conditional_scale_entropy

ROOT = Path(__file__).resolve().parents[1]
RULES = {"reflect": "#1f77b4", "periodic": "#d62728"}


def white_noise_profiles(n_layers=30, n_tokens=2000, d_model=64, wavelet="haar", level=3, null_permutations=200,
                         seed=0) -> dict:
    """Per boundary rule, the result Dataset of independent Gaussian updates (seeded)."""
    u = np.random.default_rng(seed).standard_normal((n_layers, n_tokens, d_model), dtype=np.float32)
    return {rule: conditional_scale_entropy(u, wavelet=wavelet, level=level, boundary=rule,
                                            null_permutations=null_permutations, seed=seed)
            for rule in RULES}


def draw(results: dict) -> Figure:
    """Two panels over layers: mean CSE with the null's mean; mean and SD of cse_z."""
    fig = Figure(figsize=(9.5, 3.9), layout="constrained")
    ax_cse, ax_z = fig.subplots(1, 2, sharex=True)
    any_ds = next(iter(results.values()))
    layers = any_ds.layer.values
    last = int(np.flatnonzero(any_ds.boundary_affected.values).max())
    for ax in (ax_cse, ax_z):
        ax.axvspan(layers[0] - 0.5, last + 0.5, color="0.9", zorder=0, label=f"boundary_affected (layers 0-{last})")
        ax.set_xlabel("layer")
        ax.set_xlim(layers[0] - 0.5, layers[-1] + 0.5)
    for rule, colour in RULES.items():
        ds = results[rule]
        ax_cse.plot(layers, ds.cse.mean("token"), "o-", ms=3.5, color=colour, label=f"CSE, {rule}")
        ax_cse.plot(layers, ds.cse_null_mean.mean("token"), "s", ms=7, mfc="none", mew=0.9, color=colour,
                    label=f"null mean, {rule}")
        ax_z.plot(layers, ds.cse_z.mean("token"), "o-", ms=3.5, color=colour, label=f"mean cse_z, {rule}")
        ax_z.plot(layers, ds.cse_z.std("token"), "s--", ms=3, lw=1, color=colour, label=f"SD of cse_z, {rule}")
    for y in (0.0, 1.0):
        ax_z.axhline(y, color="0.4", lw=0.7, zorder=1)
    ax_cse.set_ylabel("mean CSE over tokens")
    ax_z.set_ylabel("cse_z over tokens")
    attrs = any_ds.attrs
    ax_cse.set_title(f"raw CSE ({attrs['wavelet']}, J = {attrs['level']})", fontsize=10)
    ax_z.set_title(f"z against the layer-order null (P = {attrs['null_permutations']})", fontsize=10)
    ax_cse.legend(fontsize=7, loc="lower right")
    ax_z.legend(fontsize=7, loc="center right")
    ax_z.set_ylim(-0.4, 1.4)
    n_layers, n_tokens = any_ds.sizes["layer"], any_ds.sizes["token"]
    fig.suptitle(f"White noise: independent Gaussian layer updates ({n_layers} layers, {n_tokens} tokens)",
                 fontsize=11)
    return fig


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "boundary_white_noise.png")
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--permutations", type=int, default=200)
    args = parser.parse_args(argv)
    results = white_noise_profiles(n_tokens=args.tokens, d_model=args.d_model, null_permutations=args.permutations)
    for rule, ds in results.items():
        print(f"{rule}: mean CSE per layer", np.round(ds.cse.mean("token").values, 3).tolist())
        print(f"{rule}: mean cse_z per layer", np.round(ds.cse_z.mean("token").values, 3).tolist())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw(results).savefig(args.out, dpi=150)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
