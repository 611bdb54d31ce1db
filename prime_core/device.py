"""Where a command runs: one vocabulary and one resolver for every ``--device`` option and ``train.options.device``.

A device spec is one of

- ``auto``: ``cuda`` when torch sees a CUDA device, else ``cpu``;
- ``cpu``;
- ``cuda``: the CUDA device of this process (``cuda:LOCAL_RANK`` under torchrun, else the current one);
- ``cuda:N``: CUDA device N, 0 ≤ N < the number of visible devices.

A spec that names something else, or CUDA on a machine without it, is a `PrimeError` whose one line says what was
given and what is allowed; the CLI prints it and exits with code 2. Nothing here allocates memory on a device.
"""

from __future__ import annotations

import os
import re

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a device is resolved, not by `prime --help`
    import torch

from .errors import PrimeError

#: The specs, as error messages and help texts list them.
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DEVICE_HELP = "auto (cuda when available, else cpu), cpu, cuda or cuda:N"

_SPEC = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


def parse_device_spec(spec: str, *, what: str = "--device") -> tuple[str, int | None]:
    """``spec`` → (kind, index) after checking its spelling only (no CUDA is consulted): ``"cuda:1"`` →
    ("cuda", 1), ``"auto"`` → ("auto", None). ``what`` names the option in the error."""
    if not isinstance(spec, str):
        raise PrimeError(f"{what} must be {DEVICE_CHOICES} (a string), got {spec!r}")
    match = _SPEC.fullmatch(spec.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise PrimeError(f"{what} must be {DEVICE_CHOICES}, got {spec!r}")
    index = match.group(2)
    return match.group(1), None if index is None else int(index)


def resolve_device(spec: str | torch.device | None = "auto", *, what: str = "--device",
                   local_rank: int | None = None) -> torch.device:
    """The `torch.device` a spec names on this machine (see the module docstring). None means ``auto``; a
    `torch.device` is checked like its string. ``local_rank``: the process's rank on its node (torchrun's
    LOCAL_RANK), which picks the GPU of ``auto`` / ``cuda`` as cuda:(local_rank mod number of GPUs)."""
    if spec is None:
        spec = "auto"
    import torch

    kind, index = parse_device_spec(str(spec) if isinstance(spec, torch.device) else spec, what=what)
    if kind == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if kind == "auto" and not available:
        return torch.device("cpu")
    if not available:
        raise PrimeError(f"{what} {str(spec)!r} asks for CUDA, which is not available here (torch "
                         f"{torch.__version__} sees no GPU); use auto or cpu")
    count = torch.cuda.device_count()
    if index is None:
        index = local_rank % count if local_rank is not None else torch.cuda.current_device()
    if not 0 <= index < count:
        raise PrimeError(f"{what} {str(spec)!r} names a CUDA device this machine lacks; it has {count}: "
                         f"cuda:0 … cuda:{count - 1}")
    return torch.device("cuda", index)


def device_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` now: CUDA's own count for a GPU, None (unknown) for any other non-CPU device;
    the CPU's is `available_memory`."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return available_memory() if device.type == "cpu" else None


def train_device(config) -> str:
    """The device spec of a config's training run: ``train.options.device`` (every trainer's option), else auto."""
    spec = config.train.options.get("device", "auto")
    parse_device_spec(spec, what="train.options.device")
    return spec


def with_train_device(config, spec: str | None):
    """``config`` with ``train.options.device = spec`` (``prime train/run --device``); None leaves it as it is.
    The option says where a run happens, not what it computes: resuming on another device is allowed
    (`prime_core.runs.config.check_resume_config` ignores it)."""
    import attrs

    if spec is None:
        return config
    parse_device_spec(spec)
    return attrs.evolve(config, train=attrs.evolve(config.train, options={**config.train.options, "device": spec}))


def available_memory() -> int | None:
    """Bytes of memory available to this process now (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
