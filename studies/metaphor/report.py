"""Step 3 of the metaphor study: report.md and its figures, generated from the numbers.

Nothing in the report is written by hand: every sentence that states a result is
built from the test results (`analysis.verdict`), so the text cannot contradict
the tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import EARLY_TO_MID, Test, _p, cluster_table, layer_table, verdict

ALPHA = 0.05


# --------------------------------------------------------------------------- markdown helpers


def md_table(frame: pd.DataFrame, floats: dict | None = None, index: bool = False) -> str:
    """A GitHub Markdown table of `frame`; `floats` maps columns to format strings."""
    floats = floats or {}
    if index:
        frame = frame.reset_index()
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = row[c]
            fmt = floats.get(c)
            if isinstance(v, (float, np.floating)):
                cells.append("" if np.isnan(v) else (fmt.format(v) if fmt else f"{v:.4g}"))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def p_fmt(p) -> str:
    return "" if p is None or not np.isfinite(p) else _p(float(p))


def clusters_phrase(test: Test) -> str:
    """'none' or 'layers 3-9 (0.13-0.33, +, p = 0.0002); ...' for the significant clusters of a test."""
    sig = cluster_table(test, alpha=ALPHA)
    if sig.empty:
        return "none"
    return "; ".join(f"layers {r.layers} (depth {r.depth_low:.2f}-{r.depth_high:.2f}, {r.sign}, p = {_p(r.p)})"
                     for r in sig.itertuples())


# --------------------------------------------------------------------------- verdict


def finding_paragraph(main: list[Test], controls: dict, mixed: dict) -> tuple[str, dict]:
    """The generated answer to "Does the published finding hold here?".

    Parameters
    ----------
    main : list of Test
        The three main tests (MOH-X, VUA, pairs), those present.
    controls : dict of str to list of Test
        Per main test key, its control tests.
    mixed : dict of str to xarray.Dataset
        Mixed models by main test key.

    Returns
    -------
    text : str
    summary : dict
        ``status`` per main test and ``overall``.
    """
    verdicts = [verdict(t, ALPHA) for t in main]
    n_hold = sum(v.status == "holds" for v in verdicts)
    if n_hold == len(verdicts) and verdicts:
        overall = "holds"
    elif n_hold == 0:
        overall = "does not hold"
    else:
        overall = "holds only in part"
    lines = [
        f"**The published finding {overall} here** ({n_hold} of {len(verdicts)} main tests show higher CSE for "
        f"metaphorical than literal tokens in a cluster of layers at early-to-mid relative depth, "
        f"cluster-corrected p <= {ALPHA}; early-to-mid = relative depth <= {EARLY_TO_MID:.2f}).",
        "",
    ]
    for test, v in zip(main, verdicts):
        lines.append(f"- **{v.corpus}** — {v.status}: {v.text}.")
        lines.append(f"  - {_interval_phrase(test)}")
        lines.extend(_control_lines(test, v, controls.get(test.key, []), mixed.get(test.key)))
    status = {v.key: v.status for v in verdicts}
    if status.get("vua") == "holds" and status.get("pairs") in ("not found", "elsewhere", "reversed"):
        lines += ["", "The difference over all VUA words does not appear in the matched pairs, which hold the word "
                      "form and POS fixed: in this model it may reflect which words are used metaphorically (their "
                      "form, POS and frequency) more than metaphoricity itself."]
    if status.get("mohx") == "not found" and status.get("vua") == "holds":
        lines += ["", "MOH-X compares the same verbs in both senses (labels permuted within verbs) and shows no "
                      "cluster either."]
    return "\n".join(lines), {"overall": overall, **{v.key: v.status for v in verdicts}}


def _control_lines(test: Test, v, controls: list[Test], mixed) -> list[str]:
    out = []
    sig = v.clusters
    # The clusters the verdict rests on: early-to-mid, with the sign that decided it.
    sign = {"holds": "+", "reversed": "-"}.get(v.status)
    focus = sig.loc[(sig["depth_low"] <= EARLY_TO_MID) & (sig["sign"] == sign)] if sign else sig.iloc[:0]
    layers = np.concatenate([np.arange(r.first, r.last + 1) for r in focus.itertuples()]) if len(focus) else None
    if mixed is not None:
        term = next((t for t in ("label", "label_seq", "pair_side") if t in mixed["term"].values), None)
        if term is not None:
            coef = mixed["coef"].sel(term=term).values
            p = mixed["p"].sel(term=term).values
            layer_values = mixed["layer"].values
            if layers is not None:
                sel = np.isin(layer_values, layers)
                same = int(((np.sign(coef[sel]) == (1 if focus.iloc[0]["sign"] == "+" else -1)) & (p[sel] < ALPHA)).sum())
                out.append(f"  - with surprisal, log frequency and position as covariates (mixed model, random "
                           f"intercept per {mixed.attrs['groups']}), the label effect keeps its sign with p < "
                           f"{ALPHA} (uncorrected Wald) at {same} of the {int(sel.sum())} layers of "
                           f"{'that cluster' if len(focus) == 1 else 'those clusters'}.")
            else:
                k = int(np.sum(p < ALPHA))
                out.append(f"  - mixed model with surprisal, log frequency and position: the label term has "
                           f"p < {ALPHA} (uncorrected Wald) at {k} of {len(p)} layers.")
    for c in controls:
        phrase = clusters_phrase(c)
        if layers is not None and phrase != "none":
            csig = cluster_table(c, alpha=ALPHA)
            overlap = any(set(range(r.first, r.last + 1)) & set(layers.tolist()) for r in csig.itertuples())
            note = " — overlaps the main cluster" if overlap else " — not where the main cluster is"
        else:
            note = ""
        found = "no significant cluster" if phrase == "none" else f"significant cluster(s) at {phrase}"
        out.append(f"  - {c.label}: {found}{note}.")
    return out


def _interval_phrase(test: Test) -> str:
    """How large an effect the data allow: the range of the bootstrap intervals of Hedges' g over layers."""
    res = test.result
    lo, hi = res["g_ci_low"].values, res["g_ci_high"].values
    if not (np.isfinite(lo).any() and np.isfinite(hi).any()):
        return "no bootstrap interval of the effect size was computed."
    k = int(np.nanargmax(np.abs(res["hedges_g"].values)))
    return (f"effect size: Hedges' g between {np.nanmin(res['hedges_g'].values):+.2f} and "
            f"{np.nanmax(res['hedges_g'].values):+.2f} over layers (largest in size {res['hedges_g'].values[k]:+.2f} "
            f"at layer {int(res['layer'].values[k])}); the 95 % bootstrap intervals lie within "
            f"[{np.nanmin(lo):+.2f}, {np.nanmax(hi):+.2f}] at every layer.")


