"""Text prompts and infill templates → fixed-token rows for the sampler, and sampled rows → text.

A prompt fixes the first tokens of a row: positions 0 … |encode(prompt)|−1 hold the prompt's ids, the rest of the
sequence (L tokens, or ``--length``) is free. An infill template mixes text and free spans: ``[MASK:k]`` stands
for k free tokens, e.g. ``"She said [MASK:12] and left"`` fixes the ids of "She said ", leaves 12 positions free,
then fixes the ids of " and left"; positions after the template are free too (the model may continue the text).
Text is tokenised with the checkpoint's own tokenizer through the data set's `TextPrompts` capability, whose
promise decode(encode(s)) == s makes each decoded row start with its prompt exactly. Token-id constraints for
non-text data stay with ``--fix`` (`prime_core.cliargs.parse_fixed`).
"""

from __future__ import annotations

import re

import attrs
import torch

from .errors import PrimeError
from .interfaces import TextPrompts

#: ``[MASK:k]``: k ≥ 1 free tokens inside an infill template
MASK_SPAN = re.compile(r"\[MASK:(\d+)\]")
MAX_SPAN = 1_000_000


@attrs.frozen
class Prompt:
    """One row's constraint: ``text`` as the user wrote it, ``fixed`` ids (−1 = free) covering the template."""

    text: str
    fixed: tuple[int, ...]
    infill: bool = False


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


def encode_prompt(text_io: TextPrompts, text: str) -> Prompt:
    """A plain prompt: every id fixed."""
    return Prompt(text, tuple(text_io.encode_text(text)))


def encode_infill(text_io: TextPrompts, template: str) -> Prompt:
    """An infill template: text pieces fixed, each [MASK:k] k free positions (−1). Pieces are encoded one by one,
    so each piece's ids reproduce it exactly wherever it sits."""
    fixed: list[int] = []
    for part in template_parts(template):
        fixed += [-1] * part if isinstance(part, int) else text_io.encode_text(part)
    return Prompt(template, tuple(fixed), infill=True)


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
    """Decode prompt and generated ids together (token boundaries never split the prompt), cut at ``stop``."""
    ids = ids if stop is None else ids[:stop]
    decoded = text_io.decode_text(ids)
    if prompt is None or prompt.infill:
        return DecodedRow(None if prompt is None else prompt.text, decoded, decoded)
    head = text_io.decode_text(list(prompt.fixed))
    if not decoded.startswith(head) or head != prompt.text:
        raise RuntimeError(f"the tokenizer broke its TextPrompts promise on the prompt {prompt.text[:40]!r}")
    return DecodedRow(prompt.text, decoded, decoded[len(head):])


def read_prompts_file(path: str) -> list[str]:
    """``--prompts FILE``: one prompt per line (UTF-8, a regular file of at most `MAX_PROMPTS_BYTES`); blank lines
    are skipped."""
    from .fileio import MAX_PROMPTS_BYTES, read_text_bounded

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
