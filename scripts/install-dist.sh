#!/usr/bin/env bash
# Install prime's distributions from a folder of built files (scripts/build-dist.sh) into the active Python
# ($PYTHON, default python): their third-party requirements from the package index first, torch pinned by
# constraints.txt, then prime's own distributions with --no-index, so that they can only come from the folder.
# Usage: scripts/install-dist.sh DIST [REQUIREMENT ...]   (default: every distribution, prime-export[onnx], prime-plugin-text[lmeval,data])
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=$(cd "$1" && pwd); shift
PY=${PYTHON:-python}
WANT=("$@")
[ ${#WANT[@]} -gt 0 ] || WANT=(prime-core prime-plugin-dit "prime-plugin-text[lmeval,data]" prime-plugin-trainer prime-plugin-uvit
                               prime-plugin-images "prime-export[onnx]" prime-conformance prime-plugin-example prime-plugin-serve)
export PIP_CONSTRAINT="$ROOT/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
REQ=$(mktemp "${TMPDIR:-/tmp}/prime-req.XXXXXX")
trap 'rm -f "$REQ"' EXIT
"$PY" "$ROOT/scripts/dist_requirements.py" "$DIST" "${WANT[@]}" > "$REQ"
"$PY" -m pip install -q -r "$REQ"
"$PY" -m pip install -q --no-index --find-links "$DIST" "${WANT[@]}"
"$PY" -m pip check
