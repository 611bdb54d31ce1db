"""The plugin's own command runs under `prime` (register_commands + the prime.commands entry point)."""

import subprocess
import sys


def prime(*args):
    return subprocess.run([sys.executable, "-m", "prime_core", *args], capture_output=True, text=True, timeout=120)


def test_prime_lists_and_runs_the_example_command():
    assert "example-map" in prime("--help").stdout
    out = prime("example-map", "--classes", "5", "--ell", "2", "--seed", "1")
    assert out.returncode == 0, out.stderr
    rows = [line.split("→")[1].split() for line in out.stdout.splitlines()[1:]]
    codes = sorted(int(a) * 3 + int(b) for a, b in rows)  # b = 3: a permutation of the codes 0 … C−1
    assert codes == [0, 1, 2, 3, 4]
    bad = prime("example-map", "--classes", "1", "--ell", "2")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