# --------------------------------------------------------------------------- figures


def _figure(n_panels: int, width: float = 5.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = [fig.add_subplot(1, n_panels, k + 1) for k in range(n_panels)]
    return fig, axes


def _shade_clusters(ax, test: Test, color="0.85"):
    res = test.result
    depth = res["depth"].values
    step = depth[1] - depth[0] if len(depth) > 1 else 1.0
    for r in cluster_table(test, alpha=ALPHA).itertuples():
        ax.axvspan(r.depth_low - step / 2, r.depth_high + step / 2, color=color, zorder=0, lw=0)


def effects_figure(main: list[Test], controls: dict, path) -> None:
    """Hedges' g per layer (bootstrap 95 % interval) of each main test, with the control token and
    shuffled labels; significant clusters of the main test shaded."""
    fig, axes = _figure(len(main))
    for ax, test in zip(axes, main):
        res = test.result
        depth = res["depth"].values
        _shade_clusters(ax, test)
        ax.fill_between(depth, res["g_ci_low"].values, res["g_ci_high"].values, color="#d62728", alpha=0.2, lw=0)
        ax.plot(depth, res["hedges_g"].values, color="#d62728", marker="o", ms=3, label="target word")
        styles = {"control": ("#1f77b4", "--"), "shuffled": ("0.4", ":")}
        for c in controls.get(test.key, []):
            kind = c.key.rsplit("_", 1)[-1]
            if kind in styles:
                colour, ls = styles[kind]
                ax.plot(depth, c.result["hedges_g"].values, color=colour, ls=ls, label=c.label.split(":")[0])
        ax.axhline(0, color="k", lw=0.6)
        ax.axvline(EARLY_TO_MID, color="0.5", lw=0.6, ls="--")
        ax.set_title(f"{test.corpus}: {test.label}", fontsize=9)
        ax.set_xlabel("relative depth (layer + 1) / L")
        ax.set_ylabel("Hedges' g, metaphorical - literal")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Effect per layer (95 % bootstrap interval); grey: clusters with p <= {ALPHA}", fontsize=10)
    fig.savefig(path, dpi=120)


def axes_figure(groups: list[list[Test]], path) -> None:
    """Welch / paired t per layer for the main test and every control of each corpus."""
    fig, axes = _figure(len(groups))
    for ax, tests in zip(axes, groups):
        main = tests[0]
        _shade_clusters(ax, main)
        for k, t in enumerate(tests):
            res = t.result
            ax.plot(res["depth"].values, res["t"].values, lw=2 if k == 0 else 1.1,
                    color="#d62728" if k == 0 else None, label=t.label)
        thr = main.result.attrs.get("threshold")
        if thr is not None and np.isfinite(thr):
            for s in (1, -1):
                ax.axhline(s * thr, color="k", lw=0.5, ls=":")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(main.corpus, fontsize=9)
        ax.set_xlabel("relative depth (layer + 1) / L")
        ax.set_ylabel("t, metaphorical - literal")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.suptitle("Main test (red, its significant clusters shaded) and controls; dotted: cluster-forming threshold",
                 fontsize=10)
    fig.savefig(path, dpi=120)


def groups_figure(tests: list[Test], path) -> None:
    """Hedges' g per layer for each genre and POS subset of VUA (heatmap), significant cluster layers dotted."""
    fig, axes = _figure(1, width=8.0, height=0.35 * max(len(tests), 4) + 1.5)
    ax = axes[0]
    t = np.vstack([x.result["hedges_g"].values for x in tests])
    # Colour limits at the 95th percentile of |g|, so that one extreme subset does not wash out the rest.
    lim = float(np.nanpercentile(np.abs(t), 95)) if np.isfinite(t).any() else 1.0
    lim = lim if lim > 0 else 1.0
    depth = tests[0].result["depth"].values
    im = ax.imshow(t, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                   extent=(depth[0] - (depth[1] - depth[0]) / 2, depth[-1] + (depth[1] - depth[0]) / 2,
                           len(tests) - 0.5, -0.5))
    for i, x in enumerate(tests):
        sig = x.result["significant"].values.astype(bool)
        ax.plot(depth[sig], np.full(sig.sum(), i), "k.", ms=4)
    ax.set_yticks(range(len(tests)), [x.label for x in tests], fontsize=8)
    ax.set_xlabel("relative depth (layer + 1) / L")
    fig.colorbar(im, ax=ax, label=f"Hedges' g, metaphorical - literal (colours clipped at +-{lim:.2f})",
                 extend="both")
    ax.set_title(f"VUA by genre and POS: effect per layer (dots: layers in clusters with p <= {ALPHA})",
                 fontsize=10)
    fig.savefig(path, dpi=120)


def mixed_figure(mixed: dict, names: dict, path) -> None:
    """Label coefficient per layer with its Wald 95 % interval, one panel per mixed model."""
    fig, axes = _figure(len(mixed))
    for ax, (key, m) in zip(axes, mixed.items()):
        term = next(t for t in ("label", "label_seq", "pair_side") if t in m["term"].values)
        coef, se = m["coef"].sel(term=term).values, m["se"].sel(term=term).values
        depth = m["depth"].values
        ax.fill_between(depth, coef - 1.96 * se, coef + 1.96 * se, color="#d62728", alpha=0.2, lw=0)
        ax.plot(depth, coef, color="#d62728", marker="o", ms=3)
        sig = m["p"].sel(term=term).values < ALPHA
        ax.plot(depth[sig], coef[sig], "k*", ms=6, label=f"p < {ALPHA} (uncorrected)")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{names.get(key, key)}: {m.attrs['formula']}", fontsize=8)
        ax.set_xlabel("relative depth (layer + 1) / L")
        ax.set_ylabel(f"coefficient of {term} (CSE units)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("Metaphor effect adjusted for surprisal, log frequency and position (Wald 95 % interval)",
                 fontsize=10)
    fig.savefig(path, dpi=120)


def profile_figure(ds, by, where, test: Test, path, title: str) -> None:
    """Mean CSE per group against relative depth (`cse.plot.plot_depth_profile`), clusters shaded."""
    from cse.plot import plot_depth_profile

    fig = plot_depth_profile(ds, by, where, stats=test.result, groups=(0, 1), title=title)
    fig.savefig(path, dpi=120)


# --------------------------------------------------------------------------- tables


LAYER_FLOATS = {"depth": "{:.2f}", "mean_lit": "{:.4f}", "mean_met": "{:.4f}", "diff": "{:+.4f}", "t": "{:+.2f}",
                "g": "{:+.3f}", "g_low": "{:+.3f}", "g_high": "{:+.3f}"}


def layer_markdown(test: Test) -> str:
    table = layer_table(test)
    table["g [95% CI]"] = [f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]" for g, lo, hi in
                           zip(table["g"], table["g_low"], table["g_high"])]
    for col in ("p_unc", "p_cluster", "p_maxT", "p_fdr_bh"):
        if col in table:
            table[col] = [p_fmt(p) for p in table[col]]
    cols = ["depth", "n_lit", "n_met", "mean_lit", "mean_met", "diff", "t", "p_unc", "p_cluster", "p_maxT",
            "p_fdr_bh", "g [95% CI]"]
    return md_table(table[[c for c in cols if c in table]], LAYER_FLOATS, index=True)


