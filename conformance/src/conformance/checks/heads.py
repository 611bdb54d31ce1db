"""Parameterization suite (DESIGN §2.3): p_θ(x | y_t) is a valid pmf over the C tokens, zero outside the tokens
V(y_t) consistent with the observed digits (carry-over, the paper's Prop. A.4), its digit marginals sum to one
and put all mass on observed digits, and with ℓ = 1 it is plain MDM (softmax over C; one-hot when observed).

Each check runs with every sub-token map of the plugin under test (`Subject.setups`; base-b when it has none)."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from .._property import falsify
from ..catalog import check
from ..errors import Failure
from ..strategies import classes_and_ell, enumerable_problems, masks, token_batches

ATOL = 1e-5


@st.composite
def _head_inputs(draw, max_classes: int = 40, ell: int | None = None):
    if ell is None:
        num_classes, ell = draw(classes_and_ell(max_classes=max_classes, max_ell=4))
    else:
        num_classes = draw(st.integers(2, max_classes))
    length = draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    x0 = draw(token_batches(num_classes, (batch, length)))
    m = torch.stack([draw(masks(length, ell)) for _ in range(batch)])
    seed = draw(st.integers(0, 2**16))
    return {"C": num_classes, "ℓ": ell, "L": length, "x0": x0.tolist(), "masked": m.int().tolist(), "seed": seed}


def _evaluate(subject, setup, ex, training: bool = False):
    m = setup.build_map(ex["C"], ex["ℓ"])
    head = subject.build()
    x0 = torch.tensor(ex["x0"])
    masked = torch.tensor(ex["masked"]).bool()
    y_t = m.encode(x0).masked_fill(masked, m.mask_id)
    logits = 3 * torch.randn(*x0.shape, head.output_dim(m), generator=torch.Generator().manual_seed(ex["seed"]))
    fn = head.training_log_probs if training else head.log_probs
    return m, head, y_t, logits, fn(logits, y_t, m)


def _consistent(m, y_t):
    """V(y_t) computed from the map's own encode: bool [B, L, C]."""
    table = m.encode(torch.arange(m.num_classes))  # [C, ℓ]
    observed = y_t != m.mask_id  # [B, L, ℓ]
    agree = (table.view(1, 1, -1, m.ell) == y_t.unsqueeze(-2)) | ~observed.unsqueeze(-2)
    return agree.all(-1)


def _each_map(subject, prop, strategy, **kw) -> None:
    """Falsify ``prop(example, setup)`` once per map the plugin under test provides (heads use no schedule)."""
    for setup in {s.map_name: s for s in subject.setups()}.values():
        setup.run(lambda: falsify(lambda ex: prop(ex, setup), strategy, **kw))


@check("head")
def check_valid_pmf(subject):
    """log_probs is [B, L, C], not NaN, and exp sums to 1 over the C tokens at every position."""

    def prop(ex, setup):
        m, head, y_t, logits, lp = _evaluate(subject, setup, ex)
        if tuple(lp.shape) != (*y_t.shape[:-1], m.num_classes):
            raise Failure(f"log_probs shape {tuple(lp.shape)}, expected [B, L, C]={[*y_t.shape[:-1], m.num_classes]}")
        if bool(torch.isnan(lp).any()) or bool((lp == math.inf).any()):
            raise Failure("log_probs contains NaN or +inf")
        total = lp.double().exp().sum(-1)
        worst = float((total - 1).abs().max())
        if worst > ATOL:
            raise Failure(f"p_θ(· | y_t) must sum to 1 over C, off by {worst:.3g}")

    _each_map(subject, prop, _head_inputs())


@check("head")
def check_zero_mass_outside_consistent_tokens(subject):
    """p_θ(x | y_t) = 0 for every x ∉ V(y_t) (Prop. A.4), also in training_log_probs when carry_over is
    declared; a fully observed token gets probability 1."""
    carry = bool(getattr(subject.cls, "carry_over", False))

    def prop(ex, setup):
        for training in ((False, True) if carry else (False,)):
            m, head, y_t, logits, lp = _evaluate(subject, setup, ex, training)
            v = _consistent(m, y_t)
            leak = lp.double().exp().masked_fill(v, 0.0)
            if float(leak.max()) > 0.0:
                where = (leak > 0).nonzero()[0].tolist()
                fn = "training_log_probs" if training else "log_probs"
                raise Failure(f"{fn} puts mass {float(leak.max()):.3g} on token {where[-1]} at position "
                              f"{where[:2]}, which contradicts the observed digits {y_t[where[0], where[1]].tolist()}")
            full = (y_t != m.mask_id).all(-1)
            if bool(full.any()):
                x0 = torch.tensor(ex["x0"])
                p_obs = lp.gather(-1, x0.unsqueeze(-1)).squeeze(-1).double().exp()[full]
                if float((p_obs - 1).abs().max()) > ATOL:
                    raise Failure("a fully observed token must keep probability 1 (carry-over)")

    _each_map(subject, prop, _head_inputs())


