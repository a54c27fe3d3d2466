"""`cse study`: rerun one of the studies of `studies/` and write its folder."""

from __future__ import annotations

import shlex
import sys
import time
import warnings
from pathlib import Path

import click

from ..errors import CSEInputError

STUDIES = ("metaphor", "cross-depth")


@click.command("study")
@click.argument("name", type=click.Choice(STUDIES))
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="Folder holding moh-x.csv and vua-seq-test.csv (e.g. ../shared/data/metaphor).")
@click.option("--model", "models", multiple=True,
              help="Hugging Face id or local path (default: SmolLM2-135M-Instruct). cross-depth: repeat for "
                   "several models.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder: CSE results (.nc), report.md, figures, tables.")
@click.option("--cache", "cache", type=click.Path(path_type=Path), default=None,
              help="cross-depth: folder of cached CSE results to reuse (e.g. the metaphor study's --out); "
                   "default --out.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
@click.option("--n-pairs", type=int, default=200, show_default=True, help="metaphor: matched VUA pairs.")
@click.option("--n-permutations", type=int, default=5000, show_default=True,
              help="metaphor: permutations / sign flips of the main tests (controls: at most 2000).")
@click.option("--null-permutations", type=int, default=50, show_default=True,
              help="metaphor: dimension permutations of the hidden-axis null.")
@click.option("--limit", type=int, default=None, help="Use only the first N sentences of each data file.")
@click.option("--recompute", is_flag=True, help="Recompute CSE even where a cached result matches.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def study_command(name, data, models, out, cache, seed, n_pairs, n_permutations, null_permutations, limit,
                  recompute, device, quiet):
    """Rerun study NAME (metaphor or cross-depth) and write it into --out."""
    command = shlex.join(["cse", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("cse") else _command()
    started = time.time()

    def log(line):
        if not quiet:
            click.echo(f"[{time.time() - started:7.1f} s] {line}", err=True)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*StringDType.*")
        if quiet:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        if name == "metaphor":
            from cse_studies.metaphor.run import run

            if len(models) > 1:
                raise CSEInputError("Invalid value for '--model': the metaphor study takes one model; "
                                    "give several to cross-depth")
            result = run(data, out, models[0] if models else None, seed=seed, n_pairs=n_pairs,
                         n_permutations=n_permutations, null_permutations=null_permutations, limit=limit,
                         recompute=recompute, device=device, progress=not quiet, command=command, log=log)
        else:
            from cse_studies.cross_depth.run import run

            result = run(data, out, list(models) or [None], cache=cache, seed=seed, limit=limit,
                         recompute=recompute, device=device, progress=not quiet, command=command, log=log)
    click.echo(f"wrote {result['report']}")
    verdict = result.get("verdict")
    if verdict:
        click.echo(f"published finding: {verdict['overall']} "
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
        if not isinstance(param, click.Option) or param.name == "quiet" or value == param.default:
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            words.append(flag)
        else:
            for item in value if param.multiple else [value]:
                words += [flag, str(item)]
    return shlex.join(words)
