"""The HTTP application of `prime serve` (FastAPI on uvicorn): OpenAI's completions API, a denoising stream and
the playground page. docs/serving.md describes every endpoint, field and limit.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from importlib import resources

import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .requests import Limits, RequestError, parse_json, settings_from
from .service import Draining, Job, Overloaded, Scheduler, Served

#: paths anyone may GET without the API key: the load balancer's probe and the playground's own files (the page
#: holds no data; every API call it makes sends the key typed into it)
OPEN_PATHS = ("/", "/health", "/static/app.js", "/static/style.css")
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
POLL_S = 0.25  # how often a waiting request checks that its client is still there
LOG = logging.getLogger("prime.serve")


def error(exc: RequestError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def create_app(served: Served, scheduler: Scheduler, limits: Limits, *, api_key: str | None,
               model_id: str) -> "Guard":
    """The ASGI application: FastAPI's routes inside `Guard`; ``.app.state.draining`` turns new requests away."""
    app = FastAPI(title="prime serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.draining = False

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(RequestError(f"{request.method} {request.url.path}: {exc.detail}", status=exc.status_code,
                                  code=code))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        LOG.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(RequestError(f"internal error ({type(exc).__name__}); see the server's log", status=500,
                                  code="internal_error", kind="server_error"))

    @app.get("/health")
    async def health():
        return {"status": "draining" if app.state.draining else "ok", "model": model_id, **scheduler.load()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card(served, model_id)]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        if name != model_id:
            return error(RequestError(f"the model {name[:60]!r} does not exist; this server serves {model_id!r}",
                                      status=404, code="model_not_found", param="model"))
        return model_card(served, model_id)

    @app.post("/v1/completions")
    async def completions(request: Request):
        try:
            job, lengths, stream = await _job(request, served, scheduler, limits, model_id, steps=False)
        except RequestError as exc:
            return error(exc)
        head = _head(model_id)
        if stream:
            return _sse_response(_sse_completion(job, lengths, head, served, request))
        done = await _collect(job, request)
        if isinstance(done, RequestError):
            return error(done)
        if done is None:  # the client went away: nothing to answer
            return Response(status_code=499)
        return completion_body(head, job, done, lengths, served)

    @app.post("/v1/denoise")
    async def denoise(request: Request):
        try:
            job, lengths, _ = await _job(request, served, scheduler, limits, model_id, steps=True)
        except RequestError as exc:
            return error(exc)
        return _sse_response(_sse_denoise(job, lengths, _head(model_id), served, request))

    @app.get("/", response_class=HTMLResponse)
    async def playground():
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}")
    async def static(name: str):
        if name not in STATIC:
            return error(RequestError(f"no static file {name[:40]!r}", status=404, code="not_found"))
        return Response(_static(name), media_type=STATIC[name])

    return Guard(app, api_key)


class Guard:
    """Pure ASGI middleware (a BaseHTTPMiddleware would hide the client's disconnect from the endpoints): the API
    key on every request but the open paths, and 503 while draining."""

    def __init__(self, app: FastAPI, api_key: str | None):
        self.app, self.api_key, self.state = app, api_key, app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            return await error(refusal)(scope, receive, send)
        return await self.app(scope, receive, send)

    def _refusal(self, scope) -> RequestError | None:
        path, method = scope["path"], scope["method"]
        if self.api_key is not None and not (method == "GET" and path in OPEN_PATHS):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            given = headers.get("authorization", "")
            token = given[7:] if given[:7].lower() == "bearer " else headers.get("x-api-key", "")
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                return RequestError("missing or wrong API key: send Authorization: Bearer KEY", status=401,
                                    code="invalid_api_key")
        if self.state.draining and path != "/health":
            return RequestError("the server is shutting down; retry on another replica", status=503,
                                code="draining", kind="server_error", retry_after=5)
        return None


def _static(name: str) -> str:
    return resources.files("prime_plugin_serve").joinpath("static", name).read_text(encoding="utf-8")


