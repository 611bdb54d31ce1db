"""Abstract interfaces, one per component kind. Plugins subclass these and register them by name.

Symbols follow DESIGN §2: C classes per token, L tokens per sequence, ℓ sub-tokens (digits) per token,
base b with b^(ℓ−1) < C ≤ b^ℓ, mask symbol m = b, noise schedule α_t.
"""

from __future__ import annotations

import abc
import functools
import inspect
import math
from typing import Any, Callable, ClassVar, Iterator, Protocol, Sequence, runtime_checkable

import attrs
import torch
from torch import nn

from .renamed import accept_renamed


# --------------------------------------------------------------------------------------------- sub-token map
class SubTokenMap(abc.ABC):
    """An invertible map f from tokens x ∈ {0 … C−1} to ℓ digits in {0 … b−1} (DESIGN §2.1).

    Subclasses set ``num_classes`` (C), ``ell`` (ℓ) and ``base`` (b) and implement `encode`/`decode`.
    Codes ≥ C (digit strings no token maps to) are invalid. A map works for every (C, ℓ) with b^(ℓ−1) < C
    unless it declares a narrower domain with `supports`; the conformance suites test it within its domain,
    and a config outside it is refused when the model is built.
    """

    num_classes: int
    ell: int
    base: int

    @classmethod
    def supports(cls, num_classes: int, ell: int) -> bool:
        """Whether this map is defined for C = ``num_classes`` tokens in ℓ = ``ell`` digits (default: all)."""
        return True

    @abc.abstractmethod
    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [...] → digits [..., ℓ]."""

    @abc.abstractmethod
    def decode(self, digits: torch.Tensor) -> torch.Tensor:
        """digits [..., ℓ] → codes [...]; a code may be ≥ C (invalid) for digit strings no token maps to."""

    @property
    def mask_id(self) -> int:
        """Index of the mask symbol m in the sub-token alphabet {0 … b−1, m}."""
        return self.base

    @property
    def num_codes(self) -> int:
        return self.base**self.ell

    @property
    def is_positional(self) -> bool:
        """True when f is the base-b positional code, x = Σ_j f(x)_j b^(ℓ−1−j) (digit 0 most significant), so
        the C scores of a token padded to b^ℓ reshape to a [b, …, b] grid whose axis j is digit j (the heads'
        lean path). False (the default) makes the heads use the generic digit-table path."""
        return False

    def is_valid(self, codes: torch.Tensor) -> torch.Tensor:
        """True where a decoded code is a real token (0 ≤ code < C)."""
        return (codes >= 0) & (codes < self.num_classes)

    def digit_table(self, device: torch.device | str | None = None) -> torch.Tensor:
        """f(x) for every token: [C, ℓ] (cached per device)."""
        cache = self.__dict__.setdefault("_digit_table_cache", {})
        key = str(device or "cpu")
        if key not in cache:
            cache[key] = self.encode(torch.arange(self.num_classes)).to(device or "cpu")
        return cache[key]

    def check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise ValueError(f"token ids must be an integer tensor, got dtype {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.num_classes):
            raise ValueError(f"token ids must lie in [0, {self.num_classes - 1}] (C={self.num_classes}), "
                             f"got values in [{int(tokens.min())}, {int(tokens.max())}]")

    def check_digits(self, digits: torch.Tensor, allow_mask: bool = False) -> None:
        if digits.dtype.is_floating_point or digits.dtype == torch.bool:
            raise ValueError(f"sub-token ids must be an integer tensor, got dtype {digits.dtype}")
        if digits.dim() == 0 or digits.shape[-1] != self.ell:
            raise ValueError(f"sub-token tensors must end in a digit axis of size ℓ={self.ell}, "
                             f"got shape {tuple(digits.shape)}")
        top = self.base if allow_mask else self.base - 1
        if digits.numel() and (int(digits.min()) < 0 or int(digits.max()) > top):
            raise ValueError(f"sub-token ids must lie in [0, {top}] (b={self.base}"
                             f"{', mask=' + str(self.base) if allow_mask else ''}), "
                             f"got values in [{int(digits.min())}, {int(digits.max())}]")


# --------------------------------------------------------------------------------------------- noise schedule
class NoiseSchedule(abc.ABC):
    """α_t on t ∈ [0, 1], strictly decreasing from α_0 ≈ 1 to α_1 ≈ 0 (DESIGN §2.2).

    Each sub-token is kept with probability α_t and masked with probability 1 − α_t.
    """

    name: ClassVar[str] = "schedule"

    @abc.abstractmethod
    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """α_t."""

    @abc.abstractmethod
    def alpha_prime(self, t: torch.Tensor) -> torch.Tensor:
        """dα_t/dt (negative)."""

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = −α′_t / (1 − α_t), the NELBO's time weight."""
        return -self.alpha_prime(t) / (1.0 - self.alpha(t))

    def sample_times(self, batch: int, *, eps: float = 1e-3, antithetic: bool = True,
                     generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
        """Training times t ∈ [ε, 1]: stratified ("antithetic") over the batch, t_i = ε + (1−ε)((u + i/B) mod 1)."""
        u = torch.rand(1 if antithetic else batch, generator=generator, dtype=torch.float64)
        if antithetic:
            u = (u + torch.arange(batch, dtype=torch.float64) / batch) % 1.0
        return (eps + (1.0 - eps) * u).to(dtype)

    def step_alphas(self, steps: int) -> torch.Tensor:
        """ᾱ_k = α(1 − k/T) on a uniform grid, k = 0 … T, clamped so ᾱ_0 = 0 (start fully masked)
        and ᾱ_T = 1 (the last step fills every mask). Float64, [T+1]."""
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        t = 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps
        a = self.alpha(t).to(torch.float64).clone()
        a[0], a[-1] = 0.0, 1.0
        return torch.cummax(a.clamp(0.0, 1.0), 0).values  # guard monotonicity against rounding

    def inverse_alpha(self, a: torch.Tensor, iters: int = 60) -> torch.Tensor:
        """t with α_t = a, by bisection on [0, 1] (float64); subclasses may override in closed form."""
        lo = torch.zeros_like(a, dtype=torch.float64)
        hi = torch.ones_like(a, dtype=torch.float64)
        target = a.to(torch.float64)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            above = self.alpha(mid) > target  # too little noise still: the answer lies to the right
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    def params(self) -> dict[str, Any]:
        """Constructor arguments, stored in checkpoints."""
        return {}


# --------------------------------------------------------------------------------------------- backbone
@attrs.frozen
class BackboneSpec:
    """What a backbone needs to know about the diffusion problem.

    out_dim: logits per token position (C for joint heads, ℓ·b for the independent head);
    base b and ell ℓ for the sub-token encoder (alphabet b+1 with the mask); length L; width D (D % ℓ == 0);
    num_classes C.
    """

    out_dim: int
    base: int
    ell: int
    length: int
    width: int
    num_classes: int
    time_conditioned: bool = False


class Backbone(nn.Module):
    """Maps sub-token ids y [B, L, ℓ] (values 0 … b, b = mask) and times t [B] (or None) to logits
    [B, L, out_dim]. Knows nothing of diffusion beyond its inputs. Subclasses take
    ``(spec: BackboneSpec, **options)`` and set ``time_conditioned``.

    ``forward(y, t, positions=None)``: with ``positions`` None the logits of every position, [B, L, out_dim];
    given flat indices b·L + i [N] (int64, row-major) or a bool mask [B, L], the logits at those positions only,
    [N, out_dim] in that order, equal (allclose) to ``forward(y, t)`` at them — the network still reads the whole
    sequence, but the output projection (e.g. the C-way head, the largest layer at small widths) runs only there.
    `select_positions` does the indexing. Backbones written without a ``positions`` argument still work:
    `PrimeModel` then slices their full output (conformance: ``check_positions_match_full_output``)."""

    time_conditioned: bool = False
    #: names of the metrics `prime eval` reports for this backbone instead of the diffusion bounds (None = the
    #: default nelbo / tstep-nelbo / joint-loss); e.g. ("ar-nll",) for an autoregressive baseline
    eval_metrics: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, spec: BackboneSpec, **options: Any):
        super().__init__()
        self.spec = spec

    @classmethod
    def accepts_positions(cls) -> bool:
        """Whether this class's ``forward`` takes ``positions`` (inspected once per class)."""
        return _forward_takes_positions(cls)

    @staticmethod
    def select_positions(h: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """h [B, L, …] at ``positions``: h itself when None, else [N, …] for flat indices b·L + i [N] or a bool
        mask [B, L] (rows in row-major order)."""
        if positions is None:
            return h
        return h.flatten(0, 1)[positions.flatten()]

    @staticmethod
    def flat_indices(positions: torch.Tensor) -> torch.Tensor:
        """``positions`` (flat indices b·L + i [N] or a bool mask [B, L]) as flat int64 indices [N]."""
        flat = positions.flatten()
        return flat.nonzero().squeeze(-1) if flat.dtype == torch.bool else flat.long()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> float:
        """Forward multiply-adds ×2 per token position (approximate; 6× this for a training step)."""
        return 2.0 * self.num_parameters()


@functools.lru_cache(maxsize=None)
def _forward_takes_positions(cls: type) -> bool:
    try:
        return "positions" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):  # no introspectable signature: PrimeModel slices the full output
        return False


