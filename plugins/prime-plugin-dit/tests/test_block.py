"""Block diffusion with partial masking (DESIGN §2.8) on the DiT: the block bounds against the exact likelihood
enumerated over reveal orders inside each block, the B = L and B = 1 identities, the attention mask, and
block-by-block sampling (KV cache exact, batch invariant, every sampler)."""

import math

import pytest
import torch

from prime_core import Config, ModelConfig, build_model, get_registry
from prime_core.diffusion import losses
from prime_core.api import (all_sequences, block_attention_mask, block_nelbo, block_tstep_nelbo,
                            exact_block_log_likelihood, exact_block_nelbo, exact_block_tstep_log_likelihood,
                            exact_block_tstep_nelbo, generate)
from prime_core.diffusion.block import block_joint_loss, block_logits, block_training_nelbo, mask_rate_times
from prime_core.diffusion.block_exact import exact_block_joint_loss
from prime_core.errors import ConfigError, PrimeError

HEADS = ("carry-over", "joint", "independent")


BACKBONE_OPTIONS = {"dit": {"preset": "tiny", "cond_dim": 8}, "dit-official": {"n_heads": 2, "n_blocks": 2, "cond_dim": 8}}


def block_model(*, c=3, length=4, ell=2, block=2, head="carry-over", noise="independent", schedule="cosine",
                seed=0, scale=0.4, dtype=torch.float32, backbone="dit"):
    width = {1: 8, 2: 8, 3: 12}.get(ell, 4 * ell)
    cfg = Config(model=ModelConfig(num_classes=c, length=length, ell=ell, width=width, head=head, noise=noise,
                                   schedule=schedule, backbone=backbone, block_size=block,
                                   backbone_options=BACKBONE_OPTIONS[backbone]))
    model = build_model(cfg, get_registry())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.to(dtype).eval()


def test_attention_mask_reads_like_the_definition():
    m = block_attention_mask(4, 2)  # noisy 0..3, clean 4..7; blocks {0,1}, {2,3}
    assert m.shape == (8, 8)
    assert m[0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]  # noisy block 0: itself only
    assert m[2].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]  # noisy block 1: itself + clean block 0
    assert m[5].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]  # clean block 0: clean block 0
    assert m[7].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # clean block 1: clean blocks ≤ 1


