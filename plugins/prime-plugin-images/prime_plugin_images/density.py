"""A 2-D toy density drawn from a bundled picture (the paper's Fig. 4 setup, DESIGN §2.8).

p(row, col) ∝ (intensity)^γ of ``skimage.data.camera()`` (512×512 grey, bundled with scikit-image) area-averaged to
size×size, plus a small floor so every cell has mass. A sample is x = (row, col): L = 2 tokens with C = size
classes each, so with ℓ = 2 the model reveals N = L·ℓ = 4 sub-tokens and its likelihood can be enumerated exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prime_core import Dataset, KnownDensity, Presentation, PrimeError

_SPLIT_OFFSET = {"train": 0, "valid": 1, "test": 2}
IMAGES = ("camera", "moon", "coins", "horse")


def picture(name: str) -> torch.Tensor:
    try:
        import skimage.data
    except ImportError:
        raise PrimeError("the image-density-2d data set needs scikit-image, which is not installed: "
                         "pip install 'prime-plugin-images[toy]'") from None
    if name not in IMAGES:
        raise PrimeError(f"image must be one of {', '.join(IMAGES)} (bundled with scikit-image), got {name!r}")
    img = torch.as_tensor(getattr(skimage.data, name)()).double()
    if img.dim() == 3:
        img = img.mean(-1)
    return img / img.max()


class ImageDensity2D(Dataset, Presentation, KnownDensity):
    """x = (row, col) ~ p on a size×size grid, p ∝ picture intensity (+ floor)."""

    name = "image-density-2d"

    def __init__(self, image: str = "camera", size: int = 64, floor: float = 1e-3, invert: bool = False,
                 gamma: float = 1.0,
                 num_train: int = 100_000, num_eval: int = 4096, seed: int = 0):
        if not isinstance(size, int) or size < 2:
            raise PrimeError(f"size must be an integer ≥ 2, got {size!r}")
        self.num_classes, self.length = size, 2
        self.num_train, self.num_eval, self.seed = num_train, num_eval, seed
        img = picture(image)
        img = 1.0 - img if invert else img
        small = F.interpolate(img[None, None], size=(size, size), mode="area")[0, 0]
        p = small.clamp_min(0) ** gamma + floor  # gamma > 1 sharpens the picture's contrast
        self.log_density = (p / p.sum()).log()  # [C, C]

    def split(self, name: str) -> torch.Tensor:
        if name not in _SPLIT_OFFSET:
            raise PrimeError(f"split must be one of train, valid, test; got {name!r}")
        n = self.num_train if name == "train" else self.num_eval
        g = torch.Generator().manual_seed(self.seed * 10 + _SPLIT_OFFSET[name])
        flat = torch.multinomial(self.log_density.exp().flatten(), n, replacement=True, generator=g)
        return torch.stack([flat // self.num_classes, flat % self.num_classes], dim=-1)

    def exact_log_prob(self, sequences: torch.Tensor) -> torch.Tensor:
        return self.log_density[sequences[:, 0], sequences[:, 1]]

    def entropy(self) -> float:
        p = self.log_density.exp()
        return float(-(p * self.log_density).sum())

    def all_cells(self) -> torch.Tensor:
        c = self.num_classes
        flat = torch.arange(c * c)
        return torch.stack([flat // c, flat % c], dim=-1)

    def render(self, tokens: torch.Tensor, path: str) -> str | None:
        from .render import save_densities

        c = self.num_classes
        hist = torch.bincount(tokens[:, 0] * c + tokens[:, 1], minlength=c * c).view(c, c).double()
        return save_densities([("data density", self.log_density.exp()), (f"{len(tokens)} samples", hist)], path)
