"""The cross-depth study: CSE depth profiles across models, their similarity, and the
layer-by-layer coupling of scale distributions (``cse study cross-depth``).

For every model given, CSE on the depth axis (SPEC defaults) of every word of MOH-X
and of the VUA test split (a word = its first token; special tokens excluded):

1. **Depth profile**: mean CSE and mean scale distribution per layer, and on
   relative depth ``(layer + 1) / L`` in equal bins (`cse.stats.relative_depth`), so
   that models with different numbers of blocks line up.
2. **Profile similarity**: Pearson and Spearman correlation between the binned
   profiles of every pair of models (and between the two corpora of each model).
3. **Coupling of scale distributions**: for every pair of layers (l, m), the mean
   over words of the Jensen-Shannon divergence between the word's scale
   distributions at l and at m (in bits, 0 = identical, 1 = disjoint), and the
   correlation over words of CSE at l and at m. Low divergence / high correlation
   means the two layers spread a word's update over the scales in the same way.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as sps

from cse import __version__
from cse import stats
from cse.errors import CSEInputError
from cse.io import write_result
from cse_studies.metaphor.corpus import by_length, cached_compute, check_out_dir, model_slug
from cse_studies.metaphor.data import MOHX_FILE, VUA_TEST_FILE, data_file, load_mohx, load_vua, sha256
from cse_studies.metaphor.report import md_table

CORPORA = {"mohx": ("MOH-X", MOHX_FILE, load_mohx), "vua": ("VUA test", VUA_TEST_FILE, load_vua)}
WORDS = "is_word_start"
BINS = 10


# --------------------------------------------------------------------------- measures


def layer_profile(ds: xr.Dataset, where: str = WORDS) -> xr.Dataset:
    """Mean, SD and count of CSE and the mean scale distribution per layer over the selected tokens.

    Returns
    -------
    xarray.Dataset
        Over ``layer`` (with ``depth``): ``cse_mean``, ``cse_sd``, ``n``; over
        (layer, scale): ``fraction_mean``.
    """
    idx = np.flatnonzero(stats.select_tokens(ds, where))
    sub = ds.isel(token=idx)
    cse = sub["cse"].values
    n = np.isfinite(cse).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = xr.Dataset(
            {
                "cse_mean": ("layer", np.nanmean(cse, axis=0), {"long_name": "mean CSE", "units": "1"}),
                "cse_sd": ("layer", np.nanstd(cse, axis=0, ddof=1), {"long_name": "SD of CSE", "units": "1"}),
                "n": ("layer", n.astype(np.int64), {"long_name": "tokens with a defined CSE"}),
                "fraction_mean": (("layer", "scale"), np.nanmean(sub["scale_fraction"].values, axis=0),
                                  {"long_name": "mean fraction of update energy per band", "units": "1"}),
            },
            coords={"layer": ds["layer"].values, "depth": ("layer", ds["depth"].values),
                    "scale": ds["scale"].values},
        )
    return out


def js_coupling(fractions: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Mean Jensen-Shannon divergence between the scale distributions of every pair of layers.

    Parameters
    ----------
    fractions : ndarray, shape (n_tokens, n_layers, n_scales)
        Scale distributions (rows sum to 1; NaN rows are undefined and skipped per pair).
    chunk : int
        Tokens per vectorized block (memory ~ chunk * L^2 * S * 8 bytes).

    Returns
    -------
    ndarray, shape (n_layers, n_layers), float64
        Symmetric, zero diagonal; in bits (log base 2), so within [0, 1].

    Notes
    -----
    JS(p, q) = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2; 0 log 0 = 0.
    """
    n, L, _ = fractions.shape
    total = np.zeros((L, L))
    count = np.zeros((L, L))
    for start in range(0, n, chunk):
        p = np.asarray(fractions[start:start + chunk], dtype=np.float64)
        a, b = p[:, :, None, :], p[:, None, :, :]
        m = (a + b) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            ka = np.where(a > 0, a * np.log2(a / m), 0.0).sum(-1)
            kb = np.where(b > 0, b * np.log2(b / m), 0.0).sum(-1)
        js = (ka + kb) / 2
        ok = np.isfinite(p).all(-1)
        valid = ok[:, :, None] & ok[:, None, :]
        total += np.where(valid, js, 0.0).sum(0)
        count += valid.sum(0)
    with np.errstate(invalid="ignore"):
        out = total / count
    np.fill_diagonal(out, 0.0)
    return out


