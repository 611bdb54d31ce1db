"""Built-in metrics: the two valid bounds (DESIGN §2.4) and the two training objectives, each named."""

from __future__ import annotations

from ..interfaces import Metric
from ..diffusion import losses


class _LossMetric(Metric):
    """A metric that is one function of `prime_core.diffusion.losses` (``loss``), per sequence in nats."""

    loss = staticmethod(losses.nelbo)

    def per_sequence(self, model, tokens, *, generator=None):
        return type(self).loss(model, tokens, generator=generator)


class NelboMetric(_LossMetric):
    """Valid continuous-time NELBO over sub-tokens (marginals of the joint). An upper bound on −log p_θ(x)."""

    name = "nelbo"
    is_bound = True
    label = "continuous-time NELBO (bound, continuous model)"
    loss = staticmethod(losses.nelbo)


class TStepNelboMetric(Metric):
    """Valid T-step NELBO of the T-step ancestral sampler. An upper bound on −log p_T(x)."""

    name = "tstep-nelbo"
    is_bound = True
    label = "T-step NELBO"

    loss = staticmethod(losses.tstep_nelbo)
    label_format = "{T}-step NELBO (bound, {T}-step sampler)"

    def __init__(self, steps: int = 64):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"the T-step NELBO needs a whole number of steps T ≥ 1, got {steps!r}")
        self.steps = steps
        self.label = self.label_format.format(T=steps)

    def per_sequence(self, model, tokens, *, generator=None):
        return type(self).loss(model, tokens, steps=self.steps, generator=generator)


class JointLossMetric(_LossMetric):
    """The paper's joint loss: a training objective, NOT a likelihood bound (DESIGN §1)."""

    name = "joint-loss"
    is_bound = False
    label = "joint loss (training objective, not a bound)"
    loss = staticmethod(losses.joint_loss)


class TrainingNelboMetric(_LossMetric):
    """MDLM's ε-truncated estimator used for training; it omits t < ε, so it is not reported as a bound."""

    name = "training-nelbo"
    is_bound = False
    label = "training NELBO (t ≥ ε, objective)"
    loss = staticmethod(losses.training_nelbo)


BUILTIN_METRICS = [NelboMetric, TStepNelboMetric, JointLossMetric, TrainingNelboMetric]
