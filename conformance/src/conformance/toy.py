"""Tiny diffusion problems the suites run components on (C, ℓ, L small enough to enumerate, DESIGN §2.4).

`FixedLogitsBackbone` ignores y_t and t and returns one fixed logit table [L, out_dim]: with a joint head its
conditionals are those of a single joint distribution, which makes the joint loss fall below the exact NLL by
−½·PMI(d¹; d²) for ℓ = 2 (DESIGN §1) — the situation a bound check must be able to see. With
``shared_positions`` every position has the same logits (exact ties between positions, as in an untrained or
fully masked model), and ``batch_rounding`` ε adds ε·U (U uniform in [0, 1), seeded by the batch size) to the
logits: the last-bit dependence on the batch that real float32 kernels have.
"""

from __future__ import annotations

import torch

from prime_core.api import Backbone, BackboneSpec, BaseBMap, LinearSchedule, MLPBackbone, PrimeModel


class FixedLogitsBackbone(Backbone):
    """E(x | y_t) = table[i, x] for position i, whatever y_t and t. Digits of x that agree with each other get a
    bonus ``coupling``, so the digits of a token are strongly dependent under a joint head."""

    time_conditioned = False

    def __init__(self, spec: BackboneSpec, seed: int = 0, coupling: float = 2.5, subtoken_map=None,
                 shared_positions: bool = False, batch_rounding: float = 0.0):
        super().__init__(spec)
        g = torch.Generator().manual_seed(seed)
        table = torch.randn(1 if shared_positions else spec.length, spec.out_dim, generator=g)
        table = table.expand(spec.length, -1).clone()
        if spec.out_dim == spec.num_classes and spec.ell > 1:
            subtoken_map = subtoken_map or BaseBMap(spec.num_classes, spec.ell)
            digits = subtoken_map.encode(torch.arange(spec.num_classes))  # the digits the model will see
            agree = (digits == digits[:, :1]).sum(-1).float() - 1.0  # digits equal to the leading digit
            table = 0.5 * table + coupling * agree
        self.table = torch.nn.Parameter(table)
        self.batch_rounding = batch_rounding

    def forward(self, y, t=None):
        out = self.table.unsqueeze(0).expand(y.shape[0], -1, -1)
        if self.batch_rounding:  # last-bit differences that depend on the batch size B, as real kernels' do
            g = torch.Generator().manual_seed(int(y.shape[0]))
            out = out + self.batch_rounding * torch.rand(out.shape[1:], generator=g, dtype=out.dtype)
        return out


def perturb_(module: torch.nn.Module, seed: int, scale: float = 0.5) -> torch.nn.Module:
    """Add seeded noise to every parameter, so zero-initialised layers (e.g. adaLN) stop hiding inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def tiny_model(num_classes: int, ell: int, length: int, *, head, noise: str = "independent", schedule=None,
               backbone: str = "fixed", subtoken_map=None, seed: int = 0, scale: float = 0.5,
               shared_positions: bool = False, batch_rounding: float = 0.0) -> PrimeModel:
    """A PrimeModel on a tiny problem: base-b map (unless given), the given head instance, a fixed-logit or
    random-MLP backbone (time-independent, weights perturbed by ``scale``), linear schedule (unless given).
    shared_positions / batch_rounding: options of the fixed-logit backbone (`FixedLogitsBackbone`)."""
    subtoken_map = subtoken_map or BaseBMap(num_classes, ell)
    spec = BackboneSpec(out_dim=head.output_dim(subtoken_map), base=subtoken_map.base, ell=ell, length=length,
                        width=4 * ell, num_classes=num_classes, time_conditioned=False)
    if backbone == "fixed":
        net = FixedLogitsBackbone(spec, seed=seed, subtoken_map=subtoken_map, shared_positions=shared_positions,
                                  batch_rounding=batch_rounding)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = perturb_(MLPBackbone(spec, hidden=32, depth=1), seed, scale)
    model = PrimeModel(subtoken_map, net, head, schedule or LinearSchedule(), noise=noise)
    return model.eval()
