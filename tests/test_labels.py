"""Labels that read well (issue 25): short long_names with the definition in ``description``,
a ``cse stats`` table that fits 120 columns with its statistic column named for what it holds,
and profile figures that say what the test used and found, titled with the setting."""

from __future__ import annotations

import numpy as np
import pytest

import cse
from cse.schema import COORD_ATTRS, DESCRIPTIONS, VARIABLES, variable_attrs


def test_long_names_are_short_and_descriptions_say_the_rest():
    for name in VARIABLES:
        attrs = variable_attrs(name)
        assert len(attrs["long_name"]) <= 28, name
        assert len(attrs["description"]) > len(attrs["long_name"]), name
    assert set(DESCRIPTIONS) == set(VARIABLES)
    for name, attrs in COORD_ATTRS.items():
        assert len(attrs["long_name"]) <= 20 and attrs["description"], name
    assert COORD_ATTRS["layer"]["long_name"] == "layer"


def test_a_result_carries_both():
    ds = cse.conditional_scale_entropy(np.random.default_rng(0).standard_normal((8, 4, 16)))
    assert ds.cse.attrs["long_name"] == "CSE" and "entropy" in ds.cse.attrs["description"]


def _result(shift=0.0):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 6))
    y[20:, 2:4] += shift
    return cse.stats.compare(y, by=np.repeat(["a", "b"], 20), n_permutations=199, seed=1,
                             corrections=["cluster", "tfce", "maxT"])


def test_stats_table_fits_120_columns_and_wide_has_everything():
    from cse.commands.stats import format_table

    res = _result(1.5)
    narrow = format_table(res).splitlines()
    header = next(i for i, line in enumerate(narrow) if line.lstrip().startswith(("boundary", "diff")))
    table = narrow[header:header + 2 + res.sizes["layer"]]
    assert max(len(line) for line in table) <= 120, table
    wide = format_table(res, wide=True)
    assert "p_tfce" in wide and "p_maxT" in wide and "p_tfce" not in "\n".join(table)
    statistic = "z" if res.attrs.get("scale") == "z" else "t"
    assert f" {statistic} " in table[0] + " "


def test_profile_legend_says_what_the_test_used_and_found():
    pytest.importorskip("matplotlib")
    import xarray as xr

    rng = np.random.default_rng(0)
    ds = xr.Dataset({"cse": (("token", "layer"), rng.uniform(0.7, 0.9, (40, 8)))},
                    coords={"layer": np.arange(8), "label": ("token", np.repeat(["a", "b"], 20)),
                            "is_special": ("token", np.zeros(40, bool))},
                    attrs={"model": "m", "axis": "depth", "wavelet": "db2", "level": 2, "boundary": "periodic"})
    res = cse.stats.compare(ds, by="label", n_permutations=99, seed=0)
    fig = cse.plot.plot_depth_profile(ds, by="label", stats=res)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    if not res.significant.values.any():
        assert any(text.startswith("tested, nothing significant") for text in labels), labels
    assert "db2 J=2, periodic" in ax.get_title()
