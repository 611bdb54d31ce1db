"""Print the third-party requirements of the wheels in a folder (one per line), leaving out the folder's own
distributions, so that those can then be installed from the folder alone (``pip install --no-index``).

Usage: python scripts/dist_requirements.py DIST [NAME[EXTRAS] ...]   (default: every wheel in DIST, no extras)
Runs on a bare Python (pip's vendored ``packaging`` when ``packaging`` is not installed).
"""

import glob
import os
import re
import sys
import zipfile
from email.parser import Parser

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a fresh virtual environment has pip only
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name


def wheel_metadata(dist: str) -> dict:
    out = {}
    for whl in glob.glob(os.path.join(dist, "*.whl")):
        with zipfile.ZipFile(whl) as zf:
            name = next(n for n in zf.namelist() if re.match(r"[^/]+\.dist-info/METADATA$", n))
            meta = Parser().parsestr(zf.read(name).decode("utf-8"))
        out[canonicalize_name(meta["Name"])] = meta.get_all("Requires-Dist") or []
    return out


def main(dist: str, wanted: list[str]) -> int:
    meta = wheel_metadata(dist)
    todo = [Requirement(w) for w in wanted] or [Requirement(n) for n in meta]
    seen, reqs = set(), []
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        if key[0] not in meta:
            sys.exit(f"dist_requirements: {req.name} is not among the wheels in {dist}")
        for text in meta[key[0]]:
            r = Requirement(text)
            if r.marker and not any(r.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                continue
            r.marker = None
            if canonicalize_name(r.name) in meta:
                todo.append(r)  # one of ours: from the folder, but follow its requirements
            elif str(r) not in reqs:
                reqs.append(str(r))
    print("\n".join(sorted(reqs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
