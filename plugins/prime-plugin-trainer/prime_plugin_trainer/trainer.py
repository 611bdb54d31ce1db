"""The "torch" trainer: AdamW with linear warmup then constant or cosine LR, gradient clipping, gradient
accumulation, EMA of the weights, bf16 autocast, optional torch.compile, and DDP / FSDP under torchrun.

One optimizer step n on a global batch of B sequences of L tokens minimises
    (1 / (B·L)) Σ_{i=1..B} loss_i,   loss_i = the training objective of row i (``train.loss``: the MDLM
    estimator "nelbo" or the paper's "joint" loss — training objectives, not reported as bounds),
whatever the split into processes × micro-batches: rank r's micro-batch contributes
world_size · Σ_{its rows} loss_i / (B·L) and DDP/FSDP average gradients over the world_size ranks.
Every ``train.eval_every`` steps and at the last one, the valid bound on fixed held-out rows
(`prime_core.runs.validation`) is estimated with the chunks shared out over the ranks and all-reduced; the best one is
kept as best.safetensors (``train.keep``). Only rank 0 writes the checkpoints, metrics.jsonl, TensorBoard events
(``train.tensorboard``), the progress bar and loss.png, and only rank 0 holds the run folder's lock
(`prime_core.runs.rundir`); the other ranks learn from it whether the run may proceed.
"""

from __future__ import annotations

import contextlib
import os
import time

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from prime_core.api import (BEST_NAME, CHECKPOINT_NAME, BestSoFar, CheckpointError, Config, LossWatch, PrimeError,
                            TrainLog, Trainer, Validator, build_dataset, build_model, build_training_loss,
                            check_outputs, check_resume_config, check_resume_steps, checkpoint_exists, claim,
                            evaluating, finish_keep, get_registry, is_eval_step, keeps_best, learning_rate,
                            local_out_dir, model_metadata, read_checkpoint, require_tensorboard, resolve_sizes,
                            save_checkpoint, start_over)

from . import state as st
from .batching import StepBatch, StepLoader, micro_slices, noise_seed, rank_rows
from .distributed import Layout, env_layout, init_group, maybe_no_sync, wrap
from .ema import EMA
from .options import TrainerOptions

TENSORBOARD_EXTRA = "prime-plugin-trainer[tensorboard]"


class _Objective(nn.Module):
    """Runs the training loss inside forward(), so DDP/FSDP hooks see the whole computation."""

    def __init__(self, model: nn.Module, loss: str, eps: float, registry):
        super().__init__()
        self.model, self.loss_fn, self.eps = model, build_training_loss(loss, registry), eps

    def forward(self, tokens, t=None, masked=None, *, metric=None, generator=None):  # → per-row loss [b]
        if metric is not None:  # validation: a metric's per-row estimate, through the DDP/FSDP wrapper
            return metric.per_sequence(self.model, tokens, generator=generator)
        return self.loss_fn(self.model, tokens, eps=self.eps, t=t, masked=masked)


@contextlib.contextmanager
def _claim_on_main(out_dir: str, layout: Layout, resume: bool):
    """Rank 0 holds the run folder's lock for the run and checks that no file the run writes belongs to the
    user (`check_outputs`); every rank learns the outcome, so when another process writes the folder all ranks
    fail with the same one-line error instead of waiting for rank 0."""
    error, held = None, contextlib.ExitStack()
    with held:
        if layout.is_main:
            try:
                held.enter_context(claim(out_dir))
                check_outputs(out_dir, resume=resume)
            except PrimeError as exc:
                error = str(exc)
        if layout.distributed:
            box = [error]
            dist.broadcast_object_list(box, src=0)
            error = box[0]
        if error is not None:
            raise PrimeError(error)
        yield


def _prepare_resume(ckpt_url: str, config: Config, resume: bool, force: bool, *, read: bool = True):
    """Decide, before anything is written, whether this run may proceed; returns the checkpoint to resume (with
    ``read``) or None. ``read=False``: only the cheap checks, made before any process group exists."""
    if checkpoint_exists(ckpt_url):
        if not (resume or force):
            raise PrimeError(f"{ckpt_url} exists; pass --resume to continue it or --force to start over")
        if resume and read:
            ckpt = read_checkpoint(ckpt_url)
            check_resume_config(ckpt.meta.get("config"), config, ckpt_url)
            if ckpt.meta.get("train_state", {}).get("trainer") != TorchTrainer.name:
                raise PrimeError(f"cannot resume {ckpt_url}: it was not written by the torch trainer")
            return ckpt
    elif resume:
        raise PrimeError(f"nothing to resume: {ckpt_url} does not exist")
    return None


