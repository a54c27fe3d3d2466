#!/usr/bin/env bash
# Build the documentation site (docs/ -> docs/_build/html) with zero warnings, then check it
# in headless Chromium (scripts/docs_check.py). Offline: the gallery runs on the installed
# offline models. Installs docs/requirements.txt into .venv and Debian's chromium when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
py="$venv/bin/python"
[ -x "$py" ] || { echo "docs.sh: $py not found; run 'bash scripts/setup.sh' first" >&2; exit 2; }
if ! "$py" -c "import sphinx, pydata_sphinx_theme, numpydoc, sphinx_gallery, sphinx_click, myst_parser" 2>/dev/null; then
  "$py" -m pip install --disable-pip-version-check -q -c constraints.txt -r docs/requirements.txt
fi
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
start=$(date +%s)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=agg
"$py" -m sphinx -W --keep-going -q -b html docs docs/_build/html
built=$(( $(date +%s) - start ))
"$py" scripts/docs_check.py docs/_build/html
echo "docs: built in ${built} s, checked in $(( $(date +%s) - start - built )) s: docs/_build/html/index.html"
