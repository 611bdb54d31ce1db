"""Config → registry → components: build a `PrimeModel`, and save / load it as a checkpoint."""

from __future__ import annotations

import importlib.metadata as md
import inspect
from typing import Any

import attrs
import torch

from .checkpoint import check_finite, read_checkpoint, save_checkpoint
from .config import Config
from .meta_build import shape_build
from ..errors import CheckpointError, ConfigError, PrimeError, UnknownComponentError, first_line
from ..interfaces import BackboneSpec
from ..diffusion.block import check_block_model
from ..diffusion.model import PrimeModel
from ..plugin.registry import Registry
from ..plugin.default import get_registry


def build_dataset(config: Config, registry: Registry | None = None, data_meta: dict | None = None):
    """The dataset ``config.data`` names, from the user's own config. ``data_meta``: a checkpoint's
    metadata["data"] (see `Dataset.checkpoint_meta`), restored into the dataset, whose C must then match the
    checkpoint's config. For a config read from a checkpoint use `dataset_for_checkpoint`, which never lets the
    checkpoint choose a file, URL or folder."""
    registry = registry or get_registry()
    dataset = registry.build("dataset", config.data.dataset, **config.data.options)
    if data_meta:
        dataset.load_checkpoint_meta(data_meta)
        _check_vocabulary(dataset, config)
    return dataset


def _check_vocabulary(dataset, config: Config) -> None:
    """A data set restored from a checkpoint must have the C of the checkpoint's model."""
    c = config.model.num_classes
    if c is not None and dataset.num_classes != c:
        raise ConfigError(f"vocabulary mismatch: the data set's tokenizer has C={dataset.num_classes} classes, "
                          f"the checkpoint's model C={c}")


def dataset_for_checkpoint(config: Config, data_meta: Any, *, locations: dict | None = None,
                           need_data: bool = True, registry: Registry | None = None, flag: str = "--data-option"):
    """The data set of a checkpoint's ``config``, rebuilt so that the checkpoint's metadata stays data (DESIGN §3).

    Options the data set declares in `Dataset.location_options` come from ``locations`` (the user's command line
    or config), never from the checkpoint (see `_checkpoint_options`). ``need_data``: False when the data set only
    decodes or renders samples (it then never reads its data). ``flag``: the option a message tells users to pass.
    ``data_meta`` (the checkpoint's metadata["data"]) is always restored, so the data set knows it serves a
    checkpoint (a text data set then never trains a tokenizer)."""
    registry = registry or get_registry()
    name = config.data.dataset
    options = _checkpoint_options(registry.get("dataset", name).obj, config.data.options, dict(locations or {}),
                                  need_data, flag)
    if data_meta is not None and not isinstance(data_meta, dict):
        raise CheckpointError(f"checkpoint metadata 'data' must be a JSON object, got {type(data_meta).__name__}")
    dataset = registry.build("dataset", name, **options)
    dataset.load_checkpoint_meta(data_meta or {})
    _check_vocabulary(dataset, config)
    return dataset


def check_location_keys(cls: type, locations: dict, flag: str = "--data-option") -> None:
    """Every key of ``locations`` (the user's ``flag`` KEY=VALUE) must be one of the data set's
    `Dataset.location_options`: its other options come from the checkpoint."""
    declared = tuple(cls.location_options)
    for key in locations:
        if key not in declared:
            raise ConfigError(f"{flag} {key}=…: data set {cls.name!r} takes only its locations from the command "
                              f"line ({', '.join(declared) or 'it has none'}); its other options come from the "
                              "checkpoint")


def _checkpoint_options(cls: type, stored: dict, locations: dict, need_data: bool, flag: str) -> dict[str, Any]:
    """Constructor options for a checkpoint's data set: the stored ones, minus every location, plus the user's.

    A stored location equal to the constructor's default (text: ``source = "austen"``, the embedded corpus) is
    kept: the metadata chose nothing prime would not read anyway. Any other stored location is dropped; the
    user's value replaces it, else the default is used when that changes no result (a cache, or no data read),
    else the user is told which ``flag`` to pass."""
    declared, caches = tuple(cls.location_options), tuple(cls.cache_options)
    check_location_keys(cls, locations, flag)
    defaults = _option_defaults(cls)
    options = {k: v for k, v in stored.items() if k not in declared or (k in defaults and v == defaults[k])}
    for key in sorted(stored.keys() - options.keys() - locations.keys()):
        if key not in defaults or (need_data and key not in caches):
            raise ConfigError(f"the checkpoint's {cls.name!r} data set was built from data.options.{key}, a "
                              f"location, which prime never takes from a checkpoint: pass {flag} {key}=PATH")
    return {**options, **locations}


