#!/usr/bin/env bash
# Create .venv (if missing) and install prime-core, every plugin under plugins/, export/ and conformance/,
# editable, with torch pinned by constraints.txt. Usage: scripts/install.sh [extra pip args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q --upgrade pip >/dev/null
args=(-e ".[test]")
for d in plugins/*/ export conformance; do
  [ -f "$d/pyproject.toml" ] && args+=(-e "$d")
done
pip install -q "${args[@]}" "$@"
