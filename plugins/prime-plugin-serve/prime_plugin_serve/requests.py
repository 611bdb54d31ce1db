"""Limits and request validation for `prime serve`: every field checked for type and range before any work, every
refusal an OpenAI-shaped 4xx error naming the field, what was wrong and what is allowed.

A request names text and numbers only: there is no field for a file, a checkpoint, a URL or a plugin (the model
is the one the server loaded; ``sampler`` is looked up among the installed samplers by name, nothing is
imported for it).
"""

from __future__ import annotations

import json
import math
import secrets

import attrs

from .service import Settings, greedy_temperature

#: the fields of POST /v1/completions (OpenAI's that prime implements, then prime's own)
OPENAI_FIELDS = ("model", "prompt", "max_tokens", "temperature", "top_p", "seed", "n", "stop", "stream")
PRIME_FIELDS = ("steps", "sampler", "infill", "length")
FIELDS = OPENAI_FIELDS + PRIME_FIELDS
MAX_SEED = 2**32 - 1
MAX_STOP = 4


@attrs.frozen
class Limits:
    """What one request (and the server) may ask for; `prime serve --help` lists the defaults."""

    max_body_bytes: int = 65_536
    max_prompt_chars: int = 8_192
    max_prompts: int = 16
    max_tokens: int | None = None  # None: L, the model's window
    max_n: int = 16
    max_steps: int = 1_024
    max_rows: int = 64  # rows in the shared batch; one request's prompts × n must fit
    max_waiting: int = 64  # requests waiting to join the batch; beyond it 429
    grace: float = 30.0  # seconds SIGTERM waits for requests in flight


class RequestError(Exception):
    """A refused request: HTTP ``status`` and OpenAI's error object."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = "invalid_value", kind: str = "invalid_request_error", retry_after: int | None = None):
        super().__init__(message)
        self.status, self.param, self.code, self.kind, self.retry_after = status, param, code, kind, retry_after

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> dict:
    """The body as a JSON object (NaN / Infinity, which JSON lacks, refused)."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise RequestError("the request body is not UTF-8 text; send a JSON object", code="invalid_json") from None
    except ValueError as exc:
        raise RequestError(f"the request body is not valid JSON ({exc}); send a JSON object",
                           code="invalid_json") from None
    if not isinstance(data, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    return data


def _int(data: dict, name: str, lo: int, hi: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be a whole number in [{lo}, {hi}], got {json.dumps(value)[:40]}",
                           param=name, code="invalid_type")
    if not lo <= value <= hi:
        raise RequestError(f"{name} must lie in [{lo}, {hi}], got {value}", param=name)
    return value


def _number(data: dict, name: str, lo: float, hi: float, lo_open: bool) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{name} must be a number, got {json.dumps(value)[:40]}", param=name,
                           code="invalid_type")
    value = float(value)
    inside = (value > lo if lo_open else value >= lo) and value <= hi
    if not math.isfinite(value) or not inside:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise RequestError(f"{name} must be a finite number in {interval}, got {value:g}", param=name)
    return value


def _texts(data: dict, name: str, limits: Limits) -> list[str] | None:
    """A string or a non-empty list of strings, each valid Unicode and at most max_prompt_chars long."""
    value = data.get(name)
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        hint = "; token-id prompts are not accepted, send text" if isinstance(items, list) and items else ""
        raise RequestError(f"{name} must be a string or a non-empty list of strings{hint}", param=name,
                           code="invalid_type")
    if len(items) > limits.max_prompts:
        raise RequestError(f"{name} has {len(items)} items; at most {limits.max_prompts} (--max-prompts)",
                           param=name)
    for text in items:
        if len(text) > limits.max_prompt_chars:
            raise RequestError(f"a {name} of {len(text)} characters is longer than {limits.max_prompt_chars} "
                               "(--max-prompt-chars)", param=name)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RequestError(f"{name} is not valid Unicode (a lone surrogate at character {exc.start})",
                               param=name) from None
    return items


