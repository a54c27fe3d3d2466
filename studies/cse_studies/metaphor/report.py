"""Step 3 of the metaphor study: ``report.md``, generated from the numbers.

Nothing in the report is written by hand: every sentence that states a result is built
from the test results (`summaries.verdict` and the helpers below), so the text cannot
contradict the tables. One section per model, and a summary across models on relative
depth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cse import stats
from cse.stats.engine import FEW_BLOCKS
from cse_studies.common import TARGET_WORD, md_table, p_text

from .analysis import CONTENT, CONTROL_TEST, MAIN, PAIR, TARGET
from .summaries import (
    ALPHA,
    EARLY_TO_MID,
    change_row,
    change_sentence,
    cluster_table,
    layer_table,
    overall_status,
    verdict,
    within_block_note,
)
#: Bins of relative depth on which models of different depth are compared.
DEPTH_BINS = 10

LAYER_FLOATS = {"depth": "{:.2f}", "mean_lit": "{:.4f}", "mean_met": "{:.4f}", "diff": "{:+.4f}", "t": "{:+.2f}"}


# --------------------------------------------------------------------------- tables


def clusters_phrase(test) -> str:
    """'none' or 'layers 3-9 (depth 0.13-0.33, +, p = 0.0002, boundary: all); ...' for the significant clusters."""
    sig = cluster_table(test, alpha=ALPHA)
    if sig.empty:
        return "none"
    return "; ".join(f"layers {r.layers} (depth {r.depth_low:.2f}-{r.depth_high:.2f}, {r.sign}, p = {p_text(r.p)}"
                     + (f", boundary-affected: {r.boundary}" if r.boundary else "") + ")"
                     for r in sig.itertuples())


def layer_markdown(test) -> str:
    """The per-layer table of a test (every correction's p, g with its interval, boundary flag)."""
    table = layer_table(test)
    table["g [95% CI]"] = [f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]" for g, lo, hi in
                           zip(table["g"], table["g_low"], table["g_high"])]
    p_columns = [c for c in table.columns if c.startswith("p_")]
    for col in p_columns:
        table[col] = [p_text(p) for p in table[col]]
    if "boundary" in table:
        table["boundary"] = np.where(table["boundary"], "yes", "")
    cols = ["depth", "boundary", "n_lit", "n_met", "mean_lit", "mean_met", "diff", "t"] + p_columns + ["g [95% CI]"]
    return md_table(table[[c for c in cols if c in table]], LAYER_FLOATS, index=True)


def cluster_markdown(test) -> str:
    """Every cluster of a test (before the alpha cut)."""
    table = cluster_table(test)
    if table.empty:
        return "No clusters (no layer's |t| passed the cluster-forming threshold)."
    table = table.assign(p=[p_text(p) for p in table["p"]],
                         depth=[f"{a:.2f}-{b:.2f}" for a, b in zip(table["depth_low"], table["depth_high"])])
    cols = ["layers", "depth", "sign", "mass", "p", "peak_g", "peak_layer"] + (["boundary"] if table["boundary"].any()
                                                                                else [])
    return md_table(table[cols], {"mass": "{:+.2f}", "peak_g": "{:+.3f}"})


def _null_words(attrs) -> str:
    """The null a statistic is referred to, and the blocks (few blocks: weak inference, compare warns)."""
    words = {"wild": "wild cluster bootstrap", "permutation": "permutations"}.get(attrs.get("null", ""), "permutations")
    blocks = int(attrs.get("n_blocks", 0))
    return words + (f" ({blocks} blocks{', few' if blocks < FEW_BLOCKS else ''})" if blocks else "")


def summary_markdown(tests: list) -> str:
    """One row per test: corpus, what, sizes, test type, permutations, largest |t|, significant clusters."""
    rows = []
    for t in tests:
        a = t.result.attrs
        n = f"{a['n_tokens_b']} pairs" if a.get("paired_by") else f"{a['n_tokens_b']} / {a['n_tokens_a']}"
        if a.get("n_tokens_single_label_blocks"):
            n += f" (+{a['n_tokens_single_label_blocks']} in single-label blocks, left out)"
        tt = np.abs(t.result["t"].values)
        k = int(np.nanargmax(tt)) if np.isfinite(tt).any() else 0
        rows.append({"test": t.key, "what": t.label, "n (met / lit)": n,
                     "statistic": a.get("statistic") or a.get("test", ""), "null (blocks)": _null_words(a),
                     "P": a["n_permutations"],
                     "largest |t| (layer)": f"{t.result['t'].values[k]:+.2f} ({int(t.result['layer'].values[k])})",
                     f"clusters with p <= {ALPHA}": clusters_phrase(t)})
    return md_table(pd.DataFrame(rows))


