#!/usr/bin/env bash
# Install everything into .venv and run the test suite (unit tests, then the conformance suites).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
python -m pytest -q -p no:cacheprovider "$@"
# the conformance suites over every installed component (core, plugins, export, examples/): docs/plugins.md
python -m pytest -q -p no:cacheprovider --pyargs conformance
