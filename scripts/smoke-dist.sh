#!/usr/bin/env bash
# Install the built distributions into a fresh virtual environment the way a user would, and smoke-test them
# from a folder outside the checkout, so nothing can pass by importing from the source tree:
#   1. third-party requirements of the wheels from the package index (torch pinned by constraints.txt);
#   2. prime's own distributions from the built files only: pip install --no-index --find-links DIST …;
#   3. in a temporary folder: prime plugins, prime config list, a tiny `prime run --config main`, prime sample,
#      python -m export.onnx, and the one-line notice that prime-core[plots] is missing (it is, on purpose).
# Usage: scripts/smoke-dist.sh [DIST]  (default dist/, as written by scripts/build-dist.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=$(cd "${1:-$ROOT/dist}" && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prime-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PIP_CONSTRAINT="$ROOT/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
DISTS=(prime-core prime-plugin-dit prime-plugin-text prime-plugin-trainer prime-plugin-uvit prime-plugin-images
       "prime-export[onnx]" prime-conformance prime-plugin-serve)
"$PY" -m venv "$WORK/venv"
. "$WORK/venv/bin/activate"
cd "$WORK"   # outside the checkout from here on
echo "smoke: third-party requirements from the index, then prime's distributions from $DIST only (--no-index)"
PYTHON=python bash "$ROOT/scripts/install-dist.sh" "$DIST" "${DISTS[@]}"
python - "$ROOT" <<'PY'
import sys, importlib
root = sys.argv[1]
for mod in ("prime_core", "prime_plugin_dit", "prime_plugin_text", "prime_plugin_serve", "export", "conformance"):
    path = importlib.import_module(mod).__file__
    assert not path.startswith(root + "/"), f"{mod} imported from the checkout: {path}"
    assert "site-packages" in path, path
import prime_core
print("smoke: prime_core", prime_core.__version__, "from", prime_core.__file__)
PY
set -x
prime plugins
prime config list
prime config show main > my-main.toml
# a tiny main job from the shipped config (3 steps, small batch, few samples and eval sequences): ~1 min
prime run --config main --set train.steps=3 --set train.batch_size=4 --set train.warmup=0 \
  --set sample.num_samples=2 --set sample.steps=4 --set eval.max_sequences=8 --set eval.mc_samples=1 \
  --set eval.tstep_steps=4 --out run --quiet 2> run.err
cat run.err
grep -q "pip install 'prime-core\[plots\]'" run.err   # matplotlib is not installed here: said in one line
test -f run/checkpoint.safetensors -a -f run/report.md
prime sample run/checkpoint.safetensors -n 2 --steps 4 --quiet
prime run --config my-main.toml --set train.steps=1 --set train.batch_size=2 --set sample.num_samples=1 \
  --set sample.steps=2 --set eval.max_sequences=4 --set eval.mc_samples=1 --set eval.tstep_steps=2 \
  --out run2 --quiet 2>/dev/null | tail -1
python -m export.onnx run/checkpoint.safetensors -o step.onnx
test -f step.onnx
prime serve --help | grep -q -- "--max-batch-rows"
# prime serve from the wheels: start it on a free port, one completion with a seed, then SIGTERM (exit 0)
python - <<'PY'
import json, re, signal, subprocess, sys, urllib.request
p = subprocess.Popen(["prime", "serve", "run/checkpoint.safetensors", "--port", "0"], stdout=subprocess.PIPE, text=True)
url = re.search(r"http://\S+", p.stdout.readline()).group(0)
req = urllib.request.Request(url + "/v1/completions", json.dumps({"prompt": "", "max_tokens": 4, "steps": 4, "seed": 1}).encode(),
                             {"Content-Type": "application/json"})
body = json.load(urllib.request.urlopen(req, timeout=120))
assert body["object"] == "text_completion" and len(body["choices"]) == 1, body
p.send_signal(signal.SIGTERM)
assert p.wait(timeout=60) == 0
print("smoke: prime serve answered", body["usage"])
PY
{ set +x; } 2>/dev/null
echo "smoke: OK (wheel-only install, outside the checkout)"
