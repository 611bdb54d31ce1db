"""Config → registry → components: build a `PrimeModel`, and save / load it as a checkpoint."""

from __future__ import annotations

import importlib.metadata as md
from typing import Any

import attrs
import torch

from .checkpoint import read_checkpoint, save_checkpoint
from .config import Config
from .errors import CheckpointError, ConfigError, PrimeError
from .interfaces import BackboneSpec
from .model import PrimeModel
from .registry import Registry, get_registry


def build_dataset(config: Config, registry: Registry | None = None, data_meta: dict | None = None):
    """The dataset ``config.data`` names. ``data_meta``: a checkpoint's metadata["data"] (see
    `Dataset.checkpoint_meta`), restored into the dataset, whose C must then match the checkpoint's config."""
    registry = registry or get_registry()
    dataset = registry.build("dataset", config.data.dataset, **config.data.options)
    if data_meta:
        dataset.load_checkpoint_meta(data_meta)
        c = config.model.num_classes
        if c is not None and dataset.num_classes != c:
            raise ConfigError(f"vocabulary mismatch: the data set's tokenizer has C={dataset.num_classes} classes, "
                              f"the checkpoint's model C={c}")
    return dataset


def build_training_loss(name: str, registry: Registry | None = None):
    """The per-row training loss ``train.loss`` names: "nelbo" / "joint" (prime_core.losses), or else a
    registered metric (e.g. "ar-nll" from prime-plugin-dit) whose `per_sequence` is minimised. Returns a
    callable (model, tokens, *, eps, generator, t, masked) → [B] nats; a metric ignores eps, t and masked."""
    from .losses import TRAINING_LOSSES

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


def build_model(config: Config, registry: Registry | None = None) -> PrimeModel:
    """Resolve every component name of ``config.model`` (sizes already resolved) and assemble the model."""
    registry = registry or get_registry()
    m = config.model
    if m.num_classes is None or m.length is None:
        raise ConfigError("model.num_classes and model.length must be resolved before building the model")
    subtoken_map = registry.build("map", m.map, m.num_classes, m.ell)
    head = registry.build("head", m.head)
    schedule = registry.build("schedule", m.schedule, **m.schedule_options)
    spec = BackboneSpec(out_dim=head.output_dim(subtoken_map), base=subtoken_map.base, ell=m.ell, length=m.length,
                        width=m.width, num_classes=m.num_classes, time_conditioned=m.time_conditioned)
    try:
        backbone = registry.build("backbone", m.backbone, spec, **m.backbone_options)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. an unknown option, hidden=-5
        if isinstance(exc, PrimeError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"backbone {m.backbone!r} rejected model.backbone_options="
                          f"{m.backbone_options}: {first}") from None
    return PrimeModel(subtoken_map, backbone, head, schedule, noise=m.noise)


def _version(dist: str) -> str:
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
        "config": config.to_dict(),
        "components": components,
        "num_classes": model.num_classes, "ell": model.ell, "base": model.base, "length": model.length,
        "noise": model.noise, "schedule": {"name": m.schedule, **model.schedule.params()},
        "sampler_defaults": attrs.asdict(config.sample),
        "versions": {"prime-core": _version("prime-core"), "torch": torch.__version__},
        **({"data": dataset.checkpoint_meta()} if dataset is not None and dataset.checkpoint_meta() else {}),
    }


def save_model(url: str, model: PrimeModel, config: Config, *, extra_tensors: dict | None = None,
               extra_meta: dict | None = None, registry: Registry | None = None) -> str:
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    tensors.update(extra_tensors or {})
    meta = model_metadata(model, config, registry)
    meta.update(extra_meta or {})
    return save_checkpoint(url, tensors, meta)


def load_model(url: str, registry: Registry | None = None, weights: str = "model"):
    """Rebuild a model from a checkpoint. ``weights`` picks the tensor group ("model", or "ema" if saved).
    Returns (model, config, checkpoint)."""
    ckpt = read_checkpoint(url)
    try:
        config = Config.from_dict(ckpt.meta["config"])
        model = build_model(config, registry)
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {url} has no valid config: {exc}") from None
    state = ckpt.group(weights) or (ckpt.group("model") if weights == "ema" else {})
    if not state:
        raise CheckpointError(f"checkpoint {url} has no {weights!r} weights")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"checkpoint {url} does not match its config's model: {first}") from None
    model.eval()
    return model, config, ckpt