def user_locations(config: Config, registry: Registry | None = None) -> dict[str, Any]:
    """The location options (`Dataset.location_options`) that the user's own ``config`` sets, to pass on to
    `dataset_for_checkpoint` for a checkpoint trained from it."""
    registry = registry or get_registry()
    declared = getattr(registry.get("dataset", config.data.dataset).obj, "location_options", ())
    return {k: v for k, v in config.data.options.items() if k in declared}


def _option_defaults(cls: type) -> dict[str, Any]:
    """Constructor defaults of a data set class (parameters without a default are absent)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def build_training_loss(name: str, registry: Registry | None = None):
    """The per-row training loss ``train.loss`` names: "nelbo" / "joint" (prime_core.diffusion.losses), or else a
    registered metric (e.g. "ar-nll" from prime-plugin-dit) whose `per_sequence` is minimised. Returns a
    callable (model, tokens, *, eps, generator, t, masked) → [B] nats; a metric ignores eps, t and masked."""
    from ..diffusion.losses import TRAINING_LOSSES

    if name in TRAINING_LOSSES:
        return TRAINING_LOSSES[name]
    registry = registry or get_registry()
    if name not in registry.names("metric"):
        raise ConfigError(f"train.loss={name!r} is neither nelbo, joint nor a registered metric; "
                          f"metrics: {', '.join(registry.names('metric'))}")
    metric = registry.build("metric", name)

    def loss(model, tokens, *, eps=None, generator=None, t=None, masked=None, **_):
        return metric.per_sequence(model, tokens, generator=generator)

    return loss


def resolve_sizes(config: Config, num_classes: int | None, length: int | None) -> Config:
    """Fill model.num_classes / model.length from the data; a stated value that disagrees is an error."""
    m = config.model
    for field, stated, actual in (("num_classes", m.num_classes, num_classes), ("length", m.length, length)):
        if stated is not None and actual is not None and stated != actual:
            raise ConfigError(f"model.{field}={stated} disagrees with the data ({actual}); remove it or use {actual}")
    c = m.num_classes if m.num_classes is not None else num_classes
    length = m.length if m.length is not None else length
    if c is None or length is None:
        raise ConfigError("model.num_classes and model.length must be set (or come from the dataset)")
    return attrs.evolve(config, model=attrs.evolve(m, num_classes=c, length=length))


def build_model(config: Config, registry: Registry | None = None, *,
                provided_by: dict[str, Any] | None = None) -> PrimeModel:
    """Resolve every component name of ``config.model`` (sizes already resolved) and assemble the model.
    ``provided_by``: a checkpoint's metadata["components"], so a missing component names what to install."""
    registry = registry or get_registry()
    m = config.model
    if m.num_classes is None or m.length is None:
        raise ConfigError("model.num_classes and model.length must be resolved before building the model")
    origin = (provided_by if isinstance(provided_by, dict) else {}).get
    if not registry.get("map", m.map, provided_by=origin("map")).obj.supports(m.num_classes, m.ell):
        raise ConfigError(f"map {m.map!r} is not defined for model.num_classes = {m.num_classes}, model.ell = "
                          f"{m.ell} (its declared domain, SubTokenMap.supports); choose another ell or map")
    subtoken_map = registry.build("map", m.map, m.num_classes, m.ell, provided_by=origin("map"), **m.map_options)
    head = registry.build("head", m.head, provided_by=origin("head"))
    schedule = registry.build("schedule", m.schedule, provided_by=origin("schedule"), **m.schedule_options)
    spec = BackboneSpec(out_dim=head.output_dim(subtoken_map), base=subtoken_map.base, ell=m.ell, length=m.length,
                        width=m.width, num_classes=m.num_classes, time_conditioned=m.time_conditioned)
    try:
        backbone = registry.build("backbone", m.backbone, spec, provided_by=origin("backbone"), **m.backbone_options)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. an unknown option, hidden=-5
        if isinstance(exc, PrimeError):
            raise
        first = first_line(exc)
        raise ConfigError(f"backbone {m.backbone!r} rejected model.backbone_options="
                          f"{m.backbone_options}: {first}") from None
    check_block_model(m.block_size, m.length, backbone, m.backbone, m.time_conditioned)
    return PrimeModel(subtoken_map, backbone, head, schedule, noise=m.noise, block_size=m.block_size)


