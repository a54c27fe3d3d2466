"""`cse study`: rerun one of the studies and write its folder — a plugin of the `cse` command line.

The studies package registers this command in the ``cse.commands`` entry-point group
(``pyproject.toml``); `cse.cli` finds it there, so nothing under `cse/` imports the
studies. Its options are declared here and parsed by `cse_studies.common`.
"""

from __future__ import annotations

import shlex
import sys
import time
import warnings
from pathlib import Path

import click

STUDIES = ("metaphor", "cross-depth")


@click.command("study")
@click.argument("name", type=click.Choice(STUDIES))
@click.option("--data", "data", type=click.Path(path_type=Path), default=None,
              help="Folder holding moh-x.csv and vua-seq-test.csv (e.g. ../shared/data/metaphor): adds the corpora "
                   "'mohx' and 'vua'.")
@click.option("--corpus", "corpora", multiple=True, metavar="NAME=PATH",
              help="A labelled corpus (CSV/TSV, Parquet, or a Hugging Face datasets folder of one split), "
                   "target-word (like MOH-X) or sequence (like VUA) format, detected from its columns. Repeatable.")
@click.option("--encoding", "encodings", multiple=True, metavar="NAME=ENCODING",
              help="Encoding of corpus NAME (default: detected: byte-order mark, else UTF-8, else cp1252).")
@click.option("--column", "columns", multiple=True, metavar="NAME.ROLE=COLUMN",
              help="Column of corpus NAME for ROLE (sentence, target, label, label_seq, pos_seq, genre, block) when "
                   "its name is not a usual one.")
@click.option("--model", "models", multiple=True,
              help="smollm2-135m (default), gemma-3-270m, a local path or a cached Hugging Face id. Repeatable.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder (new, empty, or written by cse study): CSE results (.nc), report.md, figures, "
                   "tables.")
@click.option("--cache", "cache", type=click.Path(path_type=Path), default=None,
              help="cross-depth: folder of cached CSE results to reuse (e.g. the metaphor study's --out); "
                   "default --out.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
@click.option("--n-pairs", type=int, default=200, show_default=True, help="metaphor: matched pairs.")
@click.option("--n-permutations", type=int, default=5000, show_default=True,
              help="metaphor: permutations / sign flips of the main tests (controls: at most 2000).")
@click.option("--hidden-null-permutations", type=int, default=50, show_default=True,
              help="metaphor: hidden-index permutations of the hidden-axis null (the dimension null).")
@click.option("--null-permutations", "old_null_permutations", type=int, default=None, hidden=True,
              help="Deprecated name of --hidden-null-permutations.")
@click.option("--depth-null-permutations", type=int, default=100, show_default=True,
              help="Layer-order permutations of the depth-axis null (cse_z); 0: none.")
@click.option("--sensitivity/--no-sensitivity", default=None,
              help="metaphor: rerun the main tests under 24 wavelet settings (haar, db2, db4, sym4 x J 2-4 x reflect, "
                   "periodic), re-measured from the stored Gram matrices [default: when the results store them, "
                   "which they do unless --no-sensitivity].")
@click.option("--limit", type=int, default=None, help="Use only the first N rows of each corpus.")
@click.option("--recompute", is_flag=True, help="Recompute CSE even where a cached result matches.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def study_command(name, data, corpora, encodings, columns, models, out, cache, seed, n_pairs, n_permutations,
                  hidden_null_permutations, old_null_permutations, depth_null_permutations, sensitivity, limit, recompute,
                  device, quiet):
    """Rerun study NAME (metaphor or cross-depth) and write it into --out.

    Corpora: --data DIR adds MOH-X ('mohx') and the VUA test split ('vua'); --corpus
    NAME=PATH adds any other file, e.g. --corpus vua_train=vua-seq-train.csv. Models:
    --model, repeatable; the report has one section per model and compares them on
    relative depth.
    """
    if quiet:  # before torch and transformers are imported: their bars read the environment then
        from cse.io import silence_progress_bars

        silence_progress_bars()
    from cse_studies.common import corpus_specs

    if old_null_permutations is not None:
        click.echo("Warning: --null-permutations of 'cse study' is deprecated (it is the hidden axis' null only); "
                   "use --hidden-null-permutations", err=True)
        hidden_null_permutations = old_null_permutations
    command = shlex.join(["cse", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("cse") else _command()
    started = time.time()

    def log(line):
        if not quiet:
            click.echo(f"[{time.time() - started:7.1f} s] {line}", err=True)

    specs = corpus_specs(data, corpora, encodings, columns)
    common = {"models": list(models) or [None], "corpora": specs, "seed": seed, "limit": limit,
              "depth_null_permutations": depth_null_permutations, "recompute": recompute, "device": device,
              "progress": not quiet, "command": command, "log": log}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*StringDType.*")
        if quiet:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        if name == "metaphor":
            from cse_studies.metaphor.run import run

            result = run(None, out, n_pairs=n_pairs, n_permutations=n_permutations,
                         null_permutations=hidden_null_permutations, sensitivity=sensitivity, **common)
        else:
            from cse_studies.cross_depth.run import run

            result = run(None, out, cache=cache, **common)
    click.echo(f"wrote {result['report']}")
    for slug, verdict in (result.get("verdict") or {}).items():
        click.echo(f"published finding, {slug}: {verdict['overall']} "
                   f"({', '.join(f'{k}: {v}' for k, v in verdict.items() if k != 'overall')})")


def _command() -> str:
    """The command line of this invocation rebuilt from its parameters (when not run as ``cse``).

    Every option whose value differs from its default is given, so the recorded
    command reproduces the run; ``-q`` does not change results and is left out.
    """
    ctx = click.get_current_context()
    words = ["cse", "study", ctx.params["name"]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if not isinstance(param, click.Option) or param.name == "quiet" or value == param.default \
                or (param.multiple and not value):
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            words.append(flag if value or not param.secondary_opts else max(param.secondary_opts, key=len))
        else:
            for item in value if param.multiple else [value]:
                words += [flag, str(item)]
    return shlex.join(words)
