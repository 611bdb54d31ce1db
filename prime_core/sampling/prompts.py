"""Text prompts and infill templates → fixed-token rows for the sampler, and sampled rows → text.

A prompt fixes the first tokens of a row: positions 0 … |encode(prompt)|−1 hold the prompt's ids, the rest of the
sequence (L tokens, or ``--length``) is free. An infill template mixes text and free spans: ``[MASK:k]`` stands
for k free tokens, e.g. ``"She said [MASK:12] and left"`` fixes the ids of "She said", leaves 12 positions free,
then fixes the ids of " and left"; positions after the template are free too (the model may continue the text).
Text is tokenised with the checkpoint's own tokenizer through the data set's `TextPrompts` capability.

Token boundaries are word boundaries only at the text level, so rows are joined there (docs/generation.md):
- fixed text that ends before free tokens is encoded without its trailing spaces: a byte-level (or Metaspace) BPE
  attaches a space to the next word ("Ġword"), so the model writes it with that word as in training, instead of
  a lone space token followed by another spaced word (a doubled space);
- decoding copies each fixed piece verbatim and decodes each run of free tokens on its own, then mends every
  boundary: one space where fixed text and free text meet at a space, and a completion after a prompt (or after
  a template's last piece) that would glue onto its last word ("acknowledged" + "ing") starts a new word. A gap
  written against a word ("un[MASK:2]able") may continue that word.
Token-id constraints for non-text data stay with ``--fix`` (`prime_core.cliargs.parse_fixed`).
"""

from __future__ import annotations

import re
import weakref

import attrs
import torch

from ..errors import PrimeError
from ..interfaces import TextPrompts

#: ``[MASK:k]``: k ≥ 1 free tokens inside an infill template
MASK_SPAN = re.compile(r"\[MASK:(\d+)\]")
MAX_SPAN = 1_000_000


@attrs.frozen
class Segment:
    """One piece of a prompt row, in order: fixed ``text`` written by the user (encoded as ``size`` ids: the text
    without the trailing spaces that `fixed_ids` moves into the next word), or a gap of ``size`` free tokens
    (``text`` None). Whether a gap's boundary is a word boundary is read off the fixed text beside it: whitespace
    there ("said [MASK:4] of") makes one; none ("un[MASK:2]able") lets the gap continue the word."""

    text: str | None  # None: a gap
    size: int


@attrs.frozen
class Prompt:
    """One row's constraint: ``text`` as the user wrote it, ``fixed`` ids (−1 = free) covering the template, and
    its ``segments`` (fixed text and gaps, in order; the free positions after them are the completion)."""

    text: str
    fixed: tuple[int, ...]
    infill: bool = False
    segments: tuple[Segment, ...] = ()


def template_parts(template: str) -> list[str | int]:
    """``"a [MASK:3] b"`` → ["a ", 3, " b"]: text pieces and free-span lengths, in order (empty text dropped)."""
    parts: list[str | int] = []
    last = 0
    for match in MASK_SPAN.finditer(template):
        k = int(match.group(1))
        if not 1 <= k <= MAX_SPAN:
            raise PrimeError(f"--infill: [MASK:{match.group(1)}] must ask for 1 … {MAX_SPAN} tokens")
        parts += [template[last:match.start()], k]
        last = match.end()
    parts.append(template[last:])
    if "[MASK" in "".join(p for p in parts if isinstance(p, str)):
        raise PrimeError(f"--infill {template[:40]!r}: a [MASK…] is malformed; write [MASK:k] with k a whole number")
    if not any(isinstance(p, int) for p in parts):
        raise PrimeError(f"--infill {template[:40]!r} has no [MASK:k] span (k free tokens, e.g. [MASK:12]); "
                         "use --prompt for a plain prefix")
    return [p for p in parts if p != ""]


#: spaces a byte-level / Metaspace BPE attaches to the *next* word ("Ġword"); moved out of fixed text that ends
#: before free tokens, so the model writes them itself as in training (a lone "Ġ" token, then "Ġword", doubled it)
HSPACE = " \t"
#: characters after which a following word is a new word: a word's end or closing punctuation (not straight quotes
#: or a hyphen, which may as well open a quotation or continue a compound)
WORD_END = re.compile(r"[\w.,;:!?)\]}’”»…]\Z")


def fixed_ids(text_io: TextPrompts, text: str, before_free: bool) -> list[int]:
    """The ids fixing ``text``; if free tokens follow, without its trailing spaces (the next word brings its own)."""
    return text_io.encode_text(text.rstrip(HSPACE) if before_free else text)


