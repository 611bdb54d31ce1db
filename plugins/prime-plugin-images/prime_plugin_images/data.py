"""Image data sets: pixels per channel are the diffusion tokens (DESIGN §2.8).

An image of ``channels`` × H × W with 8-bit values v ∈ {0 … 255} is quantised to C = ``levels`` grey levels,
x = ⌊v·C/256⌋, and flattened channel-major (index ((c·H) + h)·W + w) into L = channels·H·W tokens. Rendering
maps a level back to the centre of its bin. Every loader checks sizes, channel counts and value ranges and
raises a one-line `PrimeError`.

- ``fashion-mnist``: Debian ``dataset-fashion-mnist`` (IDX .gz under /usr/share/datasets/fashion-mnist/), 60k train;
  the 10k test images are split into valid (first half) and test (second half). Optional downsampling.
- ``digits``: scikit-learn's 1797 8×8 digits (values 0 … 16, i.e. 17 native levels), for fast tests.
- ``image-folder``: PNG / JPEG files and ``.npy`` arrays under an fsspec URL.
"""

from __future__ import annotations

import gzip
import io

import fsspec
import numpy as np
import torch
import torch.nn.functional as F

from prime_core import Dataset, Presentation, PrimeError

FMNIST_ROOT = "/usr/share/datasets/fashion-mnist"
_SPLITS = ("train", "valid", "test")
_IMAGE_EXT = (".png", ".jpg", ".jpeg")


# --------------------------------------------------------------------------------------------- helpers
def check_levels(levels) -> int:
    if not isinstance(levels, int) or isinstance(levels, bool) or not 2 <= levels <= 256:
        raise PrimeError(f"levels must be an integer in [2, 256] (grey levels per channel, C), got {levels!r}")
    return levels


def quantise(images: np.ndarray | torch.Tensor, levels: int) -> torch.Tensor:
    """8-bit values [N, ch, H, W] → levels x = ⌊v·C/256⌋ as int64."""
    v = torch.as_tensor(np.asarray(images)).long()
    if v.numel() and (int(v.min()) < 0 or int(v.max()) > 255):
        raise PrimeError(f"pixel values must lie in [0, 255] (8-bit), got [{int(v.min())}, {int(v.max())}]")
    return (v * levels) // 256


def dequantise(levels_tensor: torch.Tensor, levels: int) -> torch.Tensor:
    """Levels → 8-bit bin centres (identity for C = 256): uint8."""
    return ((levels_tensor.double() + 0.5) * 256.0 / levels - 0.5).round().clamp(0, 255).to(torch.uint8)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [N, ch, H, W] → [N, ch, h, w] by area averaging (exact block means for integer factors)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = F.interpolate(images.float(), size=size, mode="area")
    return out.round().clamp(0, 255).to(torch.uint8)


def parse_size(value, name: str = "size") -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v >= 1 for v in value):
        return int(value[0]), int(value[1])
    raise PrimeError(f"{name} must be a positive int or [H, W], got {value!r}")


