"""Likelihood suite (DESIGN §2.4): every metric that declares ``is_bound = True`` must be ≥ the exact NLL of the
model it bounds, on problems small enough to enumerate (prime_core.diffusion.exact). This is the check that catches a
training objective reported as a likelihood (the published joint-loss error, DESIGN §1).

What a bound bounds is declared by the metric: an integer attribute ``steps`` means the T-step sampler's
likelihood p_T (compared with `exact_tstep_log_likelihood`), otherwise the continuous-time model's p_θ
(`exact_log_likelihood`). The metric is a Monte-Carlo estimator, so its mean over R replicates per sequence is
compared: a failure needs mean + 5·stderr < exact NLL − 1e-4, with ~10⁵ draws per problem (the T-step NELBO
is heavy-tailed: most draws reveal nothing, a few carry T·NLL, so fewer draws make the stderr itself unreliable).

Every problem runs with each map and schedule of the plugin under test (`Subject.setups`; the built-in base-b map
and linear schedule when it has none), so a schedule whose weight mis-scales the NELBO fails here too.
"""

from __future__ import annotations

import attrs
import torch

from prime_core.api import all_sequences, exact_log_likelihood, exact_tstep_log_likelihood

from ..catalog import check
from ..errors import Failure, SkipCheck
from ..toy import tiny_model

Z = 5.0
ROWS = 100_000  # Monte-Carlo draws per problem, shared by its C^L sequences
ATOL = 1e-4
CHUNK = 8192


@attrs.frozen
class Problem:
    """One enumerable problem: sizes, noise kind, backbone kind, head name, Monte-Carlo replicates."""

    num_classes: int
    ell: int
    length: int
    noise: str = "independent"
    backbone: str = "fixed"
    head: str = "carry-over"

    def describe(self) -> str:
        return (f"C={self.num_classes}, ℓ={self.ell}, L={self.length}, noise={self.noise}, "
                f"backbone={self.backbone}, head={self.head}")


# Small first (failures are reported on the smallest problem that shows them).
PROBLEMS = (
    Problem(4, 2, 1),                                        # one token, two dependent digits (DESIGN §1)
    Problem(4, 1, 2),                                        # ℓ = 1: plain MDM
    Problem(5, 2, 2, backbone="mlp"),                        # b = 3: invalid codes exist; y-dependent model
    Problem(5, 2, 2, noise="grouped", backbone="mlp"),
    Problem(4, 2, 2, head="independent"),
)


def _exact_nll(metric, model, tokens):
    steps = getattr(metric, "steps", None)
    if isinstance(steps, int):
        return -exact_tstep_log_likelihood(model, tokens, steps)
    return -exact_log_likelihood(model, tokens)


@torch.no_grad()
def _estimate(metric, model, tokens, replicates: int, seed: int = 0):
    """Mean and standard error of metric.per_sequence over ``replicates`` draws per sequence: [S], [S].

    The S sequences are tiled (x₁ … x_S, x₁ … x_S, …), never blocked: estimators stratify their noise over the
    batch (e.g. antithetic times), so a block of copies of one sequence would share one stratum."""
    num = len(tokens)
    rows = tokens.repeat(replicates, 1)
    chunk = num * max(1, CHUNK // num)
    g = torch.Generator().manual_seed(seed)
    values = torch.cat([metric.per_sequence(model, rows[i:i + chunk], generator=g).double().cpu()
                        for i in range(0, len(rows), chunk)])
    if tuple(values.shape) != (len(rows),):
        raise Failure(f"per_sequence must return one value per row [B]={[len(rows)]}, got {list(values.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise Failure("per_sequence returned NaN or inf")
    values = values.view(replicates, num).T
    return values.mean(1), values.std(1) / replicates**0.5


@check("metric")
def check_bound_ge_exact_nll(subject):
    """E[metric(x)] ≥ −log p(x) for every sequence x of every enumerable problem (metrics with is_bound)."""
    if not getattr(subject.cls, "is_bound", False):
        raise SkipCheck("not declared a bound (is_bound=False): nothing to check")
    if getattr(subject.cls, "requires_block_model", False):
        raise SkipCheck("a block-diffusion metric (requires_block_model): the suites' toy backbones cannot mask "
                        "attention; its bound is checked against the exact block likelihood with a block backbone")
    metric = subject.build()
    for setup in subject.setups():
        setup.run(lambda: _bound_holds(subject, metric, setup))


def _bound_holds(subject, metric, setup) -> None:
    for problem in PROBLEMS:
        if problem.head not in subject.registry.components["head"]:
            continue
        head = subject.registry.build("head", problem.head)
        model = tiny_model(problem.num_classes, problem.ell, problem.length, head=head, noise=problem.noise,
                           backbone=problem.backbone, seed=1, scale=0.15,  # moderate NLLs: MC noise stays small
                           subtoken_map=setup.build_map(problem.num_classes, problem.ell),
                           schedule=setup.build_schedule())
        tokens = all_sequences(problem.num_classes, problem.length)
        exact = _exact_nll(metric, model, tokens)
        mean, se = _estimate(metric, model, tokens, ROWS // len(tokens))
        slack = mean + Z * se - (exact - ATOL)
        worst = int(slack.argmin())
        if float(slack[worst]) < 0:
            raise Failure(
                f"declared a bound (is_bound=True) but its expectation is below the exact NLL: "
                f"{float(mean[worst]):.4f} ± {float(se[worst]):.4f} < −log p(x) = {float(exact[worst]):.4f} nats",
                f"{problem.describe()}, x={tokens[worst].tolist()}")
