"""Import the officially released MDLM, MDM-Prime and AR text checkpoints as prime checkpoints.

Sources (`read_source`), each read without running pickled code (`safeload`):

- a Lightning ``.ckpt`` of the paper's code: ``state_dict`` (names under ``backbone.``), ``ema`` (``shadow_params``,
  a list in ``parameters()`` order, ``decay``, ``num_updates``), ``hyper_parameters["config"]`` (the Hydra config:
  ``prime.target_length`` ℓ, ``prime.base`` b, ``prime.carry_over``, ``model.*``, ``time_conditioning``);
- a plain state-dict file (``torch.save`` of name → tensor, optionally under ``state_dict``);
- a Hugging-Face-style folder: ``config.json`` (MDLM's fields ``vocab_size``, ``model_length``, ``hidden_dim``,
  ``cond_dim``, ``n_blocks``, ``n_heads``, ``time_conditioning``) with ``model.safetensors`` or
  ``pytorch_model.bin``.

Sizes are read from the weights (D, depth, c_dim, table sizes) and checked against the hyper-parameters; what
neither holds (e.g. ``model.n_heads`` of a bare state dict) comes from ``--set KEY=VALUE`` in the official
config's names. The official model maps to prime as: ℓ = ``prime.target_length``, b = ``prime.base`` (the
smallest b with b^ℓ ≥ C, which prime's ``base-b`` map uses, digits most significant first in both), C = the
output width (ℓ > 1) or the table size − 1 (ℓ = 1, mask id C), the log-linear schedule α_t = 1 − (1−δ)t with
δ = 1e-3, head ``carry-over`` if ``prime.carry_over`` (or ℓ = 1: SUBS keeps observed tokens) else ``joint``;
backbone ``dit-official`` / ``ar-official`` (official.py). The result is an ordinary prime checkpoint
(`prime_core.api.save_model`) whose metadata names the source file, its sha256 and the importer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from typing import Any

import attrs
import torch

from prime_core import CheckpointError, ConfigError, PrimeError, get_registry, smallest_base
from prime_core.api import (MAX_JSON_BYTES, Config, build_model, check_output_file, check_regular_file,
                            distribution_version, is_url, read_text_bounded, save_model)

from .safeload import Record, TensorRef, read_torch_file, to_plain

ARCHS = ("mdlm", "mdm-prime", "ar", "bd3lm")
WEIGHTS = ("ema", "model")
IMPORTER = "prime-plugin-dit importer"
#: Tokenizers an import can store (they need no training): name → C.
TOKENIZER_SIZES = {"gpt2": 50257, "bytes": 256}


@attrs.frozen
class Source:
    """An official checkpoint in its own terms: weights by official name (no ``backbone.``), the EMA list (or
    None), flat hyper-parameters {"prime.target_length": 2, …} and where it came from."""

    weights: dict[str, Any]
    ema: list | None
    hparams: dict[str, Any]
    kind: str
    path: str
    sha256: str


# --------------------------------------------------------------------------------------------- reading
def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1} (leaves: anything but a dict)."""
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def _strip_backbone(state: dict[str, Any]) -> dict[str, Any]:
    """The backbone's tensors without the ``backbone.`` prefix (all tensors when no name has it)."""
    if not isinstance(state, dict) or not state:
        raise CheckpointError("the file holds no state dict of tensors")
    names = [k for k in state if isinstance(k, str) and k.startswith("backbone.")]
    picked = {k[len("backbone."):]: state[k] for k in names} if names else dict(state)
    bad = [k for k, v in picked.items() if not isinstance(v, (TensorRef, torch.Tensor))]
    if bad:
        raise CheckpointError(f"state dict entry {bad[0]!r} is not a tensor")
    return picked