def model_card(served: Served, model_id: str) -> dict:
    m = served.model
    return {"id": model_id, "object": "model", "created": served.created, "owned_by": "prime",
            "prime": {"length": m.length, "ell": m.ell, "base": m.base, "num_classes": m.num_classes,
                      "grouped_noise": bool(m.grouped), "tokenizer": served.text is not None,
                      "defaults": served.defaults, "samplers": served.samplers}}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (Content-Length or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the request body is {declared} bytes; at most {limit} (--max-body-bytes)", status=413,
                           code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body is more than {limit} bytes (--max-body-bytes)", status=413,
                               code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _job(request, served, scheduler, limits, model_id, *, steps: bool):
    data = parse_json(await read_body(request, limits.max_body_bytes))
    settings, lengths, stream = settings_from(data, served, limits, model_id)
    job = Job(served, settings, asyncio.get_running_loop(), wants_steps=steps or stream)
    try:
        scheduler.submit(job)
    except Overloaded as exc:
        raise RequestError(f"the server is busy: {exc}; retry later", status=429, code="overloaded",
                           kind="rate_limit_error", retry_after=1) from None
    except Draining:
        raise RequestError("the server is shutting down; retry on another replica", status=503, code="draining",
                           kind="server_error", retry_after=5) from None
    return job, lengths, stream


async def next_event(job: Job, request: Request):
    """The job's next event; None once the client has disconnected (checked at least every `POLL_S`)."""
    while True:
        now = time.monotonic()
        if now - job.checked >= POLL_S:  # also while events keep coming: a stream must notice a gone client
            job.checked = now
            if await request.is_disconnected():
                return None
        try:
            return await asyncio.wait_for(job.queue.get(), POLL_S)
        except asyncio.TimeoutError:
            continue


async def _collect(job: Job, request: Request):
    """Every row's `Finished`, or a `RequestError`, or None when the client disconnected (its rows freed)."""
    done: dict = {}
    try:
        while True:
            event = await next_event(job, request)
            if event is None:
                return None
            kind, payload = event
            if kind == "done":
                done[payload.index] = payload
            elif kind == "error":
                return RequestError(f"sampling failed: {payload}", status=500, code="sampling_failed",
                                    kind="server_error")
            elif kind == "end":
                return done
    finally:
        if len(done) < job.settings.rows:
            job.cancel()


def _stop_cut(text: str, stops) -> tuple[str, str]:
    """(text up to the first stop sequence, finish_reason)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], "stop") if cut >= 0 else (text, "length")


def _choice(job: Job, fin, lengths, served: Served):
    s = job.settings
    prompt = s.prompts[fin.index // s.n]
    text, used, made = served.decode(fin.tokens, prompt, lengths[fin.index // s.n])
    text, reason = _stop_cut(text, s.stop)
    return text, reason, used, made


def completion_body(head: dict, job: Job, done: dict, lengths, served: Served) -> dict:
    choices, prompt_tokens, completion_tokens = [], 0, 0
    for i in range(job.settings.rows):
        text, reason, used, made = _choice(job, done[i], lengths, served)
        choices.append({"text": text, "index": i, "logprobs": None, "finish_reason": reason})
        prompt_tokens += used
        completion_tokens += made
    return {**head, "object": "text_completion", "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "prime": prime_extras(job, done)}


def prime_extras(job: Job, done: dict) -> dict:
    """prime's own report: the seed (drawn when the request had none), T, NFE and idle steps per choice."""
    rows = [done[i] for i in range(job.settings.rows)]
    return {"seed": job.settings.seed, "steps": rows[0].steps, "sampler": job.settings.sampler,
            "nfe": [r.nfe for r in rows], "idle_steps": [r.idle for r in rows]}


def _head(model_id: str) -> dict:
    """The fields every completion answer (a body, or each streamed chunk) starts with: a fresh id, the Unix time,
    the model id, as OpenAI's completions API."""
    return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model_id}


