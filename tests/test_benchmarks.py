"""The scale benchmark runs its CPU row from a fresh clone (slow: builds a random GPT-2 124M)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_scale_benchmark_cpu_row(tmp_path, metaphor_dir):
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--data", str(metaphor_dir), "--models", "gpt2-124m",
         "--texts", "8", "--batch-size", "4", "--repeats", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    (row,) = results["rows"]
    assert row["model"] == "gpt2-124m" and row["n_layers"] == 12 and 120e6 < row["parameters"] < 130e6
    assert row["tokens"] > 8 and all(v > 0 for v in row["tokens_per_s"].values())
    assert "gpt2-124m" in proc.stdout and "overhead" in proc.stdout
