"""The text data set builds its tokenizer from the registry (issue 13): a tokenizer another plugin registers is
usable by name in ``data.options.tokenizer``, stored in checkpoints and rebuilt from them."""

from __future__ import annotations

import pytest
import torch

import prime_core.plugin.default as registry_module
from prime_core import PrimeError, Tokenizer, hookimpl, new_registry
from prime_plugin_text.dataset import TextDataset
from prime_plugin_text.tokenizer import tokenizer_from_json


class VowelTokenizer(Tokenizer):
    """A toy tokenizer of a third-party plugin: 0 = consonant/other, 1..5 = a e i o u."""

    name = "vowels"

    @property
    def vocab_size(self) -> int:
        return 6

    def encode(self, text: str) -> list[int]:
        return [1 + "aeiou".index(c) if c in "aeiou" else 0 for c in text.lower()]

    def decode(self, ids: list[int]) -> str:
        return "".join("_aeiou"[i] for i in ids)


class VowelPlugin:
    @hookimpl
    def register_tokenizers(self, register):
        register("vowels", VowelTokenizer)


@pytest.fixture
def global_registry(monkeypatch):
    reg = new_registry()
    reg.add_plugin(VowelPlugin(), "vowels", "prime-plugin-vowels", "0.1")
    reg.collect()
    monkeypatch.setattr(registry_module, "_DEFAULT", reg)
    return reg


def test_a_plugins_tokenizer_works_by_name(global_registry, corpus, cache):
    ds = TextDataset(source=str(corpus), tokenizer="vowels", length=8, cache_dir=str(cache))
    train = ds.split("train")
    assert ds.num_classes == 6 and train.shape[1] == 8 and int(train.max()) < 6
    stored = ds.checkpoint_meta()["tokenizer"]
    assert stored == {"name": "vowels"}
    assert isinstance(tokenizer_from_json(stored), VowelTokenizer)
    assert ds.decode_samples(torch.tensor([[1, 0, 2]])) == ["a_e"]


def test_an_unknown_tokenizer_lists_the_registered_ones(global_registry, corpus, cache):
    with pytest.raises(PrimeError, match=r"unknown tokenizer 'nope'; registered tokenizers: .*vowels"):
        TextDataset(source=str(corpus), tokenizer="nope", cache_dir=str(cache))
    with pytest.raises(PrimeError, match="unknown tokenizer 'nope'"):
        tokenizer_from_json({"name": "nope"})