def _sse_response(events) -> StreamingResponse:
    """A server-sent-event stream of ``events`` (`_sse` strings), never cached by a proxy."""
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _sse(data, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def _prefix_text(served: Served, job: Job, index: int, state, lengths) -> str | None:
    """The completion text of row ``index`` as far as its tokens are fully revealed from the prompt on, or None
    where the text cannot grow monotonically (infill, no tokenizer, stop sequences: sent whole at the end)."""
    s = job.settings
    prompt = s.prompts[index // s.n]
    if served.text is None or s.stop or (prompt is not None and prompt.infill):
        return None
    start = 0 if prompt is None else len(prompt.fixed)
    known = (state != served.model.mask_id).all(-1).tolist()
    end = start
    while end < lengths[index // s.n] and known[end]:
        end += 1
    ids = served.model.map.decode(state[None, :end])[0].tolist() if end else []
    text = served.decode(ids, prompt, end)[0] if end > start else ""
    return None if text.endswith("\ufffd") else text


async def _sse_completion(job: Job, lengths, head: dict, served: Served, request: Request):
    """OpenAI's streamed completion: chunks of text as each row's completion is revealed from its start."""
    sent = [""] * job.settings.rows
    done: dict = {}
    chunk = {**head, "object": "text_completion"}
    try:
        while True:
            event = await next_event(job, request)
            if event is None:
                return
            kind, payload = event
            if kind == "step":
                text = _prefix_text(served, job, payload.index, payload.state, lengths)
                if text and text.startswith(sent[payload.index]) and len(text) > len(sent[payload.index]):
                    delta, sent[payload.index] = text[len(sent[payload.index]):], text
                    yield _sse({**chunk, "choices": [{"text": delta, "index": payload.index, "logprobs": None,
                                                      "finish_reason": None}]})
            elif kind == "done":
                done[payload.index] = payload
                text, reason, _, _ = _choice(job, payload, lengths, served)
                delta = text[len(sent[payload.index]):] if text.startswith(sent[payload.index]) else text
                yield _sse({**chunk, "choices": [{"text": delta, "index": payload.index, "logprobs": None,
                                                  "finish_reason": reason}]})
            elif kind == "error":
                yield _sse(RequestError(f"sampling failed: {payload}", status=500, code="sampling_failed",
                                        kind="server_error").body())
                return
            elif kind == "end":
                yield _sse({**chunk, "choices": [], "prime": prime_extras(job, done)})
                yield _sse("[DONE]")
                return
    finally:
        if len(done) < job.settings.rows:
            job.cancel()  # the client went away mid-stream: its rows leave the batch


async def _sse_denoise(job: Job, lengths, head: dict, served: Served, request: Request):
    """The denoising itself: a ``start`` event (layout and fixed digits), one ``step`` event per row and step
    (the units revealed: position, digit, value; the text of tokens that became whole), then ``done`` with the
    completion (as POST /v1/completions answers it)."""
    m, s = served.model, job.settings
    rows = []
    for p, prompt in enumerate(s.prompts):
        fixed = [] if prompt is None else list(prompt.fixed)
        digits = [m.map.encode(torch.tensor([v]))[0].tolist() if v >= 0 else None for v in fixed]
        for _ in range(s.n):
            rows.append({"length": lengths[p], "fixed": [[i, d, served.piece(fixed[i])] for i, d in enumerate(digits)
                                                         if d is not None]})
    yield _sse({**head, "ell": m.ell, "base": m.base, "steps": s.steps, "seed": s.seed, "rows": rows}, "start")
    done: dict = {}
    try:
        while True:
            event = await next_event(job, request)
            if event is None:
                return
            kind, payload = event
            if kind == "step":
                length = lengths[payload.index // s.n]
                whole = {p for p, _, _ in payload.revealed
                         if p < length and bool((payload.state[p] != m.mask_id).all())}
                tokens = {p: int(m.map.decode(payload.state[p][None, None])[0, 0]) for p in whole}
                yield _sse({"index": payload.index, "step": payload.step, "steps": payload.steps,
                            "revealed": [r for r in payload.revealed if r[0] < length],
                            "tokens": {str(p): [t, served.piece(t)] for p, t in tokens.items()},
                            "nfe": payload.nfe, "idle_steps": payload.idle}, "step")
            elif kind == "done":
                done[payload.index] = payload
            elif kind == "error":
                yield _sse(RequestError(f"sampling failed: {payload}", status=500, code="sampling_failed",
                                        kind="server_error").body(), "error")
                return
            elif kind == "end":
                yield _sse(completion_body(head, job, done, lengths, served), "done")
                return
    finally:
        if len(done) < s.rows:
            job.cancel()
