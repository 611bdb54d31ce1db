"""The author's command end to end: a plugin discovered through a real entry point (a dist-info on PYTHONPATH,
as pip would write it) is checked with `pytest --pyargs conformance --prime-plugin NAME`; its failures are
reported with component, distribution and check, and declared expected failures turn the run green."""

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory):
    """A site directory holding the broken fixture plugin as an installed distribution 'prime-broken-fixtures'."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(os.path.join(HERE, "broken_plugin.py"), site / "prime_broken_fixture.py")
    info = site / "prime_broken_fixtures-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prime-broken-fixtures\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[prime]\nbroken = prime_broken_fixture\n")
    return site


def _pytest(site, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "PRIME_LOAD_PLUGINS": "broken"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "conformance",
                           "--prime-plugin", "broken", "--prime-kind", "schedule", "--prime-kind", "map", *args],
                          capture_output=True, text=True, env=env, cwd=site, timeout=600)


def test_failures_name_component_distribution_and_check(fake_site):
    res = _pytest(fake_site)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    out = res.stdout
    for kind, name, check in [("schedule", "wobbly", "check_strictly_decreasing"),
                              ("schedule", "wrong-derivative", "check_alpha_prime_matches_finite_differences"),
                              ("schedule", "wrong-weight", "check_weight_matches_alpha"),
                              ("map", "collapsing", "check_round_trip_all_tokens"),
                              ("map", "lax", "check_invalid_codes_flagged")]:
        assert f"{kind} '{name}' from prime-broken-fixtures 0.0 failed {check}: " in out
        assert f"test_conformance[{kind}:{name}:{check}]" in out
    assert "minimal counterexample: " in out
    assert "base-b" not in out and "linear" not in out  # only the named plugin's components are run


def test_declared_expected_failures_pass(fake_site):
    xfails = ["schedule:wobbly=non-monotone on purpose (and w < 0 where α rises)",
              "wrong-derivative:check_alpha_prime_matches_finite_differences=α′ is off by a factor 2",
              "wrong-derivative:check_weight_matches_alpha=the default weight follows the wrong α′",
              "schedule:wrong-weight:check_weight_matches_alpha=weight() is 1/t, not 2/t",
              "map:collapsing=not invertible", "lax:check_invalid_codes_flagged=calls codes ≥ C valid"]
    res = _pytest(fake_site, *[f"--prime-xfail={x}" for x in xfails])
    assert res.returncode == 0, res.stdout[-3000:]
    assert "xfailed" in res.stdout and "failed" not in res.stdout.replace("xfailed", "")


def test_expected_failure_needs_a_reason(fake_site):
    res = _pytest(fake_site, "--prime-xfail=check_boundaries")
    assert res.returncode == 4 and "must look like CHECK=REASON" in res.stderr


def test_misspelled_expected_failure_is_a_usage_error(fake_site):
    """A key naming no check would declare nothing; on the command line and in the ini option alike."""
    res = _pytest(fake_site, "--prime-xfail=check_boundary=typo")
    assert res.returncode == 4 and "unknown expected-failure key 'check_boundary': no check named" in res.stderr
    (fake_site / "pytest.ini").write_text("[pytest]\nprime_xfail =\n    schedule:wobbly:check_nope = typo\n")
    try:
        res = _pytest(fake_site)
        assert res.returncode == 4 and "no schedule check named 'check_nope'" in res.stderr
    finally:
        (fake_site / "pytest.ini").unlink()
