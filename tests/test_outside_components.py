"""A trainer and a sampler written from the interface docs alone (`prime_core.Trainer.fit`,
`prime_core.Sampler.sample`, issue 20): only the public API, only what the docstrings promise, and they work with
the commands that call them — ``prime train --force`` (twice), ``prime run`` and ``prime sample --prompt
--length`` (semi-autoregressive windows pass ``seeds=`` and ``fixed_tokens=``)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from prime_core import Sampler, SampleResult, Trainer, hookimpl
from prime_core.api import (CHECKPOINT_NAME, batch_indices, build_dataset, build_model, build_training_loss,
                            check_outputs, claim, local_out_dir, resolve_sizes, save_model, start_over)


class OutsideTrainer(Trainer):
    """Adam on the configured training loss; nothing but what `Trainer.fit` documents."""

    name = "outside"

    def fit(self, config, *, out_dir, resume=False, progress=True, force=False, registry=None):
        if resume:
            raise NotImplementedError("this minimal trainer does not resume")
        folder = local_out_dir(out_dir)
        os.makedirs(folder, exist_ok=True)
        with claim(folder):
            dataset = build_dataset(config, registry)
            config = resolve_sizes(config, dataset.num_classes, dataset.length)
            model = build_model(config, registry)
            loss_fn = build_training_loss(config.train.loss, registry)
            check_outputs(folder)
            if force:  # only after the config was validated (built), as the docstring says
                start_over(folder)
            opt = torch.optim.Adam(model.parameters(), lr=config.train.lr)
            rows = dataset.split("train")
            gen = torch.Generator().manual_seed(config.train.seed)
            for step in range(config.train.steps):
                batch = rows[batch_indices(step, config.train.batch_size, len(rows), config.train.seed)]
                loss = loss_fn(model, batch, generator=gen).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            return save_model(os.path.join(folder, CHECKPOINT_NAME), model, config, registry=registry,
                              dataset=dataset)


class OutsideSampler(Sampler):
    """Reveals whole tokens in ``steps`` rounds, each row with its own generator (keyed by its seed)."""

    name = "outside-sampler"

    def sample(self, model, num_samples, *, steps=None, seed=0, seeds=None, temperature=1.0, top_p=1.0,
               draw_dtype=torch.float32, cache=True, batch_size=None, fixed_tokens=None,
               return_trajectory=False, progress=False):
        steps = steps or 8
        seeds = list(seeds) if seeds is not None else [seed * 2**32 + i for i in range(num_samples)]
        L = model.length
        fixed = torch.full((num_samples, L), -1, dtype=torch.long)
        if fixed_tokens is not None:
            fixed[:] = torch.as_tensor(fixed_tokens).expand(num_samples, L)
        y = torch.full((num_samples, L, model.ell), model.mask_id, dtype=torch.long, device=model.device)
        given = fixed >= 0
        y[given] = model.encode(fixed.clamp_min(0))[given]
        gens = [torch.Generator().manual_seed(s % 2**63) for s in seeds]
        nfe = torch.zeros(num_samples, dtype=torch.long)
        trajectory = []
        with torch.no_grad():
            for k in range(steps):
                logp = model.log_probs(y).double().cpu() / (temperature if not callable(temperature) else 1.0)
                for i, g in enumerate(gens):
                    masked = (y[i] == model.mask_id).any(-1).cpu()
                    reveal = masked & (torch.rand(L, generator=g) < 1.0 / (steps - k))
                    draw = torch.multinomial(logp[i].softmax(-1), 1, generator=g).squeeze(-1)
                    y[i, reveal] = model.map.encode(draw.to(y.device))[reveal.to(y.device)]
                nfe += 1
                if return_trajectory:
                    trajectory.append(y.clone())
        tokens = model.map.decode(y).cpu()  # the last round revealed every token (probability 1)
        return SampleResult(tokens=tokens, nfe=nfe, idle_steps=torch.zeros_like(nfe), steps=steps,
                            forward_calls=steps, trajectory=trajectory or None)


class OutsidePlugin:
    @hookimpl
    def register_trainers(self, register):
        register(OutsideTrainer)

    @hookimpl
    def register_samplers(self, register):
        register(OutsideSampler)


@pytest.fixture
def outside(monkeypatch):
    """The default registry (what the CLI uses) with the outside plugin added."""
    from prime_core.plugin import default

    reg = default.new_registry(load_plugins=True)
    reg.add_plugin(OutsidePlugin(), "outside", "outside-dist", "0.1")
    monkeypatch.setattr(default, "_DEFAULT", reg)
    return reg


def _corpus(path):
    words = "the quick brown fox jumps over a lazy dog while Emma walks".split()
    path.write_text("\n".join(" ".join(words[(i * 3 + j) % len(words)] for j in range(8)) for i in range(120)),
                    encoding="utf-8")
    return path


def _text_args(root):
    corpus = _corpus(root / "corpus.txt")
    opts = (f'data.options={{ source = "{corpus}", tokenizer = "bpe", tokenizer_options = {{ vocab_size = 280 }}, '
            f'length = 8, cache_dir = "{root / "cache"}" }}')
    return ["--set", 'data.dataset="text"', "--set", opts, "--set", 'model.backbone="mlp"',
            "--set", "model.backbone_options={ hidden = 32, depth = 1 }", "--set", "model.ell=2",
            "--set", 'train.trainer="outside"', "--set", "train.steps=3", "--set", "train.batch_size=4",
            "--set", "train.warmup=0", "--set", "train.eval_every=0", "--set", 'sample.sampler="outside-sampler"',
            "--set", "sample.steps=4", "--set", "sample.num_samples=2", "--set", "eval.mc_samples=1"]


def test_outside_trainer_and_sampler_work_with_the_cli(outside, tmp_path, capsys):
    from prime_core.cli.app import main

    args = _text_args(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *args]) == 0
    assert main(["train", "--out", str(out), "--quiet", "--force", *args]) == 0  # force reaches Trainer.fit
    ckpt = str(out / CHECKPOINT_NAME)
    assert os.path.exists(ckpt)
    capsys.readouterr()
    assert main(["sample", ckpt, "--sampler", "outside-sampler", "--prompt", "the quick", "--length", "14",
                 "-n", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.count("the quick") >= 2  # each decoded row starts with its prompt (fixed_tokens= honoured)
    assert main(["run", "--out", str(tmp_path / "run2"), "--quiet", *args]) == 0
    assert os.path.exists(tmp_path / "run2" / CHECKPOINT_NAME)


def test_the_outside_sampler_keeps_fixed_tokens_and_is_keyed_by_row_seed(outside):
    from prime_core.api import Config, build_model

    config = Config.from_dict({"model": {"num_classes": 6, "length": 4, "ell": 2, "backbone": "mlp",
                                         "backbone_options": {"hidden": 8, "depth": 1}}})
    model = build_model(config, outside)
    sampler = outside.build("sampler", "outside-sampler")
    fixed = torch.tensor([3, -1, -1, 5])
    batch = sampler.sample(model, 3, steps=3, seeds=[7, 8, 9], fixed_tokens=fixed).tokens
    alone = sampler.sample(model, 1, steps=3, seeds=[8], fixed_tokens=fixed).tokens
    assert torch.equal(batch[1], alone[0]) and bool((batch[:, [0, 3]] == torch.tensor([3, 5])).all())
    assert bool((batch >= 0).all() and (batch < 6).all())