def encode_prompt(text_io: TextPrompts, text: str) -> Prompt:
    """A plain prompt: every id fixed; the completion that follows starts a new word (a prompt is whole words)."""
    ids = fixed_ids(text_io, text, before_free=True)
    return Prompt(text, tuple(ids), segments=(Segment(text, len(ids)),))


def encode_infill(text_io: TextPrompts, template: str) -> Prompt:
    """An infill template: text pieces fixed, each [MASK:k] k free positions (−1). Pieces are encoded one by one,
    so each piece's ids reproduce it exactly wherever it sits (a piece before a gap without its trailing spaces,
    which the gap's first word brings)."""
    parts = template_parts(template)
    fixed: list[int] = []
    segments: list[Segment] = []
    for part in parts:
        if isinstance(part, int):
            fixed += [-1] * part
            segments.append(Segment(None, part))
        else:
            ids = fixed_ids(text_io, part, before_free=True)  # a gap or the free rest follows every piece
            fixed += ids
            segments.append(Segment(part, len(ids)))
    return Prompt(template, tuple(fixed), infill=True, segments=tuple(segments))


def fixed_rows(prompts: list[Prompt], rows_per_prompt: int, length: int) -> torch.Tensor:
    """[len(prompts)·rows_per_prompt, length] fixed-token rows (−1 = free); prompt p fills rows p·n … p·n+n−1.
    A prompt longer than the sequence is refused, naming both lengths."""
    out = torch.full((len(prompts) * rows_per_prompt, length), -1, dtype=torch.long)
    for p, prompt in enumerate(prompts):
        if len(prompt.fixed) > length:
            what = "infill template" if prompt.infill else "prompt"
            raise PrimeError(f"the {what} {prompt.text[:40]!r} is {len(prompt.fixed)} tokens, longer than the "
                             f"{length} tokens generated (L, or --length N to generate more)")
        if prompt.fixed:
            out[p * rows_per_prompt:(p + 1) * rows_per_prompt, :len(prompt.fixed)] = torch.tensor(prompt.fixed)
    return out


@attrs.frozen
class DecodedRow:
    prompt: str | None
    decoded: str  # the whole row's text (prompt included), cut at the stopping EOS
    completion: str  # what follows the prompt (the whole text when there is no prompt)


def decode_row(text_io: TextPrompts, ids: list[int], prompt: Prompt | None, stop: int | None) -> DecodedRow:
    """The row's text, cut at ``stop``, joined at the text level: each fixed piece appears exactly as the user wrote
    it, each run of free tokens is decoded on its own, and `join_free` mends every boundary (one space, never two;
    a completion after a prompt starts a new word). ``completion``: the text after a plain prompt."""
    ids = ids if stop is None else ids[:stop]
    if prompt is None:
        decoded = text_io.decode_text(ids)
        return DecodedRow(None, decoded, decoded)
    decoded = ""
    for text, free, tail in _pieces(text_io, ids, prompt):
        decoded = join_free(decoded, text, tail) if free else join_fixed(decoded, text)
    if prompt.infill:
        return DecodedRow(prompt.text, decoded, decoded)
    if not decoded.startswith(prompt.text):  # a broken join_free, never the tokenizer: fixed text is copied
        raise RuntimeError(f"the decoded row lost its prompt {prompt.text[:40]!r}")
    return DecodedRow(prompt.text, decoded, decoded[len(prompt.text):])


def _pieces(text_io: TextPrompts, ids: list[int], prompt: Prompt):
    """(text, free, tail) in row order: each fixed segment's own text, each run of free ids (a gap, merged with the
    free rest when no fixed text lies between) decoded as one; ``tail``: the run reaches the row's free rest."""
    segments = prompt.segments or (Segment(prompt.text, len(prompt.fixed)),)
    pos, run, whole = 0, [], True
    for seg in segments:
        if seg.text is None:
            run += ids[pos:pos + seg.size]
        elif pos + seg.size > len(ids):  # the row was cut inside an earlier gap: the fixed text after it is dropped
            whole = False
            break
        else:
            if run:
                yield text_io.decode_text(run), True, False
            run = []
            yield seg.text, False, False
        pos += seg.size
    tail = not run  # the free rest follows fixed text directly (a template ending in a gap continues that gap)
    run += ids[pos:] if whole else []
    if run:
        yield text_io.decode_text(run), True, tail


