"""The trainer's data path: window ids keyed by (seed, step), rank-sliced reads, the prefetching loader, and an
exact resume on a prepared (memory-mapped) text corpus: a run killed after its checkpoint at step k and resumed
sees the same batches (token ids) as an uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from prime_core import load_config
from prime_core.api import batch_indices, build_dataset, build_model, resolve_sizes
from prime_plugin_trainer import TorchTrainer
from prime_plugin_trainer.batching import StepLoader, draw_step, micro_slices, rank_rows, window_ids


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.integers(1, 40), st.integers(1, 300), st.integers(0, 5))
def test_random_window_ids_equal_the_cores_batch_indices(step, batch, rows, seed):
    assert torch.equal(window_ids(step, batch, rows, seed, "random"), batch_indices(step, batch, rows, seed))


def test_sequential_order_walks_the_windows_in_order():
    assert window_ids(2, 4, 10, 0, "sequential").tolist() == [8, 9, 0, 1]


class CountingRows:
    """A lazy split that records every row it is asked for."""

    def __init__(self, data: torch.Tensor):
        self.data, self.read = data, []

    def __len__(self):
        return len(self.data)

    def __getitem__(self, ids):
        self.read.extend(torch.as_tensor(ids).tolist())
        return self.data[ids]


@pytest.fixture
def toy(make_config):
    cfg = load_config(make_config())
    data = build_dataset(cfg)
    cfg = resolve_sizes(cfg, data.num_classes, data.length)
    torch.manual_seed(0)
    return data.split("train"), build_model(cfg)


def test_each_rank_reads_only_its_rows_and_gets_the_global_noise(toy):
    train, model = toy
    full = draw_step(train, 5, 32, 3, model, 1e-3)
    for rank in range(2):
        slices = micro_slices(32, 2, 2, rank)
        lazy = CountingRows(train)
        part = draw_step(lazy, 5, 32, 3, model, 1e-3, rows=rank_rows(slices))
        assert len(lazy.read) == 16  # B / world_size rows, not B
        for sl in slices:
            mine, ref = part.rows(sl), full.rows(sl)
            assert torch.equal(mine.tokens, ref.tokens) and torch.equal(mine.t, ref.t)
            assert torch.equal(mine.masked, ref.masked)
        with pytest.raises(IndexError):
            part.rows(micro_slices(32, 2, 2, 1 - rank)[0])


def test_prefetching_loader_gives_the_same_batches_and_raises_the_threads_errors(toy):
    train, model = toy
    kw = dict(batch_size=8, seed=1, model=model, eps=1e-3, rows=slice(0, 8))
    eager, ahead = StepLoader(train, 2, 9, prefetch=False, **kw), StepLoader(train, 2, 9, prefetch=True, **kw)
    for step in range(2, 9):
        a, b = eager.next(step), ahead.next(step)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.masked, b.masked) and torch.equal(a.t, b.t)
    ahead.close()

    class Broken(CountingRows):
        def __getitem__(self, ids):
            raise OSError("disk gone")

    broken = StepLoader(Broken(train), 0, 3, prefetch=True, **kw)
    with pytest.raises(OSError, match="disk gone"):
        broken.next(0)
    broken.close()


TEXT_CONFIG = """
[model]
ell = 2
width = 16
backbone = "mlp"
backbone_options = {{ hidden = 32, depth = 1 }}

[data]
dataset = "text"
options = {{ prepared = "{prepared}", length = 8 }}

[train]
trainer = "torch"
steps = 12
batch_size = 8
lr = 3e-3
warmup = 0
log_every = 4
checkpoint_every = 4
options = {{ ema = 0.9, grad_accum = 2, order = "{order}" }}
"""


class Killed(Exception):
    pass


@pytest.mark.parametrize("order", ["random", "sequential"])
def test_a_killed_and_resumed_run_sees_the_same_batches(tmp_path, monkeypatch, order):
    from prime_plugin_text.prepare import PrepareRequest, prepare

    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"d{i}.txt").write_text(f"{i} Emma and Harriet walk to Highbury. " * (1 + i % 4), encoding="utf-8")
    prepare(PrepareRequest([str(src)], str(tmp_path / "prep"), progress=False, split="train=0.8,valid=0.1,test=0.1"))
    (tmp_path / "c.toml").write_text(TEXT_CONFIG.format(prepared=tmp_path / "prep", order=order))
    cfg = load_config(str(tmp_path / "c.toml"))

    seen: dict[str, dict[int, torch.Tensor]] = {}
    real = TorchTrainer._accumulate

    def record(run, kill_at=None):
        def accumulate(runner, batch, slices, step, tc, layout, autocast):
            if step == kill_at:
                raise Killed  # after the checkpoint of step 4 and two more steps that were never saved
            seen.setdefault(run, {})[step] = batch.tokens.clone()
            return real(runner, batch, slices, step, tc, layout, autocast)
        monkeypatch.setattr(TorchTrainer, "_accumulate", staticmethod(accumulate))

    record("whole")
    TorchTrainer().fit(cfg, out_dir=str(tmp_path / "whole"), progress=False)
    record("killed", kill_at=6)
    with pytest.raises(Killed):
        TorchTrainer().fit(cfg, out_dir=str(tmp_path / "run"), progress=False)
    record("resumed")
    TorchTrainer().fit(cfg, out_dir=str(tmp_path / "run"), resume=True, progress=False)

    whole, killed, resumed = seen["whole"], seen["killed"], seen["resumed"]
    assert sorted(killed) == list(range(6)) and sorted(resumed) == list(range(4, 12))
    for step in range(12):
        got = resumed[step] if step >= 4 else killed[step]
        assert torch.equal(got, whole[step]), step
    assert len({tuple(whole[s].flatten().tolist()) for s in whole}) > 1  # the batches do change between steps


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (pinned host memory, non-blocking copies)")
def test_pinned_prefetch_on_cuda_gives_the_same_batches(toy):
    train, model = toy
    kw = dict(batch_size=8, seed=1, model=model, eps=1e-3, rows=slice(0, 8))
    pinned = StepLoader(train, 0, 3, prefetch=True, pin=True, **kw)
    for step in range(3):
        batch = pinned.next(step)
        assert batch.tokens.is_pinned() and batch.masked.is_pinned()
        on_gpu = batch.to("cuda", non_blocking=True)
        ref = draw_step(train, step, 8, 1, model, 1e-3)
        assert torch.equal(on_gpu.tokens.cpu(), ref.tokens) and torch.equal(on_gpu.masked.cpu(), ref.masked)
    pinned.close()
