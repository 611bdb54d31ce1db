"""DESIGN §2.6: idle steps in closed form, by simulation and from the CLI."""

import json
import subprocess
import sys

import pytest

from prime_core.diffusion.idle import expected_idle_steps, idle_report
from prime_core.diffusion.schedules import LinearSchedule

REFERENCE = {1: 36.77, 2: 13.52, 3: 4.97, 4: 1.83, 6: 0.25, 8: 0.03}


@pytest.mark.parametrize("ell,percent", sorted(REFERENCE.items()))
def test_reference_ratios_at_T_equals_L_1024(ell, percent):
    ratio = expected_idle_steps(LinearSchedule(), 1024, ell, 1024) / 1024
    assert round(100 * ratio, 2) == percent


@pytest.mark.parametrize("ell", [1, 2, 4])
def test_simulation_agrees_with_formula(ell):
    rep = idle_report(LinearSchedule(), "linear", 256, ell, 256, runs=200, seed=1)
    assert rep.simulated_idle_steps == pytest.approx(rep.expected_idle_steps, abs=4 * rep.simulated_stderr + 1e-9)


def test_cli_json_reproduces_the_reference():
    out = subprocess.run([sys.executable, "-m", "prime_core", "idle-steps", "--length", "1024", "--ell", "2",
                          "--steps", "1024", "--runs", "50", "--json"], capture_output=True, text=True, check=True)
    rep = json.loads(out.stdout)
    for key in ("expected_idle_steps", "simulated_idle_steps", "expected_idle_ratio", "simulated_idle_ratio"):
        assert key in rep
    assert round(100 * rep["expected_idle_ratio"], 2) == REFERENCE[2]
    assert abs(rep["simulated_idle_ratio"] - rep["expected_idle_ratio"]) < 0.01
