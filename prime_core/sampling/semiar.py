"""Sequences of any length N, semi-autoregressively (MDLM's semi-AR sampling; DESIGN §2.5, item 8).

The model generates windows of L tokens. Block 0 is positions 0 … L−1. Block k ≥ 1 keeps the last ``context``
generated tokens fixed as a prefix (through the sampler's ``fixed_tokens``) and generates the window
[p − context, p − context + L), of which the ``stride`` tokens from p on are kept (p = L + (k−1)·stride), until
N tokens exist; defaults: stride = L // 2, context = L − stride (context + stride ≤ L; tokens of the window past
p + stride, if any, are drawn and dropped). User constraints (prompt / infill ids) inside a window stay fixed.

Randomness: row i of block 0 uses its row seed sᵢ; block k ≥ 1 uses a seed derived from (sᵢ, k) only
(`block_seed`), so a batch equals its rows generated one by one. NFE and idle steps are summed over blocks.
With ``eos_id``, a row stops at the first EOS the sampler placed at a free position: later blocks skip it and its
later positions hold EOS.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..errors import PrimeError, check_count
from .generation import Generation, block_seed, stop_rows as _stop_rows  # noqa: F401 (names kept here)


#: Most blocks one semi-autoregressive run may take (each is a full T-step sampler run over L tokens, so the
#: time grows with K·T): --length 2²⁰ is 2047 blocks at L = 1024 (stride 512) but 2²⁰ blocks at L = 3.
MAX_BLOCKS = 4096


def window_plan(length: int, window: int, stride: int | None = None,
                context: int | None = None) -> list[tuple[int, int, int]]:
    """[(window start, first kept position, kept count)] for N = ``length`` tokens in windows of L = ``window``."""
    check_count("length", length)
    stride = max(1, window // 2) if stride is None else stride
    if not 1 <= stride <= window:
        raise PrimeError(f"--stride must lie in 1 … L = {window}, got {stride}")
    context = window - stride if context is None else context
    if not 0 <= context <= window - stride:
        raise PrimeError(f"--context must lie in 0 … L − stride = {window - stride}, got {context}")
    blocks = 1 + -(-max(0, length - window) // stride)  # K = 1 + ⌈(N − L) / stride⌉
    if blocks > MAX_BLOCKS:
        raise PrimeError(f"--length {length} needs {blocks} blocks of L = {window} tokens (stride {stride}), more "
                         f"than {MAX_BLOCKS}; each block is a full sampler run: lower --length or raise --stride")
    plan = [(0, 0, min(length, window))]
    pos = window
    while pos < length:
        plan.append((pos - context, pos, min(stride, length - pos)))
        pos += stride
    return plan


def generate(model, sampler, length: int, *, seeds: list[int], fixed: torch.Tensor | None = None,
             stride: int | None = None, context: int | None = None, eos_id: int | None = None,
             **options) -> Generation:
    """N = ``length`` tokens per row for len(seeds) rows with ``sampler.sample(model, n, fixed_tokens=…,
    seeds=…, **options)`` per block. fixed [n, N] (−1 = free): prompt / infill ids. See module docstring."""
    from ..diffusion.block import is_block_model
    from .blocks import generate_blocks

    if is_block_model(model):  # block diffusion: block by block with a KV cache, no windows (DESIGN §2.8)
        return generate_blocks(model, sampler, length, seeds=seeds, fixed=fixed, stride=stride, context=context,
                               eos_id=eos_id, **options)
    if options.pop("kv_cache", None) is not None:
        raise PrimeError("--kv-cache/--no-kv-cache apply to block-diffusion models (model.block_size < L); this "
                         "model generates windows of L tokens: leave them out")
    n, window = len(seeds), model.length
    check_count("rows", n)
    plan = window_plan(length, window, stride, context)
    fixed = torch.full((n, length), -1, dtype=torch.long) if fixed is None else torch.as_tensor(fixed).long()
    if fixed.shape != (n, length):
        raise ValueError(f"fixed must have shape ({n}, {length}), got {tuple(fixed.shape)}")
    tokens = fixed.clone()
    nfe, idle = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    stopped: list[int | None] = [None] * n
    calls, steps, trajectory = 0, 0, None
    # many blocks: one bar over the blocks (each block's own bar would flash past), shown once it runs a while
    bar = tqdm(total=len(plan), desc="blocks", unit="block", delay=2.0, leave=False,
               disable=len(plan) == 1 or not options.get("progress", False))
    if len(plan) > 1:
        options = {**options, "progress": False}
    for k, (start, first, count) in enumerate(plan):
        rows = [i for i in range(n) if stopped[i] is None]
        if not rows:
            break
        cond = torch.full((len(rows), window), -1, dtype=torch.long)
        inside = min(window, length - start)
        cond[:, :inside] = tokens[rows, start:start + inside]  # context (generated) and user constraints
        if k == 0 and options.get("return_trajectory") and length > window:
            raise PrimeError("a trajectory shows one window of L tokens; not with --length > L")
        result = sampler.sample(model, len(rows), fixed_tokens=cond, seeds=[block_seed(seeds[i], k) for i in rows],
                                **options)
        off = first - start
        tokens[rows, first:first + count] = result.tokens[:, off:off + count].cpu()
        nfe[rows] += result.nfe.cpu()
        idle[rows] += result.idle_steps.cpu()
        calls, steps = calls + result.forward_calls, result.steps
        trajectory = result.trajectory if k == 0 else None
        _stop_rows(tokens, fixed, rows, first + count, eos_id, stopped)
        bar.update(1)
    bar.close()
    return Generation(tokens=tokens, nfe=nfe, idle_steps=idle, steps=steps, blocks=len(plan),
                      forward_calls=calls, stopped_at=stopped, trajectory=trajectory)
