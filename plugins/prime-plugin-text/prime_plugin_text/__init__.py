"""prime-plugin-text: tokenizers (bytes, trained BPE, GPT-2 from local files), text corpora packed into
blocks (Jane Austen by default), prepared corpora (``prime data prepare``: memory-mapped token files read as lazy
windows) and text evaluation (bits per byte, unigram entropy, judged generative PPL)."""

from .dataset import TextDataset
from .prepare import PrepareRequest  # run it with prime_plugin_text.prepare.prepare(request)
from .prepared import PreparedCorpus, WindowView
from .tokenizer import BPETokenizer, ByteTokenizer, GPT2Tokenizer, tokenizer_from_json

__all__ = ["BPETokenizer", "ByteTokenizer", "GPT2Tokenizer", "PrepareRequest", "PreparedCorpus", "TextDataset",
           "WindowView", "tokenizer_from_json"]
