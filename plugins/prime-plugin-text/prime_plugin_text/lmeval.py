"""An lm-evaluation-harness model ``prime`` (``pip install 'prime-plugin-text[lmeval]'``, lm-eval 0.4.x).

From lm-eval's own CLI (the name is registered lazily by ``prime_lmeval_hook``, which the wheel's .pth runs)::

    lm_eval --model prime --model_args checkpoint=ckpt.safetensors,mc=8 --tasks my_task --include_path my_tasks/

or from Python, where importing this module registers `PrimeLM` under the name ``prime``::

    import prime_plugin_text.lmeval  # noqa: F401  (registers "prime")
    lm_eval.simple_evaluate(model="prime", model_args="checkpoint=ckpt.safetensors,mc=8", tasks=[...])

Every number lm-eval derives from these log-likelihoods is a bound (DESIGN §1), and lm-eval's metric names cannot
say so (the task names them). So the results JSON carries the documented field ``config.likelihoods`` (`KIND`),
and before lm-eval prints its table one line on stderr (`LEGEND`) says how to read it: acc / acc_norm are
accuracies *by bound*, word_perplexity / byte_perplexity / bits_per_byte are upper bounds (PPL ≤).

What each request returns (none of it is an exact likelihood):
- ``loglikelihood(context, continuation)`` → (−B, False), B a Monte-Carlo estimate of a valid upper bound on
  −log p_θ(continuation | context): the continuous-time NELBO of the continuation's sub-tokens with the context
  fixed (`prime_core.api.conditional_nelbo`), averaged over ``mc`` draws. So the returned value is a *lower*
  bound on the log-likelihood (in expectation). A continuation longer than L is scored in semi-autoregressive
  windows of ``stride`` tokens, each conditioned on the L − stride tokens before it (the chain rule of the
  semi-AR model, so the sum is again a bound). Context and continuation are tokenised separately (one fixed
  tokenisation of the string: its probability is at most the string's, so the bound stays valid). is_greedy is
  always False: a diffusion model has no greedy continuation to compare with.
- ``loglikelihood_rolling(text)`` → −B for the whole text after BOS, in the same windows.
- ``generate_until(context, gen_kwargs)`` → text sampled after the context (its last tokens as a fixed prefix),
  ``max_gen_toks`` tokens by the checkpoint's sampler (semi-AR beyond L), cut at EOS and at the first of
  ``until``.
"""

from __future__ import annotations

import sys

import torch

from prime_core import PrimeError, TextPrompts, get_registry, load_model
from prime_core.api import conditional_nelbo, dataset_for_checkpoint, generate, require, row_seeds

require("lm_eval", "prime-plugin-text[lmeval]", "the lm-eval adapter")
import lm_eval.models  # noqa: E402,F401  (lm-eval's lazy table of its own models, kept usable)
from lm_eval.api.model import LM  # noqa: E402
from lm_eval.api.registry import register_model  # noqa: E402

DEFAULT_MAX_GEN = 256

#: results JSON ``config.likelihoods`` (lm-eval puts `PrimeLM.get_model_info` into ``config``)
KIND = {
    "kind": "bound",
    "loglikelihood": "-B: B a Monte-Carlo estimate of a valid upper bound (NELBO) on -log p(continuation | "
                     "context), so a lower bound on the log-likelihood, not its exact value",
    "acc": "accuracy by bound: the choice with the smallest bound B is taken",
    "perplexity": "word_perplexity, byte_perplexity and bits_per_byte come from B: upper bounds (PPL <=)",
    "is_greedy": "always False: a diffusion model has no greedy continuation",
    "samples": "per-sample resps hold -B (loglikelihood: [-B, false])",
}
LEGEND = ("prime: every log-likelihood lm-eval used is a bound (−NELBO, Monte-Carlo), not exact: acc/acc_norm = "
          "accuracy by bound; word_perplexity, byte_perplexity, bits_per_byte are upper bounds (PPL ≤); "
          "results JSON config.likelihoods")


def _flag(value) -> int:
    """lm-eval passes model_args as strings or numbers: a whole number ≥ 1."""
    n = int(value)
    if n < 1:
        raise PrimeError(f"lm-eval model_args: expected a whole number ≥ 1, got {value!r}")
    return n


def model_device(spec: str | None) -> str:
    """lm-eval's ``--device`` as a prime device spec. lm-eval's CLI passes ``cuda:0`` when none is given, so a
    CUDA device on a machine without CUDA falls back to the CPU (as lm-eval's own HF model does), with a note."""
    if spec is None:
        return "auto"
    if str(spec).startswith("cuda") and not torch.cuda.is_available():
        print(f"prime: note: lm-eval asked for --device {spec}, but CUDA is not available here: running on cpu",
              file=sys.stderr)
        return "cpu"
    return str(spec)


