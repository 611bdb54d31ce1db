"""Install this monorepo's distributions together from local paths (never by name from PyPI), for tox.

Editable: every plugins/*/ with a pyproject.toml, export/ and conformance/; built and installed as a regular
package: every examples/*/ (as a third party would install it). prime-core itself is installed by tox.
torch stays pinned through PIP_CONSTRAINT (constraints.txt), which tox sets.
Usage: python conformance/tools/install_local.py REPO_ROOT
"""

import glob
import os
import subprocess
import sys


def main(root: str) -> int:
    def dists(pattern):
        return sorted(d for d in glob.glob(os.path.join(root, pattern)) if os.path.isfile(os.path.join(d, "pyproject.toml")))

    args = []
    for d in dists("plugins/*/") + dists("conformance/"):
        args += ["-e", d]
    args += ["-e", os.path.join(root, "export") + "[onnx]"]  # the exporter suites need prime-export's [onnx] extra
    args += dists("examples/*/")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
