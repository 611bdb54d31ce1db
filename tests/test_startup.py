"""Issue 21 item 2: what start-up no longer pays for (prime_core.startup; the images plugin's lazy Fréchet)."""

from __future__ import annotations

import subprocess
import sys

import torch

from prime_core.startup import INITIALISERS, no_init


def test_no_init_skips_initialisers_and_restores_them():
    before = {name: getattr(torch.nn.init, name) for name in INITIALISERS if hasattr(torch.nn.init, name)}
    t = torch.zeros(3)
    with no_init():
        assert torch.nn.init.normal_(t) is t and torch.equal(t, torch.zeros(3))
        layer = torch.nn.Linear(4, 4)  # built while skipped
    assert {name: getattr(torch.nn.init, name) for name in before} == before
    assert layer.weight.shape == (4, 4)
    assert not torch.equal(torch.nn.init.normal_(torch.zeros(50)), torch.zeros(50))


def test_loading_the_images_plugin_imports_no_torchmetrics():
    """prime loads every plugin for every command: the Fréchet distance's torchmetrics (and scipy) wait for use."""
    code = ("import sys, prime_plugin_images.plugin, prime_plugin_images as p; "
            "assert 'torchmetrics' not in sys.modules, 'torchmetrics imported'; "
            "assert callable(p.frechet_distance) and 'torchmetrics' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
