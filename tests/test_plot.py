"""Tests of cse.plot and the `cse plot` command on synthetic results."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats as sps
from stats_data import make_result, write_synthetic_result

from cse import plot, stats
from cse.errors import CSEInputError


def test_group_profiles_are_t_intervals():
    ds = make_result(effect=1.0, nan_fraction=0.05, seed=2)
    prof = plot.group_profiles(ds, "label", where="is_word_start", ci=0.9)
    keep = ds.is_word_start.values & ~ds.is_special.values
    y = ds.cse.values[keep & (ds.label.values == "metaphor")]
    n = np.isfinite(y).sum(0)
    mean = np.nanmean(y, 0)
    half = sps.t.ppf(0.95, n - 1) * np.nanstd(y, 0, ddof=1) / np.sqrt(n)
    row = prof.sel(group="metaphor")
    np.testing.assert_allclose(row["mean"].values, mean, rtol=1e-12)
    np.testing.assert_allclose(row["ci_high"].values - row["mean"].values, half, rtol=1e-10)
    np.testing.assert_array_equal(row["n"].values, n)
    assert list(prof.group.values) == ["literal", "metaphor"] and "depth" in prof.coords


def test_plot_depth_profile_draws_groups_bands_and_clusters(tmp_path):
    ds = make_result(effect=1.2, seed=4)
    res = stats.compare(ds, "label", n_permutations=499, n_bootstrap=0, seed=0)
    fig = plot.plot_depth_profile(ds, "label", stats=res)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label().startswith("label = ")]
    assert [line.get_label() for line in lines] == ["label = literal (n = 220)", "label = metaphor (n = 220)"]
    np.testing.assert_allclose(lines[0].get_xdata(), ds.depth.values)
    # one shaded span (axvspan rectangles) covers the significant layers 3..6 and nothing else
    sig_depth = ds.depth.values[res.significant.values]
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
    assert len(spans) == 1 and ax.patches[0].get_label().startswith("significant (cluster")
    lo, hi = spans[0]
    assert lo < sig_depth.min() < sig_depth.max() < hi
    assert ds.depth.values[2] < lo and hi < ds.depth.values[7]
    assert len(ax.collections) == 2  # one band per group
    assert any(t.get_text() == "layer" for t in [a.xaxis.label for a in fig.axes[0].child_axes])
    path = tmp_path / "fig.png"
    fig.savefig(path)
    assert path.stat().st_size > 5000


def test_plot_hatches_boundary_layers_and_names_the_statistic():
    ds = make_result(effect=1.2, seed=4, boundary_layers=7)
    res = stats.compare(ds, "label", exchangeability_blocks="verb", n_permutations=199, n_bootstrap=0, seed=0)
    ax = plot.plot_depth_profile(ds, "label", stats=res).axes[0]
    boundary = [p for p in ax.patches if p.get_hatch()]
    assert len(boundary) == 1 and boundary[0].get_label().startswith("boundary-affected layers")
    lo, hi = boundary[0].get_x(), boundary[0].get_x() + boundary[0].get_width()
    assert lo < ds.depth.values[0] and ds.depth.values[6] < hi < ds.depth.values[7]
    significant = [p for p in ax.patches if not p.get_hatch()]
    assert significant and "within-block z, block-clustered SE" in significant[0].get_label()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("boundary-affected") for t in labels)
    assert not [p for p in plot.plot_depth_profile(ds, "label", shade_boundary=False).axes[0].patches]


def test_plot_draws_cse_z_with_the_null_line():
    ds = make_result(seed=3)
    ds["cse_z"] = ((ds.cse - 0.5) / 0.1).assign_attrs(units="1")
    ax = plot.plot_depth_profile(ds, "label", var="cse_z").axes[0]
    assert ax.get_ylabel().startswith("cse_z [1]")
    assert any(np.allclose(line.get_ydata(), 0) for line in ax.get_lines() if not line.get_label().startswith("label"))


def test_plot_on_given_axes_and_without_stats():
    from matplotlib.figure import Figure

    ds = make_result(seed=1)
    fig = Figure()
    ax = fig.add_subplot()
    out = plot.plot_depth_profile(ds, "label", ax=ax)
    assert out is fig and not ax.patches


def test_plot_rejects_mismatched_stats():
    ds = make_result(seed=1)
    other = stats.compare(make_result(n_layers=8, seed=1), "label", n_permutations=9, n_bootstrap=0)
    with pytest.raises(CSEInputError, match="'stats': its layers"):
        plot.plot_depth_profile(ds, "label", stats=other)
    with pytest.raises(CSEInputError, match="'by'.*exactly 2 distinct values"):
        plot.plot_depth_profile(ds, "verb")
    by_other = stats.compare(ds.assign_coords(label2=ds["label"]), "label2", n_permutations=9, n_bootstrap=0)
    with pytest.raises(CSEInputError, match="it tests by 'label2' but the profile shows 'label'"):
        plot.plot_depth_profile(ds, "label", stats=by_other)


@pytest.fixture
def result_file(tmp_path):
    return write_synthetic_result(tmp_path / "result.nc")


def test_plot_command_writes_figure(result_file, tmp_path):
    from click.testing import CliRunner

    from cse.cli import cli

    fig = tmp_path / "profile.png"
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--by", "label", "--n-permutations", "199",
                                   "-o", str(fig)])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # reuse a stats file
    st = tmp_path / "stats.nc"
    assert CliRunner().invoke(cli, ["stats", str(result_file), "--by", "label", "--n-permutations", "99",
                                    "--n-bootstrap", "0", "-o", str(st)]).exit_code == 0  # fmt: skip
    svg = tmp_path / "profile.svg"
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--by", "label", "--stats", str(st), "-o", str(svg)])
    assert run.exit_code == 0, run.output
    assert svg.read_text().lstrip().startswith("<?xml")
    assert not list(tmp_path.glob(".*partial"))
    # a Zarr stats file, as 'cse stats -o stats.zarr' writes it
    stz = tmp_path / "stats.zarr"
    assert CliRunner().invoke(cli, ["stats", str(result_file), "--by", "label", "--n-permutations", "99",
                                    "--n-bootstrap", "0", "-o", str(stz)]).exit_code == 0  # fmt: skip
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--by", "label", "--stats", str(stz), "-o", str(fig)])
    assert run.exit_code != 0 and "exists; pass overwrite=True" in str(run.exception)  # never replaced silently
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--by", "label", "--stats", str(stz), "-o", str(fig),
                                   "--overwrite"])
    assert run.exit_code == 0, run.output
    # the options of cse stats reach the test, cse_z included
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--by", "label", "--var", "cse_z", "--blocks", "verb",
                                   "--correction", "tfce", "--n-permutations", "99", "-o", str(tmp_path / "z.pdf")])
    assert run.exit_code == 0, run.output


@pytest.mark.parametrize(
    "args, match",
    [
        (["--by", "label", "-o", "fig.bmp"], "must end in .png"),
        (["--by", "nosuch", "-o", "fig.png"], "no token coordinate 'nosuch'"),
        (["--by", "label", "--stats", "missing.nc", "-o", "fig.png"], "'--stats'.*does not exist"),
    ],
)
def test_plot_command_errors(result_file, tmp_path, args, match):
    import re

    from click.testing import CliRunner

    from cse.cli import cli

    run = CliRunner().invoke(cli, ["plot", str(result_file), *args])
    assert isinstance(run.exception, CSEInputError), run.output
    assert re.search(match, str(run.exception))


# --------------------------------------------------------------------------- the top axis and the example


def test_profile_top_axis_ticks_are_whole_layers():
    ax = plot.plot_depth_profile(make_result(n_layers=30, seed=1), "label").axes[0]
    top = ax.child_axes[0]
    locs = top.xaxis.get_major_locator().tick_values(-0.5, 29.5)
    assert len(locs) >= 3 and np.array_equal(locs, np.round(locs))  # 0, 5, 10 ..., never 2.5


def _example_like(seed=0):
    """A synthetic result shaped like the built-in example's: label metaphorical/literal, target_idx."""
    ds = make_result(n_layers=30, boundary_layers=7, seed=seed)
    label = np.where(ds.label.values == "metaphor", "metaphorical", "literal")
    return ds.assign_coords(label=("token", label), target_idx=("token", np.full(ds.sizes["token"], 2)))


