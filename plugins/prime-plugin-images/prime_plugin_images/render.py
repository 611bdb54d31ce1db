"""PNG output: sample grids and denoising trajectories with partial masks visible (PIL, atomic via fsspec).

Trajectory colours: an observed pixel-channel shows its value; a fully masked one is drawn blue; a partially
observed one (some of its ℓ digits revealed) shows the centre of the levels still consistent with its digits,
tinted orange, so the sub-token (MDM-Prime) intermediate states can be seen.
"""

from __future__ import annotations

import io
import math
import uuid

import fsspec
import numpy as np
import torch

from prime_core.api import consistent

MASK_RGB = np.array([40, 90, 200], dtype=np.float64)
PARTIAL_TINT = np.array([255, 150, 30], dtype=np.float64)


def _write_png(array: np.ndarray, path: str, scale: int = 1) -> str:
    from PIL import Image

    img = Image.fromarray(array.astype(np.uint8), mode="L" if array.ndim == 2 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    fs, p = fsspec.core.url_to_fs(path)
    parent = p.rsplit("/", 1)[0] if "/" in p else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{p}.tmp-{uuid.uuid4().hex[:8]}"
    with fs.open(tmp, "wb") as fh:
        fh.write(buf.getvalue())
    fs.mv(tmp, p)
    return path


def tile(images: np.ndarray, cols: int, pad: int = 1, fill: float = 255.0) -> np.ndarray:
    """[N, H, W, 3] → one [rows·(H+pad)+pad, cols·(W+pad)+pad, 3] canvas."""
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / cols))
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, dtype=np.float64)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = images[i]
    return canvas


def _rgb(images: torch.Tensor) -> np.ndarray:
    """uint8 [N, ch, H, W] → float [N, H, W, 3]."""
    arr = images.permute(0, 2, 3, 1).double().numpy()
    return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr


def save_grid(images: torch.Tensor, path: str, cols: int | None = None, scale: int | None = None) -> str:
    """uint8 [N, ch, H, W] → a PNG grid (at most 256 images)."""
    images = images[:256]
    cols = cols or max(1, math.ceil(math.sqrt(len(images))))
    scale = scale or max(1, 64 // images.shape[-1])
    return _write_png(tile(_rgb(images), cols), path, scale)


def frame_rgb(state: torch.Tensor, subtoken_map, dataset) -> np.ndarray:
    """Sub-token states [N, L, ℓ] → float RGB [N, H, W, 3] with masks coloured (module docstring)."""
    ok = consistent(state, subtoken_map)  # [N, L, C] levels still allowed
    levels = torch.arange(subtoken_map.num_classes, dtype=torch.float64)
    count = ok.sum(-1).clamp_min(1)
    centre = (ok.double() * levels).sum(-1) / count  # [N, L]
    value = ((centre + 0.5) * 256.0 / subtoken_map.num_classes - 0.5).clamp(0, 255)
    masked = state == subtoken_map.mask_id
    full_mask, partial = masked.all(-1), masked.any(-1) & ~masked.all(-1)
    shape = (state.shape[0], dataset.channels, dataset.height, dataset.width)
    rgb = _rgb(value.view(shape))
    # a pixel is masked / partial if any of its channels is
    fm = full_mask.view(shape).any(1).numpy()[..., None]
    pm = partial.view(shape).any(1).numpy()[..., None] & ~fm
    rgb = np.where(fm, MASK_RGB, rgb)
    return np.where(pm, 0.45 * rgb + 0.55 * PARTIAL_TINT, rgb)


def save_trajectory(trajectory: list[torch.Tensor], subtoken_map, dataset, path: str, rows: int = 4,
                    frames: int = 8) -> str:
    """One row per sample, ``frames`` evenly spaced states from the first step to the final image."""
    steps = len(trajectory)
    picks = sorted({round(i * (steps - 1) / max(1, frames - 1)) for i in range(frames)})
    stack = [frame_rgb(trajectory[k][:rows], subtoken_map, dataset) for k in picks]  # frames × [n, H, W, 3]
    n = stack[0].shape[0]
    ordered = np.stack([stack[f][r] for r in range(n) for f in range(len(picks))])
    scale = max(1, 64 // dataset.width)
    return _write_png(tile(ordered, len(picks)), path, scale)


def save_densities(panels: list[tuple[str, torch.Tensor]], path: str, suptitle: str | None = None) -> str | None:
    """Side-by-side heat maps (matplotlib, if installed) of 2-D densities, each normalised to sum 1."""
    from prime_core.api import matplotlib_pyplot

    if (plt := matplotlib_pyplot("prime-plugin-images[toy]", f"{path} (density heat maps)")) is None:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.9))
    for ax, (title, dens) in zip(np.atleast_1d(axes), panels):
        d = dens.double() / dens.double().sum()
        ax.imshow(d.numpy(), cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    fs, p = fsspec.core.url_to_fs(path)
    parent = p.rsplit("/", 1)[0] if "/" in p else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(p, "wb") as fh:
        fh.write(buf.getvalue())
    return path
