"""prime-plugin-text: tokenizers (bytes, trained BPE, GPT-2 from local files), text corpora packed into
blocks (Jane Austen by default) and text evaluation (bits per byte, unigram entropy, judged generative PPL)."""

from .dataset import TextDataset
from .tokenizer import BPETokenizer, ByteTokenizer, GPT2Tokenizer, tokenizer_from_json

__all__ = ["BPETokenizer", "ByteTokenizer", "GPT2Tokenizer", "TextDataset", "tokenizer_from_json"]
