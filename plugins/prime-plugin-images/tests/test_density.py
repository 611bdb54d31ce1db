"""The picture-based 2-D toy density, and prime_core.diffusion.exact run on all its cells at once (checked row by row)."""

import pytest
import torch

from prime_core import Config, PrimeError, build_model
from prime_core.runs.config import ModelConfig
from prime_core.api import exact_log_likelihood, exact_nelbo, exact_tstep_log_likelihood

skimage = pytest.importorskip("skimage")
from prime_plugin_images.density import ImageDensity2D  # noqa: E402


def test_density_normalised_and_sampled():
    ds = ImageDensity2D(size=16, invert=True, gamma=3.0, num_train=2000)
    p = ds.log_density.exp()
    assert p.shape == (16, 16) and float(p.sum()) == pytest.approx(1.0)
    x = ds.split("train")
    assert x.shape == (2000, 2) and int(x.max()) < 16
    assert ds.all_cells().shape == (256, 2)
    assert 0 < ds.entropy() < torch.log(torch.tensor(256.0))
    with pytest.raises(PrimeError, match="image must be one of"):
        ImageDensity2D(image="nope")


@pytest.mark.parametrize("head, noise", [("carry-over", "independent"), ("independent", "independent"),
                                         ("carry-over", "grouped")])
def test_exact_on_all_cells_matches_row_by_row(head, noise):
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(num_classes=6, length=2, ell=2, width=8, head=head, noise=noise,
                                   backbone_options={"hidden": 16, "depth": 1}))
    model = build_model(cfg).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    cells = torch.stack([torch.arange(36) // 6, torch.arange(36) % 6], -1)
    ll = exact_log_likelihood(model, cells)
    assert float(ll.exp().sum()) == pytest.approx(1.0, abs=1e-5)  # a distribution over all valid sequences
    pick = torch.tensor([7, 35])
    assert torch.allclose(ll[pick], torch.cat([exact_log_likelihood(model, cells[i:i + 1]) for i in pick]))
    nb = exact_nelbo(model, cells)
    assert torch.allclose(nb[pick], torch.cat([exact_nelbo(model, cells[i:i + 1]) for i in pick]))
    assert bool((nb >= -ll - 1e-9).all())  # the bound is ≥ the exact NLL
    lt = exact_tstep_log_likelihood(model, cells, 3)
    assert float(lt.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(lt[pick], torch.cat([exact_tstep_log_likelihood(model, cells[i:i + 1], 3) for i in pick]))
