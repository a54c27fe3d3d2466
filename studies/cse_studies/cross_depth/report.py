"""``report.md`` and figures of the cross-depth study, generated from the profiles and couplings."""

from __future__ import annotations

import numpy as np
import pandas as pd

import cse
from cse_studies.common import layer_span, md_table, model_line, software_line

from .measures import BINS, bin_matrix, similarity

XLABEL = "relative depth (layer + 1) / L"


def compared_profiles(profiles_ds) -> list[tuple[str, str, str]]:
    """The profile variables models are compared on: (variable, short name, description).

    ``cse_z`` where the results have it; raw CSE outside the boundary-affected layers
    where cse marks them; raw CSE over all layers only when cse marks no boundary
    layers at all (an older cse), said so in the description.
    """
    out = []
    if "z_mean" in profiles_ds:
        out.append(("z_mean", "cse_z", "cse_z (against the layer-order null) at every layer"))
    if profiles_ds.attrs.get("boundary_marked"):
        out.append(("cse_mean_outside", "CSE outside boundary", "raw CSE outside the boundary-affected layers"))
    else:
        out.append(("cse_mean", "CSE (unmarked)", "raw CSE at every layer (this cse does not mark boundary-affected "
                                                  "layers: early bins may differ by the boundary rule, not the model)"))
    return out


def similarity_table(profiles_ds) -> pd.DataFrame:
    """Correlation of binned profiles between every pair of models per corpus, and between corpora per model."""
    rows = []
    models = [str(m) for m in profiles_ds["model"].values]
    corpora = [str(c) for c in profiles_ds["corpus"].values]
    for var, what, _ in compared_profiles(profiles_ds):
        for c in corpora:
            for i, a in enumerate(models):
                for b in models[i + 1:]:
                    r, rho, n = similarity(profiles_ds[var].sel(model=a, corpus=c).values,
                                           profiles_ds[var].sel(model=b, corpus=c).values)
                    rows.append({"profile": what, "corpus": c, "model a": a, "model b": b, "Pearson r": r,
                                 "Spearman rho": rho, "bins": n})
        for m in models:
            for i, c in enumerate(corpora):
                for d in corpora[i + 1:]:
                    r, rho, n = similarity(profiles_ds[var].sel(model=m, corpus=c).values,
                                           profiles_ds[var].sel(model=m, corpus=d).values)
                    rows.append({"profile": what, "corpus": f"{c} vs {d}", "model a": m, "model b": m,
                                 "Pearson r": r, "Spearman rho": rho, "bins": n})
    return pd.DataFrame(rows, columns=["profile", "corpus", "model a", "model b", "Pearson r", "Spearman rho", "bins"])


def _shade_boundary(ax, profile) -> None:
    if "boundary_affected" in profile.coords and profile["boundary_affected"].values.any():
        depth = profile["depth"].values
        mask = profile["boundary_affected"].values.astype(bool)
        half = (depth[1] - depth[0]) / 2 if len(depth) > 1 else 0.5
        ax.axvspan(depth[mask].min() - half, depth[mask].max() + half, facecolor="none", edgecolor="0.7",
                   hatch="//", lw=0, zorder=0)


def profiles_figure(entries, corpora):
    """Mean CSE (top) and mean cse_z (bottom, where computed) per layer on relative depth, one line per model."""
    from matplotlib.figure import Figure

    has_z = any("z_mean" in p for e in entries for p in e["profiles"].values())
    rows = 2 if has_z else 1
    fig = Figure(figsize=(5.5 * len(corpora), 3.8 * rows), layout="constrained")
    for col, corpus in enumerate(corpora):
        for row, (var, sd, label) in enumerate((("cse_mean", "cse_sd", "CSE"), ("z_mean", "z_sd", "cse_z"))[:rows]):
            ax = fig.add_subplot(rows, len(corpora), row * len(corpora) + col + 1)
            for entry in entries:
                p = entry["profiles"][corpus.name]
                if var not in p:
                    continue
                half = 1.96 * p[sd].values / np.sqrt(np.maximum(p["n"].values, 1))
                line, = ax.plot(p["depth"].values, p[var].values, marker="o", ms=3, label=entry["slug"])
                ax.fill_between(p["depth"].values, p[var].values - half, p[var].values + half,
                                color=line.get_color(), alpha=0.2, lw=0)
                _shade_boundary(ax, p)
            ax.set_title(f"{corpus.name}: mean {label} of every word (hatched: boundary-affected layers)", fontsize=8)
            ax.set_xlabel(XLABEL)
            ax.set_ylabel(f"{label} (mean, 95 % interval)")
            ax.set_xlim(0, 1.02)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    return fig


