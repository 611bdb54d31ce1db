"""A model built for its shapes, cheaply: large tensors on the meta device, small ones real (internal).

`prime_core.runs.build.load_model` first builds a checkpoint's model for its shapes only, to check the file
against its config and the memory available before anything large is allocated. Under a plain
``torch.device("meta")`` that build costs ≈ 1.5 s of a 2 s start-up (issue 21): most operations on meta tensors
(``arange(ℓ) * (b + 1)``, ``nn.init.normal_``) run Python reference implementations (``torch._refs``) whose
wrapper imports ``torch._dynamo``. `shape_build` avoids them while keeping the point of the meta build:

- a factory call without a device (``torch.empty``, ``zeros``, ``arange`` …, what ``nn.Linear`` and the model
  code call) makes a **meta** tensor when it has ≥ `SMALL` elements or an unknown size, and a real CPU tensor
  otherwise: the small bookkeeping tensors of ``__init__`` (offsets, RoPE tables of a short L) are computed on
  the CPU in microseconds, and nothing large is ever allocated;
- initialisers on a meta tensor (``torch.nn.init.*`` and the in-place random/fill methods) return it as it is,
  as HF accelerate's ``init_empty_weights`` does: its values do not exist.

The result holds every parameter and buffer with its true name, shape and dtype (`_check_model` and the memory
check read nothing else; tested against a plain meta build). A model that mixes a real and a meta tensor in one
operation raises there, as a meta build of a component that needs values does: the caller then builds it for
real after the file-size check. It is a thread-local `TorchFunctionMode` (no module attribute is patched).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

#: tensors with fewer elements are built for real on the CPU (64 Ki elements: 256 KiB in float32)
SMALL = 1 << 16

#: in-place operations that only set values: on a meta tensor each is the identity (`torch.Tensor` methods, and
#: the `torch.nn.init` functions, which reach a torch-function mode before calling one of them)
_VALUE_ONLY = ("uniform_", "normal_", "random_", "exponential_", "geometric_", "log_normal_", "cauchy_",
               "bernoulli_", "fill_", "zero_", "erfinv_", "clamp_", "copy_", "mul_", "add_")
_INIT = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
         "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
#: factories whose leading arguments are the size (ints or one sequence)
_SIZED = ("empty", "zeros", "ones", "full", "rand", "randn", "empty_strided", "empty_permuted")


class _ShapeBuild(TorchFunctionMode):
    """Factory calls without a device: meta when large (or of unknown size), CPU when small; initialisers on
    meta tensors skipped."""

    def __init__(self) -> None:
        super().__init__()
        self._factories = _device_constructors()
        self._skip = ({getattr(torch.Tensor, n) for n in _VALUE_ONLY}
                      | {getattr(torch.nn.init, n) for n in _INIT if hasattr(torch.nn.init, n)})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._skip:  # nn.init passes its tensor by keyword, Tensor methods as self
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        if func in self._factories and kwargs.get("device") is None:
            numel = _numel(func, args, kwargs)
            kwargs["device"] = "cpu" if numel is not None and numel < SMALL else "meta"
        return func(*args, **kwargs)


def _numel(func, args: tuple, kwargs: dict) -> int | None:
    """The number of elements a factory call makes, when its arguments say so plainly; None otherwise."""
    name = getattr(func, "__name__", "")
    try:
        if name in _SIZED:
            return math.prod(int(d) for d in _factory_size(name, args, kwargs))
        if name == "arange" and args and not kwargs.keys() & {"start", "end", "step", "out"}:
            start, end, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
            return max(0, math.ceil((float(end) - float(start)) / float(step)))
        if name in ("linspace", "logspace"):
            return int(args[2] if len(args) > 2 else kwargs["steps"])
        if name == "eye":  # eye(n) or eye(n, m)
            n = int(args[0] if args else kwargs["n"])
            m = args[1] if len(args) > 1 and isinstance(args[1], int) else kwargs.get("m", n)
            return n * int(m)
        if name in ("tensor", "as_tensor", "scalar_tensor"):  # data given: its size is the caller's
            return 0
    except (TypeError, ValueError, KeyError, IndexError, OverflowError):
        return None
    return None


def _factory_size(name: str, args: tuple, kwargs: dict) -> list:
    """The size of a sized factory call: ``size=``, a leading sequence, or the leading ints (``empty(3, 4)``)."""
    if "size" in kwargs:
        size = kwargs["size"]
    elif name in ("full", "empty_strided") or isinstance(args[0], (tuple, list, torch.Size)):
        size = args[0]
    else:
        size = [a for a in args if isinstance(a, int)]
    return [size] if isinstance(size, int) else list(size)


@contextlib.contextmanager
def shape_build() -> Iterator[None]:
    """Build modules for their shapes: large tensors on the meta device, small ones real, no initialisation of
    meta tensors (see the module docstring)."""
    with _ShapeBuild():
        yield
