"""Validation during training: a valid likelihood bound on fixed held-out rows (``train.eval_every``).

The number is the first metric ``prime eval`` reports for the model (`validation_metric`): the continuous-time
NELBO over the N = L·ℓ sub-tokens (`prime_core.diffusion.losses.nelbo`, DESIGN §2.4),

    B(x) = ∫₀¹ w(t) E_q[Σ_{masked units u} −log p_θ(y₀ᵘ | y_t)] dt ≥ −log p_θ(x),   w(t) = −α′_t / (1 − α_t),

or a backbone's own exact metric (``eval_metrics``, e.g. ``ar-nll`` of a causal DiT). It is estimated on
``train.eval_sequences`` rows of the valid split with ``eval.mc_samples`` Monte-Carlo draws each, in nats per
token: B̂ = Σ_rows Σ_draws B / (rows · draws · L), and PPL ≤ exp(B̂) (per token, not per sub-token). The joint
training loss is never used here: it is not a bound (DESIGN §1).

Everything random is fixed once, so successive values are comparable (one curve, one "best"):
- rows: `held_out_rows` picks them with a permutation seeded by `ROW_SEED`, the same for every run on a data set;
- noise: the rows are cut into chunks of ``eval.batch_size``; chunk k draws all its noise from a generator seeded
  with ``seed + k · CHUNK_STRIDE`` (`chunk_seed`), whichever process evaluates it. With one chunk this is exactly
  `prime_core.runs.evaluate.evaluate_metric` on those rows with that seed.
Under torchrun chunk k goes to rank k mod W; every rank runs the same number of forward passes (the extra ones are
discarded: DDP and FSDP forwards are collectives) and the per-row sums are all-reduced, so 1 process and W
processes report the same number.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import attrs
import torch

from ..diffusion.block import is_block_model
from ..errors import PrimeError
from .evaluate import metric_kind

ROW_SEED = 0
CHUNK_STRIDE = 1_000_003
DEFAULT_SEED = 0  # the noise seed; the same default as `prime eval --seed`


def chunk_seed(seed: int, k: int) -> int:
    return seed + k * CHUNK_STRIDE


def held_out_rows(valid: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` fixed rows of the valid split [N, L] (all N rows, in order, when count ≥ N)."""
    n = int(valid.shape[0])
    if n == 0:
        raise PrimeError("train.eval_every > 0 needs a valid split with at least one sequence, but the data set's "
                         "valid split is empty; use more data or set train.eval_every = 0")
    if count >= n:
        return valid[:]
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(ROW_SEED))[:count].sort().values
    return valid[pick]


def validation_metric(model, registry):
    """The metric ``prime eval`` reports first: the backbone's own (``eval_metrics``) or the NELBO."""
    if registry is None:
        from ..plugin.default import get_registry

        registry = get_registry()
    own = getattr(model.backbone, "eval_metrics", None)
    if is_block_model(model):
        own = ("block-nelbo",)
    metric = registry.build("metric", own[0] if own else "nelbo")
    if not metric.is_bound:
        raise PrimeError(f"validation metric {metric.name!r} is not a likelihood bound; refusing to report it "
                         f"as one")
    return metric


