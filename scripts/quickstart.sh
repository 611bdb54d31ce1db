#!/usr/bin/env bash
# The main job (the config `main`, shipped in prime-plugin-text): install everything, then train, sample,
# evaluate and write a report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
exec prime run --config "${PRIME_CONFIG:-main}" --out "${PRIME_OUT:-runs/main}" --force "$@"
