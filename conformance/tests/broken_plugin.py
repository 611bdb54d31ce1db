"""A deliberately broken prime plugin: every component breaks one rule its suite checks. The self-tests assert
that the suites reject each one with a message naming the component, its distribution and the check."""

from __future__ import annotations

import math

import torch

from prime_core import (AncestralSampler, BaseBMap, Backbone, Exporter, Metric, NoiseSchedule, Parameterization,
                        PrimeError, hookimpl)
from prime_core.diffusion import losses


class WobblySchedule(NoiseSchedule):
    """α_t = 1 − t − 0.06 sin(6πt): right ends, exact α′, stays in [0, 1] — but it rises in places."""

    def alpha(self, t):
        return 1.0 - t - 0.06 * torch.sin(6 * math.pi * t)

    def alpha_prime(self, t):
        return -1.0 - 0.36 * math.pi * torch.cos(6 * math.pi * t)


class WrongDerivativeSchedule(NoiseSchedule):
    """α_t = 1 − t², with α′ = −t (should be −2t)."""

    def alpha(self, t):
        return 1.0 - t**2

    def alpha_prime(self, t):
        return -t


class WrongWeightSchedule(NoiseSchedule):
    """α_t = 1 − t² with the right α′ = −2t, but weight() = 1/t instead of −α′/(1 − α) = 2/t: every other
    schedule check passes, and the NELBO is silently halved."""

    def alpha(self, t):
        return 1.0 - t**2

    def alpha_prime(self, t):
        return -2.0 * t

    def weight(self, t):
        return 1.0 / t


class CollapsingMap(BaseBMap):
    """Tokens 2k and 2k+1 get the same digits: not invertible."""

    def encode(self, tokens):
        self.check_tokens(tokens)
        return super().encode(tokens - tokens % 2)


class LaxMap(BaseBMap):
    """Invertible, but calls every code valid, even those ≥ C."""

    def is_valid(self, codes):
        return torch.ones_like(codes, dtype=torch.bool)


class LeakyHead(Parameterization):
    """Softmax over all C tokens: mass on tokens that contradict observed digits (breaks Prop. A.4)."""

    carry_over = True

    def log_probs(self, logits, y_t, subtoken_map):
        return torch.log_softmax(logits.float(), -1)


class OptimisticNelbo(Metric):
    """The valid NELBO minus half a nat, still declared a bound."""

    is_bound = True

    def per_sequence(self, model, tokens, *, generator=None):
        return losses.nelbo(model, tokens, generator=generator) - 0.5


class JointLossAsBound(Metric):
    """The paper's joint loss reported as a likelihood bound: the published error (DESIGN §1)."""

    is_bound = True

    def per_sequence(self, model, tokens, *, generator=None):
        return losses.joint_loss(model, tokens, generator=generator)


class DigitFlippingSampler(AncestralSampler):
    """Samples correctly, then zeroes every token's last digit in one extra step: tokens stay < C, but
    observed sub-tokens change."""

    def sample(self, model, num_samples, **options):
        res = super().sample(model, num_samples, **{**options, "return_trajectory": True})
        y = model.map.encode(res.tokens)
        y[..., -1] = 0
        res.tokens = model.map.decode(y)
        res.trajectory = [*res.trajectory, y]
        return res


class RemaskingDigitFlipper(DigitFlippingSampler):
    """Declares re-masking, which allows observed → mask, yet changes an observed digit to another digit."""

    remasking = True


class FixedRemasker(AncestralSampler):
    """Declares re-masking and re-masks everything once, fixed (prefix) tokens included, before a correct
    final state: the output is right but the prompt was lost in between."""

    remasking = True

    def sample(self, model, num_samples, **options):
        res = super().sample(model, num_samples, **{**options, "return_trajectory": True})
        everything = torch.full_like(res.trajectory[-1], model.mask_id)
        res.trajectory = [*res.trajectory[:-1], everything, res.trajectory[-1]]
        return res


