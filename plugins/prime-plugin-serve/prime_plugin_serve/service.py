"""The served model and the scheduler thread that batches requests into it.

`Served` loads a checkpoint once (model, text I/O, the checkpoint's sampling defaults). `Scheduler` owns one
worker thread: it admits waiting requests into the shared `Engine` batch at every step boundary (plain ancestral
sampler), or runs a request whole between two steps (any other sampler or runtime: those join at batch
boundaries only), and hands each request's events to its asyncio queue. The waiting room is bounded: a full one
is `Overloaded` (HTTP 429 with Retry-After), a draining server `Draining` (HTTP 503).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time

import attrs
import torch

from prime_core.api import (ANY, GREEDY_TEMPERATURE, PrimeError, TextPrompts, boundary_kinds, dataset_for_checkpoint,
                            decode_row, encode_infill, encode_prompt, generate_prompted, get_registry,
                            load_model, presentation, row_seeds, word_start_table)

from .engine import Engine, Finished, Group, StepEvent, new_row


LOG = logging.getLogger("prime.serve")


class Overloaded(Exception):
    """The waiting room is full (HTTP 429)."""


class Draining(Exception):
    """The server is shutting down (HTTP 503)."""


@attrs.frozen
class Settings:
    """A validated request, in prime's terms: rows = prompts × n, keyed seed·2³² + row (`row_seeds`)."""

    prompts: tuple  # tuple[Prompt | None, ...]
    n: int
    length: int  # N tokens per row (prompt + completion), ≤ L
    steps: int
    temperature: float
    top_p: float
    seed: int
    sampler: str
    stop: tuple[str, ...] = ()
    steps_given: bool = True  # an event-driven sampler without steps runs in continuous time (as prime sample)

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.n


class Served:
    """One checkpoint, loaded once: ``model``, ``text`` (its `TextPrompts`, or None: token ids), defaults."""

    def __init__(self, checkpoint: str, *, device: str | None = None, runtime: str = "torch",
                 weights: str = "model"):
        self.model, self.config, ckpt = load_model(checkpoint, weights=weights,
                                                   device=device if runtime == "torch" else "cpu")
        self.model.eval()
        self.checkpoint, self.runtime, self.meta = checkpoint, runtime, ckpt.meta
        try:
            shown = presentation(dataset_for_checkpoint(self.config, ckpt.meta.get("data"), need_data=False))
        except (PrimeError, FileNotFoundError):  # a data set that cannot be rebuilt here: ids, as prime sample
            shown = presentation(None)
        self.shown = shown
        self.text = shown if isinstance(shown, TextPrompts) else None
        self.table = word_start_table(self.text, self.model.num_classes) if self.text is not None else None
        s = self.config.sample
        self.defaults = dict(steps=s.steps, temperature=s.temperature, top_p=s.top_p, sampler=s.sampler)
        self.sampler_options = dict(s.options)
        self.draw_dtype = getattr(torch, s.draw_dtype)
        self.samplers = sorted(get_registry().names("sampler"))
        self.created = int(time.time())
        self._runtime_sampler = None

    @property
    def length(self) -> int:
        return self.model.length

    def encode(self, prompt: str | None, infill: bool):
        """A `Prompt` for the text (None for an empty prompt: an unconditional row)."""
        if not prompt:
            return None
        if self.text is None:
            raise ValueError("this checkpoint has no tokenizer: send an empty prompt (unconditional samples)")
        return encode_infill(self.text, prompt) if infill else encode_prompt(self.text, prompt)

    def kinds(self, prompt, length: int) -> torch.Tensor | None:
        """The prompt's word-boundary kinds [L] where `prime sample` would condition on them, else None."""
        if prompt is None or self.text is None or length > self.length:
            return None
        kinds = torch.nn.functional.pad(boundary_kinds(prompt, length), (0, self.length - length))
        return kinds if bool((kinds != ANY).any()) else None

    def decode(self, tokens: list[int], prompt, length: int) -> tuple[str, int, int]:
        """(completion text, prompt tokens, completion tokens) of one row's first ``length`` tokens."""
        ids = tokens[:length]
        fixed = 0 if prompt is None else sum(1 for v in prompt.fixed if v >= 0)
        if self.text is None:
            text = self.shown.decode_samples(torch.tensor([ids]))[0]
            return str(text), fixed, length - fixed
        row = decode_row(self.text, ids, prompt, None)
        return row.completion, fixed, length - fixed

    def piece(self, token: int) -> str:
        """The text of one token alone (the playground draws a revealed token so)."""
        if self.text is None:
            return str(token)
        return self.text.decode_text([token])

    def whole(self, settings: Settings):
        """Every row of a request in one `generate_prompted` call (samplers other than plain ancestral, runtimes)."""
        registry = get_registry()
        if self.runtime != "torch":
            if self._runtime_sampler is None:
                rt = registry.build("runtime", self.runtime)
                self._runtime_sampler = rt.sampler(self.model, self.config, self.checkpoint, step_model=None,
                                                   draw_dtype=self.config.sample.draw_dtype,
                                                   ckpt_meta=self.meta, top_p=settings.top_p)
            sampler = self._runtime_sampler
        else:
            options = self.sampler_options if settings.sampler == self.defaults["sampler"] else {}
            sampler = registry.build("sampler", settings.sampler, **options)
        prompts = [p for p in settings.prompts for _ in range(settings.n)]
        rows = torch.full((settings.rows, settings.length), -1, dtype=torch.long)
        for i, p in enumerate(prompts):
            if p is not None and p.fixed:
                rows[i, :len(p.fixed)] = torch.tensor(p.fixed)
        steps = None if getattr(sampler, "event_driven", False) and not settings.steps_given else settings.steps
        return generate_prompted(self.model, sampler, self.text, settings.length,
                                 seeds=row_seeds(settings.rows, settings.seed), fixed=rows, prompts=prompts,
                                 steps=steps, temperature=settings.temperature, top_p=settings.top_p,
                                 draw_dtype=self.draw_dtype, cache=True, progress=False)

    def stepwise(self, settings: Settings) -> bool:
        """Whether the request's rows can join the shared step-level batch (plain ancestral sampler, eager)."""
        plain = settings.sampler == "ancestral" and not (settings.sampler == self.defaults["sampler"]
                                                         and self.sampler_options)
        return self.runtime == "torch" and plain


