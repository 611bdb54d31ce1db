"""Token boundaries (issue 23 item 3): prompts, infill templates and completions joined at the text level, and the
model's first free token after a word constrained to start a new word; plain sample rows shown unambiguously;
report.md's count of rows that stop at EOS (item 4). The BPE / data-set side is in the text plugin's
tests/test_text_boundaries_bpe.py (a distinct name: pytest collects both folders in one run)."""

from __future__ import annotations

import re

import torch
from hypothesis import given, strategies as st

from prime_core import Config
from prime_core.cli.sample_rows import row_block
from prime_core.interfaces import TextPrompts
from prime_core.sampling.prompts import (ANY, NEW_WORD, SPACED, WordBoundaries, boundary_kinds, decode_row, encode_infill,
                                encode_prompt, fixed_rows, generate_prompted, word_start_table)
from prime_core.runs.report import write_report_markdown
from prime_core.sampling.ancestral import AncestralSampler, row_seeds

#: a byte-level-BPE-like vocabulary: words with and without their leading space ("Ġword"), a lone space,
#: punctuation, a newline and EOS (id 0, decodes to nothing)
PIECES = ["<eos>", " ", ",", ".", "\n", "ing", "ed", "s"]
WORDS = ["she", "said", "of", "the", "acknowledg", "truth", "a", "that"]
PIECES += WORDS + [" " + w for w in WORDS]


class ToyText(TextPrompts):
    """Greedy longest-match over PIECES (a space attaches to the word after it, as in byte-level BPE); unknown
    characters become single-character ids after the pieces."""

    def __init__(self):
        self.extra: list[str] = []

    @property
    def eos_id(self):
        return 0

    def vocab(self):
        return PIECES + self.extra

    def encode_text(self, text):
        ids, i = [], 0
        while i < len(text):
            best = max((p for p in self.vocab()[1:] if text.startswith(p, i)), key=len, default=None)
            if best is None:
                self.extra.append(text[i])
                best = text[i]
            ids.append(self.vocab().index(best))
            i += len(best)
        return ids

    def decode_text(self, ids):
        return "".join("" if i == 0 else self.vocab()[i] for i in ids)


WORD = st.sampled_from(WORDS)
PROMPT = st.lists(WORD, min_size=1, max_size=5).map(" ".join).flatmap(
    lambda s: st.sampled_from([s, s + " ", s + ",", s + "\n", s + "  "]))
IDS = st.lists(st.integers(0, len(PIECES) - 1), max_size=10)


def _ends_word(text: str) -> bool:
    return bool(re.search(r"[\w,.]\Z", text))


@given(prompt=PROMPT, completion=IDS)
def test_completion_starts_after_prompt_with_one_space(prompt, completion):
    """decode(prompt ⊕ completion) starts with the prompt; after a word the completion starts a new one; after a
    space there is no second one."""
    io = ToyText()
    p = encode_prompt(io, prompt)
    row = decode_row(io, list(p.fixed) + completion, p, None)
    assert row.decoded == prompt + row.completion and row.decoded.startswith(prompt)
    if _ends_word(prompt) and row.completion:
        assert not row.completion[0].isalnum()  # "acknowledg" + "ed" never glues into the prompt's last word
    if prompt.endswith(" "):
        assert not row.completion.startswith(" ")
    assert prompt.endswith("  ") or "  " not in row.decoded[len(prompt.rstrip(" ")) - 1:len(prompt) + 1]


#: fixed words no free token can spell (capitals), so the test finds them in the row unambiguously
FIXED = st.lists(st.sampled_from(["Xq", "Zyw", "Vv"]), min_size=1, max_size=3).map(" ".join)


@given(before=FIXED, after=FIXED, gap=IDS, tail=IDS)
def test_infill_fixed_text_verbatim_with_single_spaces(before, after, gap, tail):
    io = ToyText()
    template = f"{before} [MASK:{max(len(gap), 1)}] {after}"
    p = encode_infill(io, template)
    gap = (gap or [io.encode_text(" the")[0]])[:max(len(gap), 1)]
    ids = list(p.fixed)
    free = [i for i, v in enumerate(ids) if v < 0]
    for i, v in zip(free, gap):
        ids[i] = v
    row = decode_row(io, ids + tail, p, None).decoded
    assert row.startswith(before) and f" {after}" in row[len(before):]
    start = row.index(f" {after}", len(before))
    # one space where the gap meets fixed text, never two (spaces inside the gap are the model's own)
    assert row[len(before):len(before) + 2] != "  " and row[start - 1:start + 1] != "  "
    rest = row[start + 1 + len(after):]
    assert not rest[:1].isalnum()  # the completion after the template starts a new word


def test_the_reported_cases():
    """"She said [MASK:4] of" (doubled space, "ofer") and "acknowledged" + "ing" (glued), from issue 23."""
    io = ToyText()
    p = encode_infill(io, "she said [MASK:2] of")
    assert io.decode_text([v for v in p.fixed if v >= 0]) == "she said of"  # the space before the gap moved out
    ids = [io.vocab().index(" the") if v < 0 else v for v in p.fixed] + io.encode_text("s")
    assert decode_row(io, ids, p, None).decoded == "she said the the of s"
    p = encode_prompt(io, "a truth acknowledged")
    assert decode_row(io, list(p.fixed) + io.encode_text("ing the"), p, None).completion == " ing the"
    p = encode_prompt(io, "a truth ")
    row = decode_row(io, list(p.fixed) + io.encode_text(" the"), p, None)
    assert row.decoded == "a truth the"