def distribution_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or "unknown" (public: exporters record it)."""
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "unknown"


def model_metadata(model: PrimeModel, config: Config, registry: Registry | None = None,
                   dataset=None) -> dict[str, Any]:
    """Checkpoint metadata; with ``dataset``, also its `checkpoint_meta()` under "data" (e.g. a tokenizer)."""
    registry = registry or get_registry()
    m = config.model
    components = {}
    for kind, name in (("map", m.map), ("head", m.head), ("backbone", m.backbone), ("schedule", m.schedule)):
        c = registry.get(kind, name)
        components[kind] = {"name": name, "distribution": c.distribution, "version": c.version}
    return {
        "config": attrs.evolve(config, compare=()).to_dict(),  # a model's config, not the runs it is compared with
        "components": components,
        "num_classes": model.num_classes, "ell": model.ell, "base": model.base, "length": model.length,
        "noise": model.noise, "schedule": {"name": m.schedule, **model.schedule.params()},
        "sampler_defaults": attrs.asdict(config.sample),
        "versions": {"prime-core": distribution_version("prime-core"), "torch": torch.__version__},
        **({"data": dataset.checkpoint_meta()} if dataset is not None and dataset.checkpoint_meta() else {}),
    }


def save_model(url: str, model: PrimeModel, config: Config, *, extra_tensors: dict | None = None,
               extra_meta: dict | None = None, registry: Registry | None = None, dataset=None) -> str:
    """Write ``model`` as a checkpoint at ``url`` (JSON metadata + safetensors); ``dataset``: the data set it was
    trained on, whose `checkpoint_meta()` (e.g. a tokenizer) the checkpoint must carry to decode samples."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update(extra_tensors or {})
    meta = model_metadata(model, config, registry, dataset)
    meta.update(extra_meta or {})
    return save_checkpoint(url, tensors, meta)


def load_model(url: str, registry: Registry | None = None, weights: str = "model",
               device: str | torch.device | None = "cpu"):
    """Rebuild a model from a checkpoint. ``weights`` picks the tensor group ("model", or "ema" if saved);
    ``device`` is where the model is returned (a spec of `prime_core.device`: auto, cpu, cuda, cuda:N; None is
    auto). Returns (model, config, checkpoint).

    Nothing in the metadata is trusted: the config must parse, the top-level sizes must agree with it, and the
    model is first built on the meta device (no memory) so that its tensor names and shapes are compared with the
    file's, and its size with the memory available (on the CPU, where it is loaded, and on ``device``), before it
    is built for real."""
    from ..device import resolve_device

    target = resolve_device(device, what="device")
    ckpt = read_checkpoint(url)
    config = checkpoint_config(ckpt.meta, url)
    state = _weights(ckpt, weights, url)
    check_finite(state, url, weights)  # NaN/inf weights: refused here, not printed later as "PPL ≤ nan"
    origin = ckpt.meta.get("components")  # who provided each component: a missing one names what to install
    skeleton = _meta_model(config, registry, url, origin)
    if skeleton is not None:
        _check_model(ckpt.meta, skeleton, state, weights, url)
        _check_model_memory(skeleton, url, target)
    else:  # built for real below: the file's tensors (which the model must match) must fit first
        from .checkpoint import check_memory

        check_memory(sum(t.numel() * t.element_size() for t in state.values()),
                     f"checkpoint {url} holds weights of")
    model = build_model(config, registry, provided_by=origin)
    if skeleton is None:  # a component that cannot be built on the meta device: same checks, after the build
        _check_model(ckpt.meta, model, state, weights, url)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # dtypes or values the shape check cannot see
        raise CheckpointError(f"checkpoint {url} does not match its config's model: {first_line(exc)}") from None
    model.eval()
    return model.to(target), config, ckpt


def checkpoint_config(meta: dict[str, Any], url: str) -> Config:
    """The `Config` stored in checkpoint metadata; anything but a valid config object is a `CheckpointError`."""
    raw = meta.get("config")
    if isinstance(raw, dict):  # checkpoints of `prime train` before 2026-12-08 could hold a [[compare]] list
        raw = {k: v for k, v in raw.items() if k != "compare"}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise CheckpointError(f"checkpoint {url} has no valid config: expected a JSON object of sections, "
                              f"got {type(raw).__name__}")
    try:
        config = Config.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise CheckpointError(f"checkpoint {url} has no valid config: {first_line(exc)}") from None
    if config.model.num_classes is None or config.model.length is None:
        raise CheckpointError(f"checkpoint {url} has no valid config: model.num_classes and model.length must be set")
    return config