def greedy_temperature(temperature: float) -> float:
    """OpenAI's temperature 0 (greedy) is prime's τ → 0 limit: any τ < `GREEDY_TEMPERATURE` takes the argmax."""
    return temperature if temperature > 0 else GREEDY_TEMPERATURE / 2


class Job:
    """One request in flight: its settings, the asyncio queue its events go to, and a cancel flag."""

    def __init__(self, served: Served, settings: Settings, loop: asyncio.AbstractEventLoop, wants_steps: bool):
        self.served, self.settings, self.loop = served, settings, loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.wants_steps = wants_steps
        self.groups: list[Group] = []
        self.cancelled = False
        self.enqueued = time.monotonic()
        self.checked = time.monotonic()  # when the request's client was last seen connected

    def emit(self, kind: str, payload) -> None:
        """From the worker thread: hand an event to the request's coroutine (dropped once it went away)."""
        if not self.cancelled:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))

    def cancel(self) -> None:
        """The client went away: its rows leave the batch at the next step boundary."""
        self.cancelled = True
        for g in self.groups:
            g.cancelled = True

    def rows(self):
        """The job's engine rows, one `Group` per prompt (row index = prompt · n + j, as `prime sample`)."""
        s, served, out = self.settings, self.served, []
        seeds = row_seeds(s.rows, s.seed)
        for p, prompt in enumerate(s.prompts):
            group = Group(served.kinds(prompt, s.length), self.emit, self.wants_steps)
            self.groups.append(group)
            fixed = torch.full((served.length,), -1, dtype=torch.long)
            if prompt is not None and prompt.fixed:
                fixed[:len(prompt.fixed)] = torch.tensor(prompt.fixed)
            for j in range(s.n):
                i = p * s.n + j
                out.append(new_row(served.model, group, i, seeds[i], fixed, s.steps, s.temperature, s.top_p))
        return out


@attrs.define
class Stats:
    admitted: int = 0
    finished: int = 0
    cancelled: int = 0
    failed: int = 0
    rejected: int = 0
    ticks: int = 0