def cluster_markdown(test: Test) -> str:
    table = cluster_table(test)
    if table.empty:
        return "No clusters (no layer's |t| passed the cluster-forming threshold)."
    table = table.assign(p=[p_fmt(p) for p in table["p"]],
                         depth=[f"{a:.2f}-{b:.2f}" for a, b in zip(table["depth_low"], table["depth_high"])])
    return md_table(table[["layers", "depth", "sign", "mass", "p", "peak_g", "peak_layer"]],
                    {"mass": "{:+.2f}", "peak_g": "{:+.3f}"})


def summary_markdown(tests: list[Test]) -> str:
    rows = []
    for t in tests:
        a = t.result.attrs
        n = f"{a['n_tokens_b']} pairs" if a.get("paired_by") else f"{a['n_tokens_b']} / {a['n_tokens_a']}"
        k = int(np.nanargmax(np.abs(t.result["t"].values)))
        rows.append({"test": t.key, "corpus": t.corpus, "what": t.label, "n (met / lit)": n,
                     "test type": a["test"], "P": a["n_permutations"],
                     "largest |t| (layer)": f"{t.result['t'].values[k]:+.2f} ({int(t.result['layer'].values[k])})",
                     f"clusters with p <= {ALPHA}": clusters_phrase(t)})
    return md_table(pd.DataFrame(rows))


