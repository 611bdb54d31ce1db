"""Start-up time of the ``prime`` command: ``prime --help``, ``prime plugins`` and ``prime idle-steps``.

Each command runs as a fresh process (``python -m prime_core …``) ``--repeats`` times per source tree, the trees
interleaved so that both see the same machine load; the table gives the median wall time and the ratio
before/after. ``--before DIR`` names another checkout of prime (e.g. ``git worktree add /tmp/before <commit>``):
its ``prime_core`` is put first on PYTHONPATH. Plugins installed in this environment belong to the current tree,
so the comparison loads the core alone (``PRIME_LOAD_PLUGINS=""``); a last column times the current tree with
every installed plugin. Prints a table and writes JSON.

    python bench/startup_bench.py --before /tmp/before [--repeats 7] [--json runs/bench/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "prime --help": ["--help"],
    "prime plugins": ["plugins"],
    "prime idle-steps (L=1024, ℓ=2, T=1024)": ["idle-steps", "--length", "1024", "--ell", "2", "--steps", "1024",
                                              "--runs", "1"],
}
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(args: list[str], tree: str, plugins: bool) -> float:
    env = dict(os.environ, PYTHONPATH=tree)
    if not plugins:
        env["PRIME_LOAD_PLUGINS"] = ""
    else:
        env.pop("PRIME_LOAD_PLUGINS", None)
    t0 = time.perf_counter()
    # from a neutral folder: `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH
    subprocess.run([sys.executable, "-m", "prime_core", *args], env=env, check=True, capture_output=True,
                   cwd=tempfile.gettempdir())
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="checkout of the earlier prime (its prime_core is used)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", default="runs/bench/startup.json")
    args = p.parse_args()
    runs = {name: {"before": [], "after": [], "after_plugins": []} for name in COMMANDS}
    for _ in range(args.repeats):
        for name, argv in COMMANDS.items():
            runs[name]["before"].append(timed(argv, args.before, plugins=False))
            runs[name]["after"].append(timed(argv, HERE, plugins=False))
            runs[name]["after_plugins"].append(timed(argv, HERE, plugins=True))
    rows = []
    print(f"{'command':<42} {'before s':>9} {'after s':>9} {'before/after':>13} {'after, all plugins s':>21}")
    for name, r in runs.items():
        med = {k: statistics.median(v) for k, v in r.items()}
        rows.append({"command": name, **{f"{k}_median_s": v for k, v in med.items()},
                     "ratio_before_over_after": med["before"] / med["after"], "repeats": args.repeats})
        print(f"{name:<42} {med['before']:9.3f} {med['after']:9.3f} {med['before'] / med['after']:12.1f}× "
              f"{med['after_plugins']:21.3f}")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"before": args.before, "rows": rows}, fh, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
