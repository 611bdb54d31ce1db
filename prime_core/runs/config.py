"""Typed, validated configuration (attrs), loaded from TOML and overridable with ``--set section.key=value``.

The whole config is stored inside every checkpoint as JSON and round-trips exactly.
"""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any

import attrs
from attrs import validators as v

from ..errors import ConfigError, PrimeError, deprecated
from .checks import check_flag, check_one_of
from ..diffusion.forward import NOISE_KINDS
from .keep import KEEP_CHOICES
from .overrides import apply_overrides, parse_override  # noqa: F401 — their public home was here
from .variants import Variant, parse_variants, variant_dict


def _where(inst, attribute) -> str:
    """"train.steps" for a field of TrainConfig (the name users write in TOML and --set)."""
    section = {cls: name for name, cls in _SECTIONS.items()}.get(type(inst))
    return f"{section}.{attribute.name}" if section else attribute.name


def _whole(lo, hi=None):
    """A whole number in [lo, hi] (None allowed: "take it from the data"); 2.5, 1e9 as a float and true/false
    are refused rather than truncated or read as 1/0."""
    def check(inst, attribute, value):
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_where(inst, attribute)} must be a whole number, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            bound = f"in [{lo}, {hi}]" if hi is not None else f"≥ {lo}"
            raise ConfigError(f"{_where(inst, attribute)} must be {bound}, got {value}")
    return check


def _real(lo, hi=math.inf, *, lo_open=False):
    """A finite number in [lo, hi] (or (lo, hi]); nan, ±inf and booleans are refused."""
    def check(inst, attribute, value):
        ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
              and (value > lo if lo_open else value >= lo) and value <= hi)
        if not ok:
            if math.isfinite(hi):
                allowed = f"in {'(' if lo_open else '['}{lo}, {hi}]"
            else:
                allowed = f"{'>' if lo_open else '≥'} {lo}"
            raise ConfigError(f"{_where(inst, attribute)} must be a finite number {allowed}, got {value!r}")
    return check


def _rate_range(inst, attribute, value):
    if value is None:
        return
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) for x in value)
          and 0.0 <= value[0] < value[1] <= 1.0)
    if not ok:
        raise ConfigError(f"{_where(inst, attribute)} must be [lo, hi] with 0 ≤ lo < hi ≤ 1 (masking rates), "
                          f"got {value!r}")


def _one_of(*choices):
    return lambda inst, attribute, value: check_one_of(_where(inst, attribute), choices, value)


def _flag(inst, attribute, value):
    """true or false (TOML booleans), not 0/1 or "yes"."""
    check_flag(_where(inst, attribute), value)


def _list_to_tuple(value):
    """TOML and JSON give lists; a frozen config holds tuples (anything else is left for the validator)."""
    return tuple(value) if isinstance(value, list) else value


def _prompt_list(inst, attribute, value):
    """A list of at most 64 non-empty strings."""
    if not (isinstance(value, tuple) and len(value) <= 64
            and all(isinstance(t, str) and t.strip() for t in value)):
        raise ConfigError(f"{_where(inst, attribute)} must be a list of at most 64 non-empty strings, "
                          f"got {value!r}"[:200])


_name = v.instance_of(str)
_opts = attrs.field(factory=dict, validator=v.instance_of(dict))


@attrs.frozen
class ModelConfig:
    """num_classes C and length L default to the dataset's; width D must be divisible by ℓ (DESIGN §2.7)."""

    num_classes: int | None = attrs.field(default=None, validator=_whole(2))
    length: int | None = attrs.field(default=None, validator=_whole(1))
    ell: int = attrs.field(default=2, validator=_whole(1, 64))
    width: int = attrs.field(default=64, validator=_whole(1))
    map: str = attrs.field(default="base-b", validator=_name)
    # constructor options of the map, e.g. { seed = 3 } for the example plugin's "permuted-base-b"
    map_options: dict = _opts
    head: str = attrs.field(default="carry-over", validator=_name)
    backbone: str = attrs.field(default="mlp", validator=_name)
    backbone_options: dict = _opts
    schedule: str = attrs.field(default="loglinear", validator=_name)
    schedule_options: dict = _opts
    noise: str = attrs.field(default="independent", validator=_one_of(*NOISE_KINDS))
    time_conditioned: bool = attrs.field(default=False, validator=v.instance_of(bool))
    # block diffusion (DESIGN §2.8): B tokens per block, B dividing L; None = one block of L (plain MDM)
    block_size: int | None = attrs.field(default=None, validator=_whole(1))

    def __attrs_post_init__(self):
        if self.width % self.ell:
            raise ConfigError(f"model.width={self.width} must be divisible by model.ell={self.ell} "
                              f"(each of the ℓ sub-tokens gets width/ℓ dims); try width="
                              f"{self.ell * max(1, round(self.width / self.ell))}")


