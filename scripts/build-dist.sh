#!/usr/bin/env bash
# Build a wheel and an sdist of every distribution in this repository into one folder (default: dist/), with
# `python -m build` (the wheel is built from the sdist, so an incomplete sdist fails here), then `twine check`.
# Usage: [PYTHON=python3.11] scripts/build-dist.sh [OUTDIR]        Install from the folder: docs/install.md
# build and twine run in a throw-away virtual environment made with $PYTHON (default python3): the build never
# installs anything into the checkout's .venv or any other environment.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist}
BUILD_ENV=$(mktemp -d)
trap 'rm -rf "$BUILD_ENV"' EXIT
"${PYTHON:-python3}" -m venv "$BUILD_ENV"
PY="$BUILD_ENV/bin/python"
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
"$PY" -m pip install -q build twine
mkdir -p "$OUT"
rm -f "$OUT"/prime_*.whl "$OUT"/prime_*.tar.gz
dists=(.)
for d in plugins/*/ export/ conformance/ examples/*/; do
  [ -f "$d/pyproject.toml" ] && dists+=("${d%/}")
done
for d in "${dists[@]}"; do
  echo "build-dist: $d"
  "$PY" -m build -q --outdir "$OUT" "$d" > "$OUT/.build.log" 2>&1 || { cat "$OUT/.build.log" >&2; exit 1; }
  if grep -qiE "deprecat|SetuptoolsWarning|BuildBackendWarning" "$OUT/.build.log"; then
    cat "$OUT/.build.log" >&2; echo "build-dist: $d: the build warned (above)" >&2; exit 1
  fi
done
rm -f "$OUT/.build.log"
"$PY" -m twine check --strict "$OUT"/*.whl "$OUT"/*.tar.gz
ls -1 "$OUT"