def read_source(path: str) -> Source:
    """A Lightning checkpoint, a plain state dict or a Hugging-Face folder (see the module docstring). A file
    must be a regular one (``/dev/zero``, a FIFO or a socket is refused before anything is read); its pickle is
    bounded by `safeload`'s limits."""
    if is_url(path):
        raise PrimeError(f"checkpoint {path}: prime import reads a local file or folder, not a URL; download it "
                         "first (e.g. hf download …)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint file or folder: {path}")
    if os.path.isdir(path):
        return _read_hf_folder(path)
    check_regular_file(path, f"checkpoint {path}")
    digest = sha256_of(path)
    obj, _archive = read_torch_file(path)
    if isinstance(obj, dict) and "state_dict" in obj:
        config = to_plain(_config_of(obj.get("hyper_parameters") or {}))  # bounded: safeload.MAX_PLAIN_VALUES
        if isinstance(config, dict) and isinstance(config.get("config"), dict):  # hyper-parameters as a DictConfig
            config = config["config"]
        ema = obj.get("ema")
        shadow = ema.get("shadow_params") if isinstance(ema, dict) else None
        if shadow is not None and not (isinstance(shadow, list) and all(isinstance(t, TensorRef) for t in shadow)):
            raise CheckpointError("ema.shadow_params must be a list of tensors")
        return Source(_strip_backbone(obj["state_dict"]), shadow, flatten(config if isinstance(config, dict) else {}),
                      "lightning", path, digest)
    return Source(_strip_backbone(obj), None, {}, "state-dict", path, digest)


def _config_of(hparams: Any) -> Any:
    """``hyper_parameters["config"]`` (the Hydra config) when there is one, else the hyper-parameters: only that
    part is turned into plain data (a tokenizer or other records beside it are never walked)."""
    top = hparams.items if isinstance(hparams, Record) and not hparams.args and not hparams.state else hparams
    return top["config"] if isinstance(top, dict) and "config" in top else hparams


#: MDLM's Hugging-Face config.json fields → the official Hydra names.
HF_FIELDS = {"model_length": "model.length", "hidden_dim": "model.hidden_size", "cond_dim": "model.cond_dim",
             "n_blocks": "model.n_blocks", "n_heads": "model.n_heads", "time_conditioning": "time_conditioning",
             # BD3-LM's config.json (kuleshov-group/bd3lm-owt-block_size{4,8,16})
             "block_size": "block_size", "cross_attn": "algo.cross_attn"}


def _read_hf_folder(path: str) -> Source:
    cfg_path = os.path.join(path, "config.json")
    if not os.path.lexists(cfg_path):
        raise CheckpointError(f"{path} is a folder without config.json (a Hugging-Face model folder has one)")
    try:
        cfg = json.loads(read_text_bounded(cfg_path, MAX_JSON_BYTES, cfg_path))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object")
    hparams = {official: cfg[hf] for hf, official in HF_FIELDS.items() if hf in cfg}
    hparams["prime.target_length"] = 1
    st, pt = os.path.join(path, "model.safetensors"), os.path.join(path, "pytorch_model.bin")
    for name in (st, pt):  # a FIFO or device under a weights file's name is refused, not read
        if os.path.lexists(name):
            check_regular_file(name, name)
    if os.path.isfile(st):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(st)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{st} is not a readable safetensors file ({exc})") from None
        weights_file = st
    elif os.path.isfile(pt):
        state, _ = read_torch_file(pt)
        weights_file = pt
    else:
        raise CheckpointError(f"{path} has neither model.safetensors nor pytorch_model.bin")
    return Source(_strip_backbone(state), None, hparams, "hf-folder", weights_file, sha256_of(weights_file))


# --------------------------------------------------------------------------------------------- overrides
#: The hyper-parameters `resolve` reads, in the official config's names: the only keys ``--set`` takes.
OVERRIDE_KEYS = ("model.length", "model.n_heads", "model.hidden_size", "model.n_blocks", "model.cond_dim",
                 "prime.target_length", "prime.base", "prime.vocab_size", "prime.carry_over", "time_conditioning",
                 "noise.type", "block_size")


def _check_key(key: str) -> None:
    """An unknown ``--set`` key (a typo such as model.nheads) is refused, naming the nearest and all keys."""
    if key in OVERRIDE_KEYS:
        return
    import difflib

    near = difflib.get_close_matches(key, OVERRIDE_KEYS, n=1)
    hint = f"did you mean {near[0]}? " if near else ""
    raise ConfigError(f"--set {key}: not a hyper-parameter the importer reads; {hint}allowed: "
                      f"{', '.join(OVERRIDE_KEYS)}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` (VALUE a TOML literal, else a string) → {KEY: value}; KEY one of `OVERRIDE_KEYS`."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE in the official config's names, e.g. model.n_heads=12, "
                              f"got {item!r}")
        _check_key(key.strip())
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out[key.strip()] = value
    return out