@check("head")
def check_position_wise(subject):
    """log_probs is position-wise: on rows gathered at some positions ([N, out_dim], [N, ℓ], as the sampler
    calls it through `PrimeModel.log_probs_at`) it equals the [B, L] result at those positions."""

    def prop(ex, setup):
        m, head, y_t, logits, lp = _evaluate(subject, setup, ex)
        where = torch.rand(y_t.shape[:-1], generator=torch.Generator().manual_seed(ex["seed"])) < 0.5
        gathered = head.log_probs(logits[where], y_t[where], m)
        if tuple(gathered.shape) != (int(where.sum()), m.num_classes):
            raise Failure(f"log_probs on gathered rows has shape {tuple(gathered.shape)}, expected "
                          f"[N, C]={[int(where.sum()), m.num_classes]}")
        diff = float((gathered.double() - lp[where].double()).nan_to_num(posinf=0.0, neginf=0.0).abs().max()
                     ) if bool(where.any()) else 0.0
        if diff > ATOL or not torch.equal(torch.isinf(gathered), torch.isinf(lp[where])):
            raise Failure(f"log_probs on gathered positions differs from the [B, L] result by {diff:.3g}")

    _each_map(subject, prop, _head_inputs())


@check("head")
def check_marginals_sum_to_one(subject):
    """Digit marginals p(d_j = v | y_t) = Σ_{x: f(x)_j = v} p(x | y_t) sum to 1 per slot, and equal 1 on the
    observed value of an observed digit."""

    def prop(ex, setup):
        m, head, y_t, logits, lp = _evaluate(subject, setup, ex)
        table = m.encode(torch.arange(m.num_classes))
        p = lp.double().exp()
        for j in range(m.ell):
            marg = torch.zeros(*p.shape[:-1], m.base, dtype=torch.float64).index_add_(-1, table[:, j], p)
            if float((marg.sum(-1) - 1).abs().max()) > ATOL:
                raise Failure(f"marginal of digit {j} does not sum to 1")
            obs = y_t[..., j] != m.mask_id
            if bool(obs.any()):
                on_obs = marg.gather(-1, y_t[..., j].clamp(max=m.base - 1).unsqueeze(-1)).squeeze(-1)[obs]
                if float((on_obs - 1).abs().max()) > ATOL:
                    raise Failure(f"an observed digit {j} must keep marginal probability 1, got "
                                  f"{float(on_obs.min()):.4g}")

    _each_map(subject, prop, _head_inputs())


@check("head")
def check_ell1_is_plain_mdm(subject):
    """ℓ = 1: a masked token's distribution is softmax over C of the backbone's C logits (when the head asks
    for C logits), an observed token is one-hot — MDLM's parameterization."""

    def prop(ex, setup):
        m, head, y_t, logits, lp = _evaluate(subject, setup, ex)
        masked = y_t[..., 0] == m.mask_id
        x0 = torch.tensor(ex["x0"])
        if bool((~masked).any()):
            onehot = torch.nn.functional.one_hot(x0, m.num_classes).double()
            if float((lp.double().exp() - onehot)[~masked].abs().max()) > ATOL:
                raise Failure("ℓ = 1: an observed token must be one-hot")
        if head.output_dim(m) == m.num_classes and bool(masked.any()):
            ref = torch.log_softmax(logits.double(), -1)
            # the C logits may index tokens (joint heads) or the digit f(x) (a digit head); with a map other
            # than base-b these differ by the map's relabelling, and either is plain MDM
            by_digit = ref[..., m.encode(torch.arange(m.num_classes))[:, 0]]
            diff = min(float((lp.double() - r)[masked].abs().max()) for r in (ref, by_digit))
            if diff > 1e-4:
                raise Failure(f"ℓ = 1: a masked token must get softmax over C of the logits (MDM), off by {diff:.3g}")

    _each_map(subject, prop, _head_inputs(ell=1))


@check("head")
def check_sequence_probabilities_sum_to_one(subject):
    """The model's exact likelihood p_θ(x) (prime_core.diffusion.exact, over every reveal order) sums to 1 over all C^L
    valid sequences, for a random time-independent backbone."""
    from prime_core.api import all_sequences, exact_log_likelihood

    from ..toy import tiny_model

    def prop(problem, setup):
        num_classes, ell, length = problem
        if num_classes**length > 300:
            return
        model = tiny_model(num_classes, ell, length, head=subject.build(), backbone="mlp", seed=num_classes,
                           subtoken_map=setup.build_map(num_classes, ell), schedule=setup.build_schedule())
        total = float(exact_log_likelihood(model, all_sequences(num_classes, length)).exp().sum())
        if abs(total - 1.0) > 1e-6:
            raise Failure(f"Σ_x p_θ(x) over the C^L valid sequences = {total:.8f}, not 1")

    _each_map(subject, prop, enumerable_problems(max_units=4, max_classes=7), max_examples=8)
