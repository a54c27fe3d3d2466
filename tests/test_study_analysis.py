"""The metaphor study's analysis and the cross-depth measures, on synthetic data.

Includes the code paths that activate with the newer statistics and measure (a
`compare` taking ``corrections=``, ``exchangeability_blocks=``, ``covariates=``;
results carrying ``boundary_affected`` and ``cse_z``), driven here by synthetic
Datasets and a stand-in `compare` with the contract's signature.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cse import stats
from cse.errors import CSEInputError
from cse_studies.metaphor import analysis as A
from cse_studies.metaphor.coords import shuffled_labels
from cse_studies.metaphor.pairs import build_pairs
from cse_studies.metaphor.report import replication_lines
from cse_studies.metaphor.summaries import change_row, change_sentence, cluster_table, verdict, within_block_note


def _words(rows, corpus="c"):
    """A `sequence_words`-like frame from (row, word, form, pos, label, n_words) tuples."""
    frame = pd.DataFrame(rows, columns=["row", "word", "form", "pos", "label", "n_words"])
    frame.insert(0, "corpus", corpus)
    frame["content"] = True
    frame["block"] = "t" + frame["row"].astype(str)
    frame["genre"] = "news"
    return frame


# --------------------------------------------------------------------------- pairs


def test_build_pairs_respects_form_pos_length_and_sentence():
    words = _words([
        (0, 0, "grasp", "VERB", 1, 10),   # metaphorical
        (1, 3, "grasp", "VERB", 0, 16),   # literal, length differs by 6: not allowed
        (2, 1, "grasp", "NOUN", 0, 10),   # other POS: not allowed
        (0, 4, "grasp", "VERB", 0, 10),   # same sentence: not allowed
        (3, 2, "grasped", "VERB", 0, 10),  # other form: not allowed
        (4, 5, "grasp", "VERB", 0, 15),   # allowed (difference 5)
    ])
    pairs = build_pairs(words, n_pairs=10, seed=0)
    assert len(pairs) == 1
    p = pairs.iloc[0]
    assert (p.met_row, p.met_word, p.lit_row, p.lit_word) == (0, 0, 4, 5)
    assert build_pairs(words, n_pairs=10, seed=0, max_length_diff=4).empty


def test_build_pairs_draws_across_corpora_and_untagged_words():
    a = _words([(0, 0, "run", "VERB", 1, 8)], corpus="a")
    b = _words([(0, 0, "run", "VERB", 0, 8)], corpus="b")  # same row number, another corpus: another sentence
    untagged = _words([(5, 1, "bank", "", 1, 6), (6, 2, "bank", "", 0, 6), (7, 0, ",", "", 0, 6)], corpus="u")
    untagged.loc[2, "content"] = False
    pairs = build_pairs(pd.concat([a, b, untagged], ignore_index=True), n_pairs=10, seed=0)
    assert sorted(pairs["form"]) == ["bank", "run"]
    run = pairs.loc[pairs["form"] == "run"].iloc[0]
    assert (run.met_corpus, run.lit_corpus) == ("a", "b")


def test_build_pairs_uses_each_word_once_and_caps_the_number():
    words = _words([(r, 0, "run", "VERB", 1, 8) for r in range(5)] + [(10 + r, 0, "run", "VERB", 0, 8)
                                                                       for r in range(3)])
    pairs = build_pairs(words, n_pairs=10, seed=1)
    assert len(pairs) == 3  # only three literal partners
    assert pairs["lit_row"].is_unique and pairs["met_row"].is_unique
    assert len(build_pairs(words, n_pairs=2, seed=1)) == 2
    with pytest.raises(CSEInputError, match="'n_pairs'"):
        build_pairs(words, n_pairs=-1)


def test_shuffled_labels_stay_in_their_blocks():
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1])
    blocks = np.array(["a", "a", "a", "b", "b", "c", "c", "c", "c"])
    out = shuffled_labels(labels, blocks, seed=3)
    for b in np.unique(blocks):
        assert sorted(out[blocks == b]) == sorted(labels[blocks == b])
    np.testing.assert_array_equal(out, shuffled_labels(labels, blocks, seed=3))


# --------------------------------------------------------------------------- synthetic results


def synthetic_result(n_blocks=20, per_block=20, n_layers=12, effect=0.0, block_shift=0.0, seed=0,
                     boundary=7, z=True) -> xr.Dataset:
    """A depth-axis result with labels and exchangeability blocks.

    Blocks differ in mean by `block_shift` x block index, and their share of label 1
    grows with the index (a confound, as verbs or texts in real corpora); `effect`
    is added to label-1 tokens at layers 4-9 (within blocks).
    """
    rng = np.random.default_rng(seed)
    n = n_blocks * per_block
    block = np.repeat(np.arange(n_blocks), per_block)
    label = (rng.random(n) < 0.2 + 0.6 * block / n_blocks).astype(np.int64)
    y = rng.normal(size=(n, n_layers)) + block_shift * block[:, None]
    y[:, 4:10] += effect * label[:, None]
    ds = xr.Dataset({"cse": (("token", "layer"), y)},
                    coords={"layer": np.arange(n_layers), "depth": ("layer", (np.arange(n_layers) + 1) / n_layers),
                            "label": ("token", label), "exchangeability_block": ("token", block.astype(str)),
                            "target_token": ("token", np.ones(n, dtype=np.int8)),
                            "is_special": ("token", np.zeros(n, dtype=bool))})
    if z:
        ds["cse_z"] = (ds["cse"] - ds["cse"].mean("token")) / ds["cse"].std("token")
    if boundary is not None:
        ds = ds.assign_coords(boundary_affected=("layer", np.arange(n_layers) < boundary))
    return ds


SETTINGS = {"n_permutations": 199, "n_bootstrap": 49, "seed": 0}


def test_compare_layers_reports_every_correction_and_the_boundary():
    ds = synthetic_result(effect=1.0)
    res = A.compare_layers(ds, "label", A.TARGET, SETTINGS, blocks="exchangeability_block")
    for name in A.CORRECTIONS:
        assert f"p_{name}" in res and res[f"p_{name}"].dims == ("layer",)
    np.testing.assert_array_equal(res["p_cluster"].values, res["p_corrected"].values)
    np.testing.assert_array_equal(res["boundary_affected"].values, np.arange(12) < 7)
    assert res["significant"].values[4:10].all() and not res["significant"].values[:3].any()


def _contract_compare(calls):
    """A stand-in for the contract's `cse.stats.compare` (one call, every correction), built on today's."""
    real = stats.compare
    block_name = "exchangeability_blocks" if "exchangeability_blocks" in inspect.signature(real).parameters else "blocks"

    def compare(ds, by, where=None, *, levels=None, var="cse", paired_by=None, exchangeability_blocks=None,
                blocks=None, covariates=None, n_permutations=10000, correction="cluster", corrections=None, tail=0,
                threshold=None, cluster_alpha=0.05, tfce_e=0.5, tfce_h=2.0, alpha=0.05, n_bootstrap=2000, ci=0.95,
                include_special=False, seed=0, statistic="auto", bootstrap="auto"):
        calls.append({"corrections": corrections, "exchangeability_blocks": exchangeability_blocks,
                      "blocks": blocks, "covariates": covariates, "correction": correction,
                      "has_covariates": all(c in ds.coords for c in covariates or ())})
        res = real(ds, by, where, levels=levels, var=var, paired_by=paired_by, n_permutations=n_permutations,
                   n_bootstrap=n_bootstrap, seed=seed, statistic=statistic, bootstrap=bootstrap,
                   **{block_name: exchangeability_blocks})
        for name in corrections:
            res[f"p_{name}"] = res["p_corrected"]
        res.attrs["exchangeability_blocks"] = exchangeability_blocks or ""
        return res

    return compare


def test_compare_layers_calls_a_contract_compare_once(monkeypatch):
    """With a compare that takes corrections=, exchangeability_blocks= and covariates=, one call does it all."""
    calls = []
    monkeypatch.setattr(stats, "compare", _contract_compare(calls))
    ds = synthetic_result()
    res = A.compare_layers(ds, "label", A.TARGET, SETTINGS, blocks="exchangeability_block")
    assert calls == [{"corrections": list(A.CORRECTIONS), "exchangeability_blocks": "exchangeability_block",
                      "blocks": None, "covariates": None, "correction": "cluster", "has_covariates": True}]
    assert {"p_cluster", "p_maxT", "p_fdr_bh", "boundary_affected"} <= set(res.variables)


def test_target_word_tests_add_the_covariate_control_with_a_contract_compare(monkeypatch):
    calls = []
    monkeypatch.setattr(stats, "compare", _contract_compare(calls))
    ds = synthetic_result(effect=0.5)
    n = ds.sizes["token"]
    ds = ds.assign(surprisal=("token", np.random.default_rng(1).gamma(2.0, size=n))).assign_coords(
        control_token=("token", np.ones(n, dtype=np.int8)), label_shuffled=ds["label"],
        log_frequency=("token", np.random.default_rng(2).normal(4, 1, n)), position=("token", np.arange(n) % 9))
    corpus = type("Corpus", (), {"name": "m"})()
    tests, notes = A.target_word_tests({"m-depth": ds}, corpus, A.Settings(0, 99, 99, 0))
    assert [t.key for t in tests] == ["m", "m:cse_z", "m:control", "m:shuffled", "m:covariates"] and not notes
    covariate_calls = [c for c in calls if c["covariates"]]
    assert covariate_calls == [{"corrections": ["cluster"], "exchangeability_blocks": "exchangeability_block",
                                "blocks": None, "covariates": list(A.COVARIATES), "correction": "cluster",
                                "has_covariates": True}]


def test_main_tests_run_on_cse_z_where_the_result_has_it():
    ds = synthetic_result(effect=1.0)
    tests = A._tests_of(ds, "label", A.TARGET, SETTINGS, main_key="m", corpus="m", label="target word",
                        blocks="exchangeability_block")
    assert [t.key for t in tests] == ["m", "m:cse_z"] and tests[1].var == "cse_z"
    assert [t.key for t in A._tests_of(synthetic_result(z=False), "label", A.TARGET, SETTINGS, main_key="m",
                                       corpus="m", label="w", blocks="exchangeability_block")] == ["m"]


def test_clusters_and_verdicts_say_where_boundary_layers_are():
    ds = synthetic_result(effect=1.0, boundary=7)
    test = A.Test("m", "m", "target word", A.compare_layers(ds, "label", A.TARGET, SETTINGS,
                                                           blocks="exchangeability_block"))
    table = cluster_table(test, alpha=0.05)
    assert len(table) == 1 and table.iloc[0]["layers"] == "4-9" and table.iloc[0]["boundary"] == "layers 4-6"
    v = verdict(test)
    assert v.status == "holds" and "boundary-affected: layers 4-6" in v.text
    unmarked = A.Test("m", "m", "w", A.compare_layers(synthetic_result(effect=1.0, boundary=None), "label",
                                                      A.TARGET, SETTINGS, blocks="exchangeability_block"))
    assert (cluster_table(unmarked)["boundary"] == "").all() and len(cluster_table(unmarked))
    clean = A.Test("m", "m", "w", A.compare_layers(synthetic_result(effect=1.0, boundary=3), "label", A.TARGET,
                                                   SETTINGS, blocks="exchangeability_block"))
    assert "outside the boundary layers" in verdict(clean).text


def test_within_block_note_says_plainly_what_the_pooled_statistic_would_claim():
    ds = synthetic_result(block_shift=0.3, effect=0.0, seed=2)
    res = A.compare_layers(ds, "label", A.TARGET, SETTINGS, blocks="exchangeability_block")
    test = A.Test("m", "m", "w", res)
    if not res.attrs.get("exchangeability_blocks"):
        assert within_block_note(test, ds, A.TARGET) is None  # a compare with the pooled statistic: nothing to say
    # The within-block statistic (as the contract's compare gives it): data centred within blocks.
    centred = ds.copy()
    grouped = ds["cse"].groupby("exchangeability_block")
    centred["cse"] = (grouped - grouped.mean("token")).drop_vars("exchangeability_block", errors="ignore") \
        .assign_coords(exchangeability_block=ds["exchangeability_block"])
    within = A.compare_layers(centred, "label", A.TARGET, SETTINGS, blocks="exchangeability_block")
    within.attrs.update(exchangeability_blocks="exchangeability_block", threshold=2.0)
    note = within_block_note(A.Test("m", "m", "w", within), ds, A.TARGET)
    assert note.startswith("Pooled over all tokens (Welch's t, ignoring the exchangeability blocks)")
    assert "threshold (|t| > 2.00) at layers 0-11;" in note  # the block confound passes everywhere pooled
    assert "past the threshold where the within-block statistic does not" in note and "does not stand" in note


def test_main_tests_keep_the_previous_default_beside_and_say_what_changed():
    """With blocks, each main test also runs with the pooled t and the within-cell bootstrap; the generated sentence
    names the layers that changed and the ratio of interval widths, from the numbers."""
    ds = synthetic_result(effect=0.6, n_blocks=40, seed=3)
    tests = A._tests_of(ds, "label", A.TARGET, SETTINGS, main_key="m", corpus="m", label="w",
                        blocks="exchangeability_block")  # fmt: skip
    test = tests[0]
    assert test.previous is not None and test.previous.attrs["statistic_name"] == "pooled"
    assert test.previous.attrs["bootstrap"] == "cells" and test.result.attrs["bootstrap"] == "t"
    assert test.result.attrs["statistic_name"] == "cr"
    row = change_row(test)
    new, old = test.result, test.previous
    width = (new.g_ci_high - new.g_ci_low).values / (old.g_ci_high - old.g_ci_low).values
    assert row["width_ratio"] == pytest.approx(np.median(width))
    now = set(new.layer.values[new.significant.values].tolist())
    before = set(old.layer.values[old.significant.values].tolist())
    assert row["appeared"] == stats.layer_span(now - before) and row["disappeared"] == stats.layer_span(before - now)
    sentence = change_sentence(test)
    assert sentence.startswith("Against the previous default") and f"{row['width_ratio']:.2f} times" in sentence
    paired = A.Test("p", "p", "w", new)
    assert change_sentence(paired) is None


def test_replication_table_runs_a_conjunction_per_model_and_per_corpus():
    """Two corpora of one model with the effect at the same layers replicate there; a model of another depth is
    compared on relative depth; clusters of opposite sign in two corpora are named."""
    run_a = type("Run", (), {})()
    run_a.slug = "a"
    up, down = synthetic_result(effect=1.0, seed=4), synthetic_result(effect=-1.0, seed=5)
    same = synthetic_result(effect=1.0, seed=6)
    settings = {**SETTINGS, "n_permutations": 999}  # Holm over 12 layers needs p < 0.05 / 12
    res = {k: A.compare_layers(v, "label", A.TARGET, settings, blocks="exchangeability_block")
           for k, v in (("up", up), ("down", down), ("same", same))}  # fmt: skip
    run_a.tests = [A.Test("mohx", "mohx", "w", res["up"]), A.Test("vua", "vua", "w", res["same"])]
    lines = "\n".join(replication_lines([run_a]))
    expected = stats.replicated_bands({"mohx": res["up"], "vua": res["same"]})
    assert len(expected) and f"layers {expected['first'].iloc[0]}-{expected['last'].iloc[0]} (+" in lines
    run_b = type("Run", (), {})()
    run_b.slug = "b"
    run_b.tests = [A.Test("mohx", "mohx", "w", res["up"]), A.Test("vua", "vua", "w", res["down"])]
    lines = "\n".join(replication_lines([run_a, run_b]))
    assert "| models | corpus mohx | cse | a, b |" in lines and "relative depth" in lines
    assert "`b`: significant clusters of opposite sign in different corpora at layers" in lines
    run_c = type("Run", (), {})()
    run_c.slug = "c"
    run_c.tests = [A.Test(k, k, "w", res[k]) for k in ("up", "same", "down")]
    lines = "\n".join(replication_lines([run_c]))
    assert "in at least 2 (u = 2, Simes" in lines  # the partial conjunction beside the full one
    two = stats.replicated_bands({k: res[k] for k in ("up", "same", "down")}, u=2)
    assert len(two) and f"layers {two['first'].iloc[0]}-{two['last'].iloc[0]} (+" in lines
    assert stats.replicated_bands({k: res[k] for k in ("up", "same", "down")}).empty  # one opposite result vetoes all


# --------------------------------------------------------------------------- cross-depth


def test_profiles_are_compared_on_cse_z_and_outside_boundary_layers():
    from cse_studies.cross_depth.measures import layer_profile
    from cse_studies.cross_depth.report import compared_profiles, similarity_table
    from cse_studies.cross_depth.run import binned_profiles

    def result(n_layers, boundary):
        rng = np.random.default_rng(n_layers)
        n = 50
        ds = xr.Dataset({"cse": (("token", "layer"), rng.random((n, n_layers))),
                         "scale_fraction": (("token", "layer", "scale"), rng.dirichlet(np.ones(4), (n, n_layers)))},
                        coords={"layer": np.arange(n_layers), "depth": ("layer", (np.arange(n_layers) + 1) / n_layers),
                                "scale": ["d1", "d2", "d3", "a3"], "is_word_start": ("token", np.ones(n, bool)),
                                "is_special": ("token", np.zeros(n, bool))})
        ds["cse_z"] = ds["cse"] * 2
        return ds.assign_coords(boundary_affected=("layer", np.arange(n_layers) < boundary)) if boundary else ds

    profile = layer_profile(result(12, 7))
    assert np.isnan(profile["cse_mean_outside"].values[:7]).all()
    assert np.isfinite(profile["cse_mean_outside"].values[7:]).all() and "z_mean" in profile
    entries = [{"slug": f"m{L}", "profiles": {"c": layer_profile(result(L, 7))}} for L in (12, 18)]
    binned = binned_profiles(entries)
    binned.attrs["boundary_marked"] = 1
    assert [v for v, _, _ in compared_profiles(binned)] == ["z_mean", "cse_mean_outside"]
    table = similarity_table(binned)
    assert set(table["profile"]) == {"cse_z", "CSE outside boundary"}
    outside = table.loc[(table["profile"] == "CSE outside boundary") & (table["corpus"] == "c")].iloc[0]
    assert outside["bins"] < 10  # early bins (boundary layers) are not compared on raw CSE
    binned.attrs["boundary_marked"] = 0
    assert [v for v, _, _ in compared_profiles(binned)] == ["z_mean", "cse_mean"]


def test_js_coupling_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    from cse_studies.cross_depth.measures import js_coupling

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(7, 5))
    p[2, 1] = [1.0, 0.0, 0.0, 0.0]  # zeros follow 0 log 0 = 0
    p[3, 4] = np.nan  # undefined cells are skipped
    got = js_coupling(p, chunk=3)
    want = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            vals = [jensenshannon(p[t, i], p[t, j], base=2) ** 2 for t in range(7)
                    if np.isfinite(p[t, i]).all() and np.isfinite(p[t, j]).all()]
            want[i, j] = np.mean(vals) if i != j else 0.0
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.allclose(got, got.T) and (got >= 0).all() and (got <= 1).all()
