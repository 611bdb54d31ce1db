"""The single-process trainer: AdamW, linear warmup, gradient clipping, atomic checkpoints, exact resume.

The seed fixes the initial weights; data order, loss noise and dropout derive from (seed, step) alone, so two runs
of one config are bit-identical on CPU and ``--resume`` continues exactly where a killed run stopped: the
checkpoint stores weights, optimizer moments and the step; nothing else has state. The run folder is held
exclusively for the whole run (`prime_core.rundir`).
"""

from __future__ import annotations

import json
import math
import os
import time

import torch
from tqdm.auto import tqdm

from ..build import build_dataset, build_model, build_training_loss, model_metadata, resolve_sizes
from ..checkpoint import checkpoint_exists, read_checkpoint, save_checkpoint
from ..config import Config, check_resume_config
from ..errors import PrimeError
from ..interfaces import Trainer
from ..rundir import CHECKPOINT_NAME, claim, local_out_dir, start_over, trim_metrics
from ..trainstate import load_optimizer_tensors, optimizer_tensors


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


class SimpleTrainer(Trainer):
    name = "simple"

    def fit(self, config: Config, *, out_dir: str, resume: bool = False, progress: bool = True,
            force: bool = False, registry=None) -> str:
        out_dir = local_out_dir(out_dir)  # before anything else: an --out we cannot honour is refused up front
        with claim(out_dir):
            return self._fit(config, out_dir, resume, progress, force, registry)

    def _fit(self, config, out_dir, resume, progress, force, registry) -> str:
        ckpt_url = os.path.join(out_dir, CHECKPOINT_NAME)
        # validate everything (data, sizes, model, loss) before touching the folder's previous contents
        dataset = build_dataset(config, registry)
        config = resolve_sizes(config, dataset.num_classes, dataset.length)
        torch.manual_seed(config.train.seed)  # the seed fixes the initial weights
        model = build_model(config, registry)
        opt = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
        loss_fn = build_training_loss(config.train.loss, registry)
        start_step = 0
        if checkpoint_exists(ckpt_url):
            if not (resume or force):
                raise PrimeError(f"{ckpt_url} exists; pass --resume to continue it or --force to start over")
            if resume:
                start_step = self._restore(ckpt_url, config, model, opt)
        elif resume:
            raise PrimeError(f"nothing to resume: {ckpt_url} does not exist")
        if force and not resume:
            start_over(out_dir)  # the new run is valid: now the old one may go
        metrics_path = os.path.join(out_dir, "metrics.jsonl")
        trim_metrics(metrics_path, start_step)
        train = dataset.split("train")
        model.train()
        bar = tqdm(range(start_step, config.train.steps), initial=start_step, total=config.train.steps,
                   disable=not progress, desc="train", dynamic_ncols=True)
        t0, tokens_seen = time.perf_counter(), 0
        with open(metrics_path, "a", encoding="utf-8") as log:
            for step in bar:
                idx = batch_indices(step, config.train.batch_size, len(train), config.train.seed)
                batch = train[idx].to(model.device)
                g = torch.Generator().manual_seed(config.train.seed * 1_000_003 + step)
                torch.manual_seed(config.train.seed * 1_000_003 + step)  # dropout: a function of (seed, step)
                for group in opt.param_groups:
                    group["lr"] = learning_rate(step, config)
                loss = loss_fn(model, batch, eps=config.train.eps, generator=g).mean() / batch.shape[1]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.train.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
                opt.step()
                tokens_seen += batch.numel()
                if (step + 1) % config.train.log_every == 0 or step + 1 == config.train.steps:
                    rate = tokens_seen / (time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss.item():.4f}", tok_s=f"{rate:,.0f}")
                    log.write(json.dumps({"step": step + 1, "loss": loss.item(), "loss_name": config.train.loss,
                                          "lr": opt.param_groups[0]["lr"], "tokens_per_s": rate}) + "\n")
                    log.flush()
                if (step + 1) % config.train.checkpoint_every == 0 or step + 1 == config.train.steps:
                    self._save(ckpt_url, model, opt, config, step + 1, registry, dataset)
        bar.close()
        return ckpt_url

    @staticmethod
    def _save(url, model, opt, config, step, registry, dataset=None):
        meta = model_metadata(model, config, registry, dataset)
        meta["train_state"] = {"step": step, "trainer": SimpleTrainer.name}
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"optim/{k}": v for k, v in optimizer_tensors(model, opt).items()})
        save_checkpoint(url, tensors, meta)

    @staticmethod
    def _restore(url, config, model, opt) -> int:
        ckpt = read_checkpoint(url)
        check_resume_config(ckpt.meta.get("config"), config, url)
        model.load_state_dict(ckpt.group("model"))
        load_optimizer_tensors(model, opt, ckpt.group("optim"))
        return int(ckpt.meta.get("train_state", {}).get("step", 0))


BUILTIN_TRAINERS = [SimpleTrainer]
