"""The single-process trainer: AdamW, linear warmup, gradient clipping, atomic checkpoints, exact resume,
validation on held-out rows every ``train.eval_every`` steps (`prime_core.runs.validation`), the best checkpoint
(``train.keep``, `prime_core.runs.keep`) and optional TensorBoard logging (`prime_core.runs.trainlog`).

It runs on ``train.options.device`` (auto, cpu, cuda, cuda:N — `prime_core.device`; ``prime train --device``
sets it); the data set and every random draw stay on the CPU, each batch moves to the device once per step.

The seed fixes the initial weights; data order, loss noise and dropout derive from (seed, step) alone, so two runs
of one config are bit-identical on CPU and ``--resume`` continues exactly where a killed run stopped: the
checkpoint stores weights, optimizer moments and the step; nothing else has state. The run folder is held
exclusively for the whole run (`prime_core.runs.rundir`).
"""

from __future__ import annotations

import math
import os
import time

import torch
from tqdm.auto import tqdm

from ..runs.build import build_dataset, build_model, build_training_loss, model_metadata, resolve_sizes
from ..runs.checkpoint import checkpoint_exists, read_checkpoint, save_checkpoint
from ..runs.config import Config, check_resume_config, check_resume_steps
from ..device import parse_device_spec, resolve_device, train_device
from ..runs.divergence import LossWatch
from ..errors import ConfigError, PrimeError
from ..interfaces import Trainer
from ..runs.keep import BEST_NAME, BestSoFar, finish_keep, keeps_best
from ..runs.rundir import CHECKPOINT_NAME, check_outputs, claim, local_out_dir, start_over
from ..runs.trainlog import TrainLog, require_tensorboard
from ..runs.trainstate import load_optimizer_tensors, optimizer_tensors
from ..runs.validation import Validator, evaluating, is_eval_step

TENSORBOARD_EXTRA = "prime-core[tensorboard]"


def batch_indices(step: int, batch_size: int, num_rows: int, seed: int) -> torch.Tensor:
    """Rows for a step: consecutive slices of a per-epoch permutation seeded by (seed, epoch)."""
    start = step * batch_size
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), num_rows)
        perm = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out.extend(perm[offset:offset + batch_size - len(out)].tolist())
    return torch.tensor(out)


def learning_rate(step: int, config: Config) -> float:
    warm = config.train.warmup
    base = config.train.lr
    if warm and step < warm:
        return base * (step + 1) / warm
    if config.train.options.get("schedule", "constant") == "cosine":
        progress = (step - warm) / max(1, config.train.steps - warm)
        return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return base


#: ``[train] options`` this trainer reads: schedule = LR after warmup (constant, or cosine decay to 0 at
#: train.steps) and device (`prime_core.device`); the torch trainer (prime-plugin-trainer) reads more
OPTIONS = {"schedule": ("constant", "cosine"), "device": None}


