"""Word validity (prime_plugin_text.words): the exact definition on hand-made strings, the completion rule, and
the text data set's score computed against the training split's vocabulary."""

import pytest
from hypothesis import given, strategies as st

from prime_plugin_text import TextDataset
from prime_plugin_text.words import (clean_word, completion_words, text_word_validity, vocabulary, word_validity,
                                     words)


def test_words_strip_outer_punctuation_lowercase_and_drop_empties():
    assert words('"Emma," said Mr. Knightley — "don\'t!"') == ["emma", "said", "mr", "knightley", "don't"]
    assert words("  \n\t ") == [] and words("... — !!") == []
    assert words("well-bred, 1814; CHAPTER IV.") == ["well-bred", "1814", "chapter", "iv"]
    assert clean_word("«Élise»") == "élise"  # Unicode letters are alphanumeric
    assert clean_word("(a)") == "a" and clean_word("--") == ""


def test_fraction_counts_every_occurrence():
    vocab = vocabulary(["The cat sat.", "A dog, the end"])
    assert vocab == {"the", "cat", "sat", "a", "dog", "end"}
    counts = text_word_validity(["the cat thx", "Cat! cat? zzq --"], vocab)
    assert (counts.valid, counts.total) == (4, 6) and counts.fraction == pytest.approx(2 / 3)
    assert text_word_validity(["-- ..."], vocab).fraction is None  # no word generated: no fraction


def test_completion_scores_only_what_follows_the_prompt():
    # the prompt's own words never count; a word the model finished after a prompt that ended mid-word does
    assert completion_words("It is a truth", "It is a truth universally known") == ["universally", "known"]
    assert completion_words("It is a tru", "It is a truth qq") == ["truth", "qq"]
    assert completion_words("She said ", "She said  yes.") == ["yes"]
    assert completion_words("Emma", "Emma") == []
    with pytest.raises(ValueError):
        completion_words("Emma", "Harriet")
    vocab = vocabulary(["it is a truth universally acknowledged"])
    assert word_validity([completion_words("It is a tru", "It is a truthy fact")], vocab).fraction == 0.0


@given(st.lists(st.text(max_size=30), max_size=5))
def test_fraction_is_one_on_the_training_text_itself(texts):
    counts = text_word_validity(texts, vocabulary(texts))
    assert counts.valid == counts.total == sum(len(words(t)) for t in texts)


@given(st.text(max_size=40), st.text(max_size=40))
def test_completion_words_are_a_suffix_of_the_row_words(prompt, rest):
    got = completion_words(prompt, prompt + rest)
    whole = words(prompt + rest)
    assert whole[len(whole) - len(got):] == got
    assert len(got) >= len(words(rest)) - 1  # only a word straddling the boundary may merge with the prompt's


def test_text_dataset_scores_against_its_training_split(tmp_path):
    train_words = " ".join(f"w{i}" for i in range(400))
    held_out = "heldout " * 40
    path = tmp_path / "c.txt"
    path.write_text((train_words + "\n") * 18 + held_out + "\n" + held_out + "\n", encoding="utf-8")
    ds = TextDataset(source=str(path), tokenizer="bytes", length=16, cache_dir=str(tmp_path / "cache"),
                     valid_fraction=0.04, test_fraction=0.04)
    vocab = ds.training_vocabulary()
    assert "w7" in vocab and "heldout" not in vocab  # held-out text is never in V_train
    [score] = ds.score_samples(["w1 w2 heldout w3", "Emma w4, zz"], ["w1", None])
    # row 1 scores "w2 heldout w3" (2 of 3), row 2 scores "emma w4 zz" (1 of 3)
    assert score["name"] == "word_validity" and score["value"] == pytest.approx(3 / 6)
    assert score["detail"] == "3 of 6 generated words"
