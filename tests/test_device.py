"""`--device` everywhere: one vocabulary (auto, cpu, cuda, cuda:N), one resolver, one-line errors."""

import argparse

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prime_core import cliargs
from prime_core.api import DEVICE_CHOICES, PrimeError, load_config, parse_device_spec, resolve_device
from prime_core.runs.config import check_resume_config
from prime_core.device import train_device, with_train_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend torch sees two CUDA devices (the resolver only asks; nothing is allocated)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)


def test_cpu_and_auto_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    for spec in ("cuda", "cuda:0", torch.device("cuda", 0)):
        with pytest.raises(PrimeError, match="not available here.*use auto or cpu"):
            resolve_device(spec)


def test_cuda_specs_with_two_gpus(two_gpus):
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)  # the current device
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=2) == torch.device("cuda", 0)  # torchrun: LOCAL_RANK mod GPUs
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")
    with pytest.raises(PrimeError, match=r"'cuda:2' names a CUDA device this machine lacks; it has 2"):
        resolve_device("cuda:2")


@given(st.text(max_size=12))
def test_anything_else_is_refused_naming_the_choices(text):
    spelled = text.strip().lower()
    ok = spelled in ("auto", "cpu", "cuda") or (spelled.startswith("cuda:") and spelled[5:].isascii()
                                                 and spelled[5:].isdigit())
    if ok:
        assert parse_device_spec(text)[0] == spelled.split(":")[0]
        return
    with pytest.raises(PrimeError) as info:
        parse_device_spec(text, what="--device")
    assert str(info.value) == f"--device must be {DEVICE_CHOICES}, got {text!r}"


def test_argparse_type_is_one_line_and_keeps_the_spec(capsys):
    p = cliargs.Parser(prog="prime x")
    cliargs.add_device(p)
    assert p.parse_args(["--device", "CPU"]).device == "cpu"
    assert p.parse_args([]).device is None
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--device", "gpu"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "argument --device: must be auto, cpu, cuda or cuda:N, got 'gpu'" in err


def test_train_device_option_is_not_part_of_a_resume_check():
    config = load_config(None, ["train.steps=2"])
    assert train_device(config) == "auto"
    on_cpu = with_train_device(config, "cpu")
    assert on_cpu.train.options == {"device": "cpu"} and train_device(on_cpu) == "cpu"
    assert with_train_device(config, None) is config
    check_resume_config(on_cpu.to_dict(), with_train_device(config, "cuda:1"), "x")  # where, not what: allowed
    check_resume_config(config.to_dict(), on_cpu, "x")
    with pytest.raises(PrimeError, match="train.options.device must be"):
        train_device(with_train_device(config, "cpu").__class__.from_dict(
            {**config.to_dict(), "train": {**config.to_dict()["train"], "options": {"device": "tpu"}}}))


@no_cuda
def test_library_calls_refuse_cuda_here(tmp_path):
    from prime_core.api import load_model

    with pytest.raises(PrimeError, match="device 'cuda' asks for CUDA"):
        load_model(str(tmp_path / "absent.safetensors"), device="cuda")  # refused before the file is read


def test_parser_choices_are_argparse_errors():
    with pytest.raises(argparse.ArgumentTypeError, match="got 'cuda:-1'"):
        cliargs.device("cuda:-1")
