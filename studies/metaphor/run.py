"""The metaphor study, end to end: `run` (and ``cse study metaphor``).

1. `corpora.compute_corpora`: load MOH-X and the VUA test split, draw the matched
   pairs, compute CSE on every axis needed (cached in ``--out``).
2. `analysis`: per-layer permutation tests, controls and mixed models.
3. `report`: ``report.md``, figures, and the per-layer and cluster tables as CSV.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cse import __version__
from cse.errors import CSEInputError

from . import analysis as A
from . import report as R
from .corpora import TOKEN_LEVEL, compute_corpora
from .corpus import check_out_dir
from .data import MOHX_FILE, VUA_TEST_FILE, data_file, sha256

FIGURES = {
    "profile_mohx.png": "MOH-X target verbs: mean CSE per label against relative depth",
    "profile_vua.png": "VUA content words: mean CSE per label",
    "profile_pairs.png": "VUA matched pairs: mean CSE per side",
    "effects.png": "Hedges' g per layer for the three main tests, with control token and shuffled labels",
    "controls.png": "t per layer of every test, main and controls, per corpus",
    "vua_groups.png": "VUA by genre and POS: Hedges' g per layer",
    "mixed.png": "label coefficient per layer of the mixed models",
}


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise CSEInputError(f"Invalid value for {name!r}: expected an integer >= {low}, got {value!r}")


def run(data, out, model=None, tokenizer=None, *, seed: int = 0, n_pairs: int = 200, n_permutations: int = 5000,
        n_control_permutations: int | None = None, n_bootstrap: int = 2000, null_permutations: int = 50,
        limit: int | None = None, recompute: bool = False, device: str = "cpu", progress: bool = False,
        command: str | None = None, log=None) -> dict:
    """Run the metaphor study and write its folder.

    Parameters
    ----------
    data : str or Path
        Folder holding ``moh-x.csv`` and ``vua-seq-test.csv``.
    out : str or Path
        Output folder (created; its parent must exist): the CSE results
        (``*.nc``), ``report.md``, the figures, ``layers.csv`` and ``clusters.csv``.
    model : str, None or transformers.PreTrainedModel
        A model name or path for `cse.load_model` (None: the default
        SmolLM2-135M-Instruct), or a loaded model (then `tokenizer` is required).
    tokenizer : transformers.PreTrainedTokenizerFast, optional
    seed : int
        Seed of the pair draw, the shuffled labels, the permutations, the bootstrap
        and the dimension-permutation null.
    n_pairs : int
        Matched VUA pairs to draw.
    n_permutations : int
        Permutations (sign flips) of the three main tests.
    n_control_permutations : int, optional
        Permutations of the controls and subsets (default ``min(n_permutations, 2000)``).
    n_bootstrap : int
        Bootstrap replicates of the effect-size intervals of the main tests.
    null_permutations : int
        Dimension permutations of the hidden-axis null.
    limit : int, optional
        Use the first `limit` sentences of each file (development runs).
    recompute : bool
        Recompute CSE even where a cached result matches.
    device : str
        Device of the model when it is loaded here.
    progress : bool
        Progress bars of the CSE computations on stderr.
    command : str, optional
        The command line, recorded in the report.
    log : callable, optional
        Receives one line per step.

    Returns
    -------
    dict
        ``report`` (path), ``verdict`` (overall and per main test), ``tests``
        (key -> `cse.stats.compare` Dataset).

    Raises
    ------
    CSEInputError
        Bad data folder, missing file, bad parameter, or a model that cannot be loaded.
    """
    # 1. Validate the parameters and the data before loading the model.
    for name, value, low in (("seed", seed, 0), ("n_pairs", n_pairs, 1), ("n_permutations", n_permutations, 1),
                             ("n_bootstrap", n_bootstrap, 0), ("null_permutations", null_permutations, 2)):
        _check_int(name, value, low)
    if limit is not None:
        _check_int("limit", limit, 1)
    if n_control_permutations is None:
        n_control_permutations = min(n_permutations, 2000)
    _check_int("n_control_permutations", n_control_permutations, 1)
    files = {name: data_file(data, name) for name in (MOHX_FILE, VUA_TEST_FILE)}
    out = check_out_dir(out)
    started = time.time()
    log = log or (lambda line: None)

    # 2. Model and CSE results.
    from cse.models import load_model, model_identity

    if model is None or isinstance(model, (str, Path)):
        model, tokenizer = load_model(None if model is None else str(model), device=device)
    elif tokenizer is None:
        raise TypeError("Invalid value for 'tokenizer': required when 'model' is a loaded model")
    identity = model_identity(model)
    corpora = compute_corpora(data, model, tokenizer, identity, out, seed=seed, n_pairs=n_pairs, limit=limit,
                              null_permutations=null_permutations, recompute=recompute, progress=progress,
                              command=command, log=log)
    results = dict(corpora.results)
    results["mohx-depth"] = A.add_mohx_coords(results["mohx-depth"], seed)
    results["vua-depth"] = A.add_pair_shuffle(A.add_pair_coords(A.add_vua_coords(results["vua-depth"], seed),
                                                                corpora.pairs), seed)
    for name in ("mohx-token", "mohx-hidden"):
        if name in results:
            results[name] = A.add_mohx_coords(results[name], seed)
    for name in ("pairs-token", "pairs-hidden"):
        if name in results:
            results[name] = A.add_pair_coords(results[name], corpora.pairs)

    # 3. Tests.
    settings = A.Settings(seed=seed, n_permutations=n_permutations, n_control_permutations=n_control_permutations,
                          n_bootstrap=n_bootstrap)
    mohx = A.mohx_tests(results, settings, log)
    vua, vua_groups = A.vua_tests(results, settings, log)
    has_pairs = int((results["vua-depth"]["pair"].values >= 0).sum()) >= 4
    pairs = A.pair_tests(results, corpora.pairs, settings, log) if has_pairs else []
    mixed = A.mixed_models(results, log, pairs=has_pairs)

    # 4. Report.
    log("writing the report")
    tests = mohx + vua + pairs
    path = write_report(out, tests=tests, mohx=mohx, vua=vua, pairs=pairs, vua_groups=vua_groups, mixed=mixed,
                        results=results, corpora=corpora, identity=identity, files=files, settings=settings,
                        null_permutations=null_permutations, limit=limit, n_pairs=n_pairs, command=command,
                        elapsed=time.time() - started)
    _write_tables(out, tests)
    verdict_summary = path[1]
    log(f"wrote {path[0]}")
    return {"report": path[0], "verdict": verdict_summary, "tests": {t.key: t.result for t in tests},
            "pairs": corpora.pairs}


def _write_tables(out: Path, tests) -> None:
    """``layers.csv`` (every test's per-layer statistics) and ``clusters.csv``."""
    layers = pd.concat([A.layer_table(t).assign(test=t.key) for t in tests]).reset_index()
    layers = layers[["test"] + [c for c in layers.columns if c != "test"]]
    layers.to_csv(out / "layers.csv", index=False, float_format="%.6g")
    # infer_objects: concatenating empty tables leaves object columns, which to_csv would not round.
    clusters = pd.concat([A.cluster_table(t) for t in tests], ignore_index=True).infer_objects()
    clusters.to_csv(out / "clusters.csv", index=False, float_format="%.6g")


def write_report(out: Path, *, tests, mohx, vua, pairs, vua_groups, mixed, results, corpora, identity, files,
                 settings, null_permutations, limit, n_pairs, command, elapsed) -> tuple[Path, dict]:
    """Write ``report.md`` and the figures; return the report path and the verdict summary."""
    by_key = {t.key: t for t in tests}
    main = [t for t in (by_key.get("mohx"), by_key.get("vua"), by_key.get("pairs")) if t is not None]
    controls = {m.key: [t for t in tests if t.key.startswith(m.key + "_") and not t.key.startswith("vua_genre")
                        and not t.key.startswith("vua_pos")] for m in main}
    mixed_by_main = {k: mixed[k] for k in ("mohx", "vua", "pairs") if k in mixed}
    paragraph, summary = R.finding_paragraph(main, controls, mixed_by_main)

    # Figures.
    depth = results["mohx-depth"]
    R.profile_figure(depth, "label", A.MOHX_TARGET, by_key["mohx"], out / "profile_mohx.png",
                     "MOH-X target verbs (0 literal, 1 metaphorical)")
    R.profile_figure(results["vua-depth"], "label_seq", A.VUA_CONTENT, by_key["vua"], out / "profile_vua.png",
                     "VUA content words (0 literal, 1 metaphorical)")
    if "pairs" in by_key:
        R.profile_figure(results["vua-depth"], "pair_side", A.PAIR_TARGET, by_key["pairs"], out / "profile_pairs.png",
                         "VUA matched pairs (0 literal, 1 metaphorical)")
    R.effects_figure(main, controls, out / "effects.png")
    R.axes_figure([[m] + controls[m.key] for m in main], out / "controls.png")
    group_tests = [t for t in tests if t.key.startswith(("vua_genre", "vua_pos"))]
    if group_tests:
        R.groups_figure(group_tests, out / "vua_groups.png")
    R.mixed_figure(mixed, {"mohx": "MOH-X", "vua": "VUA", "pairs": "VUA pairs"}, out / "mixed.png")

    # Text.
    attrs = depth.attrs
    hidden = results.get("mohx-hidden")
    lines = [
        "# Metaphor study: CSE of metaphorical and literal tokens",
        "",
        "Generated by `cse_studies.metaphor` (cse " + __version__ + "); every number and sentence below is computed "
        "from the results, nothing is written by hand.",
        "",
        "## How it was made",
        "",
        f"- Command: `{command or 'cse_studies.metaphor.run(...)'}`",
        f"- Model: `{identity['model']}` ({identity['model_class']}, {identity['n_layers']} blocks, d_model "
        f"{identity['d_model']}, weights {attrs.get('dtype', '')})"
        + (f", file SHA-256 `{identity['model_sha256']}`" if identity.get("model_sha256") else "")
        + (f", revision `{identity['revision']}`" if identity.get("revision") else ""),
        "- Data (`--data`, read-only, not in the repository):",
    ]
    for name, path in files.items():
        lines.append(f"  - `{name}`: SHA-256 `{sha256(path)}`")
    lines += [
        f"- Sentences used: MOH-X {len(corpora.mohx_frame)}, VUA test {len(corpora.vua_frame)}"
        + (f" (`--limit {limit}`: the first {limit} rows of each file)" if limit else " (all)"),
        f"- CSE: depth axis ({attrs['wavelet']}, J = {attrs['level']}, {attrs['boundary']} boundary, "
        f"normalize {attrs['normalize']}); token axis (haar, J = {TOKEN_LEVEL}); hidden axis"
        + (f" ({hidden.attrs['wavelet']}, J = {hidden.attrs['level']}, {null_permutations} dimension permutations)"
           if hidden is not None else ""),
        f"- Tests: seed {settings.seed}; {settings.n_permutations} permutations / sign flips for the main tests, "
        f"{settings.n_control_permutations} for controls and subsets; {settings.n_bootstrap} bootstrap replicates; "
        f"cluster-forming threshold at two-sided p = 0.05; alpha = {R.ALPHA}; p = (b + 1) / (P + 1)",
        f"- Software: cse {__version__}, torch {attrs.get('torch_version', '')}, transformers "
        f"{attrs.get('transformers_version', '')}, Python {platform.python_version()}; run time {elapsed / 60:.1f} min",
        "- CSE results (in `--out`, not committed): "
        + "; ".join(f"`{p.name}` ({corpora.results[k].sizes['token']} tokens, "
                    f"{'reused from an earlier run' if corpora.results[k].attrs.get('study_reused') else 'computed'})"
                    for k, p in corpora.paths.items()),
        "",
        "## Does the published finding hold here?",
        "",
        "Chakrabarti et al. (2026) report higher CSE for metaphorical than for literal tokens in early-to-mid "
        "layers, from GPT-2 to LLaMA-2 7B and gpt-oss 20B. Here, with the default model:",
        "",
        paragraph,
        "",
        "## All tests",
        "",
        "Differences are metaphorical minus literal. MOH-X: labels permuted within verbs; VUA: within texts; "
        "pairs: sign flips. Controls use the same tokens and test unless said otherwise. Within-block "
        "permutations keep each block's share of metaphorical tokens, so differences between verbs or texts are "
        "part of the null and only differences within blocks count as an effect; the observed t is compared with "
        "its permutation distribution, which need not be centred at 0 (hence a large |t| can have a large p).",
        "",
        R.summary_markdown(tests),
        "",
        "## 1. MOH-X target verbs",
        "",
        f"{len(corpora.mohx_frame)} sentences, one target verb each (token: the verb's first token). "
        "Controls: the first token of the word before the verb; labels shuffled once across sentences within "
        "verbs; the same test on the token axis and on the hidden axis (CSE and its z against the "
        "dimension-permutation null).",
        "",
        "![MOH-X profile](profile_mohx.png)",
        "",
        "### Per layer",
        "",
        R.layer_markdown(by_key["mohx"]),
        "",
        "### Clusters (all, before the alpha cut)",
        "",
        R.cluster_markdown(by_key["mohx"]),
        "",
        "### Mixed model: `" + mixed["mohx"].attrs["formula"] + "`, random intercept per verb",
        "",
        "Coefficients per layer (Wald p, uncorrected); `log_frequency` is the Zipf frequency of the word "
        "(wordfreq), `surprisal` the target token's, in nats.",
        "",
        R.mixed_markdown(mixed["mohx"]),
        "",
        "## 2. VUA test split, every content word",
        "",
        f"Every word except punctuation ({by_key['vua'].result.attrs['n_tokens_b']} metaphorical, "
        f"{by_key['vua'].result.attrs['n_tokens_a']} literal first tokens). The control token of a word is the "
        "first token of the word before it (labelled with the target's label).",
        "",
        "![VUA profile](profile_vua.png)",
        "",
        "### Per layer",
        "",
        R.layer_markdown(by_key["vua"]),
        "",
        "### Clusters",
        "",
        R.cluster_markdown(by_key["vua"]),
        "",
        "### By genre and by POS",
        "",
        f"Each subset tested like the whole ({settings.n_control_permutations} within-text permutations, cluster "
        f"correction within the subset, not across subsets).",
        "",
        R.groups_markdown(vua_groups, by_key),
        "",
        "![VUA by genre and POS](vua_groups.png)",
        "",
        "### Mixed model: `" + mixed["vua"].attrs["formula"] + "`, random intercept per text",
        "",
        R.mixed_markdown(mixed["vua"]),
        "",
    ]
    if pairs:
        p = corpora.pairs
        pos_counts = ", ".join(f"{k} {v}" for k, v in p["pos"].value_counts().items())
        top = ", ".join(f"{k} ({v})" for k, v in p["form"].value_counts().head(12).items())
        lines += [
            "## 3. VUA matched pairs",
            "",
            f"{len(p)} pairs (asked: {n_pairs}) drawn with seed {settings.seed}: a metaphorical and a literal word "
            f"with the same lowercased form and POS (content words: VERB, NOUN, ADJ, ADV) from different sentences "
            f"whose lengths differ by at most 5 words; every word in at most one pair. POS: {pos_counts}. "
            f"Most frequent forms: {top}. {p['form'].nunique()} distinct forms. The pair list is in `pairs.csv`.",
            "",
            "![Pairs profile](profile_pairs.png)",
            "",
            "### Per layer",
            "",
            R.layer_markdown(by_key["pairs"]),
            "",
            "### Clusters",
            "",
            R.cluster_markdown(by_key["pairs"]),
            "",
            "### Mixed model: `" + mixed["pairs"].attrs["formula"] + "`, random intercept per pair",
            "",
            R.mixed_markdown(mixed["pairs"]),
            "",
        ]
        p.to_csv(out / "pairs.csv", index=False)
    lines += [
        "## Figures",
        "",
        "![Effects](effects.png)",
        "",
        "![Controls](controls.png)",
        "",
        "![Mixed models](mixed.png)",
        "",
        "## Notes on the method",
        "",
        "- A word is represented by its first token (`is_word_start`), where the model first reads it; special "
        "tokens (the BOS attention sink) are never used.",
        "- Token axis: J = 2 because MOH-X sentences are short (J = 3 needs 8 tokens and would drop a fifth of "
        "them); texts shorter than 4 tokens are dropped"
        + "".join(f" ({k}: {v} dropped)" for k, v in corpora.dropped_token_axis.items()) + ".",
        "- Hidden axis: computed on each sentence up to its last target word only (the model is causal, so the "
        "target's updates do not depend on later words); the token and depth axes use whole sentences.",
        "- The other axes of VUA are computed on the pair sentences only (the forward pass is the cost).",
        "- Early-to-mid depth for the verdict: a significant cluster that starts at relative depth <= "
        f"{A.EARLY_TO_MID:.2f}.",
        "- Figures: " + "; ".join(f"`{k}` {v}" for k, v in FIGURES.items()) + ".",
        "- Tables as CSV: `layers.csv` (every test, every layer), `clusters.csv`.",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path, summary
