"""Built-in metrics of block-diffusion models (DESIGN §2.8): the two valid block bounds and the block joint loss.
`prime eval` reports these, and only these, for a model with ``model.block_size`` < L: the plain NELBOs describe
a different model (one block of L tokens)."""

from __future__ import annotations

from ..diffusion import block as block_diffusion
from ..interfaces import Metric


def _check(model, name: str) -> None:
    if not block_diffusion.is_block_model(model):
        raise ValueError(f"{name} needs a block-diffusion model (model.block_size < L); this one has one block: "
                         "use nelbo / tstep-nelbo")


class BlockNelboMetric(Metric):
    """Σₖ NELBO(block k | clean blocks < k), continuous time inside each block: an upper bound on −log p_θ(x)."""

    name = "block-nelbo"
    requires_block_model = True
    is_bound = True
    label = "block NELBO Σₖ (bound, continuous model)"

    def per_sequence(self, model, tokens, *, generator=None):
        _check(model, self.name)
        return block_diffusion.block_nelbo(model, tokens, generator=generator)


class BlockTStepNelboMetric(Metric):
    """Σₖ T-step NELBO(block k | clean blocks < k): an upper bound on −log p_T(x) of the block-by-block sampler."""

    name = "block-tstep-nelbo"
    requires_block_model = True
    is_bound = True

    def __init__(self, steps: int = 64):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"the T-step block NELBO needs a whole number of steps T ≥ 1, got {steps!r}")
        self.steps = steps
        self.label = f"block {steps}-step NELBO Σₖ (bound, {steps}-step sampler per block)"

    def per_sequence(self, model, tokens, *, generator=None):
        _check(model, self.name)
        return block_diffusion.block_tstep_nelbo(model, tokens, steps=self.steps, generator=generator)


class BlockJointLossMetric(Metric):
    """The paper's joint loss inside each block: a training objective, NOT a likelihood bound (DESIGN §1)."""

    name = "block-joint-loss"
    requires_block_model = True
    is_bound = False
    label = "block joint loss (training objective, not a bound)"

    def per_sequence(self, model, tokens, *, generator=None):
        _check(model, self.name)
        return block_diffusion.block_joint_loss(model, tokens, generator=generator)


BLOCK_METRICS = [BlockNelboMetric, BlockTStepNelboMetric, BlockJointLossMetric]