def test_noisy_block_never_reads_later_blocks_or_its_own_clean_copy():
    model = block_model(ell=1, length=6, block=2)
    x = torch.randint(0, 3, (2, 6))
    y0 = model.encode(x)
    y_t = torch.full_like(y0, model.mask_id)
    base = block_logits(model, y_t, y0)
    x2 = x.clone()
    x2[:, 2:4] = (x2[:, 2:4] + 1) % 3  # change clean block 1: only block 2's logits may move
    moved = (block_logits(model, y_t, model.encode(x2)) - base).abs().amax(-1)
    assert moved[:, :4].max() < 1e-6 and moved[:, 4:].max() > 1e-4


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("ell", [1, 2, 3])
def test_block_bounds_ge_exact_nll_and_probabilities_sum_to_one(head, ell):
    length = 4 if ell < 3 else 2
    block = 2 if ell < 3 else 1
    model = block_model(ell=ell, head=head, length=length, block=block)
    seqs = all_sequences(3, length)
    with torch.no_grad():
        ll = exact_block_log_likelihood(model, seqs)
        assert ll.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
        assert (exact_block_nelbo(model, seqs) >= -ll - 1e-6).all()
        for steps in (1, 3):
            ll_t = exact_block_tstep_log_likelihood(model, seqs, steps)
            assert ll_t.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
            assert (exact_block_tstep_nelbo(model, seqs, steps) >= -ll_t - 1e-6).all()


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("noise", ["independent", "grouped"])
def test_monte_carlo_block_bounds_are_unbiased(head, noise):
    model = block_model(ell=2, head=head, noise=noise)
    x = torch.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])
    rows = x.repeat(2000, 1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for estimate, exact in ((block_nelbo(model, rows, generator=g), exact_block_nelbo(model, x)),
                                (block_tstep_nelbo(model, rows, steps=4, generator=g),
                                 exact_block_tstep_nelbo(model, x, 4)),
                                (block_joint_loss(model, rows, generator=g, eps=0.0),
                                 exact_block_joint_loss(model, x))):
            est = estimate.view(2000, 2).double()
            se = est.std(0) / math.sqrt(2000)
            assert ((est.mean(0) - exact).abs() < 4 * se + 1e-3).all(), (est.mean(0), exact, se)


def test_block_size_l_is_todays_model_exactly():
    model = block_model(ell=2, length=4, block=4)
    plain = block_model(ell=2, length=4, block=None)
    plain.load_state_dict(model.state_dict())
    x = torch.randint(0, 3, (16, 4))
    with torch.no_grad():
        for block_fn, plain_fn, kw in ((block_nelbo, losses.nelbo, {}),
                                       (block_tstep_nelbo, losses.tstep_nelbo, {"steps": 8}),
                                       (block_training_nelbo, losses.training_nelbo, {}),
                                       (block_joint_loss, losses.joint_loss, {})):
            a = block_fn(model, x, generator=torch.Generator().manual_seed(5), **kw)
            b = plain_fn(plain, x, generator=torch.Generator().manual_seed(5), **kw)
            assert torch.equal(a, b), block_fn.__name__


def test_block_size_one_ell_one_is_the_exact_autoregressive_nll():
    model = block_model(ell=1, length=5, block=1)
    x = torch.randint(0, 3, (6, 5))
    with torch.no_grad():
        bound = block_nelbo(model, x, generator=torch.Generator().manual_seed(0))
        # an independent AR NLL: every position masked, clean tokens beside them, next-token cross-entropy
        y0 = model.encode(x)
        logits = model.backbone.block_forward(torch.full_like(y0, model.mask_id), y0, 1)
        ar = -torch.log_softmax(logits.float(), -1).gather(-1, x.unsqueeze(-1)).squeeze(-1).sum(-1)
        exact = -exact_block_log_likelihood(model, x)
    assert torch.allclose(bound.double(), ar.double(), atol=1e-5)
    assert torch.allclose(exact, ar.double(), atol=1e-5)


def test_clipped_mask_rate_times_stay_in_range():
    model = block_model()
    t = mask_rate_times(model, 64, 0.3, 0.8, generator=torch.Generator().manual_seed(0))
    rate = 1 - model.schedule.alpha(t.double())
    assert rate.min() >= 0.3 - 1e-5 and rate.max() <= 0.8 + 1e-5


# ------------------------------------------------------------------------------------------------ sampling
SAMPLERS = [("ancestral", {}, 6), ("first-hitting", {}, None), ("remdm", {}, 6), ("confidence", {}, 6)]


@pytest.mark.parametrize("name,options,steps", SAMPLERS)
@pytest.mark.parametrize("length", [8, 13])
@pytest.mark.parametrize("backbone", ["dit", "dit-official"])  # prime's DiT and the imported BD3-LM network
def test_kv_cache_is_exact_and_rows_are_batch_invariant(name, options, steps, length, backbone):
    model = block_model(c=9, ell=2, length=8, block=2, dtype=torch.float64, backbone=backbone)  # b^ℓ = C: no digit is forced, so
    # confidences never tie at exactly log 1 in one path and 1e-16 below it in the other
    sampler = get_registry().build("sampler", name, **options)
    seeds = [11, 12, 13]
    kw = dict(steps=steps, temperature=1.0, top_p=1.0, draw_dtype=torch.float64, cache=True)
    fixed = torch.full((3, length), -1)
    fixed[:, :3] = torch.tensor([1, 2, 3])  # a prompt filling block 0 and half of block 1
    cached = generate(model, sampler, length, seeds=seeds, fixed=fixed, kv_cache=True, **kw)
    reference = generate(model, sampler, length, seeds=seeds, fixed=fixed, kv_cache=False, **kw)
    assert torch.equal(cached.tokens, reference.tokens)
    assert (cached.tokens[:, :3] == torch.tensor([1, 2, 3])).all() and (cached.tokens < 9).all()
    alone = generate(model, sampler, length, seeds=seeds[1:2], fixed=fixed[1:2], kv_cache=True, **kw)
    assert torch.equal(alone.tokens[0], cached.tokens[1])
    assert cached.blocks == -(-length // 2)


def test_stop_at_eos_cuts_rows():
    model = block_model(c=5, ell=1, length=8, block=2)
    sampler = get_registry().build("sampler", "ancestral")
    g = generate(model, sampler, 12, seeds=list(range(6)), eos_id=0, steps=4)
    for row, stop in zip(g.tokens, g.stopped_at):
        if stop is not None:
            assert (row[stop:] == 0).all() and not (row[:stop] == 0).any()


# ------------------------------------------------------------------------------------------------ bad input
def test_block_size_must_divide_length():
    with pytest.raises(ConfigError, match="does not divide L = 4"):
        block_model(length=4, block=3)


@pytest.mark.parametrize("backbone", ["mlp", "dit-ar"])
def test_block_size_needs_a_backbone_that_masks_attention(backbone):
    cfg = Config(model=ModelConfig(num_classes=3, length=4, ell=1, width=8, backbone=backbone, block_size=2))
    with pytest.raises(ConfigError, match="can mask attention"):
        build_model(cfg, get_registry())


def test_block_model_must_be_time_independent():
    cfg = Config(model=ModelConfig(num_classes=3, length=4, ell=1, width=8, backbone="dit", block_size=2,
                                   time_conditioned=True, backbone_options={"preset": "tiny"}))
    with pytest.raises(ConfigError, match="time_conditioned = false"):
        build_model(cfg, get_registry())


def test_kv_cache_of_a_model_without_blocks_is_refused():
    model = block_model(block=None)
    sampler = get_registry().build("sampler", "ancestral")
    with pytest.raises(PrimeError, match="block-diffusion models"):
        generate(model, sampler, 4, seeds=[0], kv_cache=True, steps=2)


def test_kv_cache_of_a_backbone_without_one_is_refused():
    model = block_model()
    model.backbone.block_decode = None  # a backbone that masks attention but keeps no cache
    sampler = get_registry().build("sampler", "ancestral")
    with pytest.raises(PrimeError, match="has no block KV cache"):
        generate(model, sampler, 4, seeds=[0], kv_cache=True, steps=2)
    assert generate(model, sampler, 4, seeds=[0], steps=2).tokens.shape == (1, 4)  # auto: the reference path


def test_windows_flags_are_refused_for_block_models():
    model = block_model()
    sampler = get_registry().build("sampler", "ancestral")
    with pytest.raises(PrimeError, match="block by block"):
        generate(model, sampler, 8, seeds=[0], stride=2, steps=2)


# ------------------------------------------------------------------------------------------------ the CLI
TINY = ["--set", "data.dataset=toy-markov", "--set", "data.options={num_classes = 6, length = 4, num_eval = 16}",
        "--set", "model.width=8", "--set", "model.backbone=dit", "--set", "model.ell=2",
        "--set", 'model.backbone_options={preset = "tiny", cond_dim = 8}', "--set", "train.batch_size=8",
        "--set", "train.warmup=0", "--set", "train.steps=2", "--set", "train.checkpoint_every=2",
        "--set", "eval.mc_samples=2", "--set", "eval.tstep_steps=4", "--set", "eval.max_sequences=8",
        "--set", "sample.steps=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from prime_core.cli import main

    out = tmp_path_factory.mktemp("block") / "run"
    assert main(["train", "--out", str(out), "--quiet", *TINY, "--set", "model.block_size=2"]) == 0
    return out / "checkpoint.safetensors"


def test_cli_eval_prints_block_bounds_only(trained, capsys):
    import json

    from prime_core.cli import main

    capsys.readouterr()
    assert main(["eval", str(trained), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in report["metrics"]]
    assert names == ["block-nelbo", "block-tstep-nelbo", "block-joint-loss"]
    for row in report["metrics"][:2]:
        assert row["is_bound"] and "block" in row["label"] and "perplexity_upper_bound" in row
    assert not report["metrics"][2]["is_bound"]
    # the enumerated exact NLL of this tiny block model (4 units per block) sits below both bounds' estimates
    assert report["exact_nll"]["value"] <= report["metrics"][0]["estimate"] + 4 * report["metrics"][0]["stderr"]


def test_cli_sample_any_length_with_fixed_prefix(trained, capsys):
    import json

    from prime_core.cli import main

    capsys.readouterr()
    assert main(["sample", str(trained), "--json", "--length", "11", "--fix", "0:3,1:4,2:5", "-n", "3",
                 "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["blocks"] == 6 and all(row[:3] == [3, 4, 5] and len(row) == 11 for row in report["tokens"])


@pytest.mark.parametrize("extra,message", [
    (["--set", "model.block_size=3"], "does not divide L = 4"),
    (["--set", "model.block_size=2", "--set", "model.backbone=mlp", "--set", "model.backbone_options={}"],
     "can mask attention"),
])
def test_cli_bad_block_size_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, message):
    from prime_core.cli import main

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_kv_cache_of_a_model_without_blocks_is_exit_2(tmp_path, capsys):
    from prime_core.cli import main

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *TINY]) == 0
    capsys.readouterr()
    assert main(["sample", str(out / "checkpoint.safetensors"), "--kv-cache", "--quiet", "--out",
                 str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "block-diffusion models" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def text_block_ckpt(tmp_path_factory):
    from prime_core.cli import main

    pytest.importorskip("prime_plugin_text")
    root = tmp_path_factory.mktemp("text-block")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(f"the quick brown fox {i} jumps over the lazy dog" for i in range(50)))
    opts = (f'data.options={{ source = "{corpus}", tokenizer = "bytes", length = 16, '
            f'cache_dir = "{root / "cache"}" }}')
    assert main(["train", "--out", str(root / "run"), "--quiet", "--set", 'data.dataset="text"', "--set", opts,
                 "--set", 'model.backbone="dit"', "--set", 'model.backbone_options={preset = "tiny", cond_dim = 8}',
                 "--set", "model.width=16", "--set", "model.block_size=4", "--set", "train.batch_size=4",
                 "--set", "train.steps=2", "--set", "train.checkpoint_every=2"]) == 0
    return str(root / "run" / "checkpoint.safetensors")


def test_cli_prompt_then_any_length_starts_with_the_prompt(text_block_ckpt, capsys):
    import json

    from prime_core.cli import main

    capsys.readouterr()
    assert main(["sample", text_block_ckpt, "--prompt", "the quick", "--length", "30", "-n", "2", "--json",
                 "--quiet", "--steps", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["decoded"]) == 2 and all(text.startswith("the quick") for text in report["decoded"])


def test_length_not_above_the_prompt_is_refused(text_block_ckpt, capsys, tmp_path):
    from prime_core.cli import main

    capsys.readouterr()
    assert main(["sample", text_block_ckpt, "--prompt", "the quick", "--length", "9", "--quiet",
                 "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "nothing to generate" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_mask_rate_range_is_checked_and_trains(tmp_path, capsys):
    from prime_core.cli import main

    assert main(["train", "--out", str(tmp_path / "bad"), "--quiet", *TINY, "--set", "model.block_size=2",
                 "--set", "train.mask_rate_range=[0.8, 0.3]"]) == 2
    assert "0 ≤ lo < hi ≤ 1" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["train", "--out", str(tmp_path / "ok"), "--quiet", *TINY, "--set", "model.block_size=2",
                 "--set", "train.mask_rate_range=[0.3, 0.8]"]) == 0


def test_shared_times_from_a_distributed_trainer_are_accepted():
    model = block_model()
    x = torch.randint(0, 3, (4, 4))
    t = torch.rand(4)
    masked = torch.rand(4, 4, 2) < 0.5
    for fn in (losses.training_nelbo, losses.joint_loss):
        assert fn(model, x, t=t, masked=masked).shape == (4,)


def test_cli_exported_runtimes_are_refused_for_block_models(trained, capsys):
    from prime_core.cli import main

    pytest.importorskip("export")
    capsys.readouterr()
    assert main(["sample", str(trained), "--runtime", "onnxruntime", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--runtime torch only" in err and len(err.strip().splitlines()) == 1


def test_prime_run_samples_block_by_block_and_reports_block_bounds(tmp_path):
    from prime_core.cli import main

    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", *TINY, "--set", "model.block_size=2",
                 "--set", "sample.num_samples=3"]) == 0
    report = (out / "report.md").read_text()
    assert "block NELBO" in report and "continuous-time NELBO (bound" not in report


def test_the_one_block_forward_of_a_block_model_is_refused():
    model = block_model()
    y = model.encode(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(PrimeError, match="block-diffusion model"):
        model.log_probs(y)


def test_one_progress_bar_over_the_blocks_not_one_per_block():
    """`prime sample` of a block model shows one bar over its blocks; each block's sampler runs without its own."""
    model = block_model(c=9, ell=2, length=8, block=2)
    inner = get_registry().build("sampler", "ancestral")
    seen = []

    class Spy:
        def sample(self, *args, **kwargs):
            seen.append(kwargs.get("progress"))
            return inner.sample(*args, **kwargs)

    generate(model, Spy(), 8, seeds=[0], steps=2, progress=True)
    assert seen == [False] * 4