# --------------------------------------------------------------------------------------------- parameterization
class Parameterization(abc.ABC):
    """A decoder head: turns backbone logits into p_θ(x | y_t), a C-way distribution per token (DESIGN §2.3).

    `log_probs` is the model's distribution used by the sampler and by every bound: it is always
    restricted to V(y_tⁱ), the tokens x < C consistent with the observed digits of token i, so the model never
    emits an invalid code and never changes an observed digit. `training_log_probs` is what the paper's
    joint training loss sees (unrestricted for heads without carry-over).
    """

    name: ClassVar[str] = "head"
    carry_over: ClassVar[bool] = True

    def output_dim(self, subtoken_map: SubTokenMap) -> int:
        """Logits the backbone must emit per position."""
        return subtoken_map.num_classes

    @abc.abstractmethod
    def log_probs(self, logits: torch.Tensor, y_t: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
        """logits [..., out_dim], y_t [..., ℓ] → log p_θ(x | y_t) [..., C], −inf outside V(y_t). Position-wise:
        any leading shape, [B, L] or [N] rows gathered at some positions (the sampler's `log_probs_at`)."""

    def training_log_probs(self, logits: torch.Tensor, y_t: torch.Tensor,
                           subtoken_map: SubTokenMap) -> torch.Tensor:
        return self.log_probs(logits, y_t, subtoken_map)


# --------------------------------------------------------------------------------------------- sampler
@runtime_checkable
class DiffusionModel(Protocol):
    """What samplers, metrics, trainers and exporters receive as ``model`` (`prime_core.PrimeModel` is the one
    the core builds): the sub-token map f, backbone, head and schedule, the sizes C, L, ℓ, b, and p_θ.

    ``log_probs(y_t, t)``: log p_θ(x | y_t) [B, L, C] over tokens (carry-over applied by the head) for sub-token
    states y_t [B, L, ℓ] (mask id = b); ``t`` [B] or None for a time-independent model."""

    map: SubTokenMap
    backbone: "Backbone"
    head: "Parameterization"
    schedule: NoiseSchedule
    noise: str  # "independent" or "grouped" (DESIGN §2.2)

    # read-only attributes (properties on `PrimeModel`)
    num_classes: int  # C
    length: int  # L
    ell: int  # ℓ
    base: int  # b
    mask_id: int  # the mask symbol m = b
    time_conditioned: bool
    device: torch.device

    def log_probs(self, y_t: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor: ...

    def encode(self, tokens: torch.Tensor) -> torch.Tensor: ...


#: a temperature: a float τ, or τ(t) as a function of t ∈ [0, 1] (e.g. the image schedule a·t^b + c)
Temperature = float | Callable[[float], float]


@attrs.define
class SampleResult:
    """What `Sampler.sample` returns."""

    tokens: torch.Tensor  # [N, L], all < C
    nfe: torch.Tensor  # [N] backbone evaluations per sequence
    idle_steps: torch.Tensor  # [N] steps in which the sequence revealed nothing
    steps: int
    forward_calls: int  # batched backbone calls
    trajectory: list[torch.Tensor] | None = None  # sub-token states [N, L, ℓ] after each step


class Sampler(abc.ABC):
    """Generates token sequences from a model. The update rule is a pure step; `sample` runs the loop.

    The core calls `sample` with the keyword arguments below (``prime sample``, ``prime run``, semi-AR windows);
    a sampler accepts every one of them (conformance checks it), and may accept more of its own."""

    name: ClassVar[str] = "sampler"

    def __init_subclass__(cls, **kwargs):
        # the keyword gumbel_dtype= was renamed draw_dtype=: old callers and old samplers keep working
        super().__init_subclass__(**kwargs)
        if "sample" in cls.__dict__:
            cls.sample = accept_renamed(cls.sample, f"{cls.__qualname__}.sample")

    @abc.abstractmethod
    def sample(self, model: DiffusionModel, num_samples: int, *, steps: int | None = None, seed: int = 0,
               seeds: Sequence[int] | None = None, temperature: Temperature = 1.0, top_p: float = 1.0,
               draw_dtype: torch.dtype = torch.float32, cache: bool = True, batch_size: int | None = None,
               fixed_tokens: torch.Tensor | None = None, return_trajectory: bool = False,
               progress: bool = False) -> SampleResult:
        """Draw ``num_samples`` sequences of L tokens, all < C.

        steps: T reveal steps (None: the sampler's default, or continuous time for an event-driven one);
        seed / seeds: rows are keyed seed·2³² + i, or by the explicit 64-bit ``seeds`` (len = num_samples): a
        row's tokens must not depend on the batch it is drawn in; temperature τ (> 0) and top_p ∈ (0, 1]: the
        filtering of p_θ before the draw; draw_dtype: precision of the token draw (float32 or float64; the old
        keyword ``gumbel_dtype`` still works, with a DeprecationWarning);
        cache: reuse p_θ for rows that did not change (same tokens either way); batch_size: rows per backbone
        call (None: all); fixed_tokens [L] or [N, L]: token ids kept as given, −1 where free (prefix / infill
        conditioning); return_trajectory: also return the states [N, L, ℓ] after each step; progress: show a
        progress bar."""


class Runtime(abc.ABC):
    """Runs each sampler step somewhere other than eager torch (``prime sample --runtime NAME``), e.g. an
    exported ONNX graph under ONNX Runtime; the tokens must equal the eager sampler's for the same seed."""

    name: ClassVar[str] = "runtime"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)  # gumbel_dtype= → draw_dtype=, as for `Sampler`
        if "sampler" in cls.__dict__:
            cls.sampler = accept_renamed(cls.sampler, f"{cls.__qualname__}.sampler")

    @abc.abstractmethod
    def sampler(self, model: DiffusionModel, config: Any, checkpoint: str, *, step_model: str | None = None,
                draw_dtype: str | None = None, ckpt_meta: dict | None = None,
                top_p: float | None = None) -> Sampler:
        """A `Sampler` for ``model`` (built from ``checkpoint``; ``config`` its `prime_core.Config`) whose steps
        run on this runtime. ``step_model``: an exported step to use instead of exporting one; ``draw_dtype``
        ("float32" / "float64"): the draw's precision (None: the config's); ``ckpt_meta``: the checkpoint's
        metadata; ``top_p``: the nucleus the step must support (a graph without the sort refuses top_p < 1)."""


# --------------------------------------------------------------------------------------------- data
class Tokenizer(abc.ABC):
    """Text ↔ token ids in {0 … C−1}."""

    name: ClassVar[str] = "tokenizer"

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """C."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        ...

    @abc.abstractmethod
    def decode(self, ids: list[int]) -> str:
        ...

    #: True when the tokenizer must be fitted to a corpus (`trained`) before it encodes (e.g. BPE).
    needs_training: ClassVar[bool] = False
    #: Ids that open / close a document when documents are packed into blocks (None: no separator).
    bos_id: int | None = None
    eos_id: int | None = None

    def trained(self, texts: Any) -> "Tokenizer":
        """A tokenizer fitted to ``texts`` (an iterable of training documents); ``self`` when nothing is learnt."""
        return self

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the tokenizer (with ``"name"``, its registered name); stored inside
        checkpoints and rebuilt by `from_json`."""
        return {"name": self.name}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tokenizer":
        """The tokenizer `to_json` describes; the default suits tokenizers without learnt state."""
        return cls()


class Dataset(abc.ABC):
    """A data source: fixed-length token sequences, `split(name)` a LongTensor [N, L] with values < C, and the
    state a checkpoint needs to read them back. What else a data set can do is opt-in, by also subclassing
    `Presentation` (decode / draw samples), `ByteLengths` (bits per byte) or `KnownDensity` (exact log p)."""

    name: ClassVar[str] = "dataset"
    #: Constructor options whose values are locations (files, folders, fsspec URLs) the data set reads or writes.
    #: When a data set is rebuilt for a checkpoint these come from the user, never from the checkpoint's metadata
    #: (DESIGN §3; see `prime_core.runs.build.dataset_for_checkpoint`). A value equal to the option's default in the
    #: constructor signature (e.g. a built-in corpus name) is not a location the metadata chose, and is kept.
    location_options: ClassVar[tuple[str, ...]] = ()
    #: The subset of `location_options` that hold caches (derived data that changes no result, e.g. tokenized
    #: splits): a checkpoint's value is dropped and, unless the user gives one, the default is used.
    cache_options: ClassVar[tuple[str, ...]] = ()
    num_classes: int
    length: int

    @abc.abstractmethod
    def split(self, name: str) -> torch.Tensor:
        """name ∈ {"train", "valid", "test"} → [N, L] token ids: a LongTensor, or a lazy view of a large corpus
        (e.g. prime-plugin-text's memory-mapped windows) that has ``len()``, ``.shape`` and returns a LongTensor
        [n, L] when indexed by a LongTensor of row ids or a slice. Callers use only those operations."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes, "length": self.length}

    def checkpoint_meta(self) -> dict[str, Any]:
        """JSON-able state the trainer stores in checkpoints (metadata key "data"), e.g. a tokenizer trained on
        the training split, so a checkpoint decodes without the corpus. Default: nothing."""
        return {}

    def load_checkpoint_meta(self, meta: dict[str, Any]) -> None:
        """Restore what `checkpoint_meta` returned (``{}`` if the checkpoint stored nothing); called right after
        construction whenever the dataset is rebuilt for a checkpoint, so it also tells the data set that it serves
        one: it must then decode only with restored state (never re-derive it from data) and raise a one-line
        `PrimeError` for malformed ``meta``. Default: nothing to restore."""



class Presentation(abc.ABC):
    """Optional, next to `Dataset`: how samples look to people. A data set that also subclasses Presentation
    decodes and draws its samples; any other is shown as token ids (`presentation`)."""

    def decode_samples(self, tokens: torch.Tensor) -> list[str]:
        """Human-readable form of sampled sequences [N, L] (text data sets return decoded text)."""
        return [" ".join(map(str, row.tolist())) for row in tokens]

    def render(self, tokens: torch.Tensor, path: str) -> str | None:
        """Draw samples as a picture at ``path`` if this data set knows how; return the path or None."""
        return None

    def score_samples(self, decoded: list[str], prompts: list[str | None] | None = None) -> list[dict]:
        """Quality scores of decoded samples that this data set knows how to compute (``prime run``'s report
        shows them); a row with a prompt (its decoded text starts with it) is scored on what follows the prompt.
        Each score is ``{"name", "label", "value" (float or None), "detail"}``; none by default."""
        return []

    def render_trajectory(self, trajectory: list[torch.Tensor], subtoken_map: SubTokenMap, path: str) -> str | None:
        """Draw a denoising trajectory (sub-token states [N, L, ℓ] after each step, masks included) at ``path``
        if this data set knows how; return the path or None."""
        return None


class _TokenIds(Presentation):
    """The presentation of a data set that has none: token ids, no pictures."""


def presentation(dataset: Dataset) -> Presentation:
    """``dataset`` itself when it subclasses `Presentation`, else the plain token-id presentation."""
    return dataset if isinstance(dataset, Presentation) else _TokenIds()


class TextPrompts(abc.ABC):
    """Optional, next to `Dataset`: text in and out with the checkpoint's own tokenizer, for prompts, infill
    templates and zero-shot evaluation of local text (`prime sample --prompt`, `prime eval --data`).

    The promise: for every string s, ``decode_text(encode_text(s)) == s`` (a prompt is reproduced exactly), and
    decoding ``encode_text(s) + ids`` starts with s for any ids (token boundaries never eat into the prompt)."""

    @abc.abstractmethod
    def encode_text(self, text: str) -> list[int]:
        """Token ids (< C) of ``text``, without BOS/EOS; special-token spellings in the text stay plain text."""

    @abc.abstractmethod
    def decode_text(self, ids: list[int]) -> str:
        """The text of token ids (BOS/EOS ids are dropped)."""

    @property
    def bos_id(self) -> int | None:
        """The id that opens a document (None: no separator)."""
        return None

    @property
    def eos_id(self) -> int | None:
        """The id that closes a document; ``--stop-at-eos`` stops a row there (None: no separator)."""
        return None


class ByteLengths(abc.ABC):
    """Optional, next to `Dataset`: text whose bounds are also reported in bits per byte."""

    @abc.abstractmethod
    def bytes_per_token(self, split: str) -> float:
        """Mean UTF-8 bytes per token of a split: BPB = (nats/token) / (ln 2 · bytes/token)."""


class KnownDensity(abc.ABC):
    """Optional, next to `Dataset`: data whose distribution is known exactly (toy sets); evaluation then prints
    the data's own cross-entropy, the floor under every bound."""

    @abc.abstractmethod
    def exact_log_prob(self, sequences: torch.Tensor) -> torch.Tensor:
        """log p_data(x) for every row [N, L] → [N]."""


# --------------------------------------------------------------------------------------------- training / export / metrics
class Trainer(abc.ABC):
    """Runs optimisation and writes checkpoints.

    ``fit`` owns ``out_dir`` for its lifetime: `prime_core.runs.rundir` gives the rules both built-in trainers follow
    (`local_out_dir`, `claim` — one writer per folder —, `check_outputs` before writing — never over a file no
    prime run recorded —, `start_over` for ``force`` only after validation, `trim_metrics` on resume)."""

    name: ClassVar[str] = "trainer"

    @abc.abstractmethod
    def fit(self, config: Any, *, out_dir: str, resume: bool = False, progress: bool = True, force: bool = False,
            registry: Any = None) -> str:
        """Train the model ``config`` (a `prime_core.Config`) describes and return the URL of the final checkpoint
        (under ``out_dir``, named `prime_core.api.CHECKPOINT_NAME`). The config's ``model.num_classes`` and
        ``model.length`` may be unset: fill them from the data set (`prime_core.api.build_dataset`, then
        `prime_core.api.resolve_sizes`) before `prime_core.api.build_model`. Save with
        ``save_model(url, model, config, registry=registry, dataset=dataset)`` so that the checkpoint carries
        the data set's metadata (a tokenizer: ``prime sample --prompt`` needs it).

        resume: continue the run in ``out_dir`` from its checkpoint (`check_resume_config`); force: replace the
        run in ``out_dir`` (after validating the config, `start_over`) — the core never passes both;
        progress: show progress; registry: the `prime_core.Registry` to build components from (None: the
        default one)."""


class Exporter(abc.ABC):
    """Compiles a sampler step (or a model) for another runtime."""

    name: ClassVar[str] = "exporter"

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        """Add this exporter's own options to ``prime export NAME`` (an argparse parser that already has
        CHECKPOINT, -o/--output, --weights and --force); their values reach `export` as keyword options."""

    @abc.abstractmethod
    def export(self, checkpoint: str, output: str, *, weights: str = "model", force: bool = False,
               **options: Any) -> str:
        """Write the exported artifact for ``checkpoint`` to ``output`` and return its path. ``weights``: which
        weights of the checkpoint ("model" or "ema"); ``force``: replace an existing ``output`` (else refuse);
        ``options``: the values of the options `add_arguments` added, by their argparse ``dest``."""


@attrs.frozen
class MetricResult:
    """A measured value. ``is_bound`` is True only for valid upper bounds on −log p_θ(x) (DESIGN §2.4)."""

    name: str
    value: float
    stderr: float = math.nan
    unit: str = "nats/token"
    is_bound: bool = False
    extra: dict = attrs.field(factory=dict)


class Metric(abc.ABC):
    """Per-sequence quantity in nats. A metric with ``is_bound = True`` promises
    `per_sequence` ≥ −log p_θ(x) in expectation; the conformance suite checks that promise exactly."""

    name: ClassVar[str] = "metric"
    is_bound: ClassVar[bool] = False
    # how its figure is printed (`prime_core.runs.evaluate.KINDS`): None means "bound-estimate" when is_bound (a
    # Monte-Carlo estimate of a bound: "≤" only for its 95 % upper confidence limit), else "objective";
    # "exact" for an exact value (e.g. an AR model's NLL: "="), "bound" for a bound computed without sampling.
    kind: ClassVar[str | None] = None
    # True for a metric defined only on block-diffusion models (model.block_size < L, DESIGN §2.8): it raises on
    # any other model, and the conformance suite's toy backbones (which cannot mask attention) do not run it;
    # its bound is checked against exact enumeration with a block backbone (prime-plugin-dit's test_block).
    requires_block_model: ClassVar[bool] = False

    @abc.abstractmethod
    def per_sequence(self, model: Any, tokens: torch.Tensor, *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """tokens [B, L] → one Monte-Carlo estimate per row [B] (nats)."""

    def batches(self, model: Any, tokens: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        for i in range(0, tokens.shape[0], batch_size):
            yield tokens[i:i + batch_size]

