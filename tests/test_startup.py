"""Issue 21 item 2: what start-up no longer pays for (the images plugin's lazy Fréchet distance)."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_images_plugin_imports_no_torchmetrics():
    """prime loads every plugin for every command: the Fréchet distance's torchmetrics (and scipy) wait for use."""
    code = ("import sys, prime_plugin_images.plugin, prime_plugin_images as p; "
            "assert 'torchmetrics' not in sys.modules, 'torchmetrics imported'; "
            "assert callable(p.frechet_distance) and 'torchmetrics' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
