"""Image loaders: digits, Fashion-MNIST IDX files, folders of PNG / .npy through fsspec; bad-input errors."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from prime_core import PrimeError, get_registry
from prime_plugin_images import Digits, FashionMNIST, ImageFolder, dequantise, quantise
from prime_plugin_images.data import FMNIST_ROOT


def one_line(exc_info):
    assert "\n" not in str(exc_info.value)


@pytest.mark.parametrize("levels", [2, 4, 16, 17, 256])
def test_quantise_roundtrip(levels):
    v = torch.arange(256)
    q = quantise(v, levels)
    assert int(q.min()) == 0 and int(q.max()) == levels - 1
    assert torch.equal(quantise(dequantise(q, levels), levels), q)  # bin centres quantise back
    if levels == 256:
        assert torch.equal(dequantise(q, 256).long(), v)


def test_digits_splits_and_levels():
    ds = Digits()
    tr, va, te = ds.split("train"), ds.split("valid"), ds.split("test")
    assert tr.shape == (1500, 64) and va.shape == (148, 64) and te.shape == (149, 64)
    assert ds.num_classes == 17 and int(tr.max()) == 16 and int(tr.min()) == 0
    from sklearn.datasets import load_digits
    raw = torch.from_numpy(load_digits().images).long().view(-1, 64)
    assert sorted(map(tuple, torch.cat([tr, va, te]).tolist())) == sorted(map(tuple, raw.tolist()))
    coarse = Digits(levels=4).split("train")
    assert int(coarse.max()) == 3
    img = ds.images_from_tokens(tr[:3])
    assert img.shape == (3, 1, 8, 8) and img.dtype == torch.uint8


def test_registered_by_name():
    reg = get_registry()
    assert {"fashion-mnist", "digits", "image-folder"} <= set(reg.names("dataset"))
    assert "image" in reg.names("sampler")


def _write_idx(path, arr, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_reader_and_downsampling(tmp_path):
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (10, 28, 28)), rng.integers(0, 256, (6, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train, 2051)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test, 2051)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(6), 2049)
    ds = FashionMNIST(root=str(tmp_path), levels=256)
    assert torch.equal(ds.split("train"), torch.from_numpy(train).view(10, -1).long())
    assert ds.split("valid").shape == (3, 784) and ds.split("test").shape == (3, 784)
    assert ds.labels("test").tolist() == [3, 4, 5]
    small = FashionMNIST(root=str(tmp_path), levels=16, size=14)
    block = train[0, :2, :2].mean()
    assert small.length == 196 and int(small.split("train")[0, 0]) == int(round(block)) * 16 // 256


def test_fashion_mnist_missing_or_foreign(tmp_path):
    with pytest.raises(PrimeError, match="not found") as e:
        FashionMNIST(root=str(tmp_path)).split("train")
    one_line(e)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not an idx file at all")
    with pytest.raises(PrimeError, match="IDX"):
        FashionMNIST(root=str(tmp_path)).split("train")


@pytest.mark.skipif(not __import__("os").path.isdir(FMNIST_ROOT), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_debian_package():
    ds = FashionMNIST(levels=16, size=14, num_train=100)
    assert ds.split("train").shape == (100, 196) and int(ds.split("valid").max()) <= 15
    assert len(ds.split("test")) == 5000


def _png_folder(tmp, n=5, size=(6, 4), mode="L"):
    rng = np.random.default_rng(1)
    shape = size if mode == "L" else (*size, 3)
    arrays = [rng.integers(0, 256, shape).astype(np.uint8) for _ in range(n)]
    (tmp / "sub").mkdir(exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a, mode=mode).save(tmp / "sub" / f"img{i}.png")
    return arrays


def test_folder_of_pngs_grey_and_colour(tmp_path):
    arrays = _png_folder(tmp_path)
    ds = ImageFolder(str(tmp_path), levels=256, valid_fraction=0.2)
    assert (ds.height, ds.width, ds.length) == (6, 4, 24)
    rows = torch.cat([ds.split("train"), ds.split("valid")])
    assert sorted(map(tuple, rows.tolist())) == sorted(tuple(a.reshape(-1).tolist()) for a in arrays)
    colour = tmp_path / "colour"
    colour.mkdir()
    arrays = _png_folder(colour, n=3, mode="RGB")
    ds = ImageFolder(f"file://{colour}", channels=3, levels=8, valid_fraction=0.0)
    x = ds.split("train")
    assert x.shape == (3, 72) and int(x.max()) <= 7
    back = ds.images_from_tokens(x)
    assert back.shape == (3, 3, 6, 4)


def test_folder_of_npy(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, (7, 5, 5)).astype(np.uint8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", a[:3])
    ds = ImageFolder(str(tmp_path), levels=4, valid_fraction=0.0)
    assert ds.split("train").shape == (10, 25)
    q = tmp_path / "q"
    q.mkdir()
    np.save(q / "levels.npy", np.random.default_rng(3).integers(0, 4, (4, 5, 5)))
    ds = ImageFolder(str(q), levels=4, quantised=True, valid_fraction=0.0)
    assert sorted(map(tuple, ds.split("train").tolist())) == sorted(
        tuple(r) for r in np.load(q / "levels.npy").reshape(4, -1).tolist())


def test_memory_filesystem():
    import fsspec
    fs = fsspec.filesystem("memory")
    buf = __import__("io").BytesIO()
    np.save(buf, np.zeros((2, 4, 4), dtype=np.uint8))
    fs.pipe("/imgs/x.npy", buf.getvalue())
    assert ImageFolder("memory://imgs", valid_fraction=0.0).split("train").shape == (2, 16)


@pytest.mark.parametrize("setup, kwargs, match", [
    ("size", {}, "expected 6×4"),
    ("rgb", {}, "expects 1 channel"),
    ("grey", {"channels": 3}, "expects 3 channel"),
    ("npy-range", {"levels": 4, "quantised": True}, "outside the configured range"),
    ("npy-float", {}, "must hold integers"),
    ("npy-shape", {"channels": 3}, "does not hold 3-channel"),
    ("empty", {}, "no .png"),
    ("grey", {"levels": 300}, "levels must be"),
])
def test_bad_folder_input(tmp_path, setup, kwargs, match):
    if setup == "size":
        _png_folder(tmp_path, n=2)
        Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(tmp_path / "sub" / "zz.png")
    elif setup == "rgb":
        _png_folder(tmp_path, n=2)
        Image.fromarray(np.zeros((6, 4, 3), np.uint8), mode="RGB").save(tmp_path / "sub" / "zz.png")
    elif setup == "grey":
        _png_folder(tmp_path, n=2)
    elif setup == "npy-range":
        np.save(tmp_path / "x.npy", np.full((2, 3, 3), 4))
    elif setup == "npy-float":
        np.save(tmp_path / "x.npy", np.zeros((2, 3, 3), np.float32))
    elif setup == "npy-shape":
        np.save(tmp_path / "x.npy", np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(PrimeError, match=match) as e:
        ImageFolder(str(tmp_path), **kwargs)
    one_line(e)


def test_tokens_out_of_levels_rejected():
    ds = Digits(levels=4)
    with pytest.raises(PrimeError, match=r"\[0, 3\]") as e:
        ds.images_from_tokens(torch.full((1, 64), 4))
    one_line(e)
    with pytest.raises(PrimeError, match="shape"):
        ds.images_from_tokens(torch.zeros(1, 63, dtype=torch.long))
