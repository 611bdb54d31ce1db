"""DESIGN §2.7 encoder and §2.2 forward process."""

import pytest
import torch

from prime_core.diffusion.encoder import SubTokenEncoder
from prime_core.diffusion.forward import sample_mask


@pytest.mark.parametrize("mode", ["shared", "per-slot", "sum"])
def test_encoder_shapes(mode):
    enc = SubTokenEncoder(base=7, ell=3, width=12, mode=mode)
    y = torch.randint(0, 8, (2, 5, 3))
    assert enc(y).shape == (2, 5, 12)


def test_shared_encoder_concatenates_digit_embeddings_in_order():
    enc = SubTokenEncoder(base=4, ell=2, width=6)
    y = torch.tensor([[[1, 4]]])  # digit 1 then the mask symbol
    out = enc(y)[0, 0]
    assert torch.equal(out[:3], enc.table.weight[1]) and torch.equal(out[3:], enc.table.weight[4])


def test_encoder_rejects_width_not_divisible_by_ell():
    with pytest.raises(ValueError, match="divisible"):
        SubTokenEncoder(base=4, ell=3, width=10)


@pytest.mark.parametrize("grouped", [False, True])
def test_mask_rate_and_grouping(grouped):
    alpha = torch.full((4000,), 0.3)
    m = sample_mask((4000, 3, 2), alpha, grouped=grouped, generator=torch.Generator().manual_seed(0))
    assert float(m.float().mean()) == pytest.approx(0.7, abs=0.02)
    same = (m[..., 0] == m[..., 1]).float().mean()
    assert (float(same) == 1.0) if grouped else (float(same) < 0.7)
