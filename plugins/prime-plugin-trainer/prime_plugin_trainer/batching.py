"""One optimizer step's data and noise: chosen for the whole global batch, read only for this rank's rows.

Step n of a run with seed s uses window ids `window_ids(n, B, N, s, order)` of the training split: with order
"random" the core's per-epoch permutations (`batch_indices`: consecutive slices of a permutation seeded by
(s, epoch)), with "sequential" windows nB … nB + B − 1 (mod N). For every row i a time t_i and a mask drawn from
q(y_t | y_0) by a generator seeded with (s, n). Ids and noise are functions of (s, n) only and are drawn for all
B rows (a few bytes per token), but a rank reads from the data set only the token rows of its own micro-batches
(`draw_step(..., rows=rank_rows(slices))`), so a lazily read split (a memory-mapped corpus) costs each rank
B / world_size windows per step. A row's loss is the same however the batch is split into processes ×
micro-batches (the split changes only float summation order), and ``--resume`` replays exactly the steps a
killed run would have taken.

`StepLoader` reads step n + 1's rows on a background thread while step n trains (pinned memory on CUDA).
"""

from __future__ import annotations

import functools
import queue
import threading

import attrs
import torch

from prime_core.api import PrimeError, sample_mask


ORDERS = ("random", "sequential")


@attrs.frozen
class StepBatch:
    """Rows ``offset`` … ``offset + n − 1`` of a step's global batch (all B rows when offset = 0, n = B)."""

    tokens: torch.Tensor  # [n, L] token ids x_0
    t: torch.Tensor  # [n] training times in [ε, 1]
    masked: torch.Tensor  # [n, L, ℓ] True where the sub-token is masked in y_t
    offset: int = 0  # global row index of the first row

    def rows(self, sl: slice) -> "StepBatch":
        """Global rows ``sl`` (a slice of the global batch that lies inside this one)."""
        local = slice(sl.start - self.offset, sl.stop - self.offset)
        if local.start < 0 or local.stop > self.tokens.shape[0]:
            raise IndexError(f"rows {sl.start}:{sl.stop} are not in this batch (rows {self.offset}:"
                             f"{self.offset + self.tokens.shape[0]})")
        return StepBatch(self.tokens[local], self.t[local], self.masked[local], sl.start)

    def to(self, device, non_blocking: bool = False) -> "StepBatch":
        return StepBatch(self.tokens.to(device, non_blocking=non_blocking), self.t.to(device),
                         self.masked.to(device, non_blocking=non_blocking), self.offset)

    def pin_memory(self) -> "StepBatch":
        return StepBatch(self.tokens.pin_memory(), self.t.pin_memory(), self.masked.pin_memory(), self.offset)


def noise_seed(seed: int, step: int) -> int:
    """The seed of step n's noise generator (the same rule as the core's simple trainer)."""
    return seed * 1_000_003 + step


@functools.lru_cache(maxsize=2)
def _epoch_permutation(num_rows: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of epoch e that `batch_indices` uses (seeded by seed · 100,003 + e), computed once per
    epoch instead of once per step (8 bytes per window)."""
    return torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def window_ids(step: int, batch_size: int, num_rows: int, seed: int, order: str = "random") -> torch.Tensor:
    """The B window ids of step n: ``random`` = `batch_indices` (per-epoch permutations, equal ids), ``sequential``
    = (nB + i) mod N."""
    if order == "sequential":
        return (step * batch_size + torch.arange(batch_size)) % num_rows
    if order != "random":
        raise PrimeError(f"train.options.order must be one of {', '.join(ORDERS)}, got {order!r}")
    start, out = step * batch_size, []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), num_rows)
        out.extend(_epoch_permutation(num_rows, seed, epoch)[offset:offset + batch_size - len(out)].tolist())
    return torch.tensor(out)


def draw_step(train, step: int, batch_size: int, seed: int, model, eps: float, rows: slice | None = None,
              order: str = "random") -> StepBatch:
    """Global rows ``rows`` (default all B) of step n: their tokens (read only for those rows), times t ~
    stratified U[ε, 1] over the B rows and masks (keep probability α_t per unit), both drawn for all B rows."""
    rows = slice(0, batch_size) if rows is None else rows
    ids = window_ids(step, batch_size, len(train), seed, order)[rows]
    tokens = train[ids]
    g = torch.Generator().manual_seed(noise_seed(seed, step))
    t = model.schedule.sample_times(batch_size, eps=eps, generator=g)
    masked = sample_mask((batch_size, tokens.shape[1], model.ell), model.schedule.alpha(t), grouped=model.grouped,
                         generator=g)
    return StepBatch(tokens, t[rows], masked[rows], rows.start)


def rank_rows(slices: list[slice]) -> slice:
    """The global rows of one rank's micro-batches (`micro_slices` gives contiguous ones)."""
    return slice(slices[0].start, slices[-1].stop)


class StepLoader:
    """Step batches for steps ``start`` … ``stop − 1`` in order, each drawn by `draw_step` for ``rows``; with
    ``prefetch`` a background thread reads step n + 1 while step n trains (a queue of depth 1), pinning the
    memory when ``pin`` (CUDA). The batches are those `draw_step` returns, whatever the thread timing."""

    def __init__(self, train, start: int, stop: int, *, batch_size: int, seed: int, model, eps: float,
                 rows: slice, order: str = "random", prefetch: bool = True, pin: bool = False):
        self._draw = functools.partial(draw_step, train, batch_size=batch_size, seed=seed, model=model, eps=eps,
                                       rows=rows, order=order)
        self._steps, self._pin = iter(range(start, stop)), pin
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        if prefetch and stop > start:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._fill, name="prime-step-loader", daemon=True)
            self._thread.start()

    def _one(self, step: int) -> StepBatch:
        batch = self._draw(step)
        return batch.pin_memory() if self._pin else batch

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            for step in self._steps:
                if not self._put((step, self._one(step), None)):
                    return
        except BaseException as exc:  # noqa: BLE001 — handed to the training thread, raised there
            self._put((None, None, exc))

    def next(self, step: int) -> StepBatch:
        """The batch of ``step`` (steps must be asked for in order)."""
        if self._queue is None:
            got = next(self._steps)
            batch = self._one(got)
        else:
            got, batch, exc = self._queue.get()
            if exc is not None:
                raise exc
        if got != step:
            raise RuntimeError(f"step loader out of order: asked for step {step}, has {got}")
        return batch

    def close(self) -> None:
        self._stop.set()


def micro_slices(batch_size: int, world_size: int, grad_accum: int, rank: int) -> list[slice]:
    """Rows of this rank's micro-batches: the global batch is cut into world_size × grad_accum equal parts,
    part k = rank · grad_accum + a going to micro-batch a of ``rank``."""
    parts = world_size * grad_accum
    if batch_size % parts:
        raise PrimeError(f"train.batch_size={batch_size} must be divisible by processes × train.options.grad_accum "
                         f"= {world_size} × {grad_accum} = {parts}")
    m = batch_size // parts
    return [slice((rank * grad_accum + a) * m, (rank * grad_accum + a + 1) * m) for a in range(grad_accum)]