def groups_markdown(groups: pd.DataFrame, tests: dict) -> str:
    """The genre and POS subsets of a sequence corpus."""
    rows = []
    for r in groups.itertuples():
        t = tests.get(r.test) if r.test else None
        row = {"subset": f"{r.kind} {r.group}", "n met": r.n_met, "n lit": r.n_lit}
        if t is None:
            row.update({"mean diff": "", "largest |t| (layer)": "", f"clusters with p <= {ALPHA}": "not tested"})
        else:
            res = t.result
            t_abs = np.abs(res["t"].values)
            k = int(np.nanargmax(t_abs)) if np.isfinite(t_abs).any() else 0
            row.update({"blocks": int(res.attrs.get("n_blocks", 0)) or "",
                        "mean diff": f"{np.nanmean(res['diff'].values):+.4f}",
                        "largest |t| (layer)": f"{res['t'].values[k]:+.2f} ({int(res['layer'].values[k])})",
                        f"clusters with p <= {ALPHA}": clusters_phrase(t)})
        rows.append(row)
    return md_table(pd.DataFrame(rows))


def mixed_markdown(m) -> str:
    """Coefficients per layer of a mixed model (Wald p, uncorrected)."""
    terms = [str(t) for t in m["term"].values if t != "Intercept"]
    table = pd.DataFrame(index=pd.Index(m["layer"].values, name="layer"))
    table["depth"] = [f"{d:.2f}" for d in m["depth"].values]
    for term in terms:
        coef, p = m["coef"].sel(term=term).values, m["p"].sel(term=term).values
        table[term] = [f"{c:+.4f} (p {p_text(q)})" for c, q in zip(coef, p)]
    table["converged"] = m["converged"].values
    table["n"] = m["n_obs"].values
    return md_table(table, index=True)


# --------------------------------------------------------------------------- verdicts


def interval_phrase(test) -> str:
    """How large an effect the data allow: the range of g and of its bootstrap intervals over layers."""
    res = test.result
    g, lo, hi = res["hedges_g"].values, res["g_ci_low"].values, res["g_ci_high"].values
    if not (np.isfinite(lo).any() and np.isfinite(hi).any()):
        return "no bootstrap interval of the effect size was computed."
    k = int(np.nanargmax(np.abs(g)))
    return (f"effect size ({res.attrs.get('effect_size', 'Hedges g')}): between {np.nanmin(g):+.2f} and "
            f"{np.nanmax(g):+.2f} over layers (largest in size {g[k]:+.2f} at layer {int(res['layer'].values[k])}); "
            f"the 95 % bootstrap intervals lie within [{np.nanmin(lo):+.2f}, {np.nanmax(hi):+.2f}] at every layer.")


def control_lines(v, controls: list, mixed) -> list[str]:
    """How the controls and the mixed model bear on a main test's verdict."""
    out, sig = [], v.clusters
    sign = {"holds": "+", "reversed": "-"}.get(v.status)
    focus = sig.loc[(sig["depth_low"] <= EARLY_TO_MID) & (sig["sign"] == sign)] if sign else sig.iloc[:0]
    layers = set(np.concatenate([np.arange(r.first, r.last + 1) for r in focus.itertuples()]).tolist()) \
        if len(focus) else None
    if mixed is not None:
        term = next((t for t in ("label", "label_seq", "pair_side") if t in mixed["term"].values), None)
        coef, p = mixed["coef"].sel(term=term).values, mixed["p"].sel(term=term).values
        if layers is not None:
            sel = np.isin(mixed["layer"].values, sorted(layers))
            same = int(((np.sign(coef[sel]) == (1 if sign == "+" else -1)) & (p[sel] < ALPHA)).sum())
            out.append(f"  - with surprisal, log frequency and position as covariates (mixed model, random intercept "
                       f"per {mixed.attrs['groups'].replace('_', ' ')}), the label effect keeps its sign with p < {ALPHA} (uncorrected "
                       f"Wald) at {same} of the {int(sel.sum())} layers of the cluster(s).")
        else:
            out.append(f"  - mixed model with surprisal, log frequency and position: the label term has p < {ALPHA} "
                       f"(uncorrected Wald) at {int(np.sum(p < ALPHA))} of {len(p)} layers.")
    for c in controls:
        phrase = clusters_phrase(c)
        note = ""
        if layers is not None and phrase != "none":
            hit = any(set(range(r.first, r.last + 1)) & layers for r in cluster_table(c, ALPHA).itertuples())
            note = " — overlaps the main cluster" if hit else " — not where the main cluster is"
        found = "no significant cluster" if phrase == "none" else f"significant cluster(s) at {phrase}"
        out.append(f"  - {c.label}: {found}{note}.")
    return out