def join_free(left: str, free: str, tail: bool) -> str:
    """``left`` (fixed text as written, or "") then ``free`` (decoded free tokens), mended where they meet:
    after a space the free text's leading spaces are dropped (one space, not two); after a word's end a
    ``tail`` (the completion after a prompt or template) that starts with a word gets a space (a prompt is whole
    words: "acknowledged" + "ing" would glue into a non-word). A gap written against a word ("un[MASK:2]") may
    continue it."""
    if left and left[-1] in HSPACE:
        return left + free.lstrip(HSPACE)
    if tail and left and WORD_END.search(left) and free[:1].isalnum():
        return left + " " + free
    return left + free


def join_fixed(left: str, text: str) -> str:
    """``left`` (ending in decoded free tokens, or fixed text) then fixed ``text``, copied verbatim: when it starts
    with a space, the free text's trailing spaces are dropped (one space before "of", not two)."""
    if text and text[0] in HSPACE:
        return left.rstrip(HSPACE) + text
    return left + text


def read_prompts_file(path: str) -> list[str]:
    """``--prompts FILE``: one prompt per line (UTF-8, a regular file of at most `MAX_PROMPTS_BYTES`); blank lines
    are skipped."""
    from ..fileio import MAX_PROMPTS_BYTES, read_text_bounded

    text = read_text_bounded(path, MAX_PROMPTS_BYTES, f"--prompts {path}")  # a regular file, at most 16 MiB
    # lines end at \n, \r\n or \r only, as a text-mode file reads them (str.splitlines would also split at \f,
    # \x1c, U+2028, … inside a prompt)
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    if not lines:
        raise PrimeError(f"--prompts {path}: no prompt in it (one prompt per line)")
    return lines


def check_text(flag: str, text: str) -> None:
    """Text from the command line must be valid Unicode: bytes that are not UTF-8 reach Python's argv as lone
    surrogates (``\\udcff`` for byte 0xff), which no tokenizer can encode — refused in one line."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"U+{ord(bad):04X}"
        raise PrimeError(f"{flag} {text[:40]!r} is not valid UTF-8 text ({byte} at character {exc.start}); "
                         f"pass UTF-8 text") from None


def collect_prompts(text_io: TextPrompts, prompts: list[str], prompts_file: str | None,
                    infills: list[str]) -> list[Prompt]:
    """The rows' prompts in order: each --prompt, then each line of --prompts FILE, then each --infill."""
    for flag, items in (("--prompt", prompts), ("--infill", infills)):
        for text in items:
            check_text(flag, text)
    texts = list(prompts) + (read_prompts_file(prompts_file) if prompts_file else [])
    return [encode_prompt(text_io, t) for t in texts] + [encode_infill(text_io, t) for t in infills]


# Word boundaries in the model's distribution ------------------------------------------------------------------
#: what the first free token after a piece of fixed text must be: anything, a new word (not a letter or digit
#: first: a space, punctuation, a newline, EOS), or a spaced word (a space first: the fixed text's trailing
#: spaces were moved into it by `fixed_ids`)
ANY, NEW_WORD, SPACED = 0, 1, 2


def boundary_kinds(prompt: Prompt, length: int) -> torch.Tensor:
    """[length] long: per position, what its token must start with (ANY / NEW_WORD / SPACED). Constrained: the
    first free position after the prompt (or the template's last piece), and a gap's first position after fixed
    text that ended in a space; everything else ANY."""
    kinds = torch.full((length,), ANY, dtype=torch.long)
    pos, previous = 0, None
    for seg in prompt.segments:
        if seg.text is None and previous is not None and previous[-1:] in tuple(HSPACE) and pos < length:
            kinds[pos] = SPACED
        previous = seg.text
        pos += seg.size
    last = prompt.segments[-1].text if prompt.segments else None
    if last and pos < length:
        kinds[pos] = SPACED if last[-1] in HSPACE else NEW_WORD if WORD_END.search(last) else ANY
    return kinds


def word_start_table(text_io: TextPrompts, num_classes: int) -> torch.Tensor:
    """[3, C] bool: which tokens each kind allows, read off each token's own decoded text (a byte-level BPE's
    "Ġword" decodes to " word"). Tokens that decode to nothing (BOS, EOS) are allowed everywhere. Kept per
    tokenizer object: C decodes (50,257 for GPT-2) once, not once per batch."""
    try:
        known = _TABLES.setdefault(text_io, {})
    except TypeError:  # an object without weak references or a hash: computed each time
        known = {}
    if num_classes not in known:
        known[num_classes] = _word_start_table(text_io, num_classes)
    return known[num_classes]


_TABLES: "weakref.WeakKeyDictionary[TextPrompts, dict[int, torch.Tensor]]" = weakref.WeakKeyDictionary()


