import pytest


@pytest.fixture
def corpus(tmp_path):
    """A small English text file (a few KB), deterministic."""
    words = ("the quick brown fox jumps over a lazy dog while Emma and Harriet walk to Highbury "
             "talking of Mr. Elton, of letters, of weather and of the strawberries at Donwell; ").split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(300)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")
