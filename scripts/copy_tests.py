"""Copy the test folders of the plugins and export/ out of the checkout (for testing installed wheels).

Run from a copy, the tests import prime's distributions from site-packages only: pytest's default import mode
would otherwise put the checkout on sys.path (export/tests is a package inside the `export` folder).
``export/tests`` becomes ``DEST/export_tests`` (a package: its relative imports keep working).
Usage: python scripts/copy_tests.py DEST [--with-core]   (--with-core: also tests/, conformance/tests, examples/*/tests)
"""

import glob
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(dest: str, with_core: bool) -> int:
    pairs = [(d, os.path.join(dest, os.path.basename(os.path.dirname(d)).replace("-", "_") + "_tests"))
             for d in sorted(glob.glob(os.path.join(ROOT, "plugins", "*", "tests")))]
    pairs.append((os.path.join(ROOT, "export", "tests"), os.path.join(dest, "export_tests")))
    if with_core:
        pairs += [(d, os.path.join(dest, "example_" + os.path.basename(os.path.dirname(d)).replace("-", "_")))
                  for d in sorted(glob.glob(os.path.join(ROOT, "examples", "*", "tests")))]
        pairs += [(os.path.join(ROOT, "tests"), os.path.join(dest, "core_tests")),
                  (os.path.join(ROOT, "conformance", "tests"), os.path.join(dest, "conformance_tests"))]
    shutil.rmtree(dest, ignore_errors=True)
    for src, dst in pairs:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        print(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--with-core" in sys.argv[2:]))