class BatchMixingBackbone(Backbone):
    """Adds the batch mean of its features: a row's output depends on the other rows."""

    def __init__(self, spec):
        super().__init__(spec)
        self.time_conditioned = spec.time_conditioned
        self.emb = torch.nn.Embedding(spec.base + 1, spec.out_dim)

    def forward(self, y, t=None):
        h = self.emb(y).sum(-2)
        return h + h.mean(0, keepdim=True)


class TimeDeafBackbone(Backbone):
    """Says it is time-conditioned when asked, then ignores t."""

    def __init__(self, spec):
        super().__init__(spec)
        self.time_conditioned = spec.time_conditioned
        self.emb = torch.nn.Embedding(spec.base + 1, spec.out_dim)

    def forward(self, y, t=None):
        return self.emb(y).sum(-2)


class OffByOneBackbone(Backbone):
    """Takes ``positions`` but answers with the logits of the next position."""

    def __init__(self, spec):
        super().__init__(spec)
        self.time_conditioned = spec.time_conditioned
        self.emb = torch.nn.Embedding(spec.base + 1, spec.out_dim)

    def forward(self, y, t=None, positions=None):
        h = self.emb(y).sum(-2)
        return h if positions is None else h.roll(-1, dims=1).flatten(0, 1)[positions.flatten()]


class HalfWritingExporter(Exporter):
    """Writes half an artifact, then gives up: the refusal leaves a file behind."""

    def export(self, checkpoint, output, **options):
        with open(output, "wb") as fh:
            fh.write(b"half")
        raise PrimeError("runtime not available")


#: (kind, name, the check that must reject it)
BROKEN = [
    ("schedule", "wobbly", "check_strictly_decreasing"),
    ("schedule", "wrong-derivative", "check_alpha_prime_matches_finite_differences"),
    ("schedule", "wrong-weight", "check_weight_matches_alpha"),
    ("map", "collapsing", "check_round_trip_all_tokens"),
    ("map", "lax", "check_invalid_codes_flagged"),
    ("head", "leaky", "check_zero_mass_outside_consistent_tokens"),
    ("metric", "optimistic-nelbo", "check_bound_ge_exact_nll"),
    ("metric", "joint-loss-as-bound", "check_bound_ge_exact_nll"),
    ("sampler", "digit-flipper", "check_observed_subtokens_never_change"),
    ("sampler", "remasking-digit-flipper", "check_observed_subtokens_never_change"),
    ("sampler", "fixed-remasker", "check_observed_subtokens_never_change"),
    ("backbone", "batch-mixer", "check_batch_invariance"),
    ("backbone", "time-deaf", "check_time_conditioning_switch"),
    ("backbone", "off-by-one", "check_positions_match_full_output"),
    ("exporter", "half-writer", "check_exports_or_refuses_cleanly"),
]


@hookimpl
def register_schedules(register):
    register("wobbly", WobblySchedule)
    register("wrong-derivative", WrongDerivativeSchedule)
    register("wrong-weight", WrongWeightSchedule)


@hookimpl
def register_maps(register):
    register("collapsing", CollapsingMap)
    register("lax", LaxMap)


@hookimpl
def register_heads(register):
    register("leaky", LeakyHead)


@hookimpl
def register_metrics(register):
    register("optimistic-nelbo", OptimisticNelbo)
    register("joint-loss-as-bound", JointLossAsBound)


@hookimpl
def register_samplers(register):
    register("digit-flipper", DigitFlippingSampler)
    register("remasking-digit-flipper", RemaskingDigitFlipper)
    register("fixed-remasker", FixedRemasker)


@hookimpl
def register_backbones(register):
    register("batch-mixer", BatchMixingBackbone)
    register("time-deaf", TimeDeafBackbone)
    register("off-by-one", OffByOneBackbone)


@hookimpl
def register_exporters(register):
    register("half-writer", HalfWritingExporter)
