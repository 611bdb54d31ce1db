"""Fréchet distance and a classifier-score diversity measure, on uint8 images [N, ch, H, W].

FD = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_r Σ_g)^{1/2}) over a feature network's activations, computed by
torchmetrics' `FrechetInceptionDistance` with ``feature=`` the network. Names: with `InceptionFeatures` it is
"FID"; with our Fashion-MNIST classifier it is "FD-FMNIST" (a proxy, never called FID).
"""

from __future__ import annotations

import math

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from prime_core import PrimeError


def metric_name(feature) -> str:
    from .features import InceptionFeatures

    return "FID" if isinstance(feature, InceptionFeatures) else "FD-FMNIST"


@torch.no_grad()
def frechet_distance(real: torch.Tensor, fake: torch.Tensor, feature: torch.nn.Module,
                     batch_size: int = 256, device: torch.device | str = "cpu") -> float:
    """FD between two sets of uint8 images under ``feature`` (needs ≥ 2 images per set). The network and
    torchmetrics' running sums live on ``device``; each batch of images moves there once, nothing comes back
    until the score."""
    for what, x in (("real", real), ("generated", fake)):
        if x.dtype != torch.uint8:
            raise PrimeError(f"{what} images must be uint8 in [0, 255], got dtype {x.dtype}")
        if x.dim() != 4 or len(x) < 2:
            raise PrimeError(f"{what} images must be [N ≥ 2, ch, H, W], got shape {tuple(x.shape)}")
    fd = FrechetInceptionDistance(feature=feature, normalize=False, reset_real_features=True,
                                  input_img_size=tuple(real.shape[1:])).to(device)
    for x, is_real in ((real, True), (fake, False)):
        for i in range(0, len(x), batch_size):
            fd.update(x[i:i + batch_size].to(device), real=is_real)
    return float(fd.compute())


@torch.no_grad()
def classifier_score(net, images: torch.Tensor, batch_size: int = 512) -> float:
    """Inception-score-style diversity with a classifier: exp(E_x KL(p(y|x) ‖ p(y))) (1 … number of classes)."""
    logp = torch.cat([torch.log_softmax(net.logits(images[i:i + batch_size]).double(), -1)
                      for i in range(0, len(images), batch_size)])
    marginal = torch.logsumexp(logp, 0) - math.log(len(logp))
    return float(torch.exp((logp.exp() * (logp - marginal)).sum(-1).mean()))