def _weights(ckpt, weights: str, url: str) -> dict[str, torch.Tensor]:
    """The tensor group ``weights``; a missing group names the groups the file has (never a silent fallback)."""
    state = ckpt.group(weights)
    if not state:
        groups = sorted({k.split("/", 1)[0] for k in ckpt.tensors if "/" in k})
        raise CheckpointError(f"checkpoint {url} has no {weights!r} weights; it holds: "
                              f"{', '.join(groups) or 'no tensor groups'}")
    return state


def _meta_model(config: Config, registry: Registry | None, url: str,
                provided_by: dict[str, Any] | None = None) -> PrimeModel | None:
    """The model for its shapes (`shape_build`: large tensors on the meta device), no large memory. None if a (third-party) component needs real
    tensors while it is constructed (e.g. calls ``.item()``): the caller then checks after a real build."""
    meta_only = (RuntimeError, NotImplementedError)  # what torch raises for values of meta tensors
    try:
        with shape_build():  # large tensors on meta, small ones real: a plain meta build imports torch._dynamo
            return build_model(config, registry, provided_by=provided_by)
    except meta_only as exc:
        _refuse_oversized(exc, config, url)
        return None
    except UnknownComponentError:  # a component that is not installed: its message says what to install
        raise
    except PrimeError as exc:
        # build_model turns a backbone's RuntimeError into a one-line ConfigError; its context tells them apart
        if isinstance(exc.__context__, meta_only) and not isinstance(exc.__context__, PrimeError):
            _refuse_oversized(exc.__context__, config, url)
            return None
        raise CheckpointError(f"checkpoint {url} has no valid config: {first_line(exc)}") from None


#: what torch says when a tensor's size cannot even be represented (numel · element size ≥ 2⁶³ bytes)
_OVERSIZED = ("overflow", "too large", "exceeds", "numel")


def _refuse_oversized(exc: BaseException, config: Config, url: str) -> None:
    """A meta build that failed because a tensor is too large to describe (``model.width=1e9``: a 3·10⁹ × 10⁹
    weight) is the size check's answer, not a reason to try a real build: refuse in one line naming the sizes."""
    text = first_line(exc)
    if any(word in text.lower() for word in _OVERSIZED):
        m = config.model
        raise CheckpointError(f"checkpoint {url} describes a model too large to build (model.width={m.width}, "
                              f"length={m.length}, num_classes={m.num_classes}: {text})") from None


def _check_model(meta: dict[str, Any], model: PrimeModel, state: dict, weights: str, url: str) -> None:
    _check_sizes_meta(meta, model, url)
    _check_state_shapes(model, state, weights, url)


def _check_sizes_meta(meta: dict[str, Any], model: PrimeModel, url: str) -> None:
    """The top-level num_classes / ell / base / length of the metadata must equal the model the config builds."""
    for key in ("num_classes", "ell", "base", "length"):
        if key in meta and meta[key] != getattr(model, key):
            raise CheckpointError(f"checkpoint {url} is inconsistent: metadata {key}={meta[key]!r} but its config "
                                  f"builds a model with {key}={getattr(model, key)}")


def _check_state_shapes(model: PrimeModel, state: dict[str, torch.Tensor], weights: str, url: str) -> None:
    """Names and shapes of the model's state must equal the file's; the first difference is named."""
    want = {k: list(v.shape) for k, v in model.state_dict().items()}
    have = {k: list(v.shape) for k, v in state.items()}
    for name in sorted(want.keys() | have.keys()):
        if want.get(name) != have.get(name):
            w = want.get(name, "absent")
            h = have.get(name, "absent")
            raise CheckpointError(f"checkpoint {url} does not match its config's model: tensor {weights}/{name} "
                                  f"has shape {h} in the file, the model expects {w}")


def _check_model_memory(model: PrimeModel, url: str, device: torch.device | None = None) -> None:
    """Parameters and buffers (non-persistent ones too) must fit in the memory available now: on the CPU, where
    the file is read and the model built, and on ``device`` when that is another one (a GPU's free memory)."""
    from .checkpoint import check_memory
    from ..device import device_memory

    nbytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    check_memory(nbytes, f"checkpoint {url} describes a model of")
    free = device_memory(device) if device is not None and device.type != "cpu" else None
    if free is not None and nbytes > free:
        raise CheckpointError(f"checkpoint {url} describes a model of {nbytes / 2**30:.1f} GiB, more than the "
                              f"{free / 2**30:.1f} GiB free on {device}")