def test_stop_cuts_the_row_and_the_fixed_text_after_it():
    io = ToyText()
    p = encode_infill(io, "she [MASK:3] of")
    ids = [v if v >= 0 else 0 for v in p.fixed]
    ids[1:4] = io.encode_text(" the") + [0, 0]
    assert decode_row(io, ids, p, 2).decoded == "she the"  # cut at the EOS inside the gap: " of" never came


def test_boundary_kinds():
    io = ToyText()
    assert boundary_kinds(encode_prompt(io, "she said"), 6).tolist() == [ANY, ANY, NEW_WORD, ANY, ANY, ANY]
    assert boundary_kinds(encode_prompt(io, "she said "), 4).tolist() == [ANY, ANY, SPACED, ANY]
    kinds = boundary_kinds(encode_infill(io, "she [MASK:2] of"), 5).tolist()
    assert kinds == [ANY, SPACED, ANY, ANY, NEW_WORD]  # the gap after "she ", the completion after "of"
    assert boundary_kinds(encode_infill(io, "un[MASK:2]"), 4).tolist() == [ANY] * 4  # may continue the word
    table = word_start_table(io, len(PIECES))
    assert table[SPACED, io.vocab().index(" the")] and not table[SPACED, io.vocab().index("the")]
    assert table[NEW_WORD, io.vocab().index(",")] and not table[NEW_WORD, io.vocab().index("ing")]
    assert table[:, 0].all()  # EOS may always come


def test_word_boundaries_constrain_the_first_free_token(tiny_model):
    """With the constraint, every sampled row's first free token starts a new word (a χ²-free check: the set
    has a probability well below 1 without it), and rows stay keyed by their seeds."""
    io = ToyText()
    C = len(PIECES)
    model = tiny_model(num_classes=C, length=6, ell=2)
    prompt = encode_prompt(io, "she said")
    fixed = fixed_rows([prompt], 64, 6)
    sampler = AncestralSampler()
    seeds = row_seeds(64, 3)
    plain = generate_prompted(model, sampler, None, 6, seeds=seeds, fixed=fixed, prompts=[prompt] * 64, steps=6)
    table = word_start_table(io, C)
    first = plain.tokens[:, 2]
    assert not bool(table[NEW_WORD, first].all())  # unconstrained, some rows glue
    g = generate_prompted(model, sampler, io, 6, seeds=seeds, fixed=fixed, prompts=[prompt] * 64, steps=6)
    assert bool(table[NEW_WORD, g.tokens[:, 2]].all()) and bool((g.tokens[:, :2] == fixed[:, :2]).all())
    some = generate_prompted(model, sampler, io, 6, seeds=seeds[5:9], fixed=fixed[5:9], prompts=[prompt] * 4,
                             steps=6)
    assert torch.equal(some.tokens, g.tokens[5:9])  # batch invariance kept


def test_word_boundaries_renormalise_and_leave_other_positions(tiny_model):
    model = tiny_model(num_classes=len(PIECES), length=3, ell=2)
    kinds = torch.tensor([ANY, NEW_WORD, ANY])
    table = word_start_table(ToyText(), len(PIECES))
    seen = WordBoundaries(model, kinds, table)
    y = torch.full((2, 3, 2), model.mask_id)
    where = torch.ones(2, 3, dtype=torch.bool)
    base, log_p = model.log_probs_at(y, where), seen.log_probs_at(y, where)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(6), atol=1e-5)
    rows = log_p.view(2, 3, -1)
    assert torch.equal(rows[:, 0], base.view(2, 3, -1)[:, 0])
    assert bool(torch.isinf(rows[:, 1][:, ~table[NEW_WORD]]).all())
    flat = seen.log_probs_at(y, torch.tensor([1, 4]))  # flat indices b·L + i: position 1 of rows 0 and 1
    assert torch.allclose(flat, rows[:, 1])


def test_plain_rows_have_headers():
    assert row_block(3, "two\nlines", None) == "--- sample 3 ---\ntwo\nlines"
    assert row_block(0, "", 7).startswith("--- sample 0 (stopped at EOS, token 7) ---")


def test_report_counts_rows_stopped_at_eos(tmp_path):
    report = {"ell": 2, "base": 64, "num_classes": 4096, "tokens_per_sequence": 64, "train_seconds": 1.0,
              "metrics": [], "samples": ["a b"],
              "sampling": {"num_samples": 4, "steps": 8, "nfe_mean": 8.0, "idle_ratio": 0.0, "draw_dtype": "f64"},
              "eos": {"eos_id": 1, "rows": 4, "stopped": 1, "trimmed": [{"row": 2, "stopped_at_eos": 9,
                                                                          "text": "She smiled."}]},
              "completions": {"nfe_mean": 8.0, "idle_ratio": 0.0, "scores": [], "stopped": 1,
                              "rows": [{"prompt": "It is", "completion": " true.", "stopped_at_eos": 3},
                                       {"prompt": "It is", "completion": " so", "stopped_at_eos": None}]}}
    path = tmp_path / "report.md"
    write_report_markdown(str(path), Config(), report, None)
    text = path.read_text(encoding="utf-8")
    assert "Rows that stopped at EOS: 1 of 4 unconditional samples, 1 of 2 prompt completions" in text
    assert "row 2, EOS at token 9: `She smiled.` ⟨EOS⟩" in text
    assert "`It is` → ` true.` ⟨EOS⟩" in text and "`It is` → ` so`\n" in text + "\n"
