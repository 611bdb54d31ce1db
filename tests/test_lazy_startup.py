"""Start-up (issue 21): the shape build of `load_model`, the lazy registry of the CLI, what `prime sample` imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from prime_core import Config, ModelConfig, build_model
from prime_core.plugin.default import new_registry
from prime_core.plugin.lazy import LazyRegistry, lazy_registry
from prime_core.runs.meta_build import SMALL, _numel, shape_build
from prime_core.sampling.counter_rng import _broadcast_shape
from prime_core.errors import UnknownComponentError


def _toy_config(**model) -> Config:
    options = dict(num_classes=512, length=2, ell=2, width=64, backbone="mlp",
                   backbone_options={"hidden": 256, "depth": 3})
    options.update(model)
    return Config(model=ModelConfig(**options))


def _layout(model) -> dict:
    """What the checkpoint checks read: every state tensor's name, shape and dtype, and the bytes held."""
    state = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    nbytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    return {"state": state, "nbytes": nbytes}


def _installed_registry():
    return new_registry()


@pytest.mark.parametrize("backbone,options,length", [
    ("mlp", {"hidden": 256, "depth": 3}, 2),
    ("dit", {"preset": "small", "heads": 4, "cond_dim": 64}, 256),
    ("uvit", {"image_size": [16, 16]}, 256),
])
def test_shape_build_matches_a_meta_build(backbone, options, length):
    """The shape build holds the same tensors (names, shapes, dtypes, bytes) as a plain meta build, no large
    tensor is real, and it does not import torch._dynamo (run in a subprocess: this process may have)."""
    registry = _installed_registry()
    if backbone not in registry.names("backbone"):
        pytest.skip(f"backbone {backbone!r} not installed")
    cfg = _toy_config(backbone=backbone, backbone_options=options, length=length, width=128 if length > 2 else 64,
                      time_conditioned=backbone != "mlp")
    with torch.device("meta"):
        plain = build_model(cfg, registry)
    with shape_build():
        cheap = build_model(cfg, registry)
    assert _layout(cheap) == _layout(plain)
    for name, tensor in cheap.state_dict().items():
        assert tensor.is_meta or tensor.numel() < SMALL, name


def test_shape_build_skips_init_and_keeps_small_values():
    with shape_build():
        big = torch.nn.Linear(512, 512)  # 2¹⁸ weights: meta, initialiser skipped
        offsets = torch.arange(3) * 7  # small: a real tensor with its values
        ramp = torch.arange(0.0, 1.0, 0.25)
        huge = torch.arange(1 << 40)  # never allocated
    assert big.weight.is_meta and not big.bias.is_meta
    assert offsets.tolist() == [0, 7, 14] and ramp.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert huge.is_meta and huge.shape == (1 << 40,) and huge.dtype == torch.int64
    assert torch.empty(2).device.type == "cpu"  # the mode ends with the block


@pytest.mark.parametrize("call,expected", [
    ((torch.empty, (3, 4), {}), 12), ((torch.zeros, ((5, 6),), {}), 30), ((torch.full, ((2, 2), 1.0), {}), 4),
    ((torch.ones, (), {"size": (7,)}), 7), ((torch.arange, (2, 10, 3), {}), 3), ((torch.linspace, (0, 1, 9), {}), 9),
    ((torch.arange, (), {"end": 4}), None), ((torch.eye, (3,), {}), 9), ((torch.eye, (2, 5), {}), 10),
    ((torch.randperm, (7,), {}), None),
])
def test_factory_sizes(call, expected):
    func, args, kwargs = call
    assert _numel(func, args, kwargs) == expected


@pytest.mark.parametrize("a,b", [((), (3,)), ((4, 1), (1, 5)), ((2, 1, 3), (3,)), ((1,), (1,)), ((0, 1), (1, 4))])
def test_python_broadcast_equals_torch(a, b):
    assert _broadcast_shape(torch.Size(a), torch.Size(b)) == torch.broadcast_shapes(a, b)


def test_python_broadcast_refuses_mismatch():
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        _broadcast_shape(torch.Size((2, 3)), torch.Size((4,)))


# ---------------------------------------------------------------------------------------------- lazy registry
def test_lazy_registry_answers_builtins_without_plugins():
    reg = lazy_registry()
    for kind, name in (("map", "base-b"), ("backbone", "mlp"), ("dataset", "toy-2d"), ("sampler", "ancestral")):
        if name in new_registry(load_plugins=False).components[kind]:
            assert reg.get(kind, name).builtin
    assert all(info.builtin for info in reg.plugins.values())


