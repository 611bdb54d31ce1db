"""Start-up costs a command need not pay (issue 21 item 2).

`no_init`: while a model is built on the meta device only to compare shapes (`prime_core.build.load_model`), the
``torch.nn.init`` functions are skipped. Their values would be meaningless there, and on meta tensors
``normal_`` runs a Python decomposition that imports ``torch._dynamo`` (~3 s) — for a checkpoint whose weights
are loaded right after.
"""

from __future__ import annotations

import contextlib

import torch

#: the initialisers modules call in ``reset_parameters`` (all fill a tensor in place and return it)
INITIALISERS = ("normal_", "trunc_normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                "xavier_normal_", "zeros_", "ones_", "constant_", "orthogonal_", "eye_", "dirac_", "sparse_")


def _unchanged(tensor, *args, **kwargs):
    return tensor


@contextlib.contextmanager
def no_init():
    """Within: ``torch.nn.init.<initialiser>(t, …)`` returns ``t`` as it is (for meta-device builds only)."""
    saved = {name: getattr(torch.nn.init, name) for name in INITIALISERS if hasattr(torch.nn.init, name)}
    try:
        for name in saved:
            setattr(torch.nn.init, name, _unchanged)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)