def finding_lines(run) -> tuple[list[str], dict]:
    """The generated answer to "Does the published finding hold for this model?" and its summary."""
    main = [t for t in run.tests if t.role == MAIN]
    raw = [t for t in main if t.var == "cse"]
    verdicts = {t.key: verdict(t) for t in main}
    overall = overall_status([verdicts[t.key] for t in raw])
    lines = [f"**The published finding {overall} for `{run.slug}`** "
             f"({sum(verdicts[t.key].status == 'holds' for t in raw)} of {len(raw)} main tests on CSE show higher CSE "
             f"for metaphorical than literal tokens in a cluster of layers at early-to-mid relative depth, "
             f"cluster-corrected p <= {ALPHA}; early-to-mid = relative depth <= {EARLY_TO_MID:.2f}).", ""]
    for t in main:
        v = verdicts[t.key]
        lines.append(f"- **{t.key}** — {v.status}: {v.text}.")
        lines.append(f"  - {interval_phrase(t)}")
        note = within_block_note(t, run.main_source[t.key], where_of(t))
        if note:
            lines.append(f"  - {note}")
        change = change_sentence(t)
        if change:
            lines.append(f"  - {change}")
        lines.extend(control_lines(v, [c for c in run.tests if c.parent == t.key and c.role == CONTROL_TEST],
                                  run.mixed.get(t.key)))
    status = {k: v.status for k, v in verdicts.items()}
    summary = {"overall": overall, **status}
    z = [verdicts[t.key] for t in main if t.var == "cse_z"]
    if z:
        summary["overall_cse_z"] = overall_status(z)
        lines += ["", f"On `cse_z` (CSE against the layer-order null, comparable across layers and models, boundary "
                      f"layers included) the finding {summary['overall_cse_z']}."]
    sequences = [t.key for t in raw if t.result.attrs.get("by") == "label_seq"]
    if status.get("pairs") in ("not found", "elsewhere", "reversed") and any(status[k] == "holds" for k in sequences):
        lines += ["", "The difference over all words of a sequence corpus does not appear in the matched pairs, which "
                      "hold the word form and POS fixed: in this model it may reflect which words are used "
                      "metaphorically (their form, POS and frequency) more than metaphoricity itself."]
    return lines, summary


def across_models(runs: list) -> list[str]:
    """The cross-model summary: for every main test and model, clusters on relative depth, effect, boundary, verdict."""
    rows = []
    for key in dict.fromkeys(t.key for r in runs for t in r.tests if t.role == MAIN):
        for r in runs:
            test = next((t for t in r.tests if t.key == key), None)
            if test is None:
                continue
            v = verdict(test)
            res = test.result
            g = res["hedges_g"].values
            k = int(np.nanargmax(np.abs(g))) if np.isfinite(g).any() else 0
            rows.append({"test": key, "model": r.slug, "verdict": v.status,
                         f"clusters with p <= {ALPHA} (relative depth)": clusters_phrase(test),
                         "largest g [95% CI] (relative depth)": f"{g[k]:+.2f} [{res['g_ci_low'].values[k]:+.2f}, "
                         f"{res['g_ci_high'].values[k]:+.2f}] ({res['depth'].values[k]:.2f})",
                         "statistic": res.attrs.get("statistic") or res.attrs.get("test", "")})
    return [md_table(pd.DataFrame(rows)), "", "![Effect per layer by model](effects-by-model.png)"]


def where_of(test) -> str:
    """The token selection of a main test (for descriptive statistics beside it)."""
    return {"label": TARGET, "label_seq": CONTENT, "pair_side": PAIR}.get(test.result.attrs.get("by"), TARGET)


def corpus_heading(corpus) -> str:
    """What a corpus is, in one sentence."""
    if corpus.kind == TARGET_WORD:
        return (f"{len(corpus.frame)} sentences, one target word each (token: its first token); labels permuted "
                f"within exchangeability blocks ({corpus.block_label}).")
    return (f"{len(corpus.frame)} sentences, every word labelled; tested: every content word (not punctuation), "
            f"labels permuted within texts ({corpus.block_label}).")


# --------------------------------------------------------------------------- what changed, and replication


