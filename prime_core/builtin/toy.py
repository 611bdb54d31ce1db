"""Toy datasets whose distribution is known exactly, so a learned model can be compared with the truth.

toy-2d: a 2-D density on a C×C grid (DESIGN §2.8's toy, drawn procedurally: a ring of Gaussian bumps times a
checkerboard); a sample is x = (row, col), so L = 2 and C = the grid size. toy-markov: sequences of a random
first-order Markov chain over C states (Dirichlet rows), L from the options.
"""

from __future__ import annotations

import math
import os

import torch

from ..device import available_memory
from ..errors import ConfigError
from ..interfaces import Dataset, KnownDensity, Presentation

_SPLIT_OFFSET = {"train": 0, "valid": 1, "test": 2}


def _split_seed(seed: int, name: str) -> int:
    if name not in _SPLIT_OFFSET:
        raise ValueError(f"split must be one of train, valid, test; got {name!r}")
    return seed * 10 + _SPLIT_OFFSET[name]


def _whole(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"data.options.{name} must be a whole number ≥ {lo}, got {value!r}")
    return value


def _check_memory(nbytes: int, what: str) -> None:
    """Refuse a data set whose tensors (``nbytes``, the peak while it is built) exceed the memory available now,
    before allocating any of it: ``data.options.size=1000000000`` is one line, not an allocator's error."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise ConfigError(f"{what} needs about {nbytes / 2**30:,.1f} GiB, more than the {avail / 2**30:.1f} GiB of "
                          f"memory available; choose smaller data.options")


class Toy2D(Dataset, Presentation, KnownDensity):
    """x = (row, col) ~ p on a size×size grid."""

    name = "toy-2d"

    def __init__(self, size: int = 64, bumps: int = 8, checker: int = 8, num_train: int = 50_000,
                 num_eval: int = 4096, seed: int = 0):
        for name, value, lo in (("size", size, 2), ("bumps", bumps, 1), ("checker", checker, 1),
                                ("num_train", num_train, 1), ("num_eval", num_eval, 1)):
            _whole(name, value, lo)
        # the density grid: size² cells × bumps float64 distances (≈ 3 such arrays alive at once); the splits:
        # int64 (row, col) pairs
        _check_memory(24 * size * size * bumps + 16 * (num_train + num_eval),
                      f"toy-2d with data.options.size={size} (a {size}×{size} density grid)")
        self.num_classes, self.length = int(size), 2
        self.num_train, self.num_eval, self.seed = num_train, num_eval, seed
        self.log_density = self._density(size, bumps, checker).log()  # [C, C], sums to 1

    @staticmethod
    def _density(size: int, bumps: int, checker: int) -> torch.Tensor:
        coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1  # cell centres in [−1, 1]
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        angles = torch.arange(bumps, dtype=torch.float64) * (2 * math.pi / bumps)
        cy, cx = 0.6 * torch.sin(angles), 0.6 * torch.cos(angles)
        d2 = (yy[..., None] - cy) ** 2 + (xx[..., None] - cx) ** 2
        ring = torch.exp(-d2 / (2 * 0.12**2)).sum(-1)
        cells = ((torch.arange(size) * checker // size)[:, None] + (torch.arange(size) * checker // size)) % 2
        p = ring * (0.25 + 0.75 * cells.double()) + 1e-4
        return p / p.sum()

    def split(self, name: str) -> torch.Tensor:
        n = self.num_train if name == "train" else self.num_eval
        g = torch.Generator().manual_seed(_split_seed(self.seed, name))
        flat = torch.multinomial(self.log_density.exp().flatten(), n, replacement=True, generator=g)
        return torch.stack([flat // self.num_classes, flat % self.num_classes], dim=-1)

    def exact_log_prob(self, sequences: torch.Tensor) -> torch.Tensor:
        return self.log_density[sequences[:, 0], sequences[:, 1]]

    def render(self, tokens: torch.Tensor, path: str) -> str | None:
        """Sample histogram beside the true density, as a PNG."""
        from ..extras import matplotlib_pyplot

        if (plt := matplotlib_pyplot("prime-core[plots]", f"{os.path.basename(path)} (toy samples)")) is None:
            return None
        c = self.num_classes
        hist = torch.bincount(tokens[:, 0] * c + tokens[:, 1], minlength=c * c).view(c, c).double()
        fig, axes = plt.subplots(1, 2, figsize=(8, 4))
        axes[0].imshow(self.log_density.exp().numpy(), cmap="magma")
        axes[0].set_title("data density")
        axes[1].imshow((hist / hist.sum()).numpy(), cmap="magma")
        axes[1].set_title(f"{len(tokens)} samples")
        for ax in axes:
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def entropy(self) -> float:
        p = self.log_density.exp()
        return float(-(p * self.log_density).sum())


class ToyMarkov(Dataset, KnownDensity):
    """A first-order Markov chain: x₁ ~ π, x_{i+1} ~ P[x_i]; rows of P ~ Dirichlet(concentration)."""

    name = "toy-markov"

    def __init__(self, num_classes: int = 8, length: int = 6, concentration: float = 0.3, num_train: int = 50_000,
                 num_eval: int = 4096, seed: int = 0):
        for name, value, lo in (("num_classes", num_classes, 2), ("length", length, 1),
                                ("num_train", num_train, 1), ("num_eval", num_eval, 1)):
            _whole(name, value, lo)
        # the C×C transition matrix (float32 draw, float64 logs) and the int64 splits
        _check_memory(16 * num_classes * num_classes + 8 * length * (num_train + num_eval),
                      f"toy-markov with data.options.num_classes={num_classes}, length={length}")
        self.num_classes, self.length = int(num_classes), int(length)
        self.num_train, self.num_eval, self.seed = num_train, num_eval, seed
        g = torch.Generator().manual_seed(seed)
        dirichlet = torch.distributions.Dirichlet(torch.full((num_classes,), float(concentration)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
            self.log_init = dirichlet.sample().clamp_min(1e-12).log().double()
            self.log_trans = dirichlet.sample((num_classes,)).clamp_min(1e-12).log().double()
        self.log_init -= self.log_init.logsumexp(0)
        self.log_trans -= self.log_trans.logsumexp(-1, keepdim=True)

    def split(self, name: str) -> torch.Tensor:
        n = self.num_train if name == "train" else self.num_eval
        g = torch.Generator().manual_seed(_split_seed(self.seed, name))
        x = torch.empty(n, self.length, dtype=torch.long)
        x[:, 0] = torch.multinomial(self.log_init.exp(), n, replacement=True, generator=g)
        for i in range(1, self.length):
            x[:, i] = torch.multinomial(self.log_trans.exp()[x[:, i - 1]], 1, generator=g).squeeze(-1)
        return x

    def exact_log_prob(self, sequences: torch.Tensor) -> torch.Tensor:
        lp = self.log_init[sequences[:, 0]]
        for i in range(1, sequences.shape[1]):
            lp = lp + self.log_trans[sequences[:, i - 1], sequences[:, i]]
        return lp


BUILTIN_DATASETS = [Toy2D, ToyMarkov]