def read_idx_images(url: str) -> np.ndarray:
    """An IDX3 file (optionally .gz) → uint8 [N, H, W]."""
    try:
        with fsspec.open(url, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise PrimeError(f"Fashion-MNIST file not found: {url} (apt-get install -y dataset-fashion-mnist, "
                         "or set data.options.root)") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise PrimeError(f"not an IDX image file (magic 2051 expected): {url}")
    n, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    if len(raw) != 16 + n * h * w:
        raise PrimeError(f"IDX image file is truncated ({len(raw)} bytes, expected {16 + n * h * w}): {url}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)


def read_idx_labels(url: str) -> np.ndarray:
    """An IDX1 label file (optionally .gz) → uint8 [N]."""
    try:
        with fsspec.open(url, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise PrimeError(f"Fashion-MNIST label file not found: {url}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != 2049:
        raise PrimeError(f"not an IDX label file (magic 2049 expected): {url}")
    return np.frombuffer(raw, dtype=np.uint8, offset=8)


# --------------------------------------------------------------------------------------------- base class
class ImageDataset(Dataset, Presentation):
    """Shared machinery: shape checks, quantisation, token layout, PNG rendering."""

    name = "images"

    def __init__(self, channels: int, height: int, width: int, levels: int):
        if channels not in (1, 3):
            raise PrimeError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        self.channels, self.height, self.width = channels, height, width
        self.num_classes = check_levels(levels)
        self.length = channels * height * width
        self._splits: dict[str, torch.Tensor] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width

    def describe(self):
        return {**super().describe(), "image_shape": list(self.image_shape), "levels": self.num_classes}

    # tokens ↔ images ------------------------------------------------------------------------------------
    def check_images(self, images: torch.Tensor, what: str = "images") -> None:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise PrimeError(f"{what} must have shape [N, {self.channels}, {self.height}, {self.width}] "
                             f"(channels, H, W), got {tuple(images.shape)}")

    def tokens_from_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, ch, H, W] → tokens [N, L] (channel-major)."""
        self.check_images(images)
        return quantise(images, self.num_classes).reshape(images.shape[0], -1)

    def images_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, L] (levels) → uint8 [N, ch, H, W] (bin centres)."""
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise PrimeError(f"image tokens must have shape [N, L={self.length}], got {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.num_classes):
            raise PrimeError(f"image tokens must lie in [0, {self.num_classes - 1}] (levels={self.num_classes}), "
                             f"got [{int(tokens.min())}, {int(tokens.max())}]")
        return dequantise(tokens, self.num_classes).view(-1, *self.image_shape)

    def split(self, name: str) -> torch.Tensor:
        if name not in _SPLITS:
            raise PrimeError(f"split must be one of {', '.join(_SPLITS)}, got {name!r}")
        if name not in self._splits:
            self._splits[name] = self.tokens_from_images(self.load_split(name))
        return self._splits[name]

    def load_split(self, name: str) -> torch.Tensor:
        """uint8 [N, ch, H, W] for a split; subclasses implement."""
        raise NotImplementedError

    # pictures ----------------------------------------------------------------------------------------------
    def render(self, tokens: torch.Tensor, path: str) -> str | None:
        from .render import save_grid

        return save_grid(self.images_from_tokens(tokens.cpu()), path)

    def render_trajectory(self, trajectory, subtoken_map, path: str, rows: int = 4, frames: int = 8) -> str | None:
        from .render import save_trajectory

        return save_trajectory(trajectory, subtoken_map, self, path, rows=rows, frames=frames)


# --------------------------------------------------------------------------------------------- data sets
class FashionMNIST(ImageDataset):
    """Fashion-MNIST from the Debian package. Options: root (fsspec URL of the folder), levels C ≤ 256,
    size (downsample 28×28 → size×size by area averaging), num_train (cap on training images)."""

    name = "fashion-mnist"
    location_options = ("root",)  # the default root is the Debian package's folder, kept from a checkpoint

    def __init__(self, root: str = FMNIST_ROOT, levels: int = 256, size=28, num_train: int | None = None):
        hw = parse_size(size)
        super().__init__(1, *hw, levels)
        self.root = root.rstrip("/")
        self.num_train = num_train

    def load_split(self, name):
        fname = "train-images-idx3-ubyte.gz" if name == "train" else "t10k-images-idx3-ubyte.gz"
        arr = torch.from_numpy(read_idx_images(f"{self.root}/{fname}").copy()).unsqueeze(1)  # [N, 1, 28, 28]
        if name == "train" and self.num_train:
            arr = arr[: int(self.num_train)]
        elif name != "train":
            half = arr.shape[0] // 2
            arr = arr[:half] if name == "valid" else arr[half:]
        return resize(arr, (self.height, self.width))

    def labels(self, name: str) -> torch.Tensor:
        """Class labels (0 … 9) of a split, aligned with `split(name)`."""
        fname = "train-labels-idx1-ubyte.gz" if name == "train" else "t10k-labels-idx1-ubyte.gz"
        lab = torch.from_numpy(read_idx_labels(f"{self.root}/{fname}").astype(np.int64))
        if name == "train":
            return lab[: int(self.num_train)] if self.num_train else lab
        half = lab.shape[0] // 2
        return lab[:half] if name == "valid" else lab[half:]


class Digits(ImageDataset):
    """scikit-learn's 8×8 digits (values 0 … 16, stretched to 0 … 255 then quantised; levels=17 keeps them
    exactly). Rows are shuffled with ``seed`` and split 1500 / 148 / 149."""

    name = "digits"

    def __init__(self, levels: int = 17, seed: int = 0):
        super().__init__(1, 8, 8, levels)
        self.seed = seed

    def load_split(self, name):
        from sklearn.datasets import load_digits

        data = torch.from_numpy(load_digits().images).double()  # [1797, 8, 8] in 0 … 16
        v = (data * 255.0 / 16.0).round().to(torch.uint8).unsqueeze(1)
        order = torch.randperm(len(v), generator=torch.Generator().manual_seed(self.seed))
        parts = {"train": order[:1500], "valid": order[1500:1648], "test": order[1648:]}
        return v[parts[name]]


class ImageFolder(ImageDataset):
    """PNG / JPEG files and ``.npy`` arrays under ``path`` (fsspec URL of a folder, searched recursively).

    channels 1 (grey, PIL mode "L") or 3 ("RGB"); image_size [H, W] (default: the first image's); levels C.
    ``.npy`` arrays hold [N, H, W] (grey) or [N, H, W, 3] integers in [0, 255], or, with ``quantised = true``,
    levels in [0, C−1]. Anything else (wrong size, wrong channel count, values out of range) is an error, unless
    ``resize = true`` (size only). Files are shuffled with ``seed``; ``valid_fraction`` of them form valid and
    test alike (small folders: the same held-out images)."""

    name = "image-folder"
    location_options = ("path",)  # no default: a checkpoint's data set needs the user's own path

    def __init__(self, path: str, channels: int = 1, image_size=None, levels: int = 256, quantised: bool = False,
                 resize: bool = False, valid_fraction: float = 0.1, seed: int = 0):
        self.path, self.quantised, self.do_resize = path, bool(quantised), bool(resize)
        if not 0.0 <= valid_fraction < 1.0:
            raise PrimeError(f"valid_fraction must lie in [0, 1), got {valid_fraction}")
        self.valid_fraction, self.seed = valid_fraction, seed
        self._levels = check_levels(levels)
        images = self._load_all(channels, parse_size(image_size, "image_size"))
        super().__init__(channels, images.shape[2], images.shape[3], levels)
        self._all = images

    def _files(self) -> list[str]:
        fs, root = fsspec.core.url_to_fs(self.path)
        if not fs.exists(root):
            raise PrimeError(f"image folder not found: {self.path}")
        files = sorted(p for p in fs.find(root) if p.lower().endswith(_IMAGE_EXT + (".npy",)))
        if not files:
            raise PrimeError(f"no .png/.jpg/.jpeg/.npy files under {self.path}")
        return [fs.unstrip_protocol(p) for p in files]

    def _load_all(self, channels: int, size) -> torch.Tensor:
        if channels not in (1, 3):
            raise PrimeError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        chunks = []
        for url in self._files():
            arr = self._read(url, channels)  # uint8 [n, ch, h, w]
            if size is None:
                size = tuple(arr.shape[-2:])
            if tuple(arr.shape[-2:]) != tuple(size):
                if not self.do_resize:
                    raise PrimeError(f"{url} is {arr.shape[-2]}×{arr.shape[-1]}, expected {size[0]}×{size[1]} "
                                     "(set image_size, or resize = true)")
                arr = resize(arr, size)
            chunks.append(arr)
        return torch.cat(chunks)

    def _read(self, url: str, channels: int) -> torch.Tensor:
        with fsspec.open(url, "rb") as fh:
            raw = fh.read()
        if url.lower().endswith(".npy"):
            return self._from_npy(np.load(io.BytesIO(raw), allow_pickle=False), url, channels)
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(io.BytesIO(raw))
            img.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise PrimeError(f"cannot read image {url}: {str(exc).splitlines()[0]}") from None
        want = "L" if channels == 1 else "RGB"
        if img.mode != want:
            raise PrimeError(f"{url} has PIL mode {img.mode!r} ({len(img.getbands())} channel(s)); this data set "
                             f"expects {channels} channel(s) (mode {want!r})")
        arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
        return arr.view(1, 1, *arr.shape) if channels == 1 else arr.permute(2, 0, 1).unsqueeze(0)

    def _from_npy(self, arr: np.ndarray, url: str, channels: int) -> torch.Tensor:
        if not np.issubdtype(arr.dtype, np.integer):
            raise PrimeError(f"{url}: .npy arrays must hold integers, got dtype {arr.dtype}")
        ok_shape = arr.ndim == 3 if channels == 1 else (arr.ndim == 4 and arr.shape[-1] == 3)
        if not ok_shape:
            want = "[N, H, W]" if channels == 1 else "[N, H, W, 3]"
            raise PrimeError(f"{url}: array of shape {arr.shape} does not hold {channels}-channel images {want}")
        hi = self._levels - 1 if self.quantised else 255
        if arr.size and (arr.min() < 0 or arr.max() > hi):
            raise PrimeError(f"{url}: values lie in [{arr.min()}, {arr.max()}], outside the configured range "
                             f"[0, {hi}]" + (f" (levels={self._levels}, quantised)" if self.quantised else ""))
        t = torch.from_numpy(arr.astype(np.int64))
        if self.quantised:  # back to 8-bit bin centres so that quantise() returns the same levels
            t = dequantise(t, self._levels).long()
        t = t.unsqueeze(1) if channels == 1 else t.permute(0, 3, 1, 2)
        return t.to(torch.uint8)

    def load_split(self, name):
        n = self._all.shape[0]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        held = int(round(n * self.valid_fraction))
        idx = order[held:] if name == "train" else order[:held]
        if name == "train" and not len(idx):
            raise PrimeError(f"no training images left in {self.path} (valid_fraction={self.valid_fraction})")
        return self._all[idx]


BUILTIN_IMAGE_DATASETS = [FashionMNIST, Digits, ImageFolder]
