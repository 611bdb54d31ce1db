"""`prime sample --sampler remdm` and `--sampler confidence` at a tiny size: options reach the samplers, bad ones
are one line with exit 2."""

import json

import pytest

from prime_core.cli.app import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from test_cli import TINY

    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), "--quiet", *TINY]) == 0
    return str(out / "checkpoint.safetensors")


def _sample(capsys, *args):
    rc = main(["sample", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_prime_sample_remdm(checkpoint, capsys):
    common = [checkpoint, "-n", "6", "--steps", "8", "--seed", "2", "--json", "--quiet"]
    rc, out, _ = _sample(capsys, *common, "--sampler", "remdm", "--option", "eta=0")
    plain = json.loads(out)
    rc2, out2, _ = _sample(capsys, *common, "--sampler", "ancestral")
    assert rc == rc2 == 0 and plain["tokens"] == json.loads(out2)["tokens"]  # σ = 0 is the ancestral sampler
    for opts in (["--option", "strategy=rescale", "--option", "eta=0.5"], ["--option", "strategy=conf"],
                 ["--option", "strategy=constant", "--option", "eta=0.05", "--option", "t_on=0.6",
                  "--option", "t_off=0.2", "--option", "loop=true"]):
        rc, out, err = _sample(capsys, *common, "--sampler", "remdm", *opts, "--fix", "0:5")
        assert rc == 0, err
        report = json.loads(out)
        assert len(report["tokens"]) == 6 and all(row[0] == 5 for row in report["tokens"])
        assert all(0 <= t < 6 for row in report["tokens"] for t in row)
    rc, _, err = _sample(capsys, *common, "--sampler", "remdm", "--option", "strategy=constant",
                         "--option", "eta=0.9")
    assert rc == 2 and err.count("\n") == 1 and "exceeds σ_max" in err
    rc, _, err = _sample(capsys, *common, "--sampler", "remdm", "--option", "strategy=greedy")
    assert rc == 2 and err.count("\n") == 1 and "strategy must be one of" in err


def test_prime_sample_confidence(checkpoint, capsys):
    common = [checkpoint, "-n", "4", "--steps", "3", "--seed", "1", "--json", "--quiet", "--sampler", "confidence"]
    for kind in ("prob", "margin", "entropy"):
        rc, out, err = _sample(capsys, *common, "--option", f"confidence={kind}")
        assert rc == 0, err
        report = json.loads(out)
        assert len(report["tokens"]) == 4 and report["nfe_mean"] + report["idle_steps_mean"] == 3
    rc, _, err = _sample(capsys, *common, "--option", "confidence=logit")
    assert rc == 2 and err.count("\n") == 1 and "confidence must be one of" in err