def _stop(data: dict) -> tuple[str, ...]:
    value = data.get("stop")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if (not isinstance(items, list) or not all(isinstance(v, str) and v for v in items)
            or not 1 <= len(items) <= MAX_STOP):
        raise RequestError(f"stop must be a non-empty string or a list of 1 … {MAX_STOP} non-empty strings",
                           param="stop", code="invalid_type")
    return tuple(items)


def check_fields(data: dict) -> None:
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; prime serve accepts {', '.join(FIELDS)}",
                           param=unknown[0], code="unknown_field")


def settings_from(data: dict, served, limits: Limits, model_id: str) -> tuple[Settings, tuple[int, ...], bool]:
    """(prime `Settings`, each prompt's row length N, stream) of a completions request; `RequestError` if bad."""
    check_fields(data)
    model = data.get("model")
    if model is not None and model != model_id:
        if not isinstance(model, str):
            raise RequestError("model must be a string", param="model", code="invalid_type")
        raise RequestError(f"the model {model[:60]!r} does not exist; this server serves {model_id!r} (GET "
                           "/v1/models)", status=404, param="model", code="model_not_found")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream must be true or false", param="stream", code="invalid_type")
    prompts, infills = _texts(data, "prompt", limits), _texts(data, "infill", limits)
    if infills and prompts and any(prompts):
        raise RequestError("infill (a template with [MASK:k] gaps) replaces prompt: send one of them",
                           param="infill")
    texts, infill = (infills, True) if infills else (prompts or [""], False)
    if infill and len(infills) > limits.max_prompts:
        raise RequestError(f"at most {limits.max_prompts} infill templates", param="infill")
    window = served.length
    cap = min(limits.max_tokens or window, window)
    max_tokens = _int(data, "max_tokens", 1, cap)
    length = _int(data, "length", 1, window)
    if max_tokens is not None and length is not None:
        raise RequestError("max_tokens (tokens after the prompt) and length (tokens per row, prompt included) "
                           "both set the row's size: send one of them", param="length")
    n = _int(data, "n", 1, limits.max_n) or 1
    if len(texts) * n > limits.max_rows:
        raise RequestError(f"{len(texts)} prompts × n = {n} is {len(texts) * n} rows, more than "
                           f"{limits.max_rows} (--max-batch-rows)", param="n")
    steps = _int(data, "steps", 1, limits.max_steps) or served.defaults["steps"]
    temperature = _number(data, "temperature", 0.0, 100.0, lo_open=False)
    temperature = served.defaults["temperature"] if temperature is None else greedy_temperature(temperature)
    top_p = _number(data, "top_p", 0.0, 1.0, lo_open=True)
    top_p = served.defaults["top_p"] if top_p is None else top_p
    seed = _int(data, "seed", 0, MAX_SEED)
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
    sampler = data.get("sampler", served.defaults["sampler"])
    if not isinstance(sampler, str) or sampler not in served.samplers:
        raise RequestError(f"sampler must be one of the installed samplers ({', '.join(served.samplers)}), got "
                           f"{json.dumps(sampler)[:40]}", param="sampler")
    if served.runtime != "torch" and sampler != "ancestral":
        raise RequestError(f"this server runs --runtime {served.runtime}, which drives the ancestral sampler "
                           "only", param="sampler")
    encoded, lengths = [], []
    for text in texts:
        try:
            prompt = served.encode(text, infill)
        except Exception as exc:  # noqa: BLE001 — a malformed template or no tokenizer: the message says which
            raise RequestError(str(exc).replace("--infill", "infill"), param="infill" if infill else "prompt") \
                from None
        size = 0 if prompt is None else len(prompt.fixed)
        row = length if length is not None else window if max_tokens is None else size + max_tokens
        no_room = size > row or (size == row and not infill and prompt is not None)
        if no_room:
            what = "infill template" if infill else "prompt"
            raise RequestError(f"the {what} is {size} tokens; with {row} tokens per row (L = {window}) no token is "
                               "left to generate: shorten it or lower max_tokens", param="max_tokens")
        encoded.append(prompt)
        lengths.append(row)
    settings = Settings(tuple(encoded), n, max(lengths), steps, temperature, top_p, seed, sampler, _stop(data),
                        steps_given=data.get("steps") is not None)
    return settings, tuple(lengths), stream