@register_model("prime")
class PrimeLM(LM):
    """model_args: ``checkpoint`` (path), ``mc`` (Monte-Carlo draws per bound, default 8), ``steps`` (sampling
    steps, default the checkpoint's), ``stride`` (semi-AR window step, default L // 2), ``seed``, ``weights``
    (model | ema). lm-eval's ``--device`` places the model (`model_device`); ``batch_size`` is accepted."""

    def __init__(self, checkpoint: str, mc: int = 8, steps: int | None = None, stride: int | None = None,
                 seed: int = 0, weights: str = "model", device: str | None = None, **lm_eval_options):
        super().__init__()
        registry = get_registry()
        self.model, self.config, ckpt = load_model(str(checkpoint), registry, weights=weights,
                                                   device=model_device(device))
        text_io = dataset_for_checkpoint(self.config, ckpt.meta.get("data"), need_data=False, registry=registry)
        if not isinstance(text_io, TextPrompts):
            raise PrimeError(f"lm-eval needs a text checkpoint; {checkpoint} has the data set "
                             f"{self.config.data.dataset!r}, which has no tokenizer")
        self.text = text_io
        s = self.config.sample
        self.sampler = registry.build("sampler", s.sampler, **s.options)
        self.mc, self.seed = _flag(mc), int(seed)
        self.steps = s.steps if steps is None else _flag(steps)
        length = self.model.length
        self.stride = max(1, length // 2) if stride is None else min(_flag(stride), length)

    def get_model_info(self) -> dict:
        """lm-eval calls this once, after the last request and before it prints its table and writes its JSON:
        the model's one say in either. The JSON gets ``likelihoods`` (`KIND`), the reader of the table `LEGEND`."""
        print(LEGEND, file=sys.stderr, flush=True)
        return {"likelihoods": dict(KIND), "prime_mc": self.mc, "prime_steps": self.steps, "prime_stride": self.stride}

    # ----------------------------------------------------------------------------------------------- bounds
    def _ids(self, text: str) -> list[int]:
        return self.text.encode_text(text) if text else []

    @torch.no_grad()
    def bound(self, context: list[int], target: list[int], seed: int) -> float:
        """Estimate (nats) of a valid upper bound on −log p_θ(target | context), summed over windows."""
        length, total = self.model.length, 0.0
        pieces = [target] if len(target) <= length else [target[i:i + self.stride]
                                                         for i in range(0, len(target), self.stride)]
        seen = list(context)
        g = torch.Generator().manual_seed(seed)
        for piece in pieces:
            ctx = seen[max(0, len(seen) - (length - len(piece))):] if len(piece) < length else []
            window = torch.zeros(length, dtype=torch.long)
            window[:len(ctx)] = torch.tensor(ctx, dtype=torch.long)
            window[len(ctx):len(ctx) + len(piece)] = torch.tensor(piece, dtype=torch.long)
            pos = torch.arange(length)
            is_ctx, is_tgt = pos < len(ctx), (pos >= len(ctx)) & (pos < len(ctx) + len(piece))
            dev = self.model.device
            est = conditional_nelbo(self.model, window.expand(self.mc, -1).to(dev), is_tgt.expand(self.mc, -1),
                                    is_ctx.expand(self.mc, -1), generator=g)
            total += float(est.double().mean())
            seen += piece
        return total

    def _start(self) -> list[int]:
        return [] if self.text.bos_id is None else [self.text.bos_id]

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for k, req in enumerate(requests):
            context, continuation = req.args
            target = self._ids(continuation)
            if not target:
                out.append((0.0, True))  # log p(empty | context) = 0 exactly
                continue
            out.append((-self.bound(self._start() + self._ids(context), target, self.seed + k), False))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for k, req in enumerate(requests):
            target = self._ids(req.args[0])
            out.append(-self.bound(self._start(), target, self.seed + k) if target else 0.0)
        return out

    # ----------------------------------------------------------------------------------------------- sampling
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        seeds = row_seeds(len(requests), self.seed)
        for k, req in enumerate(requests):
            context, kwargs = req.args
            out.append(self._generate(context, dict(kwargs or {}), seeds[k]))
        return out

    def _generate(self, context: str, kwargs: dict, seed: int) -> str:
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        max_gen = _flag(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN))
        length = self.model.length
        prompt = (self._start() + self._ids(context))[-(length - min(max_gen, max(1, length // 2))):]
        fixed = torch.full((1, len(prompt) + max_gen), -1, dtype=torch.long)
        fixed[0, :len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        tau = float(kwargs.get("temperature") or 0.0)
        g = generate(self.model, self.sampler, fixed.shape[1], seeds=[seed], fixed=fixed, stride=self.stride,
                     eos_id=self.text.eos_id, steps=self.steps,
                     temperature=tau if tau > 0 else self.config.sample.temperature,
                     top_p=self.config.sample.top_p)
        ids = g.tokens[0].tolist()
        stop = g.stopped_at[0]
        head = self.text.decode_text(prompt)
        text = self.text.decode_text(ids if stop is None else ids[:stop])[len(head):]
        cuts = [text.find(s) for s in until if s and s in text]
        return text[:min(cuts)] if cuts else text
