"""The distributions of this repository and what each registers, for error messages that say what to install.

The core never imports a plugin; it only knows, as data, which of this repository's distributions provides
which component name, so that ``unknown dataset 'text'`` can add "provided by prime-plugin-text:
pip install prime-plugin-text". ``tests/test_distributions.py`` checks this table against what the installed
distributions really register. Components of third-party plugins are, of course, not listed.
"""

from __future__ import annotations

#: distribution → {kind → component names}; "config" lists the shipped configs (``register_configs``)
DISTRIBUTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "prime-plugin-dit": {
        "backbone": ("dit", "dit-ar", "dit-tiny", "dit-ar-tiny", "dit-small", "dit-ar-small", "dit-medium",
                     "dit-ar-medium", "dit-base", "dit-ar-base", "dit-official", "ar-official"),
        "sampler": ("ar",),
        "metric": ("ar-nll",),
    },
    "prime-plugin-text": {
        "tokenizer": ("bytes", "bpe", "gpt2"),
        "dataset": ("text",),
        "config": ("main", "text-sweep") + tuple(f"{data}-{kind}" for data in ("owt", "lm1b") for kind in (
            "mdlm", "prime-l2", "prime-l3", "prime-l4", "prime-l6", "prime-l8", "ar")),
    },
    "prime-plugin-trainer": {"trainer": ("torch",)},
    "prime-plugin-uvit": {"backbone": ("uvit", "uvit-tiny", "uvit-small", "uvit-mid")},
    "prime-plugin-images": {
        "dataset": ("fashion-mnist", "digits", "image-folder", "image-density-2d"),
        "sampler": ("image",),
        "config": ("images-digits", "images-fmnist", "toy-study"),
    },
    "prime-export": {"exporter": ("onnx", "tensorrt"), "runtime": ("onnxruntime", "tensorrt")},
    "prime-plugin-example": {"map": ("permuted-base-b",), "schedule": ("example-sigmoid",)},
}

#: where a distribution is not installable by name from an index (not published), how to get it
_NOTES = {
    "prime-plugin-example": "an example in this repository: pip install ./examples/prime-plugin-example",
}


def providers(kind: str, name: str) -> list[str]:
    """The distributions of this repository that register ``name`` as a ``kind``."""
    return [dist for dist, kinds in DISTRIBUTIONS.items() if name in kinds.get(kind, ())]


def distribution_hint(kind: str, name: str) -> str:
    """"it is provided by prime-plugin-text, which is not installed: pip install prime-plugin-text", or ""."""
    import importlib.metadata as md

    hints = []
    for dist in providers(kind, name):
        try:
            md.version(dist)
            installed = True
        except md.PackageNotFoundError:
            installed = False
        how = _NOTES.get(dist, f"pip install {dist}")
        state = ("is installed but not loaded (see prime plugins; PRIME_LOAD_PLUGINS limits loading)" if installed
                 else f"is not installed: {how}")
        hints.append(f"{dist}, which {state}")
    return f"it is provided by {' and by '.join(hints)}" if hints else ""