def changes_markdown(runs: list) -> str:
    """Per model and main test with blocks: significant layers and interval widths, previous default against now."""
    rows = []
    for r in runs:
        for t in r.tests:
            row = change_row(t) if t.role == MAIN else None
            if row is not None:
                rows.append({"model": r.slug, "test": row["test"], "significant now": row["significant_now"],
                             "before": row["significant_before"], "no longer": row["disappeared"],
                             "newly": row["appeared"], "g interval width, now / before": row["width_ratio"],
                             "largest effect, now and before": row["largest"]})  # fmt: skip
    if not rows:
        return "No main test with exchangeability blocks: nothing changed."
    return md_table(pd.DataFrame(rows), {"g interval width, now / before": "{:.2f}"})


def _bands_text(bands: pd.DataFrame, depth: bool) -> str:
    if bands.empty:
        return "none"
    where = ("relative depth {:.2f}-{:.2f}" if depth else "layers {}-{}")
    return "; ".join((where.format(b.depth_low, b.depth_high) if depth else where.format(b.first, b.last))
                     + f" ({'+' if b.sign > 0 else '-'}, p = {p_text(b.p)})" for b in bands.itertuples())


def _corpus_tests(run, var: str) -> dict:
    """Main test of each corpus (not the pairs, which are drawn from the sequence corpora) on `var`."""
    return {t.corpus: t.result for t in run.tests if t.role == MAIN and t.var == var and t.corpus != "pairs"}


def _replication_row(tests: dict, across: str, within: str, var: str, bins) -> dict:
    """One row: every result (full conjunction) and, with 3 or more results, at least 2 of them (u = 2)."""
    depth = bins is not None
    row = {"across": across, "within": within, "variable": var, "results": ", ".join(tests),
           f"replicated in all (p <= {ALPHA}, Holm)": _bands_text(stats.replicated_bands(tests, bins=bins), depth)}
    row[f"in at least 2 (u = 2, Simes; p <= {ALPHA}, Holm)"] = (
        _bands_text(stats.replicated_bands(tests, u=2, bins=bins), depth) if len(tests) >= 3 else "= all")
    return row


def replication_lines(runs: list) -> list[str]:
    """The replication table: per model, layers where the corpora agree in sign; per corpus, where models agree.

    Conjunction tests over the per-layer permutation p-values (`cse.stats.conjunction`):
    every result must show the effect (the full conjunction) and, beside it, at least
    2 of them (the partial conjunction, u = 2, Simes combination; one dissimilar corpus
    cannot veto it); Holm across layers or bins; models of different depth on
    `DEPTH_BINS` bins of relative depth.
    """
    rows = []
    for r in runs:
        for var in ("cse", "cse_z"):
            tests = _corpus_tests(r, var)
            if len(tests) >= 2:
                rows.append(_replication_row(tests, "corpora", f"model {r.slug}", var, None))
    corpora = list(dict.fromkeys(c for r in runs for c in _corpus_tests(r, "cse")))
    for corpus in corpora:
        for var in ("cse", "cse_z"):
            tests = {r.slug: _corpus_tests(r, var)[corpus] for r in runs if corpus in _corpus_tests(r, var)}
            if len(tests) >= 2:
                rows.append(_replication_row(tests, "models", f"corpus {corpus}", var, DEPTH_BINS))
    if not rows:
        return ["One corpus and one model: nothing to replicate across."]
    lines = ["A layer replicates when every result shows an effect of the same sign there: a conjunction test "
             "(minimum statistic; Nichols et al. 2005) on the per-layer permutation p-values, Holm-corrected across "
             f"layers; models of different depth on {DEPTH_BINS} bins of relative depth (a bin's p-value: the "
             "Bonferroni-adjusted smallest p of its layers). Beside it, with three or more results, the partial "
             "conjunction asks for at least 2 of them (u = 2; Benjamini & Heller 2008, Simes combination of the "
             "n - 1 largest p-values), so that one dissimilar corpus does not veto a replication. Clusters found in "
             "each corpus separately cannot say this.", "", md_table(pd.DataFrame(rows))]
    return lines + opposite_lines(runs)


def opposite_lines(runs: list) -> list[str]:
    """Layers where the corpora of one model have significant clusters of opposite sign (generated)."""
    out = []
    for r in runs:
        tests = [t for t in r.tests if t.role == MAIN and t.var == "cse" and t.corpus != "pairs"]
        signs = {}
        for t in tests:
            for c in cluster_table(t, alpha=ALPHA).itertuples():
                for layer in range(c.first, c.last + 1):
                    signs.setdefault(layer, {})[t.corpus] = c.sign
        clash = sorted(layer for layer, s in signs.items() if len(set(s.values())) > 1)
        if clash:
            out.append(f"- `{r.slug}`: significant clusters of opposite sign in different corpora at layers "
                       f"{stats.layer_span(clash)}; the effect there does not replicate.")
    return [""] + out if out else []
