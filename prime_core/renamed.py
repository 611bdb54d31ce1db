"""Renamed keywords of the public interfaces, accepted under both names for one minor release (docs/plugins.md,
"Compatibility policy"). One helper serves both directions of a rename:

* an **old caller** passes the old keyword (``gumbel_dtype=``) to a component written for the new interface: the
  value moves to the new keyword (``draw_dtype=``) with a `DeprecationWarning` naming the caller's line;
* the **core calls an old component** whose method still takes only the old keyword: the new keyword the core
  passes moves to the old one, silently per call; the component's author is warned once, when its class is
  defined.

`prime_core.interfaces.Sampler` and `Runtime` apply it to every subclass's ``sample`` / ``sampler`` method, so a
plugin needs no code for it. Internal: plugins reach it through those base classes only.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Callable

#: old keyword → new keyword, in `Sampler.sample` and `Runtime.sampler` (the token draw's precision: an inverse-CDF
#: draw since the keyed RNG, no longer Gumbel noise)
DRAW_DTYPE = {"gumbel_dtype": "draw_dtype"}


def _message(old: str, new: str) -> str:
    return f"the keyword {old}= is deprecated: use {new}= (the old name is accepted until the next minor release)"


def accept_renamed(fn: Callable, where: str, renames: dict[str, str] = DRAW_DTYPE) -> Callable:
    """``fn`` wrapped so that it answers to both names of each rename in ``renames`` (old → new); ``where`` names
    the method in messages (``MySampler.sample``). Both names at once is a `TypeError` (one value, two names)."""
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    # old → the parameter name fn takes for it: the new one, or the old one for a component written before the rename
    takes = {}
    for old, new in renames.items():
        if new in params or (var_kw and old not in params):
            takes[old] = new
        elif old in params:
            warnings.warn(f"{where} takes {old}=, renamed {new}= in prime's interfaces: rename the parameter (the old "
                          "name is accepted until the next minor release)", DeprecationWarning, stacklevel=4)
            takes[old] = old
    if not takes:
        return fn

    @functools.wraps(fn)  # keeps fn's signature for inspect (conformance reads it)
    def wrapper(*args, **kwargs):
        for old, name in takes.items():
            new = renames[old]
            if old in kwargs and new in kwargs:
                raise TypeError(f"{where}() got both {old}= and {new}= (one value, two names): pass {new}= only")
            if old in kwargs:  # an old caller
                warnings.warn(_message(old, new), DeprecationWarning, stacklevel=2)
                kwargs[name] = kwargs.pop(old)
            elif new in kwargs and name != new:  # the core (or a new caller) calling an old component
                kwargs[name] = kwargs.pop(new)
        return fn(*args, **kwargs)

    return wrapper
