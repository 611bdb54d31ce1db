"""The third-party path, end to end, with the example plugin installed from its own distribution
(examples/prime-plugin-example): `prime plugins --json` lists it, `prime train` trains a tiny model with its
schedule and map, and `prime conformance --plugin example` runs the suites on it."""

import json
import os
import subprocess
import sys

import pytest

EXAMPLE = "prime-plugin-example"


def _prime(*args, cwd=None, timeout=600):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PRIME_LOAD_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "prime_core", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def example_installed():
    import importlib.metadata as md

    try:
        md.distribution(EXAMPLE)
    except md.PackageNotFoundError:
        pytest.fail(f"{EXAMPLE} is not installed: pip install -e examples/{EXAMPLE} (scripts/install.sh does it)")


def test_prime_plugins_json_lists_example():
    res = _prime("plugins", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    row = rows["example"]
    assert row["distribution"] == EXAMPLE and row["error"] is None
    assert row["components"] == {"schedule": ["example-sigmoid"], "map": ["permuted-base-b"]}
    assert sorted(row["hooks"]) == ["register_maps", "register_schedules"]
    assert not row["builtin"]
    only = json.loads(_prime("plugins", "--json", "--hook", "register_maps").stdout)
    assert "example" in {r["name"] for r in only}


@pytest.mark.slow
def test_prime_train_with_example_schedule_and_map(tmp_path):
    out = tmp_path / "run"
    res = _prime("train", "--quiet", "--out", str(out),
                 "--set", "model.schedule=example-sigmoid", "--set", "model.map=permuted-base-b",
                 "--set", "model.ell=2", "--set", "model.width=16",
                 "--set", "data.dataset=toy-markov", "--set", "data.options.num_classes=8",
                 "--set", "data.options.length=4", "--set", "data.options.num_train=512",
                 "--set", "data.options.num_eval=64",
                 "--set", "train.steps=20", "--set", "train.batch_size=32", "--set", "train.log_every=10",
                 "--set", "train.checkpoint_every=20")
    assert res.returncode == 0, res.stderr
    ckpt = res.stdout.strip().splitlines()[-1].removeprefix("checkpoint: ").strip()

    from prime_core import AncestralSampler, load_model

    model, config, meta = load_model(ckpt)
    assert (config.model.schedule, config.model.map) == ("example-sigmoid", "permuted-base-b")
    assert meta.meta["components"]["schedule"]["distribution"] == EXAMPLE
    assert meta.meta["components"]["map"]["distribution"] == EXAMPLE
    result = AncestralSampler().sample(model, 16, steps=8, seed=0)
    assert result.tokens.shape == (16, 4) and int(result.tokens.max()) < 8

    res = _prime("sample", ckpt, "-n", "4", "--steps", "4", "--json", "--quiet")
    assert res.returncode == 0, res.stderr
    assert all(0 <= v < 8 for row in json.loads(res.stdout)["tokens"] for v in row)


def test_prime_conformance_subcommand_on_example(tmp_path):
    res = _prime("conformance", "--plugin", "example", "--kind", "schedule", "--", "-q",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "5 passed" in res.stdout


def test_prime_conformance_prints_no_warnings_on_a_clean_plugin(tmp_path):
    """Without PYTHONWARNINGS=ignore: no PytestAssertRewriteWarning (nor any other) on the example plugin."""
    env = {k: v for k, v in os.environ.items() if k not in ("PRIME_LOAD_PLUGINS", "PYTHONWARNINGS")}
    res = subprocess.run([sys.executable, "-m", "prime_core", "conformance", "--plugin", "example", "--kind",
                          "schedule", "--", "-q"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "Warning" not in res.stdout + res.stderr and "warnings summary" not in res.stdout


def test_prime_conformance_refuses_an_unknown_xfail_key(tmp_path):
    res = _prime("conformance", "--plugin", "example", "--kind", "schedule", "--xfail", "nosuchcheck=typo",
                 cwd=tmp_path)
    assert res.returncode != 0
    assert "unknown expected-failure key 'nosuchcheck': no check named 'nosuchcheck'" in res.stderr