# --------------------------------------------------------------------------------------------- sizes
@attrs.frozen
class Official:
    """The official model's sizes and switches, checked against its weights."""

    arch: str
    num_classes: int
    ell: int
    base: int
    length: int
    width: int
    n_heads: int
    n_blocks: int
    cond_dim: int | None
    carry_over: bool
    time_conditioned: bool
    block_size: int | None = None  # BD3-LM: tokens per block (DESIGN §2.8)


def _shape(weights: dict[str, Any], name: str) -> tuple[int, ...]:
    if name not in weights:
        raise CheckpointError(f"the weights have no tensor {name!r}; is this the right model kind?")
    return tuple(weights[name].shape)


def _need(hp: dict[str, Any], key: str, kind: type, hint: str):
    """hp[key] of type ``kind``; a missing one asks for ``--set``."""
    if key not in hp:
        raise ConfigError(f"the checkpoint does not record {key}; pass --set {key}={hint}")
    value = hp[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{key} must be a whole number ≥ 1, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _agree(hp: dict[str, Any], key: str, actual: int) -> None:
    if key in hp and hp[key] != actual:
        raise CheckpointError(f"{key}={hp[key]!r} in the hyper-parameters, but the weights have {actual}")


def resolve(arch: str, source: Source, overrides: dict[str, Any]) -> Official:
    """The official sizes: from the weights, checked against the hyper-parameters (overrides applied first)."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown model kind {arch!r}; choose one of {', '.join(ARCHS)}")
    hp = {**source.hparams, **overrides}
    if arch == "bd3lm" and "time_conditioning" not in hp and "algo.time_conditioning" in hp:
        hp["time_conditioning"] = hp["algo.time_conditioning"]  # BD3-LM's Hydra config keeps it under algo
    w = source.weights
    causal = "sigma_map.mlp.0.weight" not in w
    if (arch == "ar") != causal:
        found = "a causal AR network (no time embedder)" if causal else "a diffusion DiT (with a time embedder)"
        raise CheckpointError(f"'prime import {arch}' got {found}; use 'prime import {'ar' if causal else 'mdlm'}'"
                              f"{'' if causal else ' or mdm-prime'}")
    width = _shape(w, "blocks.0.norm1.weight")[0]
    n_blocks = len({k.split(".")[1] for k in w if k.startswith("blocks.") and k.endswith(".norm1.weight")})
    rows, emb_width = _shape(w, "vocab_embed.embedding")
    out = _shape(w, "output_layer.linear.weight")[0]
    if width % emb_width:
        raise CheckpointError(f"embedding width {emb_width} does not divide the model width {width}")
    ell = int(hp.get("prime.target_length", width // emb_width))
    if ell * emb_width != width:
        raise CheckpointError(f"prime.target_length={ell} but the embedding width is {emb_width} of D={width} "
                              f"(ℓ = D / width = {width // emb_width})")
    if arch in ("mdlm", "ar", "bd3lm") and ell != 1 or arch == "mdm-prime" and ell == 1:
        raise CheckpointError(f"'prime import {arch}' got a model with ℓ = {ell}; use "
                              f"{'mdm-prime' if ell > 1 else 'mdlm'} (ar: only the token-level ℓ = 1 model)")
    if ell == 1:
        num_classes, base = rows - 1, rows - 1
        if out != rows:
            raise CheckpointError(f"ℓ = 1 expects C + 1 = {rows} outputs (the mask's last), the weights have {out}")
    else:
        num_classes, base = out, rows - 1
        _agree(hp, "prime.base", base)
        if base != smallest_base(num_classes, ell):
            raise CheckpointError(f"prime.base={base} is not the smallest b with b^ℓ ≥ C ({num_classes}, ℓ={ell}: "
                                  f"{smallest_base(num_classes, ell)}); prime's base-b map uses the smallest")
    _agree(hp, "prime.vocab_size", num_classes)
    _agree(hp, "model.hidden_size", width)
    _agree(hp, "model.n_blocks", n_blocks)
    cond_dim = None if causal else _shape(w, "sigma_map.mlp.2.weight")[0]
    if cond_dim is not None:
        _agree(hp, "model.cond_dim", cond_dim)
    noise = hp.get("noise.type", "loglinear")
    if not causal and noise != "loglinear":
        raise CheckpointError(f"noise.type={noise!r}: only the log-linear schedule of the released models is imported")
    block_size = _bd3lm_block_size(hp, arch)
    return Official(
        block_size=block_size, arch=arch, num_classes=num_classes, ell=ell, base=base, width=width, n_blocks=n_blocks, cond_dim=cond_dim,
        length=_need(hp, "model.length", int, "1024"), n_heads=_need(hp, "model.n_heads", int, "12"),
        carry_over=bool(_need(hp, "prime.carry_over", bool, "true")) if ell > 1 else True,
        time_conditioned=False if causal else _need(hp, "time_conditioning", bool, "false"))


def _bd3lm_block_size(hp: dict[str, Any], arch: str) -> int | None:
    """BD3-LM's block size B (config.json ``block_size``, a Lightning config's ``block_size``, or --set); it must
    have been trained with the block mask (``cross_attn``). Another kind given a BD3-LM file is refused: run
    without the mask, the network would read a sequence it was never trained on."""
    if arch != "bd3lm":
        if "block_size" in hp or "algo.cross_attn" in hp:
            raise CheckpointError(f"the checkpoint records block_size / cross_attn: a BD3-LM block-diffusion model; "
                                  f"use 'prime import bd3lm', not {arch}")
        return None
    if hp.get("algo.cross_attn", True) is not True:
        raise CheckpointError("cross_attn = false: this BD3-LM model was not trained with the block-diffusion mask "
                              "([x_t ; x_0]); prime imports the released cross-attention models only")
    size = _need(hp, "block_size", int, "4")
    length = _need(hp, "model.length", int, "1024")
    if size < 1 or length % size:
        raise CheckpointError(f"block_size={size} does not divide model_length={length}")
    return size


# --------------------------------------------------------------------------------------------- prime model
def tokenizer_meta(name: str, options: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """The tokenizer as checkpoint data ({"tokenizer": to_json()}), built from the user's local files."""
    if name not in TOKENIZER_SIZES:
        raise ConfigError(f"--tokenizer {name!r}: an import stores one of {', '.join(TOKENIZER_SIZES)} "
                          "(tokenizers that need no training)")
    if TOKENIZER_SIZES[name] != num_classes:
        raise ConfigError(f"the {name} tokenizer has C={TOKENIZER_SIZES[name]} tokens, the model C={num_classes}")
    tok = get_registry().build("tokenizer", name, **options)
    tok = tok.trained([]) if tok.needs_training else tok
    return {"tokenizer": tok.to_json()}