def fractions_figure(entries, corpus: str):
    """Mean scale distribution per layer (stacked), one panel per model."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(entries), 3.8), layout="constrained")
    for k, entry in enumerate(entries):
        ax = fig.add_subplot(1, len(entries), k + 1)
        p = entry["profiles"][corpus]
        ax.stackplot(p["depth"].values, p["fraction_mean"].values.T, labels=[str(s) for s in p["scale"].values],
                     alpha=0.85)
        _shade_boundary(ax, p)
        ax.set_title(f"{entry['slug']}: mean scale distribution ({corpus} words)", fontsize=9)
        ax.set_xlabel(XLABEL)
        ax.set_ylabel("fraction of update energy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper right", title="band")
    return fig


def coupling_figure(entry, corpus: str):
    """Heatmaps of the JS divergence and the CSE correlation between layers; boundary layers marked."""
    from matplotlib.figure import Figure

    c = entry["couplings"][corpus]
    p = entry["profiles"][corpus]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    for k, (var, cmap, label) in enumerate((("js", "viridis_r", "mean JS divergence (bit)"),
                                             ("cse_corr", "RdBu_r", "correlation of CSE over words"))):
        ax = fig.add_subplot(1, 2, k + 1)
        kwargs = {"vmin": -1, "vmax": 1} if var == "cse_corr" else {"vmin": 0}
        im = ax.imshow(c[var].values, cmap=cmap, origin="lower", interpolation="nearest", **kwargs)
        if "boundary_affected" in p.coords and p["boundary_affected"].values.any():
            edge = int(np.flatnonzero(p["boundary_affected"].values).max()) + 0.5
            ax.axvline(edge, color="w", lw=1, ls="--")
            ax.axhline(edge, color="w", lw=1, ls="--")
        ax.set_xlabel("layer m")
        ax.set_ylabel("layer l")
        ax.set_title(f"{entry['slug']}, {corpus} words: {label}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.85)
    return fig


def profile_lines(entries) -> list[str]:
    """One generated sentence per model and corpus about its profile."""
    lines = []
    for entry in entries:
        for name, p in entry["profiles"].items():
            cse_mean = p["cse_mean"].values
            lo, hi = int(np.nanargmin(cse_mean)), int(np.nanargmax(cse_mean))
            text = (f"- `{entry['slug']}`, {name} ({int(p['n'].values.max())} words): mean CSE from "
                    f"{np.nanmin(cse_mean):.3f} (layer {lo}, relative depth {p['depth'].values[lo]:.2f}) to "
                    f"{np.nanmax(cse_mean):.3f} (layer {hi}, relative depth {p['depth'].values[hi]:.2f})")
            if "boundary_affected" in p.coords:
                text += f"; boundary-affected layers {layer_span(np.flatnonzero(p['boundary_affected'].values))}"
            if "z_mean" in p:
                z = p["z_mean"].values
                text += (f"; mean cse_z from {np.nanmin(z):+.2f} (layer {int(np.nanargmin(z))}) to {np.nanmax(z):+.2f} "
                         f"(layer {int(np.nanargmax(z))})")
            lines.append(text + ".")
    return lines


def coupling_lines(entries) -> list[str]:
    """One generated sentence per model and corpus about the coupling of adjacent and distant layers."""
    lines = []
    for entry in entries:
        for name, c in entry["couplings"].items():
            js, corr = c["js"].values, c["cse_corr"].values
            L = js.shape[0]
            adjacent = np.array([js[i, i + 1] for i in range(L - 1)])
            corr_adj = np.array([corr[i, i + 1] for i in range(L - 1)])
            i_max, i_min = int(np.nanargmax(adjacent)), int(np.nanargmin(adjacent))
            lines.append(
                f"- `{entry['slug']}`, {name} ({c.attrs['n_tokens']} words): mean JS divergence between adjacent "
                f"layers {np.nanmean(adjacent):.3f} bit (smallest {adjacent[i_min]:.3f} between layers {i_min} and "
                f"{i_min + 1}, largest {adjacent[i_max]:.3f} between {i_max} and {i_max + 1}); layers at least 5 "
                f"apart {np.nanmean(js[np.triu_indices(L, k=5)]):.3f} bit. Correlation of CSE over words between "
                f"adjacent layers: mean {np.nanmean(corr_adj):+.3f} (range {np.nanmin(corr_adj):+.3f} to "
                f"{np.nanmax(corr_adj):+.3f}).")
    return lines


def layer_tables(folder, entries) -> list[str]:
    """Per-layer table of every model (written as ``profile-MODEL.csv`` too)."""
    lines = []
    for entry in entries:
        first = next(iter(entry["profiles"].values()))
        t = pd.DataFrame({"depth": first["depth"].values}, index=pd.Index(first["layer"].values, name="layer"))
        if "boundary_affected" in first.coords:
            t["boundary"] = np.where(first["boundary_affected"].values, "yes", "")
        for key, p in entry["profiles"].items():
            t[f"{key} CSE"] = p["cse_mean"].values
            t[f"{key} SD"] = p["cse_sd"].values
            if "z_mean" in p:
                t[f"{key} cse_z"] = p["z_mean"].values
            for s in p["scale"].values:
                t[f"{key} {s}"] = p["fraction_mean"].sel(scale=s).values
        lines += [f"### Per layer: `{entry['slug']}`", "",
                  md_table(t, {c: ("{:.2f}" if c == "depth" else "{:.4f}") for c in t.columns}, index=True), ""]
        folder.write_csv(f"profile-{entry['slug']}.csv", t, float_format="%.6g")
    return lines


def write_report(folder, entries, profiles_ds, corpora, *, limit, command, elapsed):
    """Write ``report.md`` and the figures; return the report's path."""
    names = [c.name for c in corpora]
    folder.save_figure("profiles.png", profiles_figure(entries, corpora))
    folder.save_figure("scale_fractions.png", fractions_figure(entries, names[-1]))
    for entry in entries:
        folder.save_figure(f"coupling-{entry['slug']}.png", coupling_figure(entry, names[-1]))
    attrs = entries[0]["attrs"]
    null = attrs.get("null_permutations", 0)
    lines = ["# Cross-depth study: CSE depth profiles, their similarity across models, and layer coupling", "",
             f"Generated by `cse_studies.cross_depth` (cse {cse.__version__}); every number below is computed from "
             f"the results.", "", "## How it was made", "", f"- Command: `{command or 'cse_studies.cross_depth'}`",
             "- Models:", *[f"  - {model_line(e['identity'], e['slug'], e['attrs'])}" for e in entries],
             "- Corpora (read-only, not in the repository)" + (f", `--limit {limit}`" if limit else "") + ":",
             *[f"  - {c.describe()}" for c in corpora],
             f"- CSE: depth axis, {attrs['wavelet']}, J = {attrs['level']}, {attrs['boundary']} boundary, normalize "
             f"{attrs['normalize']}" + (f", layer-order null with {null} permutations (cse_z)" if null else
                                        ", no layer-order null") + "; tokens: the first token of every word "
             "(special tokens excluded)",
             f"- Software: {software_line(attrs, elapsed)}", "",
             "## 1. Depth profiles", "", "![profiles](profiles.png)", "", "![scale fractions](scale_fractions.png)",
             "", *profile_lines(entries), "", f"### Binned on relative depth ({BINS} equal bins)", ""]
    table = pd.DataFrame({"relative depth": [f"{a:.2f}-{b:.2f}" for a, b in
                                             zip(profiles_ds["depth_low"].values, profiles_ds["depth_high"].values)]})
    for var, _, _ in compared_profiles(profiles_ds):
        for m in profiles_ds["model"].values:
            for c in profiles_ds["corpus"].values:
                table[f"{m} {c} {var}"] = profiles_ds[var].sel(model=m, corpus=c).values
    lines += [md_table(table, {c: "{:.4f}" for c in table.columns[1:]}), "", *layer_tables(folder, entries)]
    lines += similarity_section(profiles_ds)
    lines += ["## 3. Layer-by-layer coupling of scale distributions", "", *coupling_lines(entries), ""]
    lines += [f"![coupling-{e['slug']}](coupling-{e['slug']}.png)" for e in entries]
    lines += coupling_similarity(entries, names[-1])
    lines += ["", "## Files", "",
              "- `profiles.nc`: binned profiles (model, corpus, relative_depth); `coupling-MODEL.nc`: the (layer, "
              "layer) matrices per corpus; `profile-MODEL.csv`: the per-layer table.",
              "- CSE results (`CORPUS-depth-MODEL.nc`) live in the cache folder (`--cache`, default `--out`) and are "
              "reused when input, model and settings match.", ""]
    return folder.write_text("report.md", "\n".join(lines))


