"""How far a Dask run is from a single-process run, at equal and at unequal torch threads.

The same MOH-X sentences through the default model (CPU), computed

(a) in this process with ``threads=1`` and with ``threads=2``,
(b) on a local Dask cluster of 2 workers (each torch at one thread, Dask's default),
(c) on the same cluster with ``threads=2`` on every worker,

and the largest absolute difference of every variable between the runs. Runs at equal
threads per process must agree exactly (the README's guarantee); the others show what
float32 sums in another order cost.

Run: ``.venv/bin/python benchmarks/distributed_identity.py [--data ../shared/data/metaphor] [--texts 60]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, save, table  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "metaphor"
VARIABLES = ("cse", "scale_fraction", "update_norm", "surprisal")


def runs(data: Path, n_texts: int, batch_size: int) -> dict:
    import cse
    from cse.io import read_texts

    frame = read_texts(data / "moh-x.csv", text_column="sentence").iloc[:n_texts]
    tmp = Path(tempfile.mkdtemp(prefix="cse-identity-"))
    common = {"device": "cpu", "batch_size": batch_size, "command": "benchmark"}
    out = {
        "local, 1 thread": cse.compute(frame, None, threads=1, **common),
        "local, 2 threads": cse.compute(frame, None, threads=2, **common),
        "2 Dask workers, 1 thread each": cse.compute(frame, None, workers=2, output=tmp / "w1.zarr", **common),
        "2 Dask workers, 2 threads each": cse.compute(frame, None, workers=2, threads=2, output=tmp / "w2.zarr",
                                                      **common),
    }
    return {name: ds.load() for name, ds in out.items()}


def differences(results: dict) -> list[dict]:
    pairs = [("local, 1 thread", "2 Dask workers, 1 thread each"),
             ("local, 2 threads", "2 Dask workers, 2 threads each"),
             ("local, 2 threads", "2 Dask workers, 1 thread each"),
             ("local, 1 thread", "local, 2 threads")]
    rows = []
    for a, b in pairs:
        row = {"run": a, "against": b}
        for name in VARIABLES:
            x, y = results[a][name].values, results[b][name].values
            both = np.isfinite(x) & np.isfinite(y)
            row[name] = float(np.abs(x[both] - y[both]).max()) if both.any() else 0.0
        row["identical"] = all(row[name] == 0.0 for name in VARIABLES)
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--texts", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed_identity.json")
    args = parser.parse_args(argv)
    if not (args.data / "moh-x.csv").is_file():
        parser.error(f"MOH-X not found under {args.data}; pass --data")
    rows = differences(runs(args.data, args.texts, args.batch_size))
    print(f"{args.texts} MOH-X sentences, default model, CPU; largest absolute difference per variable")
    print(table([{k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
                ["run", "against", *VARIABLES, "identical"]))
    save({"machine": machine(), "texts": args.texts, "batch_size": args.batch_size, "rows": rows}, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
