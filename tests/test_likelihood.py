"""DESIGN §2.4 and §1: every bound ≥ the exact NLL, probabilities sum to one, and the joint loss is no bound."""

import math

import pytest
import torch

from prime_core.diffusion import exact, losses
from prime_core.interfaces import Backbone, BackboneSpec

CASES = [  # (head, noise, schedule, C, L, ℓ)
    ("carry-over", "independent", "cosine", 5, 2, 2),
    ("carry-over", "independent", "linear", 3, 3, 2),
    ("carry-over", "grouped", "loglinear", 5, 2, 2),
    ("joint", "independent", "geometric", 6, 2, 2),
    ("independent", "independent", "polynomial", 5, 2, 2),
    ("carry-over", "independent", "power", 7, 2, 3),
    ("carry-over", "independent", "linear", 4, 3, 1),
]


@pytest.mark.parametrize("head,noise,schedule,c,length,ell", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_probabilities_sum_to_one_and_bounds_hold(tiny_model, head, noise, schedule, c, length, ell, seed):
    model = tiny_model(num_classes=c, length=length, ell=ell, head=head, noise=noise, schedule=schedule,
                       seed=seed, scale=1.5)
    seqs = exact.all_sequences(c, length)
    ll = exact.exact_log_likelihood(model, seqs)
    assert float(ll.logsumexp(0).exp()) == pytest.approx(1.0, abs=1e-6)
    nelbo = exact.exact_nelbo(model, seqs)
    assert bool((nelbo >= -ll - 1e-9).all()), "continuous NELBO below the exact NLL"
    for steps in (1, 3, 8):
        ll_t = exact.exact_tstep_log_likelihood(model, seqs, steps)
        assert float(ll_t.logsumexp(0).exp()) == pytest.approx(1.0, abs=1e-6)
        assert bool((exact.exact_tstep_nelbo(model, seqs, steps) >= -ll_t - 1e-9).all()), "T-step NELBO too low"


def test_tstep_bound_tightens_towards_the_continuous_bound(tiny_model):
    model = tiny_model(num_classes=5, length=2, ell=2, scale=1.5)
    seqs = exact.all_sequences(5, 2)[:6]
    cont = exact.exact_nelbo(model, seqs)
    gaps = [float((exact.exact_tstep_nelbo(model, seqs, t) - cont).abs().max()) for t in (2, 8, 64)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.05 * float(cont.abs().max())


@pytest.mark.parametrize("noise", ["independent", "grouped"])
@pytest.mark.parametrize("time_conditioned", [False, True])
def test_monte_carlo_estimators_are_unbiased(tiny_model, noise, time_conditioned):
    model = tiny_model(num_classes=5, length=2, ell=2, noise=noise, scale=1.0)
    x = torch.tensor([[1, 4]])
    n = 40_000
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mc = losses.nelbo(model, x.repeat(n, 1), generator=g)
        mc_t = losses.tstep_nelbo(model, x.repeat(n, 1), steps=4, generator=g)
        mc_train = losses.training_nelbo(model, x.repeat(n, 1), eps=1e-4, generator=g)
    target = float(exact.exact_nelbo(model, x)[0])
    for est in (mc, mc_train):
        assert float(est.mean()) == pytest.approx(target, abs=4 * float(est.std()) / math.sqrt(n) + 0.01)
    target_t = float(exact.exact_tstep_nelbo(model, x, 4)[0])
    assert float(mc_t.mean()) == pytest.approx(target_t, abs=4 * float(mc_t.std()) / math.sqrt(n))


def test_time_conditioned_nelbo_estimator_is_unbiased(tiny_model):
    """With a time-conditioned denoiser the mask-count estimator must integrate over t exactly like MDLM's."""
    model = tiny_model(num_classes=5, length=2, ell=2, time_conditioned=True, scale=1.0)
    x = torch.tensor([[2, 3]]).repeat(60_000, 1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ours = losses.nelbo(model, x, generator=g)
        mdlm = losses.training_nelbo(model, x, eps=1e-5, generator=g)
    se = math.sqrt(float(ours.var()) / len(x) + float(mdlm.var()) / len(x))
    assert float(ours.mean()) == pytest.approx(float(mdlm.mean()), abs=4 * se + 0.01)


def test_ell_one_equals_mdlm_loss(tiny_model):
    """ℓ = 1: our training NELBO and joint loss equal a hand-written MDLM (SUBS) loss, number for number."""
    model = tiny_model(num_classes=7, length=4, ell=1, schedule="loglinear")
    x = torch.randint(0, 7, (32, 4), generator=torch.Generator().manual_seed(3))
    t = torch.rand(32, generator=torch.Generator().manual_seed(4)) * 0.9 + 0.05
    ours = losses.training_nelbo(model, x, t=t, generator=torch.Generator().manual_seed(5))
    joint = losses.joint_loss(model, x, t=t, generator=torch.Generator().manual_seed(5))
    # MDLM: same mask draw, logits of the C real tokens, carry-over of unmasked ones, weight −α′/(1−α)
    g = torch.Generator().manual_seed(5)
    alpha = 1 - (1 - 1e-3) * t
    masked = torch.rand(32, 4, 1, generator=g, dtype=torch.float64)[..., 0] >= alpha.double()[:, None]
    z = x.masked_fill(masked, 7).unsqueeze(-1)
    with torch.no_grad():
        logits = model.backbone(z, None)
        log_p = torch.log_softmax(logits, -1)
        nll = -log_p.gather(-1, x.unsqueeze(-1)).squeeze(-1)
    mdlm = ((1 - 1e-3) / (1 - alpha)) * (nll * masked).sum(-1)
    assert torch.allclose(ours.detach(), mdlm, rtol=1e-5, atol=1e-5)
    assert torch.allclose(joint.detach(), mdlm, rtol=1e-5, atol=1e-5)


class OracleBackbone(Backbone):
    """Logits = log of the Bayes-optimal posterior p_data(xⁱ | y_t) for a tiny enumerated data distribution."""

    time_conditioned = False

    def __init__(self, spec: BackboneSpec, data: torch.Tensor, probs: torch.Tensor, table: torch.Tensor):
        super().__init__(spec)
        self.data, self.probs, self.table = data, probs, table
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, y, t=None):
        digits = self.table[self.data]  # [S, L, ℓ]
        out = torch.full((y.shape[0], self.spec.length, self.spec.num_classes), -1e9)
        for b in range(y.shape[0]):
            ok = ((y[b] == self.spec.base) | (digits == y[b])).flatten(1).all(-1)
            w = self.probs * ok
            for i in range(self.spec.length):
                post = torch.zeros(self.spec.num_classes).index_add(0, self.data[:, i], w)
                out[b, i] = torch.log(post / post.sum() + 1e-30)
        return out


def test_joint_loss_goes_below_the_data_entropy(registry):
    """DESIGN §1: with dependent digits and a Bayes-optimal joint, the joint loss = H − I(d¹; d²)/2 < H."""
    from prime_core.diffusion.model import PrimeModel

    m = registry.build("map", "base-b", 4, 2)  # b = 2: tokens 0 = (0,0) and 3 = (1,1)
    data = torch.tensor([[0], [3]])
    probs = torch.tensor([0.5, 0.5])
    spec = BackboneSpec(out_dim=4, base=2, ell=2, length=1, width=4, num_classes=4)
    model = PrimeModel(m, OracleBackbone(spec, data, probs, m.digit_table()), registry.build("head", "carry-over"),
                       registry.build("schedule", "linear"))
    entropy = math.log(2)
    joint = exact.exact_joint_loss(model, data)
    assert torch.allclose(joint, torch.full((2,), entropy / 2, dtype=torch.float64), atol=1e-6)  # H − I/2 with I = log 2
    assert bool((joint < entropy).all())
    nll = -exact.exact_log_likelihood(model, data)
    assert torch.allclose(nll, torch.full((2,), entropy, dtype=torch.float64), atol=1e-6)  # the oracle is exact
    assert bool((exact.exact_nelbo(model, data) >= nll - 1e-9).all())
    g = torch.Generator().manual_seed(0)
    mc = losses.joint_loss(model, data.repeat(20_000, 1), generator=g, eps=1e-4)
    assert float(mc.mean()) < entropy  # the Monte-Carlo training objective shows the same defect
