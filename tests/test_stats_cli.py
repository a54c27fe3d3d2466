"""Tests of the `cse stats` command on synthetic result files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from stats_data import make_result, write_synthetic_result

from cse import stats
from cse.cli import cli
from cse.errors import CSEInputError


@pytest.fixture
def result_file(tmp_path):
    return write_synthetic_result(tmp_path / "result.nc")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_stats_command_prints_table_and_writes_netcdf(result_file, tmp_path):
    out = tmp_path / "stats.nc"
    run = invoke("stats", result_file, "--by", "label", "--where", "is_word_start", "--n-permutations", 499,
                 "--n-bootstrap", 100, "--seed", 3, "-o", out)  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "mean(metaphor) - mean(literal)" in run.output
    assert "statistic: Welch t; 499 permutations; corrections: cluster (primary)" in run.output
    assert "p_cluster" in run.output and "layers 3-" in run.output
    saved = xr.open_dataset(out, engine="h5netcdf").load()
    direct = stats.compare(xr.open_dataset(result_file, engine="h5netcdf"), "label", where="is_word_start",
                           n_permutations=499, n_bootstrap=100, seed=3)  # fmt: skip
    for name in ("t", "p_corrected", "g_ci_low", "cluster_p"):
        np.testing.assert_array_equal(saved[name].values, direct[name].values)
    assert saved.attrs["seed"] == 3 and saved.attrs["where"] == "is_word_start"
    assert saved.attrs["cse_version"]  # written through cse.io.write_result: a package result
    assert not list(tmp_path.glob(".*partial"))  # the atomic write left nothing behind
    run = invoke("stats", result_file, "--by", "label", "--n-permutations", 9, "-o", out)
    assert isinstance(run.exception, CSEInputError) and "exists; pass overwrite=True" in str(run.exception)
    assert invoke("stats", result_file, "--by", "label", "--n-permutations", 9, "-o", out, "--overwrite").exit_code == 0


def test_stats_command_table_names_the_boundary_layers(result_file):
    run = invoke("stats", result_file, "--by", "label", "--n-permutations", 99, "--n-bootstrap", 0)
    assert run.exit_code == 0, run.output
    header = [line for line in run.output.splitlines() if "p_unc" in line][0]
    assert "boundary" in header.split()
    assert "boundary-affected layers (MODWT boundary coefficients" in run.output and ": 0-2" in run.output


def test_stats_command_options_reach_compare(result_file):
    run = invoke("stats", result_file, "--by", "label", "--groups", "metaphor", "literal", "--correction", "maxT",
                 "--correction", "tfce", "--correction", "maxT_stepdown", "--tail", "less", "--n-permutations", 99,
                 "--n-bootstrap", 0, "--blocks", "genre", "--tfce-e", 1, "--tfce-h", 3, "--wide")  # fmt: skip
    assert run.exit_code == 0, run.output
    # the default with blocks is the studentized (block-clustered) statistic (issue 18)
    assert "effect of literal against metaphor (within-block z: label effect over its block-clustered" in run.output
    # ... referred to the restricted wild cluster bootstrap (issue 26): 6**2 = 36 weight vectors, enumerated
    assert "36 restricted wild cluster bootstrap draws (Webb weights) by 'genre' blocks (2 blocks)" in run.output
    assert "null: wild; space: all 36 elements enumerated" in run.output and "N(0, 1)" not in run.output
    assert "corrections on the z scale" in run.output
    assert "corrections: maxT (primary), tfce, maxT_stepdown; tail -1" in run.output
    for column in ("p_maxT", "p_tfce", "p_maxT_stepdown", "tfce"):  # --wide: every correction's column
        assert column in run.output
    assert "clusters" not in run.output  # the cluster correction was not asked for
    run = invoke("stats", result_file, "--by", "label", "--n-permutations", 99, "--n-bootstrap", 0, "--blocks",
                 "genre", "--null", "permutation")  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "99 permutations within 'genre' blocks (2 blocks)" in run.output and "null: permutation" in run.output
    assert "cluster-forming threshold 12.7 (t(G - 1) = t(1))" in run.output
    run = invoke("stats", result_file, "--by", "label", "--null", "wild")
    assert isinstance(run.exception, CSEInputError) and "Invalid value for 'null'" in str(run.exception)


def test_stats_command_statistic_levels_and_bootstrap(result_file, tmp_path):
    """--statistic pooled gives the pooled-variance t of earlier releases, --bootstrap cells the within-cell
    bootstrap; --levels orders the groups (--groups is the old name); a small space is enumerated."""
    run = invoke("stats", result_file, "--by", "label", "--levels", "metaphor", "literal", "--blocks", "genre",
                 "--statistic", "pooled", "--bootstrap", "cells", "--n-permutations", 99, "--n-bootstrap", 50)
    assert run.exit_code == 0, run.output
    assert "statistic: within-block t (block fixed effects); 99 permutations within 'genre' blocks" in run.output
    assert "intervals: percentile bootstrap (cells)" in run.output and "ci_low" in run.output
    old = invoke("stats", result_file, "--by", "label", "--groups", "metaphor", "literal", "--n-permutations", 9,
                 "--n-bootstrap", 0)  # fmt: skip
    assert old.exit_code == 0 and "effect of literal against metaphor" not in old.output
    assert "mean(literal) - mean(metaphor)" in old.output
    run = invoke("stats", result_file, "--by", "label", "--statistic", "cr", "--n-permutations", 9)
    assert isinstance(run.exception, CSEInputError) and "'cr' clusters by exchangeability blocks" in str(run.exception)
    small = tmp_path / "small.nc"
    ds = make_result(n_texts=6, n_tokens=2, seed=1)
    from cse.io import write_result

    write_result(ds, small)
    run = invoke("stats", small, "--by", "label", "--n-permutations", 999, "--n-bootstrap", 0)
    assert run.exit_code == 0, run.output
    # two-sided: t and -t pair up in the 20 relabellings, so no p below 2 / 20 (issue 26)
    assert "null: permutation; space: all 20 elements enumerated, exact p; smallest attainable p 0.1" in run.output


def test_stats_command_covariates_and_cse_z(result_file, tmp_path):
    out = tmp_path / "z.nc"
    run = invoke("stats", result_file, "--by", "label", "--var", "cse_z", "--exchangeability-blocks", "genre",
                 "--covariate", "surprisal", "--covariate", "position", "--n-permutations", 99, "--n-bootstrap", 0,
                 "-o", out)  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "cse_z by label" in run.output
    assert "Freedman–Lane z (covariates: surprisal, position; block fixed effects)" in run.output
    saved = xr.open_dataset(out, engine="h5netcdf")
    assert saved.attrs["var"] == "cse_z" and saved.attrs["covariates"] == "surprisal, position"
    np.testing.assert_array_equal(saved.boundary_affected.values, np.arange(12) < 3)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--by", "colour"], "no token coordinate 'colour'"),
        (["--by", "label", "--where", "position >"], "cannot parse 'position >'"),
        (["--by", "label", "--where", "label.__class__"], r"attribute access \(\.__class__\) is not allowed"),
        (["--by", "label", "-o", "stats.csv"], "must end in .nc"),
        (["--by", "label", "--n-permutations", "1000000000"], r"'n_permutations'.*limit of 4 GiB"),
        (["--by", "label", "--seed", "-1"], r"'seed'"),
        (["--by", "label", "--covariate", "genre"], r"'covariates': 'genre' holds"),
    ],
)
def test_stats_command_input_errors(result_file, args, match):
    run = CliRunner().invoke(cli, ["stats", str(result_file), *args])
    assert isinstance(run.exception, CSEInputError), run.output
    assert re.search(match, str(run.exception))


def test_stats_command_missing_file():
    run = invoke("stats", "no/such/result.nc", "--by", "label")
    assert isinstance(run.exception, CSEInputError) and "does not exist" in str(run.exception)


def test_where_payload_is_refused_and_runs_nothing(result_file, tmp_path):
    marker = tmp_path / "pwned"
    payload = (f'a.__class__.__mro__[-1].__subclasses__()[140].__init__.__globals__["sys"]'
               f'.modules["os"].system("touch {marker}")')  # fmt: skip
    for command in ("stats", "plot"):
        extra = ["-o", str(tmp_path / "fig.png")] if command == "plot" else []
        run = CliRunner().invoke(cli, [command, str(result_file), "--by", "label", "--where", payload, *extra])
        assert isinstance(run.exception, CSEInputError), run.output
        assert "is not allowed in 'where'" in str(run.exception)
    assert not marker.exists()


def test_stats_cli_exits_2_with_one_line_for_a_missing_column(result_file):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "cse.cli", "stats", str(result_file), "--by", "colour"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for 'by'"), proc.stderr
    assert "Traceback" not in proc.stderr
