"""Figures of the metaphor study, drawn from the test results (matplotlib, no pyplot state).

Every panel is drawn on relative depth ``(layer + 1) / L``; significant clusters
(p <= `ALPHA`) are shaded grey and, where the results mark them, boundary-affected
layers hatched.
"""

from __future__ import annotations

import numpy as np

from cse.stats import boundary_layers

from .analysis import Test
from .summaries import ALPHA, EARLY_TO_MID, cluster_table

XLABEL = "relative depth (layer + 1) / L"


def new_figure(n_panels: int, width: float = 5.0, height: float = 3.6):
    """A constrained-layout Figure with `n_panels` axes in one row."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * max(n_panels, 1), height), layout="constrained")
    return fig, [fig.add_subplot(1, max(n_panels, 1), k + 1) for k in range(max(n_panels, 1))]


def _step(depth: np.ndarray) -> float:
    return float(depth[1] - depth[0]) if len(depth) > 1 else 1.0


def shade(ax, test: Test, color="0.85") -> None:
    """Grey spans over the significant clusters of `test`; hatching over its boundary-affected layers."""
    res = test.result
    depth = res["depth"].values
    half = _step(depth) / 2
    for r in cluster_table(test, alpha=ALPHA).itertuples():
        ax.axvspan(r.depth_low - half, r.depth_high + half, color=color, zorder=0, lw=0)
    mask = boundary_layers(res)
    if mask is not None and mask.any():
        ax.axvspan(depth[mask].min() - half, depth[mask].max() + half, facecolor="none", edgecolor="0.6",
                   hatch="//", lw=0, zorder=0, label="boundary-affected layers")


def _finish(ax, ylabel: str, title: str) -> None:
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel(XLABEL)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)


def profile_figure(panels: list, title: str):
    """Mean per label against relative depth (`cse.plot.plot_depth_profile`), one panel per variable.

    Parameters
    ----------
    panels : list of (Dataset, by, where, Test)
    title : str
    """
    from cse.plot import plot_depth_profile

    fig, axes = new_figure(len(panels))
    for ax, (ds, by, where, test) in zip(axes, panels):
        plot_depth_profile(ds, by, where, stats=test.result, ax=ax, levels=(0, 1), var=test.var,
                           title=f"{title}: {test.var} (0 literal, 1 metaphorical)")
    return fig


def effects_figure(main: list, controls: dict):
    """Hedges' g per layer (bootstrap interval) of each main test, with its control token and shuffled labels."""
    fig, axes = new_figure(len(main))
    styles = {"control": ("#1f77b4", "--"), "shuffled": ("0.4", ":")}
    for ax, test in zip(axes, main):
        res = test.result
        depth = res["depth"].values
        shade(ax, test)
        ax.fill_between(depth, res["g_ci_low"].values, res["g_ci_high"].values, color="#d62728", alpha=0.2, lw=0)
        ax.plot(depth, res["hedges_g"].values, color="#d62728", marker="o", ms=3, label="target word")
        for c in controls.get(test.key, []):
            kind = c.key.rsplit(":", 1)[-1]
            if kind in styles:
                colour, ls = styles[kind]
                ax.plot(depth, c.result["hedges_g"].values, color=colour, ls=ls, label=c.label.split(":")[0])
        ax.axvline(EARLY_TO_MID, color="0.5", lw=0.6, ls="--")
        _finish(ax, "Hedges' g, metaphorical - literal", f"{test.corpus}: {test.label}")
    fig.suptitle(f"Effect per layer (95 % bootstrap interval); grey: clusters with p <= {ALPHA}", fontsize=10)
    return fig


def controls_figure(groups: list):
    """t per layer for each main test and every control of it."""
    fig, axes = new_figure(len(groups))
    for ax, tests in zip(axes, groups):
        main = tests[0]
        shade(ax, main)
        for k, t in enumerate(tests):
            ax.plot(t.result["depth"].values, t.result["t"].values, lw=2 if k == 0 else 1.1,
                    color="#d62728" if k == 0 else None, label=t.label)
        thr = main.result.attrs.get("threshold")
        if thr is not None and np.isfinite(thr):
            for s in (1, -1):
                ax.axhline(s * thr, color="k", lw=0.5, ls=":")
        _finish(ax, "t, metaphorical - literal", main.corpus)
    fig.suptitle("Main test (red, its significant clusters shaded) and controls; dotted: cluster-forming threshold",
                 fontsize=10)
    return fig


