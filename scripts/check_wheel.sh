#!/usr/bin/env bash
# The wheel works outside the checkout: build it, install it (not editable) with its dependencies into a
# fresh virtual environment, import every module, and train H2O for a few steps in an empty directory,
# which must write a complete ./results/h2o/<symmetry>/<date>_<time>/.
# Usage: scripts/check_wheel.sh [work folder]   (default: a temporary folder, removed afterwards)
set -euo pipefail
unset PYTHONPATH  # nothing from the checkout
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="${1:-$(mktemp -d)}"
[ $# -ge 1 ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
start=$SECONDS

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# setuptools warns that the config groups look like packages (they are package data): kept out of sight
"$work/venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/dist" "$repo" \
    2> "$work/build.log" || { cat "$work/build.log"; exit 1; }
wheel=("$work"/dist/siqml-*.whl)
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$repo/constraints.txt" "${wheel[0]}"
echo "check-wheel: built and installed ${wheel[0]##*/} in $((SECONDS - start)) s"

mkdir -p "$work/empty"
cd "$work/empty"
# every module of the source tree imports from the installed wheel (a subpackage missing from
# pyproject.toml's package list fails here), and nothing is imported from the checkout
modules=$(cd "$repo" && find siqml_cli -name '*.py' | sed 's|/__init__.py$||; s|\.py$||; s|/|.|g' | sort)
"$work/venv/bin/python" - "$repo" $modules <<'PY'
import importlib, sys
from pathlib import Path
repo = Path(sys.argv[1]).resolve()
for name in sys.argv[2:]:
    module = importlib.import_module(name)
    assert repo not in Path(module.__file__).resolve().parents, f"{name} imported from the checkout"
PY
"$work/venv/bin/siqml" train +molecule=h2o train.steps=20
run=$(find results/h2o -name run.json -printf '%h\n')
"$work/venv/bin/python" - "$run" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
record = json.loads((run / "run.json").read_text())
assert record["status"] == "complete", record
for name in ("config.yaml", "weights.npz", "mse.csv", "mse.md", "metrics.csv", "test_predictions.extxyz"):
    assert (run / name).is_file(), f"{run / name} missing"
print(f"check-wheel: {run} complete")
PY
echo "check-wheel: passed in $((SECONDS - start)) s"