def check_options(options: dict) -> None:
    """Refuse ``train.options`` keys this trainer does not read and values it cannot honour (one line naming
    the allowed ones): a typo (``schedual``) must not train silently with the default."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"train.options.{unknown[0]} is not an option of the simple trainer; its options are "
                          f"{', '.join(OPTIONS)} (train.trainer = \"torch\" from prime-plugin-trainer has more)")
    schedule = options.get("schedule", "constant")
    if schedule not in OPTIONS["schedule"]:
        raise ConfigError(f"train.options.schedule must be one of {', '.join(OPTIONS['schedule'])}, "
                          f"got {schedule!r}")
    parse_device_spec(options.get("device", "auto"), what="train.options.device")


class SimpleTrainer(Trainer):
    name = "simple"

    def fit(self, config: Config, *, out_dir: str, resume: bool = False, progress: bool = True,
            force: bool = False, registry=None) -> str:
        out_dir = local_out_dir(out_dir)  # before anything else: an --out we cannot honour is refused up front
        with claim(out_dir):
            return self._fit(config, out_dir, resume, progress, force, registry)

    def _fit(self, config, out_dir, resume, progress, force, registry) -> str:
        ckpt_url = os.path.join(out_dir, CHECKPOINT_NAME)
        tc = config.train
        check_options(tc.options)
        # validate everything (data, sizes, model, loss, extras) before touching the folder's previous contents
        dataset = build_dataset(config, registry)
        config = resolve_sizes(config, dataset.num_classes, dataset.length)
        device = resolve_device(train_device(config), what="train.options.device")
        torch.manual_seed(tc.seed)  # the seed fixes the initial weights (drawn on the CPU, then moved)
        model = build_model(config, registry).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        loss_fn = build_training_loss(tc.loss, registry)
        validator = Validator.from_config(config, dataset, model, registry) if tc.eval_every else None
        if tc.tensorboard:
            require_tensorboard(TENSORBOARD_EXTRA)
        start_step, best = 0, BestSoFar()
        check_outputs(out_dir, resume=resume)  # never overwrite (or, --force, delete) a file prime did not write
        if checkpoint_exists(ckpt_url):
            if not (resume or force):
                raise PrimeError(f"{ckpt_url} exists; pass --resume to continue it or --force to start over")
            if resume:
                start_step, best = self._restore(ckpt_url, config, model, opt)
                check_resume_steps(start_step, tc.steps, ckpt_url)
        elif resume:
            raise PrimeError(f"nothing to resume: {ckpt_url} does not exist")
        if force and not resume:
            start_over(out_dir)  # the new run is valid: now the old one may go
        train = dataset.split("train")
        model.train()
        bar = tqdm(range(start_step, tc.steps), initial=start_step, total=tc.steps,
                   disable=not progress, desc="train", dynamic_ncols=True)
        t0, tokens_seen, shown = time.perf_counter(), 0, {}
        log = TrainLog(out_dir, start_step=start_step, tensorboard_extra=TENSORBOARD_EXTRA if tc.tensorboard else None)
        watch = LossWatch(model.device)  # a NaN/inf loss stops the run before anything diverged is written
        if start_step:
            watch.saved(start_step)
        try:
            for step in bar:
                idx = batch_indices(step, tc.batch_size, len(train), tc.seed)
                batch = train[idx].to(model.device)
                g = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
                torch.manual_seed(tc.seed * 1_000_003 + step)  # dropout: a function of (seed, step)
                for group in opt.param_groups:
                    group["lr"] = learning_rate(step, config)
                clipped = {"mask_rate_range": tuple(tc.mask_rate_range)} if tc.mask_rate_range else {}
                loss = loss_fn(model, batch, eps=tc.eps, generator=g, **clipped).mean() / batch.shape[1]
                watch.observe(loss)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                opt.step()
                tokens_seen += batch.numel()
                done = step + 1
                evaluate = validator is not None and is_eval_step(done, tc)
                save = done % tc.checkpoint_every == 0 or done == tc.steps
                if done % tc.log_every == 0 or done == tc.steps or evaluate or save:
                    watch.check(done, ckpt_url)  # one sync, and only before something is written
                if done % tc.log_every == 0 or done == tc.steps:
                    rate = tokens_seen / (time.perf_counter() - t0)
                    shown.update(loss=f"{loss.item():.4f}", tok_s=f"{rate:,.0f}")
                    log.write({"step": done, "loss": loss.item(), "loss_name": tc.loss,
                               "lr": opt.param_groups[0]["lr"], "tokens_per_s": rate}, group="train")
                if evaluate:
                    bound = self._validate(validator, model, config, done, best, out_dir, registry, dataset)
                    log.write(bound.row(done), group="valid")
                    shown[bound.key] = bound.short()  # e.g. valid_nelbo=PPL≤30.3
                bar.set_postfix(shown, refresh=False)
                if save:
                    self._save(ckpt_url, model, opt, config, done, registry, dataset, best)
                    watch.saved(done)
        finally:
            log.close()
            bar.close()
        return finish_keep(out_dir, ckpt_url, tc.keep)

    def _validate(self, validator, model, config, step, best, out_dir, registry, dataset):
        """The validation bound of the current weights; a new best is saved as best.safetensors (train.keep)."""
        with evaluating(model):
            bound = validator.estimate(lambda rows, g: validator.metric.per_sequence(model, rows.to(model.device),
                                                                                       generator=g))
        if best.improved_by(bound.value):
            best.update(bound.value, step, bound.metric)
            if keeps_best(config.train.keep):
                meta = model_metadata(model, config, registry, dataset)
                meta["train_state"] = {"step": step, "trainer": SimpleTrainer.name}
                meta["valid"] = bound.row(step)
                save_checkpoint(os.path.join(out_dir, BEST_NAME),
                                {f"model/{k}": v for k, v in model.state_dict().items()}, meta)
        return bound

    @staticmethod
    def _save(url, model, opt, config, step, registry, dataset=None, best: BestSoFar | None = None):
        meta = model_metadata(model, config, registry, dataset)
        meta["train_state"] = {"step": step, "trainer": SimpleTrainer.name,
                               "best_valid": best.to_meta() if best is not None else None}
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"optim/{k}": v for k, v in optimizer_tensors(model, opt).items()})
        save_checkpoint(url, tensors, meta)

    @staticmethod
    def _restore(url, config, model, opt) -> tuple[int, BestSoFar]:
        """Weights and optimizer state from ``url``; returns (its step, the best validation bound so far)."""
        ckpt = read_checkpoint(url)
        check_resume_config(ckpt.meta.get("config"), config, url)
        model.load_state_dict(ckpt.group("model"))
        load_optimizer_tensors(model, opt, ckpt.group("optim"))
        state = ckpt.meta.get("train_state", {})
        return int(state.get("step", 0)), BestSoFar.from_meta(state.get("best_valid"))


BUILTIN_TRAINERS = [SimpleTrainer]