def prime_config(off: Official, tokenizer: str, tokenizer_options: dict[str, Any]) -> Config:
    """The prime `Config` of an official model (see the module docstring for the mapping)."""
    options = {"n_heads": off.n_heads, "n_blocks": off.n_blocks}
    if off.cond_dim is not None:
        options["cond_dim"] = off.cond_dim
    model = {"num_classes": off.num_classes, "length": off.length, "ell": off.ell, "width": off.width,
             "map": "base-b", "head": "carry-over" if off.carry_over else "joint",
             "backbone": "ar-official" if off.arch == "ar" else "dit-official", "backbone_options": options,
             "schedule": "loglinear", "schedule_options": {"delta": 1e-3}, "time_conditioned": off.time_conditioned}
    if off.block_size is not None and off.block_size < off.length:
        model["block_size"] = off.block_size
    data = {"dataset": "text", "options": {"tokenizer": tokenizer, "tokenizer_options": tokenizer_options,
                                           "length": off.length}}
    sample = {"sampler": "ar"} if off.arch == "ar" else {}
    return Config.from_dict({"model": model, "data": data, "sample": sample})


def _tensor(ref) -> torch.Tensor:
    return ref.load() if isinstance(ref, TensorRef) else ref


def _derived_buffers(want: dict[str, torch.Tensor], given: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Buffers a file may leave out because they follow from the sizes: rotary θ_k = 10000^(−2k/hs)."""
    name = "rotary_emb.inv_freq"
    if name not in want or name in given:
        return {}
    hs = 2 * want[name].shape[0]
    return {name: 1.0 / 10_000 ** (torch.arange(0, hs, 2).float() / hs)}


def backbone_state(model, source: Source, use: str) -> dict[str, torch.Tensor]:
    """The backbone's state from the source: ``use="ema"`` puts ``shadow_params`` (parameters() order) over
    the parameters and keeps the buffers of ``state_dict``; names and shapes must equal the built model's."""
    want = model.backbone.state_dict()
    weights = {**_derived_buffers(want, source.weights), **source.weights}
    missing = sorted(want.keys() - weights.keys())
    extra = sorted(weights.keys() - want.keys())
    if missing or extra:
        name = missing[0] if missing else extra[0]
        raise CheckpointError(f"the weights do not match the official network: tensor {name!r} is "
                              f"{'missing' if missing else 'unexpected'}")
    for name, t in want.items():
        if tuple(weights[name].shape) != tuple(t.shape):
            raise CheckpointError(f"tensor {name!r} has shape {list(weights[name].shape)}, the official "
                                  f"network of these sizes has {list(t.shape)}")
    params = list(model.backbone.named_parameters())
    from_ema = {name for name, _ in params} if use == "ema" else set()
    state = {name: _tensor(weights[name]) for name in want if name not in from_ema}  # buffers, or all
    if use == "ema":
        if len(source.ema) != len(params):
            raise CheckpointError(f"ema.shadow_params holds {len(source.ema)} tensors, the network has "
                                  f"{len(params)} parameters")
        for (name, p), ref in zip(params, source.ema):
            if tuple(ref.shape) != tuple(p.shape):
                raise CheckpointError(f"ema.shadow_params entry for {name!r} has shape {list(ref.shape)}, "
                                      f"expected {list(p.shape)}")
            state[name] = _tensor(ref)
    return {k: v.to(want[k].dtype) for k, v in state.items()}


def import_checkpoint(arch: str, path: str, out: str, *, weights: str | None = None,
                      overrides: dict[str, Any] | None = None, tokenizer: str = "gpt2",
                      tokenizer_options: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Read ``path``, build the prime model, write ``out``; returns a summary. Every check runs before the
    output is written (atomically): a refused input leaves nothing behind. ``out`` is checked first (a local
    file, not a folder, not existing unless ``force``, in a writable folder), before any reading."""
    check_output_file(out, "--out", force)
    for key in overrides or {}:
        _check_key(key)
    source = read_source(path)
    if weights not in (None, *WEIGHTS):
        raise ConfigError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    chosen = weights or ("ema" if source.ema is not None else "model")
    if chosen == "ema" and source.ema is None:
        raise CheckpointError(f"{path} holds no EMA weights (ema.shadow_params); use --weights model")
    off = resolve(arch, source, overrides or {})
    tokenizer_options = dict(tokenizer_options or {})
    data_meta = tokenizer_meta(tokenizer, tokenizer_options, off.num_classes)
    config = prime_config(off, tokenizer, tokenizer_options)
    with torch.device("meta"):
        skeleton = build_model(config)
    state = backbone_state(skeleton, source, chosen)
    model = build_model(config)
    model.backbone.load_state_dict(state, strict=True)
    meta = {"data": data_meta, "imported": {
        "source": os.path.basename(source.path), "sha256": source.sha256, "kind": source.kind, "arch": arch,
        "weights": chosen, "importer": IMPORTER, "importer_version": distribution_version("prime-plugin-dit"),
        "official": attrs.asdict(off), "hyper_parameters": _jsonable(source.hparams)}}
    save_model(out, model, config, extra_meta=meta)
    return {"out": out, **meta["imported"]}


def _jsonable(hp: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters that JSON can hold (records and tensors dropped)."""
    keep = (str, int, float, bool, type(None))
    return {k: v for k, v in hp.items()
            if isinstance(v, keep) or isinstance(v, list) and all(isinstance(x, keep) for x in v)}


__all__ = ["ARCHS", "OVERRIDE_KEYS", "Official", "Source", "import_checkpoint", "parse_overrides", "read_source", "resolve"]
