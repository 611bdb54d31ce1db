"""Backbone suite: y [B, L, ℓ] (values 0 … b, b = mask) and t [B] or None → logits [B, L, out_dim], floating,
finite; a row's output does not depend on the other rows of its batch; the time-conditioning switch of the
spec is honoured (declared capability ``time_conditioned``; a backbone that cannot be time-conditioned says so
by raising ValueError when asked); a backbone whose ``forward`` takes ``positions`` returns, there, exactly its
full output at those positions (backbones without the argument are skipped: `PrimeModel` slices their output).

The default problem is C = 6, ℓ = 2 (b = 3), L = 4, D = 48; a backbone overrides it with ``conformance_spec``
and passes small options with ``conformance_options``. Weights are perturbed with seeded noise first, so
zero-initialised layers (adaLN) do not hide an input.
"""

from __future__ import annotations

import attrs
import torch

from prime_core.api import BackboneSpec

from ..catalog import check
from ..errors import Failure, SkipCheck
from ..toy import perturb_

DEFAULT_SPEC = dict(out_dim=6, base=3, ell=2, length=4, width=48, num_classes=6)  # D = 48: divisible by ℓ and by common head counts


def _spec(subject, **changes) -> BackboneSpec:
    fields = {**DEFAULT_SPEC, **dict(getattr(subject.cls, "conformance_spec", {}) or {}), **changes}
    return BackboneSpec(**fields)


def _build(subject, spec: BackboneSpec, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = subject.build(spec)
    return perturb_(net, seed, scale=0.1).eval()


def _build_time_conditioned(subject, spec):
    try:
        return _build(subject, attrs.evolve(spec, time_conditioned=True))
    except ValueError:
        return None  # declared: this backbone has no time conditioning


def _inputs(spec: BackboneSpec, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, spec.base + 1, (batch, spec.length, spec.ell), generator=g)  # digits and the mask
    y[0] = spec.base  # one row fully masked
    t = torch.rand(batch, generator=g)
    return y, t


def _forward(net, y, t):
    with torch.no_grad():
        return net(y, t if net.time_conditioned else None)


@check("backbone")
def check_output_shape_dtype_finite(subject):
    """logits [B, L, out_dim], floating dtype, no NaN/inf, for joint (out_dim = C) and independent
    (out_dim = ℓ·b) heads, with and without time conditioning."""
    base = _spec(subject)
    for out_dim in (base.num_classes, base.ell * base.base):
        spec = attrs.evolve(base, out_dim=out_dim)
        for net in (_build(subject, spec), _build_time_conditioned(subject, spec)):
            if net is None:
                continue
            y, t = _inputs(spec, 3, seed=out_dim)
            out = _forward(net, y, t)
            where = f"out_dim={out_dim}, time_conditioned={net.time_conditioned}, B=3"
            if tuple(out.shape) != (3, spec.length, out_dim):
                raise Failure(f"logits must be [B, L, out_dim]={[3, spec.length, out_dim]}, got {list(out.shape)}",
                              where)
            if not out.dtype.is_floating_point:
                raise Failure(f"logits must be floating point, got {out.dtype}", where)
            if not bool(torch.isfinite(out).all()):
                raise Failure("logits contain NaN or inf", where)


@check("backbone")
def check_batch_invariance(subject):
    """Each row's logits equal those of the row run alone and follow the row when the batch is permuted
    (eval mode; atol 1e-4 relative to the logits' scale)."""
    spec = _spec(subject)
    for net in (_build(subject, spec), _build_time_conditioned(subject, spec)):
        if net is None:
            continue
        y, t = _inputs(spec, 5, seed=1)
        out = _forward(net, y, t)
        tol = 1e-4 * max(1.0, float(out.abs().max()))
        for i in range(len(y)):
            alone = _forward(net, y[i:i + 1], t[i:i + 1])[0]
            if float((alone - out[i]).abs().max()) > tol:
                raise Failure(f"row {i}'s logits change with the rest of the batch (max diff "
                              f"{float((alone - out[i]).abs().max()):.3g})",
                              f"time_conditioned={net.time_conditioned}, row {i} of B=5, y={y[i].tolist()}")
        perm = torch.tensor([3, 0, 4, 2, 1])
        if float((_forward(net, y[perm], t[perm]) - out[perm]).abs().max()) > tol:
            raise Failure("permuting the batch does not permute the logits",
                          f"time_conditioned={net.time_conditioned}, permutation {perm.tolist()}")


@check("backbone")
def check_time_conditioning_switch(subject):
    """spec.time_conditioned=False → net.time_conditioned is False and t=None works; True → the backbone says
    so (net.time_conditioned) and its logits depend on t (or it refuses with ValueError)."""
    spec = _spec(subject)
    net = _build(subject, spec)
    if bool(getattr(net, "time_conditioned", False)):
        raise Failure("built with spec.time_conditioned=False but reports time_conditioned=True")
    y, t = _inputs(spec, 3, seed=2)
    with torch.no_grad():
        net(y, None)
    tc = _build_time_conditioned(subject, spec)
    if tc is None:
        return
    if not bool(getattr(tc, "time_conditioned", False)):
        raise Failure("built with spec.time_conditioned=True but reports time_conditioned=False "
                      "(refuse with ValueError if time conditioning is not supported)")
    with torch.no_grad():
        a = tc(y, torch.full((3,), 0.1))
        b = tc(y, torch.full((3,), 0.9))
    if torch.allclose(a, b):
        raise Failure("time-conditioned backbone ignores t: logits at t=0.1 and t=0.9 are equal",
                      f"y={y[1].tolist()}")


@check("backbone")
def check_positions_match_full_output(subject):
    """forward(y, t, positions=P) equals forward(y, t) at P (allclose, atol 1e-5 relative to the logits' scale),
    in P's order, for flat indices b·L + i [N] (unsorted, with a repeat) and for a bool mask [B, L], with and
    without time conditioning, for joint and independent output sizes."""
    base = _spec(subject)
    if not subject.cls.accepts_positions():
        raise SkipCheck("forward takes no positions argument: PrimeModel slices the full output")
    for out_dim in (base.num_classes, base.ell * base.base):
        spec = attrs.evolve(base, out_dim=out_dim)
        for net in (_build(subject, spec), _build_time_conditioned(subject, spec)):
            if net is None:
                continue
            y, t = _inputs(spec, 3, seed=3)
            t = t if net.time_conditioned else None
            with torch.no_grad():
                full = net(y, t)
                flat = torch.tensor([3 * spec.length - 1, 0, spec.length + 1, 0])
                mask = torch.rand(3, spec.length, generator=torch.Generator().manual_seed(4)) < 0.5
                cases = [("flat indices " + str(flat.tolist()), flat, full.flatten(0, 1)[flat]),
                         ("bool mask " + str(mask.int().tolist()), mask, full[mask])]
                for what, positions, want in cases:
                    got = net(y, t, positions=positions)
                    where = f"out_dim={out_dim}, time_conditioned={net.time_conditioned}, positions={what}"
                    if tuple(got.shape) != tuple(want.shape):
                        raise Failure(f"logits at positions must be [N, out_dim]={list(want.shape)}, "
                                      f"got {list(got.shape)}", where)
                    tol = 1e-5 * max(1.0, float(full.abs().max()))
                    if float((got - want).abs().max()) > tol:
                        raise Failure(f"logits at positions differ from the full output there (max diff "
                                      f"{float((got - want).abs().max()):.3g})", where)
