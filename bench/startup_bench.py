"""Start-up time of the ``prime`` command: ``prime --help``, ``prime plugins`` and ``prime idle-steps``.

Each command runs as a fresh process (``python -m prime_core …``) ``--repeats`` times per source tree, the trees
interleaved so that both see the same machine load; the table gives the median wall time and the ratio
before/after. ``--before DIR`` names another checkout of prime (e.g. ``git worktree add /tmp/before <commit>``):
its ``prime_core`` is put first on PYTHONPATH. Plugins installed in this environment belong to the current tree,
so the comparison loads the core alone (``PRIME_LOAD_PLUGINS=""``); a last column times the current tree with
every installed plugin. Prints a table and writes JSON.

    python bench/startup_bench.py --before /tmp/before [--repeats 7] [--json runs/bench/startup.json]

Against ``import torch`` (issue 21 item 2): without ``--before``, each repeat also times ``python -c "import
torch"`` and ``prime sample TOY -n 1 --steps 1 --json --quiet --show 0`` (process start to the first — and only —
sampler step, then exit) on a toy checkpoint trained here for two steps; the table adds each command's time over
``import torch`` (target for ``prime sample``: ≤ 0.5 s), all plugins loaded, as users run it.

    python bench/startup_bench.py --over-torch [--before DIR] [--repeats 7] [--json runs/bench/startup-over-torch.json]

With ``--before DIR`` the sample command is also timed with that checkout's ``prime_core`` (same plugins). Each
row gives wall and CPU (user + sys) time; bytecode caches are on (``PYTHONDONTWRITEBYTECODE`` dropped), as for an
installed package.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def timed_python(code: list[str], tree: str | None = None) -> tuple[float, float]:
    """(wall s, CPU s = user + sys) of ``python CODE…`` as a fresh process, from a neutral folder, one thread,
    with bytecode caches as an installed package has them (``PYTHONDONTWRITEBYTECODE`` dropped: without .pyc
    files every prime module is compiled at every start). The CPU time is less sensitive to other processes."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PRIME_LOAD_PLUGINS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if tree:  # an earlier checkout's prime_core first on the path (`--before`)
        env["PYTHONPATH"] = tree
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *code], env=env, check=True, capture_output=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def toy_checkpoint() -> str:
    """A toy-2d checkpoint (configs/toy2d.toml, two training steps) in a temporary folder."""
    out = tempfile.mkdtemp(prefix="startup-toy-")
    subprocess.run([sys.executable, "-m", "prime_core", "train", "--config", "toy2d", "--out", out, "--quiet",
                    "--set", "train.steps=2"], check=True, capture_output=True, cwd=tempfile.gettempdir())
    return os.path.join(out, "checkpoint.safetensors")


def over_torch(args) -> None:
    """Each command's median time and its excess over ``python -c "import torch"``, interleaved."""
    ckpt = toy_checkpoint()
    commands = {"python -c 'import torch'": ["-c", "import torch"],
                **{name: ["-m", "prime_core", *argv] for name, argv in COMMANDS.items()},
                "prime sample toy -n 1 --steps 1": ["-m", "prime_core", "sample", ckpt, "-n", "1", "--steps", "1",
                                                    "--json", "--quiet", "--show", "0"]}
    trees = {name: None for name in commands}
    if args.before:  # the same sample command with the earlier checkout's prime_core
        commands["prime sample toy -n 1 --steps 1 (--before)"] = commands["prime sample toy -n 1 --steps 1"]
        trees["prime sample toy -n 1 --steps 1 (--before)"] = args.before
    for name, code in commands.items():  # warm-up: bytecode caches written, files in the page cache
        timed_python(code, trees[name])
    load_before = os.getloadavg()
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, code in commands.items():
            runs[name].append(timed_python(code, trees[name]))
    load_after = os.getloadavg()
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
    base = "python -c 'import torch'"
    rows = [{"command": k, "median_s": wall[k], "over_import_torch_s": wall[k] - wall[base], "cpu_median_s": cpu[k],
             "cpu_over_import_torch_s": cpu[k] - cpu[base], "repeats": args.repeats,
             "seconds": [w for w, _ in runs[k]], "cpu_seconds": [c for _, c in runs[k]]} for k in commands]
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs")
    print(f"| {'command':<42} | {'wall s':>7} | {'wall over torch s':>17} | {'CPU s':>6} | {'CPU over torch s':>16} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 19}|{'-' * 8}|{'-' * 18}|")
    for r in rows:
        print(f"| {r['command']:<42} | {r['median_s']:7.3f} | {r['over_import_torch_s']:17.3f} | "
              f"{r['cpu_median_s']:6.3f} | {r['cpu_over_import_torch_s']:16.3f} |")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"mode": "over-torch", "load_average_before": load_before, "load_average_after": load_after,
                   "rows": rows}, fh, indent=2)
    print(f"wrote {args.json}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="checkout of the earlier prime (its prime_core is used)")
    p.add_argument("--over-torch", action="store_true", help="time against `import torch` (module docstring)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", default="runs/bench/startup.json")
    args = p.parse_args()
    if args.over_torch:
        return over_torch(args)
    if not args.before:
        p.error("pass --before DIR (an earlier checkout) or --over-torch")
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