def test_lazy_registry_full_load_equals_eager():
    """`load_all` after a partial load: same plugins in the same order, same components, same winners."""
    eager = new_registry()
    lazy = lazy_registry()
    dists = {c.distribution for kind in eager.components.values() for c in kind.values() if not c.builtin}
    for dist in sorted(dists)[:1]:
        name, comp = next((n, c) for k in eager.components.values() for n, c in k.items() if c.distribution == dist)
        lazy.get(comp.kind, name, provided_by={"distribution": dist})
    lazy.load_all()
    lazy.ensure_collected()
    assert list(lazy.plugins) == list(eager.plugins)
    assert {k: {n: (c.distribution, c.obj) for n, c in v.items()} for k, v in lazy.components.items()} == \
        {k: {n: (c.distribution, c.obj) for n, c in v.items()} for k, v in eager.components.items()}


def test_lazy_registry_unknown_name_is_the_eager_error():
    eager, lazy = new_registry(), lazy_registry()
    with pytest.raises(UnknownComponentError) as want:
        eager.get("backbone", "no-such-backbone", provided_by={"distribution": "prime-plugin-nothing"})
    with pytest.raises(UnknownComponentError) as got:
        lazy.get("backbone", "no-such-backbone", provided_by={"distribution": "prime-plugin-nothing"})
    assert str(got.value) == str(want.value)
    assert isinstance(lazy, LazyRegistry) and lazy._complete


# ---------------------------------------------------------------------------------------------- what is imported
_PROBE = """
import json, sys
from prime_core.cli.app import main
code = main(sys.argv[1:])
plugins = sorted(m for m in sys.modules if m.split('.')[0] in {m2 for m2 in %r})
print(json.dumps({"code": code, "plugins": plugins, "dynamo": "torch._dynamo" in sys.modules}), file=sys.stderr)
"""
_PLUGIN_PACKAGES = ["export", "conformance", "prime_plugin_dit", "prime_plugin_uvit", "prime_plugin_images",
                    "prime_plugin_text", "prime_plugin_trainer", "prime_plugin_example", "prime_plugin_serve"]


def _imported(ckpt: str, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PRIME_LOAD_PLUGINS"}
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", _PROBE % (_PLUGIN_PACKAGES,), "sample", ckpt, "-n", "1", "--steps",
                          "1", "--json", "--quiet", "--show", "0"], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stderr.strip().splitlines()[-1])


def _save(cfg: Config, path: str) -> str:
    from prime_core.runs.build import save_model

    registry = _installed_registry()
    torch.manual_seed(0)
    return save_model(path, build_model(cfg, registry).eval(), cfg, registry=registry)


def test_sample_of_a_builtin_model_imports_no_plugin(tmp_path):
    from prime_core.runs.config import DataConfig

    cfg = Config(model=_toy_config().model, data=DataConfig(dataset="toy-2d"))
    seen = _imported(_save(cfg, str(tmp_path / "toy.safetensors")), tmp_path)
    assert seen == {"code": 0, "plugins": [], "dynamo": False}


def test_sample_imports_only_the_recorded_distribution(tmp_path):
    from prime_core.runs.config import DataConfig

    if "dit" not in _installed_registry().names("backbone"):
        pytest.skip("prime-plugin-dit not installed")
    cfg = Config(model=_toy_config(backbone="dit", width=128, time_conditioned=True,
                                   backbone_options={"preset": "small", "heads": 4, "cond_dim": 64}).model,
                 data=DataConfig(dataset="toy-2d"))
    seen = _imported(_save(cfg, str(tmp_path / "dit.safetensors")), tmp_path)
    assert seen["code"] == 0 and seen["plugins"]
    assert {m.split(".")[0] for m in seen["plugins"]} == {"prime_plugin_dit"}


def test_the_lazy_registry_lasts_one_command(tmp_path, capsys):
    """In-process, `main(["sample", …])` runs on a lazy registry and leaves none behind: a later library caller of
    get_registry() gets the eager one (whose `components` are whole)."""
    from prime_core.cli import main
    from prime_core.plugin import default
    from prime_core.runs.config import DataConfig

    seen = []
    real = default.lazy_registry_for

    def spy(command):
        seen.append(command)
        return real(command)

    cfg = Config(model=_toy_config().model, data=DataConfig(dataset="toy-2d"))
    ckpt = _save(cfg, str(tmp_path / "toy.safetensors"))
    default.reset_registry()
    default.lazy_registry_for, saved = spy, default.lazy_registry_for
    try:
        assert main(["sample", ckpt, "-n", "1", "--steps", "1", "--json", "--quiet", "--show", "0"]) == 0
    finally:
        default.lazy_registry_for = saved
    capsys.readouterr()
    assert seen == ["sample"] and default._DEFAULT is None
    assert not isinstance(default.get_registry(), LazyRegistry)
    default.reset_registry()