@attrs.frozen
class DataConfig:
    dataset: str = attrs.field(default="toy-2d", validator=_name)
    options: dict = _opts


@attrs.frozen
class TrainConfig:
    trainer: str = attrs.field(default="simple", validator=_name)
    steps: int = attrs.field(default=1500, validator=_whole(1))
    batch_size: int = attrs.field(default=256, validator=_whole(1))
    lr: float = attrs.field(default=2e-3, validator=_real(0.0, 10.0, lo_open=True))
    weight_decay: float = attrs.field(default=0.0, validator=_real(0.0))
    warmup: int = attrs.field(default=50, validator=_whole(0))
    grad_clip: float = attrs.field(default=1.0, validator=_real(0.0))
    # "nelbo" | "joint" (prime_core.diffusion.losses) or the name of a registered metric used as the loss, e.g. "ar-nll"
    loss: str = attrs.field(default="nelbo", validator=_name)
    eps: float = attrs.field(default=1e-3, validator=_real(0.0, 1.0))
    # [lo, hi]: draw the masking rate 1 − α_t uniformly in [lo, hi] (BD3-LM's clipped schedule; an objective only,
    # every reported bound uses the full schedule); None: t ∈ [eps, 1]
    mask_rate_range: list | None = attrs.field(default=None, validator=lambda i, a, v: _rate_range(i, a, v))
    seed: int = attrs.field(default=0, validator=_whole(0, 2**32 - 1))
    log_every: int = attrs.field(default=50, validator=_whole(1))
    checkpoint_every: int = attrs.field(default=500, validator=_whole(1))
    # validation (prime_core.runs.validation): every eval_every steps (0 = off) and at the last step, the valid
    # NELBO bound on eval_sequences fixed rows of the valid split (eval.mc_samples draws, fixed noise seed)
    eval_every: int = attrs.field(default=0, validator=_whole(0))
    eval_sequences: int = attrs.field(default=256, validator=_whole(1))
    # checkpoints left in the run folder (prime_core.runs.keep): "last" (checkpoint.safetensors), "best"
    # (best.safetensors, by the validation bound), "both"
    keep: str = attrs.field(default="last", validator=_one_of(*KEEP_CHOICES))
    # also write TensorBoard event files under <out>/tensorboard (needs the [tensorboard] extra)
    tensorboard: bool = attrs.field(default=False, validator=_flag)
    options: dict = _opts

    def __attrs_post_init__(self):
        if self.keep != "last" and self.eval_every == 0:
            raise ConfigError(f"train.keep={self.keep!r} picks the best checkpoint by the validation bound, "
                              f"which needs train.eval_every > 0 (got 0: validation off)")


@attrs.frozen
class SampleConfig:
    sampler: str = attrs.field(default="ancestral", validator=_name)
    steps: int = attrs.field(default=64, validator=_whole(1, 1_000_000))
    temperature: float = attrs.field(default=1.0, validator=_real(0.0, 100.0, lo_open=True))
    top_p: float = attrs.field(default=1.0, validator=_real(0.0, 1.0, lo_open=True))
    #: precision of the token draw (the inverse-CDF draw of DESIGN §2.5 step 2); formerly ``gumbel_dtype``
    draw_dtype: str = attrs.field(default="float64", validator=_one_of("float32", "float64"))
    num_samples: int = attrs.field(default=16, validator=_whole(1, 2**20))
    # text prompts that `prime run` also completes (data sets with the TextPrompts capability), per_prompt rows
    # each; the rows fix the prompt's tokens and the sampler fills the rest of the L positions
    prompts: tuple = attrs.field(default=(), converter=_list_to_tuple, validator=_prompt_list)
    per_prompt: int = attrs.field(default=2, validator=_whole(1, 1024))
    # rows sampled together are as many as fit this per-step working set (prime_core.sampling.batch_budget); all at once
    # when they fit. `prime sample --memory-budget` / `--batch-size` override it
    memory_budget_mib: int = attrs.field(default=1024, validator=_whole(1, 2**30))
    # constructor options of the sampler, e.g. { temperature_schedule = [0.5, 1.0, 0.6], warp = 1.5 } for "image"
    options: dict = _opts


