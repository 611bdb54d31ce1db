"""Block-by-block generation of a block-diffusion model (DESIGN §2.8), any length, with a KV cache.

Block k (B tokens) is denoised by any sampler, unchanged, through `BlockView`: the model seen as a
time-independent MDM of length B whose p_θ(x | y_tᵏ) also reads the clean blocks before it. With the KV cache
(default where the backbone has one: ``new_block_cache`` / ``block_decode``) the clean blocks' keys and values are
computed once per block, and every denoising step runs the B positions of the block only; the reference path
(``kv_cache=False``) re-runs the clean context with ``block_forward`` at every step. Both give the same tokens
(tested). The context of a block is the last L − B clean tokens at most (whole blocks): the most the last block of
a training sequence sees, read exactly as in training. Up to L tokens the cache grows by one committed block at a
time; beyond, the window slides and the cache of the window is rebuilt once per block (one pass over L − B clean
tokens, block-causal among themselves) — keeping stale keys of tokens that had seen blocks now out of the window
would condition on a context no training sequence had.

Randomness: row i of block k uses the seed `generation.block_seed`(sᵢ, k) (block 0: sᵢ itself), and every sampler
keys its draws by (row seed, step, position): a row's tokens do not depend on its batch. NFE counts the sampler's
forward passes plus one per committed block (the pass that writes its keys/values).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..diffusion.block import block_size_of
from ..errors import PrimeError
from ..interfaces import Backbone
from .generation import Generation, block_seed, stop_rows as _stop_rows


class BlockView:
    """A block model seen by a sampler while it denoises one block: ``length`` = B, ``log_probs`` /
    ``log_probs_at`` of y [m, B, ℓ] given each row's clean context (``cache``: the backbone's KV cache of these
    rows; else ``context`` [m, P] clean token ids, P a multiple of B, for the reference path)."""

    time_conditioned = False

    def __init__(self, model, cache=None, context: torch.Tensor | None = None):
        self._model, self._cache, self._context = model, cache, context
        self.length = block_size_of(model)

    def __getattr__(self, name):  # map, ell, base, mask_id, grouped, schedule, device, num_classes, head …
        return getattr(self._model, name)

    def for_rows(self, rows: torch.Tensor) -> "BlockView":
        """The view of some rows only (the samplers' idle-step cache evaluates the rows that changed)."""
        batch = len(self._context) if self._cache is None else self._cache.keys.shape[1]
        if len(rows) == batch and bool((rows.cpu() == torch.arange(batch)).all()):
            return self
        if self._cache is not None:
            return BlockView(self._model, self._cache.select(rows.to(self._cache.keys.device)))
        return BlockView(self._model, context=self._context[rows.to(self._context.device)])

    def __call__(self, y: torch.Tensor, t=None, positions=None) -> torch.Tensor:
        """Backbone logits of the block: [m, B, out_dim] (or [N, out_dim] at ``positions``)."""
        net = self._model.backbone
        if self._cache is not None:
            logits = net.block_decode(y, self._cache)
        else:
            clean = self._model.map.encode(self._context.to(y.device))  # [m, P, ℓ]
            both = torch.cat([clean, y], dim=1)  # the noisy half's earlier blocks are never read
            logits = net.block_forward(both, both, self.length)[:, clean.shape[1]:]
        return Backbone.select_positions(logits, positions)

    def log_probs(self, y: torch.Tensor, t=None) -> torch.Tensor:
        return self._model.head.log_probs(self(y), y, self._model.map)

    def log_probs_at(self, y: torch.Tensor, where: torch.Tensor, t=None) -> torch.Tensor:
        return self._model.head.log_probs(self(y, positions=where), Backbone.select_positions(y, where),
                                          self._model.map)


def _with_constraints(model, view, lo: int, size: int):
    """The prompt's word-boundary constraints (`prompts.WordBoundaries`) at the block's positions, if any. Found by
    duck typing so this module does not import the prompt layer that builds on it."""
    over_block = getattr(model, "word_constraints_over_block", None)
    return view if over_block is None else over_block(view, lo, size)


def generate_blocks(model, sampler, length: int, *, seeds: list[int], fixed: torch.Tensor | None = None,
                    eos_id: int | None = None, stride: int | None = None, context: int | None = None,
                    kv_cache: bool | None = None, **options):
    """N = ``length`` tokens per row, block by block (module docstring); the signature of `semiar.generate`.
    fixed [n, N] (−1 = free): prompt ids, filling whole or partial blocks. ``kv_cache``: None = use the backbone's
    cache if it has one, True = require it, False = the reference path. Returns a `generation.Generation`."""
    if stride is not None or context is not None:
        raise PrimeError("--stride/--context shape semi-autoregressive windows; a block-diffusion model "
                         "(model.block_size) generates block by block with its clean prefix as context: leave them out")
    if options.pop("return_trajectory", False):
        raise PrimeError("a trajectory shows one window of L tokens; a block-diffusion model generates block by "
                         "block: leave --trajectory out")
    options.pop("batch_size", None)  # the whole batch shares one KV cache; rows are keyed, so batching is moot
    inner = getattr(model, "_model", model)  # under a prompt's word-boundary constraints
    net, size, n = inner.backbone, block_size_of(inner), len(seeds)
    has_cache = callable(getattr(net, "block_decode", None)) and callable(getattr(net, "new_block_cache", None))
    if kv_cache and not has_cache:
        raise PrimeError(f"--kv-cache: backbone {type(net).__name__} has no block KV cache (block_decode); "
                         "use --no-kv-cache")
    use_cache = has_cache if kv_cache is None else kv_cache
    fixed = torch.full((n, length), -1, dtype=torch.long) if fixed is None else torch.as_tensor(fixed).long()
    if fixed.shape != (n, length):
        raise ValueError(f"fixed must have shape ({n}, {length}), got {tuple(fixed.shape)}")
    tokens, device = fixed.clone(), inner.device
    nfe, idle = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    stopped: list[int | None] = [None] * n
    rows = list(range(n))
    cache = net.new_block_cache(n, size) if use_cache else None
    window = inner.length - size  # most clean tokens a block attends to
    blocks, calls, steps = -(-length // size), 0, 0
    # one bar over the blocks, shown once generation runs a while (each block's own bar would flash past)
    bar = tqdm(total=blocks, desc="blocks", unit="block", delay=2.0, leave=False,
               disable=blocks == 1 or not options.get("progress", False))
    if blocks > 1:
        options = {**options, "progress": False}
    for k in range(blocks):
        lo, hi = k * size, min(length, (k + 1) * size)
        cond = torch.full((len(rows), size), -1, dtype=torch.long)
        cond[:, :hi - lo] = tokens[rows, lo:hi]
        ctx = None if use_cache else tokens[rows, max(0, lo - window):lo].to(device)
        if use_cache and lo > window:  # the window slides: rebuild its cache (module docstring)
            cache = net.new_block_cache(len(rows), size)
            with torch.no_grad():
                net.block_decode(inner.map.encode(tokens[rows, lo - window:lo].to(device)), cache, commit=True)
            nfe[rows] += 1
            calls += 1
        view = _with_constraints(model, BlockView(inner, cache, ctx), lo, size)
        result = sampler.sample(view, len(rows), fixed_tokens=cond, seeds=[block_seed(seeds[i], k) for i in rows],
                                **options)
        tokens[rows, lo:hi] = result.tokens[:, :hi - lo].cpu()
        nfe[rows] += result.nfe.cpu()
        idle[rows] += result.idle_steps.cpu()
        calls, steps = calls + result.forward_calls, result.steps
        if use_cache and k + 1 < blocks and hi <= window:  # its keys/values join the cache (no slide yet)
            with torch.no_grad():
                net.block_decode(inner.map.encode(result.tokens.to(device)), cache, commit=True)
            nfe[rows] += 1
            calls += 1
        _stop_rows(tokens, fixed, rows, hi, eos_id, stopped)
        bar.update(1)
        still = [j for j, i in enumerate(rows) if stopped[i] is None]
        if len(still) < len(rows):
            rows = [rows[j] for j in still]
            if cache is not None and rows:
                cache = cache.select(torch.tensor(still, device=cache.keys.device))
        if not rows:
            break
    bar.close()
    return Generation(tokens=tokens, nfe=nfe, idle_steps=idle, steps=steps, blocks=blocks, forward_calls=calls,
                      stopped_at=stopped, trajectory=None)


def sample_rows(model, sampler, num_samples: int, *, seed: int = 0, seeds: list[int] | None = None, **options):
    """``sampler.sample(model, num_samples, …)`` for any model: a block-diffusion model generates its L tokens
    block by block (`generate_blocks`; ``steps`` of the result = T × the number of blocks, so idle ratios stay
    per step). Callers that sample L tokens (``prime run``, ``prime text evaluate``) use this."""
    from ..diffusion.block import is_block_model
    from .ancestral import SampleResult, row_seeds

    if not is_block_model(model):
        return sampler.sample(model, num_samples, seed=seed, seeds=seeds, **options)
    seeds = row_seeds(num_samples, seed) if seeds is None else list(seeds)
    g = generate_blocks(model, sampler, model.length, seeds=seeds, **options)
    return SampleResult(tokens=g.tokens, nfe=g.nfe, idle_steps=g.idle_steps, steps=g.steps * g.blocks,
                        forward_calls=g.forward_calls)
