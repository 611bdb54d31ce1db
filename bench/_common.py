"""What several benchmarks share: the main job's DiT built at its shapes, interleaved best-of timing, and the
JSON output. Imported as ``from _common import …`` (a bench script's own folder is first on ``sys.path``).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import torch

#: the main job's DiT: preset small (4 blocks), 4 heads, conditioning width 64 (with D = 128, C = 4096)
MAIN_DIT = {"preset": "small", "heads": 4, "cond_dim": 64}


def main_job_dit(*, backbone: str = "dit", length: int = 64, ell: int = 2, block: int | None = None,
                 random_std: float | None = None):
    """The main job's model shape (C = 4096, D = 128, log-linear schedule) with L = ``length``, ℓ = ``ell`` and
    ``model.block_size`` = ``block``, seeded with 0; ``random_std``: redraw every weight from N(0, std²) (random
    weights with realistic spread: throughput does not depend on their values)."""
    from prime_core import Config, ModelConfig, build_model

    cfg = Config(model=ModelConfig(num_classes=4096, length=length, ell=ell, width=128, backbone=backbone,
                                   backbone_options=MAIN_DIT, block_size=block, schedule="loglinear"))
    torch.manual_seed(0)
    model = build_model(cfg)
    if random_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, random_std)
    return model


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds of one call of ``fn``, what it returned)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def seconds(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``."""
    return timed(fn)[0]


def best_of_interleaved(runs: dict[str, Callable[[], Any]], repeats: int, *, echo: bool = False):
    """Run every path of ``runs`` once per repeat, in turn (interleaved, so a busy machine slows every path
    alike), ``repeats`` times; returns ({name: best seconds}, {name: last result})."""
    best = {name: float("inf") for name in runs}
    results = {}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds, results[name] = timed(run)
            best[name] = min(best[name], seconds)
            if echo:
                print(f"  {name}: {seconds:.2f} s", flush=True)
    return best, results


def write_json(path: str | None, data: dict) -> None:
    """Write ``data`` to ``path`` (UTF-8, indented) when a --json path was given."""
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