@attrs.frozen
class EvalConfig:
    mc_samples: int = attrs.field(default=4, validator=_whole(1, 100_000))
    tstep_steps: int = attrs.field(default=64, validator=_whole(1, 1_000_000))
    batch_size: int = attrs.field(default=256, validator=_whole(1))
    max_sequences: int = attrs.field(default=4096, validator=_whole(1))


@attrs.frozen
class Config:
    model: ModelConfig = attrs.field(factory=ModelConfig)
    data: DataConfig = attrs.field(factory=DataConfig)
    train: TrainConfig = attrs.field(factory=TrainConfig)
    sample: SampleConfig = attrs.field(factory=SampleConfig)
    eval: EvalConfig = attrs.field(factory=EvalConfig)
    # ``[[compare]]``: models `prime run` trains, evaluates and tabulates next to this one (runs/variants.py)
    compare: tuple = attrs.field(factory=tuple, converter=parse_variants)

    def __attrs_post_init__(self):
        for variant in self.compare:  # each variant is a valid config, checked now, not after training
            self.variant_config(variant)

    def variant_config(self, variant: Variant) -> "Config":
        """The config of compared model ``variant``: this one (without its comparison) with its overrides."""
        try:
            return Config.from_dict(variant_dict(self.to_dict(), variant))
        except ConfigError as exc:
            raise ConfigError(f"[[compare]] {variant.name!r}: {exc}") from None

    # (de)serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Sections → keys, plus ``compare`` (a list of {name, set}) only when there are variants: a model's
        checkpoint stores its config without one."""
        data = attrs.asdict(self)
        if not self.compare:
            del data["compare"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a table of sections ({', '.join(_SECTIONS)}), "
                              f"got {type(data).__name__}")
        sections = {f.name: f.type for f in attrs.fields(cls) if f.name in _SECTIONS}
        compare = data.get("compare", ())
        data = {k: v for k, v in data.items() if k != "compare"}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(f"unknown config section(s) {', '.join(sorted(unknown))}; "
                              f"allowed: {', '.join(sections)}, [[compare]]")
        kwargs = {}
        for name, section in data.items():
            section_cls = _SECTIONS[name]
            if not isinstance(section, dict):
                raise ConfigError(f"config section [{name}] must be a table, got {section!r}")
            section = _renamed_keys(name, section)
            allowed = {f.name for f in attrs.fields(section_cls)}
            bad = set(section) - allowed
            if bad:
                raise ConfigError(f"unknown key(s) {', '.join(sorted(bad))} in [{name}]; "
                                  f"allowed: {', '.join(sorted(allowed))}")
            try:
                kwargs[name] = section_cls(**section)
            except TypeError as exc:
                raise ConfigError(f"[{name}]: {exc}") from None
        return cls(**kwargs, compare=compare)

    @classmethod
    def from_toml(cls, text: str) -> "Config":
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}") from None


#: (section, old key) → new key: the old name is still read, with a deprecation warning, for one minor release
RENAMED_KEYS = {("sample", "gumbel_dtype"): "draw_dtype"}


def _renamed_keys(section_name: str, section: dict) -> dict:
    """``section`` with deprecated keys under their new names (warning once per key); both at once is an error."""
    out = dict(section)
    for (where, old), new in RENAMED_KEYS.items():
        if where != section_name or old not in out:
            continue
        if new in out:
            raise ConfigError(f"[{where}] sets both {old} and {new}; {old} is the deprecated name of {new}: keep {new}")
        deprecated(f"{where}.{old}", f"{where}.{new}")
        out[new] = out.pop(old)
    return out


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "sample": SampleConfig,
             "eval": EvalConfig}


def load_config(path: str | None = None, overrides: list[str] = ()) -> Config:
    """Defaults ← TOML file (if any: local path, fsspec URL or a shipped config's name) ← overrides."""
    data: dict[str, Any] = {}
    from ..plugin.shipped_configs import is_config_name, read_config_source

    if path and is_config_name(path):  # a shipped config's name, e.g. "main" (prime config list)
        text, where = read_config_source(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML in shipped config {where}: {exc}") from None
    elif path:
        from ..fileio import MAX_CONFIG_BYTES, read_text_bounded

        try:  # a regular file of at most MAX_CONFIG_BYTES: /dev/zero or a FIFO is refused before reading
            text = read_text_bounded(path, MAX_CONFIG_BYTES, f"--config {path}")
        except PrimeError as exc:
            raise ConfigError(str(exc).replace(": not found", ": config file not found", 1)) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    return Config.from_dict(apply_overrides(data, list(overrides)))


#: Keys a resumed run may change: how long it runs, how often it logs, validates and saves, which checkpoints it
#: keeps and whether it writes TensorBoard events. (With a cosine learning rate, a new ``train.steps`` stretches
#: the schedule's remaining tail; every other key must match — train.eval_sequences too, so the best-so-far
#: bound stays comparable.)
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.checkpoint_every", "train.eval_every", "train.keep",
                     "train.tensorboard")


def _by_key(config: dict[str, Any]) -> dict[str, Any]:
    """{"section.key": value} of a config dict (sections → keys, as `Config.to_dict` writes it); a foreign
    checkpoint's non-section entry is kept under its own name, so it shows up as a difference."""
    out = {}
    for section, keys in config.items():
        if isinstance(keys, dict):
            out.update({f"{section}.{key}": value for key, value in keys.items()})
        else:
            out[section] = keys
    return out


def _without_device(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict without ``train.options.device``: where a run happens may change on resume."""
    train = config.get("train")
    if not isinstance(train, dict) or not isinstance(train.get("options"), dict):
        return config
    options = {k: v for k, v in train["options"].items() if k != "device"}
    return {**config, "train": {**train, "options": options}}


def check_resume_config(saved: dict[str, Any] | None, config: Config, url: str) -> None:
    """Refuse to resume ``url`` (a ConfigError naming the differing keys) unless ``config`` equals the
    checkpoint's stored config up to `RESUMABLE_CHANGES`."""
    # a key the checkpoint lacks was added to prime after it was written: that run used the key's default
    # compared as JSON values, the form a checkpoint stores (a tuple default reads back as a list)
    # the [[compare]] list is not part of a model: a run resumes whatever models it is compared with
    plain = lambda d: json.loads(json.dumps({k: v for k, v in d.items() if k != "compare"}))  # noqa: E731
    new = _by_key(plain(_without_device(config.to_dict())))
    old = {**_by_key(plain(Config().to_dict())), **_by_key(plain(_without_device(saved)))} if saved else {}
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if differ:
        shown = ", ".join(f"{k} ({old.get(k)!r} → {new.get(k)!r})" for k in differ[:3])
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise ConfigError(f"cannot resume {url}: it was trained with a different config: {shown}{more}; only "
                         f"{', '.join(RESUMABLE_CHANGES)} may change on resume")


def check_resume_steps(start_step: int, steps: int, url: str) -> None:
    """A resumed run trains steps start_step + 1 … train.steps. A checkpoint already past ``train.steps`` would
    make ``--resume`` a silent no-op that looks like success (and the run folder would keep a model trained
    longer than its config says): refused in one line. ``start_step == steps`` (a finished run resumed) trains
    nothing and keeps the checkpoint as it is."""
    if start_step > steps:
        raise ConfigError(f"cannot resume {url}: its checkpoint is at step {start_step}, past train.steps={steps}; "
                          f"set train.steps above {start_step} to train on (or --force to start over)")
