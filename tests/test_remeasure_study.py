"""The metaphor study's sensitivity analysis (issue 19): the main tests under other wavelets, levels, boundaries.

The band table is checked on constructed layer tables (every verdict), and the whole
path -- cached results with Gram matrices, re-measured per setting, the study's own
test call, the report's table, figure and CSV -- on a tiny random Llama over the first
sentences of the real corpora (skips without them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cse.errors import CSEInputError
from cse_studies.metaphor import sensitivity as S

SETTINGS = ["haar J=3 reflect", "db2 J=2 periodic", "db4 J=3 reflect"]


def _layers(signs: dict, boundary: dict | None = None, n_layers: int = 8) -> pd.DataFrame:
    """A layers table of one test: setting -> list of signs per layer (and boundary masks)."""
    rows = []
    for setting, values in signs.items():
        edge = (boundary or {}).get(setting, [False] * n_layers)
        rows += [("mohx", "cse", setting, layer, s, b) for layer, (s, b) in enumerate(zip(values, edge))]
    return pd.DataFrame(rows, columns=["test", "var", "setting", "layer", "sign", "boundary"])


def test_bands_merge_overlapping_clusters_across_settings_and_count_them():
    layers = _layers({
        "haar J=3 reflect": [0, 1, 1, 1, 0, 0, -1, -1],
        "db2 J=2 periodic": [0, 0, 0, 1, 1, 0, -1, 0],
        "db4 J=3 reflect": [1, 0, 0, 0, 0, 0, 0, 0],
    })
    bands = S.band_table(layers, SETTINGS, "haar J=3 reflect")
    assert list(bands["layers"]) == ["0", "1-4", "6-7"]
    one, positive, negative = bands.to_dict("records")
    assert (one["sign"], one["holds"], one["study_setting"]) == ("+", 1, False)
    assert one["verdict"] == "holds in one setting only (db4 J=3 reflect)"
    assert (positive["holds"], positive["settings"]) == (2, "haar J=3 reflect; db2 J=2 periodic")
    assert positive["verdict"] == "holds in 2 of 3 settings" and positive["study_setting"]
    assert (negative["sign"], negative["holds"]) == ("-", 2)


def test_verdicts_say_where_the_boundary_covers_a_band():
    signs = {s: [1, 1, 0, 0, 0, 0, 0, 0] for s in SETTINGS}
    covers = {"haar J=3 reflect": [True] * 8, "db2 J=2 periodic": [True, True] + [False] * 6,
              "db4 J=3 reflect": [True] * 8}
    band, = S.band_table(_layers(signs, covers), SETTINGS, "haar J=3 reflect").to_dict("records")
    assert band["verdict"] == "holds in all 3 settings; in each of them the boundary covers it (boundary-dependent)"
    covers["db2 J=2 periodic"] = [True] + [False] * 7  # layer 1 of the cluster is outside the boundary there
    band, = S.band_table(_layers(signs, covers), SETTINGS, "haar J=3 reflect").to_dict("records")
    assert (band["boundary_covers"], band["verdict"]) == (2, "holds in all 3 settings; in 2 of them the boundary covers it")


def test_no_cluster_anywhere_gives_no_band():
    bands = S.band_table(_layers({s: [0] * 8 for s in SETTINGS}), SETTINGS, "haar J=3 reflect")
    assert bands.empty and "verdict" in bands.columns


def test_grid_is_the_issue_s_24_settings():
    assert len(S.GRID) == 24 and len(set(S.GRID)) == 24
    assert {w for w, _, _ in S.GRID} == {"haar", "db2", "db4", "sym4"} and {j for _, j, _ in S.GRID} == {2, 3, 4}


# --- the whole path on a tiny model --------------------------------------------------


def _with_gram(monkeypatch):
    """Make the study's cache store Gram matrices on the depth axis (what save=["gram"] does)."""
    import torch

    import cse
    from cse.measure import reduce_updates
    from cse.settings import MeasureSettings
    from cse_studies.metaphor import plan

    original = plan.cached_compute
    defaults = MeasureSettings.resolve("depth", "haar", 3)

    def cached_compute(frame, path, model, tokenizer, **kwargs):
        ds = original(frame, path, model, tokenizer, **kwargs)
        if kwargs.get("axis", "depth") != "depth" or "gram" in ds:
            return ds
        grams = []
        for text in pd.unique(ds["text"].values):
            ids = torch.as_tensor(ds["token_id"].values[ds["text"].values == text])
            grams.append(reduce_updates(cse.layer_updates(model, ids), defaults, gram=True)["gram"])
        return ds.assign(gram=(("token", "layer", "layer2"), np.concatenate(grams)))

    monkeypatch.setattr(plan, "cached_compute", cached_compute)