class Scheduler:
    """The worker thread (see the module docstring). ``max_rows``: rows in the shared batch at once;
    ``max_waiting``: requests waiting to join (beyond it: `Overloaded`)."""

    def __init__(self, served: Served, *, max_rows: int, max_waiting: int):
        self.served, self.max_rows, self.max_waiting = served, max_rows, max_waiting
        self.engine = Engine(served.model, served.draw_dtype, served.table)
        self.waiting: collections.deque[Job] = collections.deque()
        self.running: dict[Job, int] = {}  # job → rows still in the batch
        self.stats = Stats()
        self.draining = False
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="prime-serve-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cv:
            if self.draining:
                raise Draining("the server is shutting down")
            if len(self.waiting) >= self.max_waiting:
                self.stats.rejected += 1
                raise Overloaded(f"{len(self.waiting)} requests are waiting (the limit, --max-waiting)")
            self.waiting.append(job)
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=30)

    def load(self) -> dict:
        with self._cv:
            return {"rows_in_batch": len(self.engine.rows), "requests_running": len(self.running),
                    "requests_waiting": len(self.waiting), **attrs.asdict(self.stats),
                    "forward_calls": self.engine.forward_calls}

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stop and not self.waiting and not self.engine.rows:
                    self._cv.wait()
                if self._stop:
                    return
                admitted = self._admit()
            for job in admitted:  # whole-request jobs run between two steps
                self._run_whole(job)
            try:
                self.engine.tick()
            except Exception as exc:  # noqa: BLE001 — fail the batch's requests, keep serving
                self._fail_all(exc)
            with self._cv:
                self.stats.ticks += 1
                self.stats.cancelled += sum(1 for j in list(self.running) if j.cancelled)
                for job in [j for j in self.running if j.cancelled]:
                    del self.running[job]
                self.engine.drop_cancelled()

    def _admit(self) -> list:
        """Move waiting jobs into the batch while their rows fit (first come, first served); returns the
        whole-request jobs to run now. A cancelled waiting job is dropped."""
        whole = []
        while self.waiting:
            job = self.waiting[0]
            if job.cancelled:
                self.waiting.popleft()
                self.stats.cancelled += 1
                continue
            if not self.served.stepwise(job.settings):
                self.waiting.popleft()
                whole.append(job)
                continue
            if self.engine.rows and len(self.engine.rows) + job.settings.rows > self.max_rows:
                break
            self.waiting.popleft()
            try:
                rows = job.rows()
            except Exception as exc:  # noqa: BLE001 — bad constraints (e.g. digits with no valid token)
                job.emit("error", exc)
                self.stats.failed += 1
                continue
            for g in job.groups:
                g.sink = self._sink(job)
            self.engine.add(rows)
            self.running[job] = len(rows)
            self.stats.admitted += 1
        return whole

    def _sink(self, job: Job):
        def sink(kind: str, payload) -> None:
            job.emit(kind, payload)
            if kind == "done":
                with self._cv:
                    left = self.running.get(job, 0) - 1
                    if left <= 0:
                        self.running.pop(job, None)
                        self.stats.finished += 1
                        job.emit("end", None)
                    else:
                        self.running[job] = left
        return sink

    def _run_whole(self, job: Job) -> None:
        if job.cancelled:
            return
        self.stats.admitted += 1
        try:
            g = self.served.whole(job.settings)
        except Exception as exc:  # noqa: BLE001
            LOG.error("a request run whole failed", exc_info=exc)
            job.emit("error", exc)
            self.stats.failed += 1
            return
        for i in range(job.settings.rows):
            job.emit("done", Finished(i, g.tokens[i].tolist(), int(g.nfe[i]), int(g.idle_steps[i]), g.steps))
        job.emit("end", None)
        self.stats.finished += 1

    def _fail_all(self, exc: Exception) -> None:
        LOG.error("a sampler step failed; its %d requests get 500", len(self.running), exc_info=exc)
        with self._cv:
            for job in self.running:
                job.emit("error", exc)
                job.cancel()
            self.stats.failed += len(self.running)
            self.running.clear()
            self.engine.rows = []


__all__ = ["Draining", "Job", "Overloaded", "Scheduler", "Served", "Settings", "StepEvent", "greedy_temperature"]