@attrs.frozen
class ValidBound:
    """One validation result: ``value`` B̂ in nats/token (a valid upper bound in expectation) and its standard
    error over rows."""

    metric: str
    label: str
    value: float
    stderr: float
    sequences: int
    mc_samples: int
    seed: int
    kind: str = "bound-estimate"  # `prime_core.runs.evaluate.KINDS`: "exact" for an AR model's NLL

    @property
    def key(self) -> str:
        """The metrics.jsonl field: ``valid_nelbo`` (``valid_ar_nll`` …)."""
        return "valid_" + self.metric.replace("-", "_")

    @property
    def ppl_estimate(self) -> float | None:
        """exp(B̂): the perplexity of the estimate itself (None where exp overflows)."""
        from .evaluate import safe_exp

        return safe_exp(self.value)

    @property
    def ppl_bound(self) -> float | None:
        """The figure a "≤" (or, exact, "=") is about: exp(B) for an exact value, exp(B̂ + 1.645·se) — the one-sided
        95 % upper confidence limit — for an estimate (docs/concepts.md); None without an se, or on overflow."""
        from .evaluate import safe_exp, ucl95

        if self.kind == "exact":
            return safe_exp(self.value)
        limit = ucl95(self.value, self.stderr)
        return None if limit is None else safe_exp(limit)

    def row(self, step: int) -> dict:
        """The metrics.jsonl row: the bound B̂, its se, ``<key>_ppl_estimate`` = exp(B̂) and ``<key>_ppl_bound`` =
        the perplexity bound (`ppl_bound`: null where undefined), and how it was made."""
        return {"step": step, "valid_metric": self.metric, "valid_label": self.label, "valid_kind": self.kind,
                self.key: self.value, f"{self.key}_stderr": self.stderr,
                f"{self.key}_ppl_estimate": self.ppl_estimate, f"{self.key}_ppl_bound": self.ppl_bound,
                "valid_sequences": self.sequences, "valid_mc_samples": self.mc_samples, "valid_seed": self.seed}

    def short(self) -> str:
        """For a progress bar: "PPL=12.34" (exact), "PPL≤12.34" (an estimate's 95 % upper confidence limit) or
        "PPL~12.34" (an estimate with one draw: no confidence limit, so no "≤")."""
        def fmt(x: float | None) -> str:
            return ">1e308" if x is None else f"{x:.4g}"

        if self.kind == "exact":
            return f"PPL={fmt(self.ppl_bound)}"
        if self.ppl_bound is None and self.ppl_estimate is not None:
            return f"PPL~{fmt(self.ppl_estimate)}"
        return f"PPL≤{fmt(self.ppl_bound)}"


PerSequence = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@attrs.define
class Validator:
    """Held-out rows [n, L] + the metric + fixed noise; `estimate` gives the `ValidBound` of the current weights."""

    metric: object
    rows: torch.Tensor
    mc_samples: int = 1
    batch_size: int = 256
    seed: int = DEFAULT_SEED

    @classmethod
    def from_config(cls, config, dataset, model, registry) -> "Validator":
        rows = held_out_rows(dataset.split("valid"), config.train.eval_sequences)
        return cls(validation_metric(model, registry), rows, config.eval.mc_samples, config.eval.batch_size)

    @property
    def num_chunks(self) -> int:
        return -(-int(self.rows.shape[0]) // self.batch_size)

    def chunks_of(self, rank: int, world_size: int) -> list[tuple[int, bool]]:
        """(chunk index, counted) pairs rank ``rank`` evaluates: its own chunks k ≡ rank (mod W), then repeats of
        chunk 0 (not counted) until every rank has run ⌈chunks / W⌉ of them."""
        own = list(range(rank, self.num_chunks, world_size))
        per_rank = -(-self.num_chunks // world_size)
        return [(k, True) for k in own] + [(0, False)] * (per_rank - len(own))

    def estimate(self, per_sequence: PerSequence, *, rank: int = 0, world_size: int = 1,
                 all_sum: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> ValidBound:
        """B̂ of the weights behind ``per_sequence(rows, generator) → [b]`` (nats per row; call it under
        ``torch.no_grad`` with the model in eval mode). ``all_sum`` sums a float64 tensor over ranks."""
        length = int(self.rows.shape[1])
        # Σ_rows r, Σ_rows r², rows (r = a row's mean nats per token), kept on the model's device so that nothing
        # syncs with the host per draw and the all-reduce (NCCL on GPUs) gets a tensor of its own device
        sums = None
        for k, counted in self.chunks_of(rank, world_size):
            chunk = self.rows[k * self.batch_size:(k + 1) * self.batch_size]
            g = torch.Generator().manual_seed(chunk_seed(self.seed, k))
            per_row = sum(per_sequence(chunk, g).detach().double() for _ in range(self.mc_samples))
            if sums is None:
                sums = torch.zeros(3, dtype=torch.float64, device=per_row.device)
            if counted:
                r = per_row / (self.mc_samples * length)
                sums += torch.stack([r.sum(), (r * r).sum(), r.new_tensor(float(len(r)))])
        total, squares, n = (float(x) for x in all_sum(sums))
        mean = total / n
        var = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else math.nan
        return ValidBound(self.metric.name, getattr(self.metric, "label", self.metric.name), mean,
                          math.sqrt(var / n) if n > 1 else math.nan, int(n), self.mc_samples, self.seed,
                          metric_kind(self.metric))


def is_eval_step(done: int, train) -> bool:
    """Validate after step ``done`` (1-based) when it is a multiple of ``train.eval_every`` or the last step."""
    return train.eval_every > 0 and (done % train.eval_every == 0 or done == train.steps)


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode (no dropout) and no autograd for the block; the previous mode is restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