def test_example_summary_marks_and_shades_the_boundary_layers(tmp_path):
    from cse.example import depth_summary, plot_summary, summary_figure, summary_text

    table = depth_summary(_example_like())
    assert table["boundary_affected"].tolist() == [True] * 7 + [False] * 23
    lines = summary_text(table).splitlines()
    rows = {int(line.split()[0]): line for line in lines if line.split() and line.split()[0].isdigit()}
    assert sorted(rows) == list(range(30))
    assert all(rows[layer].rstrip().endswith("*") for layer in range(7))
    assert not any(rows[layer].rstrip().endswith("*") for layer in range(7, 30))
    assert any(line.startswith("* boundary-affected layers 0-6:") for line in lines)
    assert lines[-1].startswith("metaphorical - literal: mean")
    ax = summary_figure(table, "example").axes[0]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_label().startswith("boundary-affected layers 0-6")
    depth = table["depth"].to_numpy()
    lo, hi = hatched[0].get_x(), hatched[0].get_x() + hatched[0].get_width()
    assert lo < depth[0] and depth[6] < hi < depth[7]
    path = tmp_path / "ex.png"
    plot_summary(table, path, "example")
    from PIL import Image

    with Image.open(path) as image:
        assert image.text["Software"].startswith("cse ")


# --------------------------------------------------------------------------- one text's tokens