def _word_start_table(text_io: TextPrompts, num_classes: int) -> torch.Tensor:
    table = torch.ones(3, num_classes, dtype=torch.bool)
    for i in range(num_classes):
        text = text_io.decode_text([i])
        table[NEW_WORD, i] = not text[:1].isalnum()
        table[SPACED, i] = text == "" or text[0].isspace()
    return table


class WordBoundaries:
    """The model seen through boundary constraints: at a constrained position, p_θ(x | y_t) is conditioned on x
    starting a new word, p(x | y_t, x ∈ S) = p(x | y_t) 1[x ∈ S] / p(S | y_t), so every sampler that draws from
    `log_probs_at` writes "Ġword" after "She said" rather than "ing" after "acknowledged". Revealed digits come
    from tokens in S, so V(y_t) ∩ S never empties; if it ever did (digits fixed by the user), the position keeps
    the unconstrained p. All rows of one sampling call share ``kinds`` (one prompt's rows)."""

    def __init__(self, model, kinds: torch.Tensor, table: torch.Tensor):
        self._model, self._kinds, self._table = model, kinds, table

    def __getattr__(self, name):
        return getattr(self._model, name)

    def for_rows(self, rows: torch.Tensor):
        """The constraints over the view of some rows (a model with per-row state, `sampler.for_rows`)."""
        from .ancestral import for_rows

        inner = for_rows(self._model, rows)
        return self if inner is self._model else WordBoundaries(inner, self._kinds, self._table)

    def word_constraints_over_block(self, view, lo: int, size: int) -> "WordBoundaries":
        """The same constraints over a view of positions lo … lo + size − 1 (one block of a block model)."""
        kinds = self._kinds[lo:lo + size]
        kinds = torch.nn.functional.pad(kinds, (0, size - len(kinds)))
        return WordBoundaries(view, kinds, self._table)

    def log_probs_at(self, y_t: torch.Tensor, where: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        log_p = self._model.log_probs_at(y_t, where, t)  # [N, C]
        kinds = self._kinds.to(log_p.device)
        at = kinds.expand(where.shape)[where] if where.dtype == torch.bool else kinds[where % y_t.shape[1]]
        if not bool((at != ANY).any()):
            return log_p
        restricted = log_p.masked_fill(~self._table.to(log_p.device)[at], float("-inf"))
        possible = torch.isfinite(restricted).any(-1, keepdim=True)
        return torch.where(possible, torch.log_softmax(restricted, -1), log_p)


def with_word_boundaries(model, text_io: TextPrompts, prompt: Prompt | None, length: int,
                         table: torch.Tensor | None = None):
    """``model`` for the rows of ``prompt``: wrapped in `WordBoundaries` when some position is constrained and
    the rows are one window (a longer generation slides its windows, so only the text-level join applies)."""
    if prompt is None or length > model.length:
        return model
    kinds = torch.nn.functional.pad(boundary_kinds(prompt, length), (0, model.length - length))  # ANY = 0
    if not bool((kinds != ANY).any()):
        return model
    return WordBoundaries(model, kinds, word_start_table(text_io, model.num_classes) if table is None else table)


def generate_prompted(model, sampler, text_io: TextPrompts | None, length: int, *, seeds: list[int],
                      fixed: torch.Tensor, prompts: list[Prompt | None], **options):
    """`prime_core.sampling.semiar.generate` for rows with prompts: one call per run of rows that share a prompt, each
    with that prompt's word boundaries (`with_word_boundaries`), concatenated in row order. Rows are keyed by
    their seeds, so a row's tokens do not depend on which call drew it (as with --batch-size)."""
    from .semiar import Generation, generate

    table, parts, lo = None, [], 0
    while lo < len(seeds):
        hi = lo + 1
        while hi < len(seeds) and prompts[hi] is prompts[lo]:
            hi += 1
        seen = model
        if text_io is not None and prompts[lo] is not None:
            table = word_start_table(text_io, model.num_classes) if table is None else table
            seen = with_word_boundaries(model, text_io, prompts[lo], length, table)
        parts.append(generate(seen, sampler, length, seeds=seeds[lo:hi], fixed=fixed[lo:hi], **options))
        lo = hi
    if len(parts) == 1:
        return parts[0]
    return Generation(tokens=torch.cat([p.tokens for p in parts]), nfe=torch.cat([p.nfe for p in parts]),
                      idle_steps=torch.cat([p.idle_steps for p in parts]), steps=parts[0].steps,
                      blocks=parts[0].blocks, forward_calls=sum(p.forward_calls for p in parts),
                      stopped_at=[x for p in parts for x in p.stopped_at],
                      trajectory=None if parts[0].trajectory is None else
                      [torch.cat(t) for t in zip(*(p.trajectory for p in parts))])