def cse_correlation(cse: np.ndarray) -> np.ndarray:
    """Pearson correlation over tokens between the CSE of every pair of layers, shape (L, L).

    Tokens with an undefined CSE at any layer are left out.
    """
    keep = np.isfinite(cse).all(axis=1)
    return np.corrcoef(cse[keep], rowvar=False)


def bin_matrix(matrix: np.ndarray, depth: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Average an (L, L) layer matrix into (bins, bins) cells of relative depth (NaN for empty cells)."""
    k = np.clip(np.ceil(depth * bins).astype(int) - 1, 0, bins - 1)
    out = np.full((bins, bins), np.nan)
    for i in range(bins):
        for j in range(bins):
            cell = matrix[np.ix_(k == i, k == j)]
            if cell.size:
                out[i, j] = np.nanmean(cell)
    return out


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Pearson r, Spearman rho and the number of bins both profiles define."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return np.nan, np.nan, int(ok.sum())
    return float(sps.pearsonr(a[ok], b[ok])[0]), float(sps.spearmanr(a[ok], b[ok])[0]), int(ok.sum())


# --------------------------------------------------------------------------- study


def run(data, out, models=(None,), *, cache=None, seed: int = 0, limit: int | None = None, recompute: bool = False,
        device: str = "cpu", progress: bool = False, command: str | None = None, log=None, loaded=None) -> dict:
    """Run the cross-depth study for every model and write its folder.

    Parameters
    ----------
    data : str or Path
        Folder holding ``moh-x.csv`` and ``vua-seq-test.csv``.
    out : str or Path
        Output folder: ``report.md``, figures, ``profiles.nc`` (binned profiles),
        ``coupling-MODEL.nc`` and ``profiles.csv``.
    models : sequence of (str or None)
        Model names or paths for `cse.load_model`; None is the default model.
    cache : str or Path, optional
        Folder of cached CSE results (default `out`); pointing it at the metaphor
        study's output reuses its depth-axis results.
    seed : int
        Recorded; the study draws nothing at random.
    limit : int, optional
        First `limit` sentences of each file.
    recompute, device, progress, command, log
        As in `cse_studies.metaphor.run`.
    loaded : sequence of (model, tokenizer), optional
        Already loaded models, in place of `models` (tests).

    Returns
    -------
    dict
        ``report`` (path), ``profiles`` (binned Dataset), ``coupling`` (model -> Dataset).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise CSEInputError(f"Invalid value for 'limit': expected an integer >= 1, got {limit!r}")
    files = {key: data_file(data, spec[1]) for key, spec in CORPORA.items()}
    out = check_out_dir(out)
    cache = check_out_dir(cache) if cache is not None else out
    log = log or (lambda line: None)
    started = time.time()
    frames = {key: spec[2](data, limit=limit) for key, spec in CORPORA.items()}

    from cse.models import load_model, model_identity

    entries = []  # (identity, slug, {corpus: layer profile}, {corpus: coupling Dataset})
    pairs = loaded if loaded is not None else [None] * len(models)
    for name, pair in zip(models if loaded is None else [None] * len(loaded), pairs):
        if pair is None:
            log(f"loading {name or 'the default model'}")
            model, tokenizer = load_model(name, device=device)
        else:
            model, tokenizer = pair
        identity = model_identity(model)
        slug = model_slug(identity)
        profiles, couplings = {}, {}
        for key, frame in frames.items():
            ds = cached_compute(by_length(frame, tokenizer), cache / f"{key}-depth-{slug}.nc", model, tokenizer,
                                identity=identity, axis="depth", seed=seed, recompute=recompute,
                                progress=progress, command=command, log=log)
            log(f"{slug} {key}: profile and coupling")
            profiles[key] = layer_profile(ds)
            idx = np.flatnonzero(stats.select_tokens(ds, WORDS))
            sf = ds["scale_fraction"].isel(token=idx).transpose("token", "layer", "scale").values
            cse = ds["cse"].isel(token=idx).values
            couplings[key] = xr.Dataset(
                {"js": (("layer", "layer2"), js_coupling(sf),
                        {"long_name": "mean Jensen-Shannon divergence of scale distributions", "units": "bit"}),
                 "cse_corr": (("layer", "layer2"), cse_correlation(cse),
                              {"long_name": "Pearson correlation over words of CSE", "units": "1"})},
                coords={"layer": ds["layer"].values, "layer2": ds["layer"].values,
                        "depth": ("layer", ds["depth"].values)})
            couplings[key].attrs["n_tokens"] = int(len(idx))
        entries.append((identity, slug, profiles, couplings, ds.attrs))
        del model

    # Binned profiles on relative depth, stacked over models.
    binned = []
    for identity, slug, profiles, _, _ in entries:
        per_corpus = [stats.relative_depth(p[["cse_mean", "fraction_mean"]], bins=BINS).expand_dims(corpus=[k])
                      for k, p in profiles.items()]
        binned.append(xr.concat(per_corpus, dim="corpus").expand_dims(model=[slug]))
    profiles_ds = xr.concat(binned, dim="model")
    profiles_ds.attrs = {"title": "CSE depth profiles on relative depth", "bins": BINS, "tokens": WORDS,
                         "command": command or "", "cse_version": __version__}
    write_result(profiles_ds, out / "profiles.nc", overwrite=True)
    for identity, slug, _, couplings, _ in entries:
        coupling = xr.concat([c.expand_dims(corpus=[k]) for k, c in couplings.items()], dim="corpus")
        coupling.attrs = {"model": identity["model"], "model_sha256": identity.get("model_sha256", "")}
        write_result(coupling, out / f"coupling-{slug}.nc", overwrite=True)

    report = _write_report(out, entries, profiles_ds, files, frames, limit, command, time.time() - started)
    log(f"wrote {report}")
    return {"report": report, "profiles": profiles_ds, "coupling": {e[1]: e[3] for e in entries}}


# --------------------------------------------------------------------------- report


def _similarity_table(profiles_ds: xr.Dataset) -> pd.DataFrame:
    rows = []
    models = [str(m) for m in profiles_ds["model"].values]
    corpora = [str(c) for c in profiles_ds["corpus"].values]
    for c in corpora:
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                r, rho, n = similarity(profiles_ds["cse_mean"].sel(model=a, corpus=c).values,
                                       profiles_ds["cse_mean"].sel(model=b, corpus=c).values)
                rows.append({"corpus": c, "model a": a, "model b": b, "Pearson r": r, "Spearman rho": rho,
                             "bins": n})
    for m in models:
        if len(corpora) == 2:
            r, rho, n = similarity(profiles_ds["cse_mean"].sel(model=m, corpus=corpora[0]).values,
                                   profiles_ds["cse_mean"].sel(model=m, corpus=corpora[1]).values)
            rows.append({"corpus": f"{corpora[0]} vs {corpora[1]}", "model a": m, "model b": m, "Pearson r": r,
                         "Spearman rho": rho, "bins": n})
    return pd.DataFrame(rows)


def _figures(out: Path, entries, profiles_ds) -> list[str]:
    from matplotlib.figure import Figure

    names = []
    # 1. CSE per layer on relative depth, per corpus, one line per model.
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = [fig.add_subplot(1, 2, k + 1) for k in range(2)]
    for ax, key in zip(axes, CORPORA):
        for identity, slug, profiles, _, _ in entries:
            p = profiles[key]
            half = 1.96 * p["cse_sd"].values / np.sqrt(np.maximum(p["n"].values, 1))
            line, = ax.plot(p["depth"].values, p["cse_mean"].values, marker="o", ms=3, label=f"{slug} (layers)")
            ax.fill_between(p["depth"].values, p["cse_mean"].values - half, p["cse_mean"].values + half,
                            color=line.get_color(), alpha=0.2, lw=0)
            b = profiles_ds.sel(model=slug, corpus=key)
            ax.step(b["relative_depth"].values, b["cse_mean"].values, where="mid", color=line.get_color(), ls="--",
                    alpha=0.8, label=f"{slug} ({BINS} bins)")
        ax.set_title(f"{CORPORA[key][0]}: mean CSE of every word (first token)", fontsize=9)
        ax.set_xlabel("relative depth (layer + 1) / L")
        ax.set_ylabel("CSE (mean, 95 % interval)")
        ax.set_xlim(0, 1.02)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.savefig(out / "profiles.png", dpi=120)
    names.append("profiles.png")
    # 2. Mean scale distribution per layer (stacked), one panel per model (VUA).
    fig = Figure(figsize=(5.5 * len(entries), 3.8), layout="constrained")
    for k, (identity, slug, profiles, _, _) in enumerate(entries):
        ax = fig.add_subplot(1, len(entries), k + 1)
        p = profiles["vua"]
        ax.stackplot(p["depth"].values, p["fraction_mean"].values.T, labels=[str(s) for s in p["scale"].values],
                     alpha=0.85)
        ax.set_title(f"{slug}: mean scale distribution (VUA words)", fontsize=9)
        ax.set_xlabel("relative depth (layer + 1) / L")
        ax.set_ylabel("fraction of update energy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper right", title="band")
    fig.savefig(out / "scale_fractions.png", dpi=120)
    names.append("scale_fractions.png")
    # 3. Coupling heatmaps per model: JS divergence and CSE correlation (VUA).
    for identity, slug, _, couplings, _ in entries:
        c = couplings["vua"]
        fig = Figure(figsize=(11, 4.6), layout="constrained")
        for k, (var, cmap, label) in enumerate((("js", "viridis_r", "mean JS divergence (bit)"),
                                                 ("cse_corr", "RdBu_r", "correlation of CSE over words"))):
            ax = fig.add_subplot(1, 2, k + 1)
            kwargs = {"vmin": -1, "vmax": 1} if var == "cse_corr" else {"vmin": 0}
            im = ax.imshow(c[var].values, cmap=cmap, origin="lower", interpolation="nearest", **kwargs)
            ax.set_xlabel("layer m")
            ax.set_ylabel("layer l")
            ax.set_title(f"{slug}, VUA words: {label}", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.85)
        name = f"coupling-{slug}.png"
        fig.savefig(out / name, dpi=120)
        names.append(name)
    return names


def _write_report(out: Path, entries, profiles_ds, files, frames, limit, command, elapsed) -> Path:
    figures = _figures(out, entries, profiles_ds)
    sim = _similarity_table(profiles_ds)
    lines = [
        "# Cross-depth study: CSE depth profiles, their similarity across models, and layer coupling",
        "",
        f"Generated by `cse_studies.cross_depth` (cse {__version__}); every number below is computed from the "
        f"results.",
        "",
        "## How it was made",
        "",
        f"- Command: `{command or 'cse_studies.cross_depth.run(...)'}`",
        "- Models:",
    ]
    for identity, slug, _, _, attrs in entries:
        lines.append(f"  - `{slug}`: `{identity['model']}` ({identity['model_class']}, {identity['n_layers']} blocks, "
                     f"d_model {identity['d_model']})"
                     + (f", file SHA-256 `{identity['model_sha256']}`" if identity.get("model_sha256") else ""))
    lines.append("- Data (read-only, not in the repository):")
    for key, path in files.items():
        lines.append(f"  - `{path.name}`: SHA-256 `{sha256(path)}`, {len(frames[key])} sentences"
                     + (f" (`--limit {limit}`)" if limit else ""))
    attrs = entries[0][4]
    lines += [
        f"- CSE: depth axis, {attrs['wavelet']}, J = {attrs['level']}, {attrs['boundary']} boundary, normalize "
        f"{attrs['normalize']}; tokens: the first token of every word (special tokens excluded)",
        f"- Software: cse {__version__}, torch {attrs.get('torch_version', '')}, transformers "
        f"{attrs.get('transformers_version', '')}, Python {platform.python_version()}; run time {elapsed / 60:.1f} min",
        "",
        "## 1. Depth profiles",
        "",
        "![profiles](profiles.png)",
        "",
        "![scale fractions](scale_fractions.png)",
        "",
    ]
    for identity, slug, profiles, _, _ in entries:
        for key, p in profiles.items():
            cse = p["cse_mean"].values
            lo, hi = int(np.nanargmin(cse)), int(np.nanargmax(cse))
            lines.append(f"- `{slug}`, {CORPORA[key][0]} ({int(p['n'].values.max())} words): mean CSE from "
                         f"{np.nanmin(cse):.3f} (layer {lo}, relative depth {p['depth'].values[lo]:.2f}) to "
                         f"{np.nanmax(cse):.3f} (layer {hi}, relative depth {p['depth'].values[hi]:.2f}); "
                         f"first-layer {cse[0]:.3f}, last-layer {cse[-1]:.3f}.")
    lines += ["", f"### Binned on relative depth ({BINS} equal bins; mean CSE)", ""]
    table = pd.DataFrame({"relative depth": [f"{a:.2f}-{b:.2f}" for a, b in
                                             zip(profiles_ds["depth_low"].values, profiles_ds["depth_high"].values)]})
    for m in profiles_ds["model"].values:
        for c in profiles_ds["corpus"].values:
            table[f"{m} {c}"] = profiles_ds["cse_mean"].sel(model=m, corpus=c).values
    lines += [md_table(table, {c: "{:.4f}" for c in table.columns[1:]}), ""]
    for identity, slug, profiles, _, _ in entries:
        lines += [f"### Per layer: `{slug}`", ""]
        t = pd.DataFrame({"depth": profiles["mohx"]["depth"].values}, index=pd.Index(profiles["mohx"]["layer"].values,
                                                                                      name="layer"))
        for key, p in profiles.items():
            t[f"{key} CSE"] = p["cse_mean"].values
            t[f"{key} SD"] = p["cse_sd"].values
            for s in p["scale"].values:
                t[f"{key} {s}"] = p["fraction_mean"].sel(scale=s).values
        lines += [md_table(t, {c: ("{:.2f}" if c == "depth" else "{:.4f}") for c in t.columns}, index=True), ""]
        t.to_csv(out / f"profile-{slug}.csv", float_format="%.6g")
    lines += ["## 2. Profile similarity", ""]
    n_models = profiles_ds.sizes["model"]
    if n_models < 2:
        lines.append("Only one model was given, so there is no between-model similarity to report; run "
                     "`cse study cross-depth --model A --model B ...` with the models you have (any Hugging Face "
                     "causal LM on disk) to compare profiles on relative depth. The table gives the similarity "
                     "of the model's profiles on the two corpora.")
    else:
        lines.append(f"Correlation of the binned mean-CSE profiles ({BINS} bins of relative depth) between every pair "
                     f"of models, per corpus, and between the corpora for each model.")
    lines += ["", md_table(sim, {"Pearson r": "{:+.3f}", "Spearman rho": "{:+.3f}"}) if len(sim) else "(none)", ""]
    lines += ["## 3. Layer-by-layer coupling of scale distributions", ""]
    for identity, slug, _, couplings, _ in entries:
        for key, c in couplings.items():
            js = c["js"].values
            corr = c["cse_corr"].values
            L = js.shape[0]
            adjacent = np.array([js[i, i + 1] for i in range(L - 1)])
            far = js[np.triu_indices(L, k=5)]
            i_max = int(np.nanargmax(adjacent))
            i_min = int(np.nanargmin(adjacent))
            corr_adj = np.array([corr[i, i + 1] for i in range(L - 1)])
            lines.append(
                f"- `{slug}`, {CORPORA[key][0]} ({c.attrs['n_tokens']} words): mean JS divergence between adjacent "
                f"layers {np.nanmean(adjacent):.3f} bit (smallest {adjacent[i_min]:.3f} between layers {i_min} and "
                f"{i_min + 1}, largest {adjacent[i_max]:.3f} between {i_max} and {i_max + 1}); layers at least 5 "
                f"apart {np.nanmean(far):.3f} bit. Correlation of CSE over words between adjacent layers: mean "
                f"{np.nanmean(corr_adj):+.3f} (range {np.nanmin(corr_adj):+.3f} to {np.nanmax(corr_adj):+.3f}).")
    for name in figures:
        if name.startswith("coupling-"):
            lines += ["", f"![{name}]({name})"]
    binned_rows = []
    for identity, slug, _, couplings, _ in entries:
        c = couplings["vua"]
        binned_rows.append((slug, bin_matrix(c["js"].values, c["depth"].values)))
    if len(binned_rows) > 1:
        lines += ["", "Similarity of the coupling matrices binned on relative depth (VUA, JS divergence):", ""]
        rows = []
        for i, (a, ma) in enumerate(binned_rows):
            for b, mb in binned_rows[i + 1:]:
                r, rho, n = similarity(ma.ravel(), mb.ravel())
                rows.append({"model a": a, "model b": b, "Pearson r": r, "Spearman rho": rho, "cells": n})
        lines.append(md_table(pd.DataFrame(rows), {"Pearson r": "{:+.3f}", "Spearman rho": "{:+.3f}"}))
    lines += [
        "",
        "## Files",
        "",
        "- `profiles.nc`: binned profiles (model, corpus, relative_depth); `coupling-MODEL.nc`: the (layer, layer) "
        "matrices per corpus; `profile-MODEL.csv`: the per-layer table.",
        "- CSE results (`*-depth-MODEL.nc`) live in the cache folder (`--cache`, default `--out`) and are reused "
        "when input, model and settings match.",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
