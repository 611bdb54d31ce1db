"""Entry point (group ``prime``, name ``text``): the text data set and the tokenizers."""

from importlib.resources import files

from prime_core import hookimpl

from .dataset import TextDataset
from .tokenizer import TOKENIZERS


@hookimpl
def register_tokenizers(register):
    for name, cls in TOKENIZERS.items():
        register(name, cls)


@hookimpl
def register_datasets(register):
    register("text", TextDataset)


#: The paper's training setups (docs/training.md): OpenWebText (L = 1024) and LM1B (L = 128), MDLM (ℓ = 1),
#: MDLM-Prime ℓ ∈ {2, 3, 4, 6, 8} and the AR baseline; they read a data set made by ``prime data prepare``.
PAPER_CONFIGS = tuple(f"{data}-{kind}" for data in ("owt", "lm1b")
                      for kind in ("mdlm", "prime-l2", "prime-l3", "prime-l4", "prime-l6", "prime-l8", "ar"))


@hookimpl
def register_configs(register):
    """The example configs shipped in this package (prime config list)."""
    register("main", files(__package__) / "configs" / "main.toml")
    register("text-sweep", files(__package__) / "configs" / "text-sweep.toml")
    for name in PAPER_CONFIGS:
        register(name, files(__package__) / "configs" / f"{name}.toml")
