"""model.map_options: constructor options of the sub-token map, stored in checkpoints with the config (issue 13)."""

import pytest
import torch

from prime_core import BaseBMap, Config, RegistryError, hookimpl
from prime_core.runs.build import build_model, load_model, save_model


class ShiftedMap(BaseBMap):
    """f(x) = base_b((x + shift) mod C): a map that needs an option to be rebuilt the same."""

    def __init__(self, num_classes, ell, shift=0):
        super().__init__(num_classes, ell)
        self.shift = int(shift)

    def encode(self, tokens):
        self.check_tokens(tokens)
        return super().encode((tokens + self.shift) % self.num_classes)

    def decode(self, digits):
        codes = super().decode(digits)
        return torch.where(codes < self.num_classes, (codes - self.shift) % self.num_classes, codes)


class ShiftPlugin:
    @hookimpl
    def register_maps(self, register):
        register("shifted", ShiftedMap)


def _config(**model):
    return Config.from_dict({"model": {"num_classes": 5, "length": 3, "ell": 2, "width": 8, "map": "shifted",
                                       **model}})


def test_map_options_reach_the_constructor_and_survive_a_checkpoint(registered, tmp_path):
    reg = registered(ShiftPlugin())
    config = _config(map_options={"shift": 3})
    model = build_model(config, reg)
    assert model.map.shift == 3
    url = save_model(str(tmp_path / "m.safetensors"), model, config, registry=reg)
    loaded, loaded_config, _ = load_model(url, reg)
    assert loaded_config.model.map_options == {"shift": 3} and loaded.map.shift == 3
    x = torch.arange(5)
    assert torch.equal(loaded.map.encode(x), model.map.encode(x))


def test_an_option_the_map_does_not_take_is_a_one_line_error(registered):
    reg = registered(ShiftPlugin())
    with pytest.raises(RegistryError, match=r"bad options for map 'shifted': .*unexpected keyword argument 'shfit'"):
        build_model(_config(map_options={"shfit": 3}), reg)


def test_example_plugin_map_takes_its_seed():
    """The example plugin's permuted-base-b map takes ``seed`` through model.map_options."""
    pytest.importorskip("prime_plugin_example")
    from prime_core.plugin.default import new_registry

    reg = new_registry()
    if "permuted-base-b" not in reg.names("map"):
        pytest.skip("prime-plugin-example is not installed")
    a = build_model(_config(map="permuted-base-b", map_options={"seed": 1}), reg).map
    b = build_model(_config(map="permuted-base-b", map_options={"seed": 2}), reg).map
    assert not torch.equal(a.perm, b.perm)
    assert torch.equal(a.perm, reg.build("map", "permuted-base-b", 5, 2, seed=1).perm)