def _with_token_strings(ds, strings_by_text):
    strings = np.array(ds["token_str"].values, dtype=object)
    for text, strings_of_text in strings_by_text.items():
        idx = np.flatnonzero(ds.text.values == text)
        strings[idx[: len(strings_of_text)]] = strings_of_text
    return ds.assign_coords(token_str=("token", strings))


def _outlines(ax):
    return [p for p in ax.patches if not p.get_hatch()]


def test_plot_tokens_draws_the_texts_values_boundary_and_selection():
    ds = make_result(n_texts=4, n_tokens=12, n_layers=12, boundary_layers=7, seed=5)
    ds = _with_token_strings(ds, {2: ["<s>", " the", "end\n", "x" * 40, "$a$ b$", "\t"]})
    fig = plot.plot_tokens(ds, 2, where="position == 3 or position == 4")
    ax, bar = fig.axes[0], fig.axes[1]
    expected = ds.cse.values[ds.text.values == 2]
    np.testing.assert_array_equal(np.ma.filled(ax.images[0].get_array(), np.nan), expected.T)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:6] == ["<s>", "␣the", "end↵", "x" * 15 + "…", "$a$ b$", "⇥"]
    assert labels[6:] == [str(s) for s in ds.token_str.values[ds.text.values == 2][6:]]
    ticks = ax.get_xticklabels()
    assert ticks[0].get_fontstyle() == "italic" and ticks[1].get_fontstyle() == "normal"  # position 0 is special
    assert [t.get_fontweight() for t in ticks[2:6]] == ["normal", "bold", "bold", "normal"]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1 and (hatched[0].get_y(), hatched[0].get_height()) == (-0.5, 7)  # layers 0-6
    outline = _outlines(ax)
    assert len(outline) == 1 and (outline[0].get_x(), outline[0].get_width()) == (2.5, 2)  # positions 3-4
    mask = np.isin(ds.position.values, [3, 4])  # the same selection as a mask over every token of the result
    assert [(p.get_x(), p.get_width()) for p in _outlines(plot.plot_tokens(ds, 2, where=mask).axes[0])] == [(2.5, 2)]
    assert bar.get_ylabel() == "cse"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].startswith("boundary-affected layers") and "where position == 3" in legend[1]
    assert "special tokens" in legend[2]
    fig.savefig(BytesIO(), format="png")  # the dollars are drawn as text, not parsed as mathtext


def test_plot_tokens_splits_long_texts_into_rows_of_equal_cells():
    ds = make_result(n_texts=2, n_tokens=150, n_layers=6, seed=2)
    fig = plot.plot_tokens(ds, 1)
    rows = [ax for ax in fig.axes if ax.images]
    assert len(rows) == 3 and all(ax.get_xlim() == (-0.5, 59.5) for ax in rows)
    pieces = [np.ma.filled(ax.images[0].get_array(), np.nan).T for ax in rows]
    assert [len(p) for p in pieces] == [60, 60, 30]
    np.testing.assert_array_equal(np.concatenate(pieces), ds.cse.values[ds.text.values == 1])
    assert len([ax for ax in plot.plot_tokens(ds, 1, tokens_per_row=75).axes if ax.images]) == 2