def _autocast(layout: Layout, opts: TrainerOptions):
    bf16 = opts.precision == "bf16" or (opts.precision == "auto" and layout.device.type == "cuda")
    return torch.autocast(layout.device.type, dtype=torch.bfloat16, enabled=bf16), bf16


class TorchTrainer(Trainer):
    name = "torch"

    def fit(self, config: Config, *, out_dir: str, resume: bool = False, progress: bool = True,
            force: bool = False, registry=None) -> str:
        registry = registry or get_registry()
        out_dir = local_out_dir(out_dir)  # an --out we cannot honour is refused before anything starts
        opts = TrainerOptions.from_dict(config.train.options)
        layout = env_layout(opts.device)
        ckpt_url = os.path.join(out_dir, CHECKPOINT_NAME)
        dataset = build_dataset(config, registry)
        config = resolve_sizes(config, dataset.num_classes, dataset.length)
        slices = micro_slices(config.train.batch_size, layout.world_size, opts.grad_accum, layout.rank)
        _prepare_resume(ckpt_url, config, resume, force, read=False)  # fail early, before any process group
        if config.train.tensorboard:
            require_tensorboard(TENSORBOARD_EXTRA)  # every rank, before any process group
        init_group(layout)
        try:
            with _claim_on_main(out_dir, layout, resume):
                # decided again under the lock: the folder may have changed while this run was starting
                ckpt = _prepare_resume(ckpt_url, config, resume, force)
                return self._fit(config, opts, layout, ckpt, ckpt_url, out_dir, dataset, slices,
                                 progress and layout.is_main, registry, fresh=force and not resume)
        finally:
            layout.close()

    # ------------------------------------------------------------------------------------------------------
    def _fit(self, config, opts, layout, ckpt, ckpt_url, out_dir, dataset, slices, progress, registry,
             fresh=False) -> str:
        tc = config.train
        torch.manual_seed(tc.seed)  # identical initial weights on every rank
        model = build_model(config, registry).to(layout.device)
        start_step, best = 0, BestSoFar()
        validator = Validator.from_config(config, dataset, model, registry) if tc.eval_every else None
        if ckpt is not None:
            try:
                st.load_model_tensors(model, ckpt.group("model"))
            except (KeyError, RuntimeError) as exc:
                raise CheckpointError(f"cannot resume {ckpt_url}: {str(exc).splitlines()[0]}") from None
            start_step = int(ckpt.meta["train_state"]["step"])
            check_resume_steps(start_step, tc.steps, ckpt_url)
            best = BestSoFar.from_meta(ckpt.meta["train_state"].get("best_valid"))
        if opts.compile:
            model.backbone.compile()
        objective = _Objective(model, tc.loss, tc.eps, registry)
        runner = wrap(objective, layout, opts.parallel)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        ema = EMA(model, opts.ema) if opts.ema > 0 else None
        if ckpt is not None:
            st.load_optimizer_tensors(model, opt, ckpt.group("optim"))
            if ema is not None:
                ema.load(ckpt.group("ema") or ckpt.group("model"))
        if layout.is_main and fresh:
            start_over(out_dir)  # --force: the new run is valid (config, data, model, loss), the old one goes
        train = dataset.split("train")  # a tensor or a lazy view (len, indexing): this rank reads only its rows
        loader = StepLoader(train, start_step, tc.steps, batch_size=tc.batch_size, seed=tc.seed, model=model,
                            eps=tc.eps, rows=rank_rows(slices), order=opts.order, prefetch=opts.prefetch,
                            pin=layout.device.type == "cuda")
        autocast, bf16 = _autocast(layout, opts)
        tokens_per_step = tc.batch_size * model.length
        model.train()
        bar = tqdm(range(start_step, tc.steps), initial=start_step, total=tc.steps, disable=not progress,
                   desc="train", unit="step", dynamic_ncols=True)
        t0, steps_done, shown = time.perf_counter(), 0, {}
        log = TrainLog(out_dir, start_step=start_step, enabled=layout.is_main,
                       tensorboard_extra=TENSORBOARD_EXTRA if tc.tensorboard else None)
        watch = LossWatch(layout.device)  # a NaN/inf loss stops every rank before anything diverged is written
        if start_step:
            watch.saved(start_step)
        try:
            for step in bar:
                batch = loader.next(step)
                lr = learning_rate(step, config)  # warmup, then options.schedule: constant or cosine
                for group in opt.param_groups:
                    group["lr"] = lr
                loss_sum = self._accumulate(runner, batch, slices, step, tc, layout, autocast)
                watch.observe(loss_sum)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                           tc.grad_clip if tc.grad_clip > 0 else float("inf"))
                opt.step()
                opt.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(model)
                steps_done += 1
                done = step + 1
                last = done == tc.steps
                evaluate = validator is not None and is_eval_step(done, tc)
                save = done % tc.checkpoint_every == 0 or last
                if done % tc.log_every == 0 or last or evaluate or save:  # one all-reduced flag, same on every rank
                    watch.check(done, ckpt_url, all_sum=layout.all_sum)
                if done % tc.log_every == 0 or last:
                    loss = float(layout.all_sum(loss_sum)) / tokens_per_step
                    elapsed = time.perf_counter() - t0
                    rate = steps_done * tokens_per_step / elapsed
                    shown.update(loss=f"{loss:.4f}", tok_s=f"{rate:,.0f}")
                    log.write({"step": done, "loss": loss, "loss_name": tc.loss, "lr": lr,
                               "grad_norm": float(_full(grad_norm)), "tokens_per_s": rate, "bf16": bf16,
                               "world_size": layout.world_size, "backend": layout.backend,
                               "device": str(layout.device), "elapsed_s": elapsed}, group="train")
                if evaluate:
                    bound = self._validate(validator, runner, model, ema, config, done, layout, best, out_dir,
                                           registry, dataset)
                    log.write(bound.row(done), group="valid")
                    shown[bound.key] = bound.short()  # e.g. valid_nelbo=PPL≤30.3
                if layout.is_main:
                    bar.set_postfix(shown, refresh=False)
                if save:
                    self._save(ckpt_url, model, opt, ema, config, done, layout, registry, dataset, best)
                    watch.saved(done)
        finally:
            loader.close()
            bar.close()
            log.close()
        layout.barrier()
        return finish_keep(out_dir, ckpt_url, tc.keep, is_main=layout.is_main)

    def _validate(self, validator, runner, model, ema, config, step, layout, best, out_dir, registry, dataset):
        """The valid bound of the current weights (every rank evaluates its chunks through the DDP/FSDP wrapper;
        sums are all-reduced, so all ranks agree); a new best is saved as best.safetensors (train.keep)."""
        device = layout.device

        def per_sequence(rows, g):
            return runner(rows.to(device), metric=validator.metric, generator=g)

        with evaluating(model):
            bound = validator.estimate(per_sequence, rank=layout.rank, world_size=layout.world_size,
                                       all_sum=lambda x: layout.all_sum(x.to(device)).cpu())
        if best.improved_by(bound.value):  # the same decision on every rank: the value is all-reduced
            best.update(bound.value, step, bound.metric)
            if keeps_best(config.train.keep):
                self._save(os.path.join(out_dir, BEST_NAME), model, None, ema, config, step, layout, registry,
                           dataset, best, valid=bound.row(step))
        return bound

    @staticmethod
    def _accumulate(runner, batch: StepBatch, slices, step, tc, layout, autocast) -> torch.Tensor:
        """Forward/backward over this rank's micro-batches; returns Σ of its rows' losses (detached)."""
        scale = layout.world_size / (tc.batch_size * batch.tokens.shape[1])
        total = torch.zeros((), device=layout.device, dtype=torch.float64)
        for a, sl in enumerate(slices):
            micro = batch.rows(sl).to(layout.device, non_blocking=True)
            # dropout and any other global-RNG use: a function of (seed, step, micro-batch), so resume is exact
            torch.manual_seed(noise_seed(tc.seed, step) * 4099 + sl.start)
            with maybe_no_sync(runner, skip=a + 1 < len(slices)):
                with autocast:
                    rows = runner(micro.tokens, micro.t, micro.masked)
                (rows.float().sum() * scale).backward()
            total += rows.detach().double().sum()
        return total

    @staticmethod
    def _save(url, model, opt, ema, config, step, layout, registry, dataset, best, valid=None) -> None:
        """Weights, EMA and (unless ``opt`` is None: best.safetensors) optimizer state, written by rank 0."""
        model_state = st.model_tensors(model)  # every rank: collectives under FSDP
        tensors = {f"model/{k}": v for k, v in model_state.items()}
        if opt is not None:
            tensors.update({f"optim/{k}": v for k, v in st.optimizer_tensors(model, opt).items()})
        tensors.update({f"ema/{k}": v for k, v in st.ema_tensors(model, ema, model_state).items()})
        if layout.is_main:
            meta = model_metadata(model, config, registry, dataset)
            meta["train_state"] = {"step": step, "world_size": layout.world_size, "trainer": TorchTrainer.name,
                                   "best_valid": best.to_meta()}
            meta["ema_decay"] = ema.decay if ema is not None else None
            if valid is not None:
                meta["valid"] = valid
            save_checkpoint(url, tensors, meta)
        layout.barrier()


def _full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t
