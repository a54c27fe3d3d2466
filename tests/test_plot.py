"""Tests of cse.plot and the `cse plot` command on synthetic results."""

from __future__ import annotations

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
    assert run.exit_code != 0 and "exists; pass --overwrite" in str(run.exception)  # never replaced silently
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
