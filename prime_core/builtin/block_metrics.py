"""Built-in metrics of block-diffusion models (DESIGN §2.8): the two valid block bounds and the block joint loss.
`prime eval` reports these, and only these, for a model with ``model.block_size`` < L: the plain NELBOs describe
a different model (one block of L tokens)."""

from __future__ import annotations

from ..diffusion import block as block_diffusion
from .metrics import JointLossMetric, NelboMetric, TStepNelboMetric


class _BlockOnly:
    """Mixin: a metric of block-diffusion models only (refuses a one-block model in one line); the estimator is the
    plain metric's with its block version (`loss`) in its place."""

    requires_block_model = True

    def per_sequence(self, model, tokens, *, generator=None):
        if not block_diffusion.is_block_model(model):
            raise ValueError(f"{self.name} needs a block-diffusion model (model.block_size < L); this one has one "
                             "block: use nelbo / tstep-nelbo")
        return super().per_sequence(model, tokens, generator=generator)


class BlockNelboMetric(_BlockOnly, NelboMetric):
    """Σₖ NELBO(block k | clean blocks < k), continuous time inside each block: an upper bound on −log p_θ(x)."""

    name = "block-nelbo"
    label = "block NELBO Σₖ (bound, continuous model)"
    loss = staticmethod(block_diffusion.block_nelbo)


class BlockTStepNelboMetric(_BlockOnly, TStepNelboMetric):
    """Σₖ T-step NELBO(block k | clean blocks < k): an upper bound on −log p_T(x) of the block-by-block sampler."""

    name = "block-tstep-nelbo"
    label_format = "block {T}-step NELBO Σₖ (bound, {T}-step sampler per block)"
    loss = staticmethod(block_diffusion.block_tstep_nelbo)


class BlockJointLossMetric(_BlockOnly, JointLossMetric):
    """The paper's joint loss inside each block: a training objective, NOT a likelihood bound (DESIGN §1)."""

    name = "block-joint-loss"
    label = "block joint loss (training objective, not a bound)"
    loss = staticmethod(block_diffusion.block_joint_loss)


BLOCK_METRICS = [BlockNelboMetric, BlockTStepNelboMetric, BlockJointLossMetric]