def groups_figure(tests: list, title: str):
    """Hedges' g per layer of each subset (heatmap), layers in significant clusters dotted."""
    fig, axes = new_figure(1, width=8.0, height=0.35 * max(len(tests), 4) + 1.5)
    ax = axes[0]
    g = np.vstack([x.result["hedges_g"].values for x in tests])
    lim = float(np.nanpercentile(np.abs(g), 95)) if np.isfinite(g).any() else 1.0
    lim = lim if lim > 0 else 1.0
    depth = tests[0].result["depth"].values
    half = _step(depth) / 2
    im = ax.imshow(g, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                   extent=(depth[0] - half, depth[-1] + half, len(tests) - 0.5, -0.5))
    for i, x in enumerate(tests):
        sig = x.result["significant"].values.astype(bool)
        ax.plot(depth[sig], np.full(sig.sum(), i), "k.", ms=4)
    ax.set_yticks(range(len(tests)), [x.label for x in tests], fontsize=8)
    ax.set_xlabel(XLABEL)
    fig.colorbar(im, ax=ax, label=f"Hedges' g (colours clipped at +-{lim:.2f})", extend="both")
    ax.set_title(f"{title}: effect per layer (dots: layers in clusters with p <= {ALPHA})", fontsize=10)
    return fig


def mixed_figure(mixed: dict):
    """Label coefficient per layer with its Wald 95 % interval, one panel per mixed model."""
    fig, axes = new_figure(len(mixed))
    for ax, (key, m) in zip(axes, mixed.items()):
        term = next(t for t in ("label", "label_seq", "pair_side") if t in m["term"].values)
        coef, se = m["coef"].sel(term=term).values, m["se"].sel(term=term).values
        depth = m["depth"].values
        ax.fill_between(depth, coef - 1.96 * se, coef + 1.96 * se, color="#d62728", alpha=0.2, lw=0)
        ax.plot(depth, coef, color="#d62728", marker="o", ms=3)
        sig = m["p"].sel(term=term).values < ALPHA
        ax.plot(depth[sig], coef[sig], "k*", ms=6, label=f"p < {ALPHA} (uncorrected)")
        _finish(ax, f"coefficient of {term} (CSE units)", f"{key}: {m.attrs['formula']}")
    fig.suptitle("Metaphor effect adjusted for surprisal, log frequency and position (Wald 95 % interval)",
                 fontsize=10)
    return fig


def models_figure(by_test: dict):
    """Per-model effect profiles on relative depth: one panel per main test, one line per model.

    Parameters
    ----------
    by_test : dict of str to list of (slug, Test)
        Main test key -> the test of every model.
    """
    from matplotlib.figure import Figure

    rows = list(dict.fromkeys(key.split(":")[0] for key in by_test))
    variables = list(dict.fromkeys(key.partition(":")[2] for key in by_test))
    fig = Figure(figsize=(6.0 * len(variables), 3.6 * len(rows) + 0.4), layout="constrained")
    for key, entries in by_test.items():
        base, _, var = key.partition(":")
        ax = fig.add_subplot(len(rows), len(variables), rows.index(base) * len(variables) + variables.index(var) + 1)
        for k, (slug, test) in enumerate(entries):
            res = test.result
            depth = res["depth"].values
            line, = ax.plot(depth, res["hedges_g"].values, marker="o", ms=3, label=slug)
            colour = line.get_color()
            ax.fill_between(depth, res["g_ci_low"].values, res["g_ci_high"].values, color=colour, alpha=0.15, lw=0)
            band = ax.get_xaxis_transform()  # x in data, y in axes fraction
            for r in cluster_table(test, alpha=ALPHA).itertuples():
                ax.plot([r.depth_low, r.depth_high], [0.97 - 0.04 * k] * 2, color=colour, lw=5, alpha=0.7,
                        solid_capstyle="butt", transform=band)
            mask = boundary_layers(res)
            if mask is not None and mask.any():
                ax.plot([0, depth[mask].max()], [0.03 + 0.04 * k] * 2, color=colour, lw=2, ls=":", transform=band)
        ax.set_xlim(0, 1.02)
        _finish(ax, "Hedges' g, metaphorical - literal", f"{base}: {var or 'cse'}")
    fig.suptitle(f"Effect per layer by model (95 % bootstrap interval); bars at the top: clusters with p <= {ALPHA}; "
                 "dotted at the bottom: boundary-affected layers", fontsize=9)
    return fig