GRID = (("haar", 2, "reflect"), ("db2", 2, "periodic"), ("haar", 4, "reflect"))


def test_the_study_reports_its_sensitivity(metaphor_dir, tmp_path, monkeypatch):
    from cse_studies.metaphor.run import run
    from test_studies import tiny_llama

    _with_gram(monkeypatch)
    result = run(metaphor_dir, tmp_path, loaded=[tiny_llama()], limit=30, n_pairs=8, n_permutations=99,
                 n_bootstrap=0, null_permutations=4, depth_null_permutations=8, sensitivity=True,
                 sensitivity_grid=GRID)
    (slug,) = result["verdict"]
    text = (tmp_path / "report.md").read_text()
    assert "### Sensitivity to the wavelet, level and boundary rule" in text
    assert "Settings the model cannot take: haar J=4 reflect (2^4 = 16 > 8 blocks)." in text
    bands = pd.read_csv(tmp_path / slug / "sensitivity.csv")
    assert set(bands.columns) >= {"test", "var", "sign", "layers", "holds", "boundary_covers", "verdict"}
    assert (bands["n_settings"] == 2).all() and (bands["holds"] <= 2).all()
    assert set(bands["var"]) <= {"cse", "cse_z"}
    if len(bands):
        assert (tmp_path / slug / "sensitivity.png").stat().st_size > 0
        for row in bands.itertuples():
            assert f"| {row.test} | {row.var} | {row.sign} | {row.layers} | {row.holds} / 2 |" in text


def test_the_main_tests_rerun_equal_the_studys_own_in_its_setting(metaphor_dir, tmp_path, monkeypatch):
    """In the study's own setting, re-measured from the Gram matrices, each main test finds the
    clusters the study's test found with the same permutations."""
    from cse_studies.metaphor.run import run
    from test_studies import tiny_llama

    _with_gram(monkeypatch)
    calls = {}
    original = S.run_sensitivity

    def spy(results, tests, corpora, pairs, **kwargs):
        calls.update(tests=tests, sens=original(results, tests, corpora, pairs, **kwargs))
        return calls["sens"]

    monkeypatch.setattr(S, "run_sensitivity", spy)
    run(metaphor_dir, tmp_path, loaded=[tiny_llama()], limit=30, n_pairs=8, n_permutations=99, n_bootstrap=0,
        n_control_permutations=99, null_permutations=4, depth_null_permutations=8,
        sensitivity_grid=(("haar", 3, "reflect"),))
    sens = calls["sens"]
    assert sens.settings == ["haar J=3 reflect"] == [sens.study_setting]
    for t in calls["tests"]:
        if t.role != "main" or t.corpus == "pairs":
            continue
        mine = sens.layers.loc[(sens.layers["test"] == t.key) & (sens.layers["var"] == t.var)]
        res = t.result
        expected = np.zeros(res.sizes["layer"], dtype=int)
        for k in range(res.sizes.get("cluster", 0)):
            if res["cluster_p"].values[k] <= 0.05:
                inside = (res["layer"].values >= res["cluster_start"].values[k]) & (
                    res["layer"].values <= res["cluster_stop"].values[k])
                expected[inside] = 1 if res["cluster_sign"].values[k] > 0 else -1
        np.testing.assert_array_equal(mine["sign"].to_numpy(), expected)


def test_without_gram_matrices_it_says_why_or_refuses():
    import xarray as xr

    from cse_studies.metaphor.analysis import Test

    ds = xr.Dataset({"cse": (("token", "layer"), np.zeros((2, 8)))},
                    attrs={"wavelet": "haar", "level": 3, "boundary": "reflect"})
    test = Test("mohx", "mohx", "target word", xr.Dataset(attrs={"where": "target_token == 1", "var": "cse"}))
    sens = S.run_sensitivity({"mohx-depth": ds}, [test], [], None)
    assert sens.reason.startswith("the cached depth-axis results (mohx-depth) carry no Gram matrices")
    assert sens.study_setting == "haar J=3 reflect" and sens.bands.empty
    with pytest.raises(CSEInputError, match=r"cannot run the sensitivity analysis: .* save=\['gram'\]"):
        S.run_sensitivity({"mohx-depth": ds}, [test], [], None, required=True)