def similarity_section(profiles_ds) -> list[str]:
    """Section 2: which profiles are compared, and the correlation table."""
    sim = similarity_table(profiles_ds)
    lines = ["## 2. Profile similarity", ""]
    if profiles_ds.sizes["model"] < 2:
        lines.append("Only one model was given, so there is no between-model similarity to report; run "
                     "`cse study cross-depth --model A --model B ...` to compare profiles on relative depth. The "
                     "table gives the similarity of the model's profiles between corpora.")
    else:
        lines.append(f"Correlation of the binned profiles ({BINS} bins of relative depth) between every pair of "
                     f"models, per corpus, and between corpora for each model. Profiles are compared on "
                     + "; ".join(f"{what} (`{short}`)" for _, short, what in compared_profiles(profiles_ds)) + ".")
    return lines + ["", md_table(sim, {"Pearson r": "{:+.3f}", "Spearman rho": "{:+.3f}"}) if len(sim) else
                    "(none)", ""]


def coupling_similarity(entries, corpus: str) -> list[str]:
    """Similarity of the models' coupling matrices binned on relative depth."""
    if len(entries) < 2:
        return []
    binned = [(e["slug"], bin_matrix(e["couplings"][corpus]["js"].values, e["couplings"][corpus]["depth"].values))
              for e in entries]
    rows = []
    for i, (a, ma) in enumerate(binned):
        for b, mb in binned[i + 1:]:
            r, rho, n = similarity(ma.ravel(), mb.ravel())
            rows.append({"model a": a, "model b": b, "Pearson r": r, "Spearman rho": rho, "cells": n})
    return ["", f"Similarity of the coupling matrices binned on relative depth ({corpus}, JS divergence):", "",
            md_table(pd.DataFrame(rows), {"Pearson r": "{:+.3f}", "Spearman rho": "{:+.3f}"})]