def test_plot_tokens_token_axis_hidden_axis_labels_and_z_scores():
    ds = make_result(n_texts=3, n_tokens=12, n_layers=8, seed=3)
    token_axis = ds.assign_coords(boundary_affected=("token", ds.position.values < 7))
    ax = plot.plot_tokens(token_axis, 1).axes[0]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1 and (hatched[0].get_x(), hatched[0].get_width(), hatched[0].get_height()) == (-0.5, 7, 8)
    assert not [p for p in plot.plot_tokens(ds, 1).axes[0].patches]  # hidden axis: no boundary, nothing outlined
    assert not [p for p in plot.plot_tokens(token_axis, 1, shade_boundary=False).axes[0].patches]
    labelled = ds.assign_coords(label_seq=("token", np.where(ds.position.values == 0, -1, ds.position.values % 5 == 2)))
    outline = _outlines(plot.plot_tokens(labelled, 1, label="label_seq").axes[0])
    assert [(p.get_x(), p.get_width()) for p in outline] == [(1.5, 1), (6.5, 1)]  # positions 2 and 7
    ds["cse_z"] = (ds.cse - 0.5) / 0.1
    image = plot.plot_tokens(ds, 1, var="cse_z").axes[0].images[0]
    assert image.norm.vmin == -image.norm.vmax and image.get_cmap().name.startswith("RdBu_r")
    assert plot.plot_tokens(ds, 1, vmin=0.2, vmax=0.9).axes[0].images[0].norm.vmax == 0.9


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(text=99), CSEInputError, r"no text 99 in the result; it holds 4 texts from 0 to 3"),
    (dict(text=1, var="scale_fraction"), CSEInputError, r"'var': expected a \(token, layer\) variable"),
    (dict(text=1, label="nosuch"), CSEInputError, r"'label': expected a token coordinate"),
    (dict(text=1, tokens_per_row=0), CSEInputError, r"'tokens_per_row': expected a positive int"),
    (dict(text=1, where="__import__('os')"), CSEInputError, r"call"),
    (dict(text="1"), TypeError, r"'text': expected an int"),
    (dict(text=True), TypeError, r"'text': expected an int"),
])  # fmt: skip
def test_plot_tokens_errors(kwargs, error, match):
    ds = make_result(n_texts=4, n_tokens=5, n_layers=4, seed=0)
    with pytest.raises(error, match=match):
        plot.plot_tokens(ds, **kwargs)
    with pytest.raises(TypeError, match="'ds'"):
        plot.plot_tokens(ds.cse, 1)


def test_plot_tokens_on_netcdf_and_lazy_zarr_results(tmp_path):
    from cse.io import open_result, write_result

    ds = make_result(n_texts=5, n_tokens=9, n_layers=8, boundary_layers=7, seed=7)
    for name in ("r.nc", "r.zarr"):
        path = write_result(ds, tmp_path / name)
        with open_result(path, chunks={}) as opened:
            image = plot.plot_tokens(opened, 3).axes[0].images[0]
        np.testing.assert_array_equal(np.ma.filled(image.get_array(), np.nan).T, ds.cse.values[ds.text.values == 3])


def test_plot_command_draws_one_text(result_file, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cse.cli import cli

    fig = tmp_path / "tokens.png"
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--text", "3", "--where", "position == 2", "-o", str(fig)])
    assert run.exit_code == 0, run.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--text", "3", "--var", "cse_z"])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "result-text3.png").is_file()  # RESULT-textN.png in the current folder by default
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--text", "3"])
    assert "exists; pass overwrite=True" in str(run.exception)
    svg = tmp_path / "tokens.svg"
    run = CliRunner().invoke(cli, ["plot", str(result_file), "--text", "0", "--label", "is_word_start", "-o", str(svg)])
    assert run.exit_code == 0 and svg.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args, match", [
    (["--text", "99"], r"no text 99 in the result"),
    (["--text", "1", "--stats", "s.nc"], r"'--stats': it shades a depth profile"),
    (["--text", "1", "--var", "surprisal"], r"'var': expected a \(token, layer\) variable"),
    (["-o", "fig.png"], r"Missing option '--by'"),
    (["--by", "label"], r"Missing option '-o'"),
    (["--by", "label", "--label", "label", "-o", "fig.png"], r"'--label': it outlines tokens of --text N"),
])  # fmt: skip
def test_plot_command_token_errors(result_file, tmp_path, monkeypatch, args, match):
    import re

    from click.testing import CliRunner

    from cse.cli import cli

    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(cli, ["plot", str(result_file), *args])
    assert isinstance(run.exception, CSEInputError), run.output
    assert re.search(match, str(run.exception))
    assert not list(tmp_path.glob("*.png"))
