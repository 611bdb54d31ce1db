"""Entry point (group ``prime``, name ``text``): the text data set and the tokenizers."""

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