def groups_markdown(groups: pd.DataFrame, tests: dict) -> str:
    rows = []
    for r in groups.itertuples():
        t = tests.get(getattr(r, "test", None)) if isinstance(getattr(r, "test", None), str) else None
        row = {"subset": f"{r.kind} {r.group}", "n met": r.n_met, "n lit": r.n_lit}
        if t is None:
            row.update({"mean diff": "", "largest |t| (layer)": "", f"clusters with p <= {ALPHA}":
                        f"not tested (< {30} words of a label)"})
        else:
            res = t.result
            k = int(np.nanargmax(np.abs(res["t"].values)))
            row.update({"mean diff": f"{np.nanmean(res['diff'].values):+.4f}",
                        "largest |t| (layer)": f"{res['t'].values[k]:+.2f} ({int(res['layer'].values[k])})",
                        f"clusters with p <= {ALPHA}": clusters_phrase(t)})
        rows.append(row)
    return md_table(pd.DataFrame(rows))


def mixed_markdown(m) -> str:
    terms = [str(t) for t in m["term"].values if t != "Intercept"]
    table = pd.DataFrame(index=pd.Index(m["layer"].values, name="layer"))
    table["depth"] = [f"{d:.2f}" for d in m["depth"].values]
    for term in terms:
        coef, p = m["coef"].sel(term=term).values, m["p"].sel(term=term).values
        table[term] = [f"{c:+.4f} (p {p_fmt(q)})" for c, q in zip(coef, p)]
    table["converged"] = m["converged"].values
    table["n"] = m["n_obs"].values
    return md_table(table, index=True)
