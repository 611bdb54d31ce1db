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


@hookimpl
def register_configs(register):
    """The example configs shipped in this package (prime config list)."""
    register("main", files(__package__) / "configs" / "main.toml")
    register("text-sweep", files(__package__) / "configs" / "text-sweep.toml")
