"""The main job: train → sample → evaluate → write a report (markdown + PNGs) into one output folder.

Every stage's settings are checked before training starts (`check_stages`): the sampler and its options, the
prompts against L, the data set's locations; and the report's files must not be the user's
(`prime_core.runs.rundir.check_outputs`). A run that fails before its first checkpoint leaves nothing it created
(`prime_core.runs.rundir.claim`)."""

from __future__ import annotations

import json
import os
import time

import attrs
import torch

from .build import build_dataset, dataset_for_checkpoint, load_model, resolve_sizes, user_locations
from .config import Config
from ..device import train_device
from .evaluate import evaluate_report, format_report
from ..errors import PrimeError
from ..interfaces import TextPrompts, presentation
from ..sampling.batch_budget import batch_rows
from ..sampling.blocks import sample_rows
from ..sampling.prompts import collect_prompts, decode_row, fixed_rows, generate_prompted
from ..plugin.registry import Registry
from ..plugin.default import get_registry
from .report import finish_training, write_report_markdown
from .rundir import REPORT_ARTIFACTS, check_outputs, claim, local_out_dir, write_text_atomic
from ..sampling.ancestral import row_seeds


def run_pipeline(config: Config, out_dir: str, *, resume: bool = False, force: bool = False,
                 progress: bool = True, registry: Registry | None = None, echo=print) -> dict:
    """Train, sample, evaluate and report into ``out_dir``, held exclusively from start to report."""
    registry = registry or get_registry()
    out_dir = local_out_dir(out_dir)
    config = attrs.evolve(config, compare=())  # a model's checkpoint holds its own config, not a comparison
    # under torchrun the trainer takes the lock on rank 0 once its process group can tell the other ranks;
    # the claim here keeps it until the report is written
    with claim(out_dir, lock="WORLD_SIZE" not in os.environ):
        return _run(config, out_dir, resume, force, progress, registry, echo)


def _run(config: Config, out_dir: str, resume: bool, force: bool, progress: bool, registry: Registry,
         echo) -> dict:
    check_stages(config, registry)  # before any work: a run that cannot sample, evaluate or report is refused
    if "WORLD_SIZE" not in os.environ:  # under torchrun rank 0 records the report's files when its claim ends
        check_outputs(out_dir, REPORT_ARTIFACTS, resume=resume)
    t0 = time.perf_counter()
    echo(f"[1/3] training ({config.train.trainer} trainer, {config.train.steps} steps) → {out_dir}")
    trainer = registry.build("trainer", config.train.trainer)
    ckpt = trainer.fit(config, out_dir=out_dir, resume=resume, progress=progress, force=force)
    train_s = time.perf_counter() - t0
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 samples, evaluates and reports
        return {}
    finish_training(out_dir)

    echo("[2/3] sampling")
    locations = user_locations(config, registry)  # the user's data locations, never the checkpoint's
    device = train_device(config)  # sampled and evaluated where it was trained (prime run --device)
    model, config, loaded = load_model(ckpt, registry, device=device)
    s = config.sample
    sampler = registry.build("sampler", s.sampler, **s.options)
    t1 = time.perf_counter()
    batch = batch_rows(model, s.num_samples, s.memory_budget_mib * 2**20)
    # all rows at once when they fit; else in batches (same tokens: keyed rows), asked only then, since a
    # plugin's sampler need not take batch_size
    chunked = {} if batch >= s.num_samples else {"batch_size": batch}
    result = sample_rows(model, sampler, s.num_samples, steps=s.steps, seed=0, temperature=s.temperature,
                         top_p=s.top_p, draw_dtype=getattr(torch, s.draw_dtype), progress=progress,
                         **chunked)  # a block model: block by block
    sample_s = time.perf_counter() - t1
    shown = presentation(dataset_for_checkpoint(config, loaded.meta.get("data"), locations=locations,
                                                registry=registry))
    texts = shown.decode_samples(result.tokens)
    png = shown.render(result.tokens, os.path.join(out_dir, "samples.png"))
    sampling = {"num_samples": len(result.tokens), "steps": result.steps,
                "nfe_mean": float(result.nfe.float().mean()),
                "idle_ratio": float(result.idle_steps.float().mean() / max(result.steps, 1)),
                "seconds": sample_s, "draw_dtype": s.draw_dtype, "sampler": s.sampler,
                "temperature": s.temperature, "top_p": s.top_p}
    sample_scores = shown.score_samples(texts)
    eos = _eos_stops(shown, result.tokens)
    completions = _complete_prompts(model, sampler, shown, s, progress) if s.prompts else None

    echo("[3/3] evaluating")
    report = evaluate_report(ckpt, registry=registry, data_options=locations, device=device)
    report.update(sampling=sampling, train_seconds=train_s, samples=texts[:8], sample_scores=sample_scores)
    if completions is not None:
        report["completions"] = completions
    if eos is not None:
        report["eos"] = eos
    write_text_atomic(os.path.join(out_dir, "report.json"), json.dumps(report, indent=2))
    write_report_markdown(os.path.join(out_dir, "report.md"), config, report, png)
    echo(format_report(report))
    echo(f"sampling: {sampling['num_samples']} samples × {sampling['steps']} steps, NFE {sampling['nfe_mean']:.1f}"
         f"/sequence, idle steps {100 * sampling['idle_ratio']:.1f} %")
    for what, scores in (("samples", sample_scores), ("prompt completions", (completions or {}).get("scores", []))):
        for score in scores:
            echo(f"{what}: {score['label']}: {_value(score['value'])} ({score['detail']})")
    if eos is not None:
        echo(f"rows that stopped at EOS (--stop-at-eos): {eos['stopped']} of {eos['rows']} samples"
             + ("" if completions is None else f", {completions['stopped']} of {len(completions['rows'])} "
                "prompt completions"))
    for text in texts[:3]:
        echo(f"  sample: {text[:200]}")
    for row in (completions or {}).get("rows", [])[:2]:
        echo(f"  completion: {row['prompt']}⟨{row['completion'][:200]}⟩")
    echo(f"report: {os.path.join(out_dir, 'report.md')}")
    return report


def _eos_stops(shown, tokens: torch.Tensor, shown_rows: int = 8) -> dict | None:
    """What `prime sample --stop-at-eos` does to the unconditional rows (one window each, so cutting the sampled
    rows at their first EOS is exactly that): how many rows hold an EOS, and the first ``shown_rows`` of them cut
    there. None for data without an EOS id."""
    eos_id = shown.eos_id if isinstance(shown, TextPrompts) else None
    if eos_id is None:
        return None
    stops = [ids.index(eos_id) if eos_id in ids else None for ids in tokens.tolist()]
    trimmed = [{"row": i, "stopped_at_eos": stop, "text": decode_row(shown, ids, None, stop).decoded}
               for i, (ids, stop) in enumerate(zip(tokens.tolist(), stops)) if stop is not None]
    return {"eos_id": eos_id, "rows": len(stops), "stopped": len(trimmed), "trimmed": trimmed[:shown_rows]}


def check_stages(config: Config, registry: Registry, dataset=None) -> None:
    """What the stages after training need, checked before it starts (each failure is one line, exit 2):
    the sampler exists and takes ``sample.options``; the data set's locations resolve; ``sample.prompts`` need a
    data set with text in and out (the `TextPrompts` capability), and each prompt must fit in the L tokens
    generated (tokenised as after training: the data set is built once more here, only when there are prompts,
    unless ``dataset``, built from this config's [data], is given).
    The eval and sample numbers themselves are checked when the config is loaded."""
    s = config.sample
    registry.build("sampler", s.sampler, **s.options)  # unknown name / options: refused now, not after training
    user_locations(config, registry)
    if not s.prompts:
        return
    if not issubclass(registry.get("dataset", config.data.dataset).obj, TextPrompts):
        raise PrimeError(f"sample.prompts are text, but data set {config.data.dataset!r} has no tokenizer "
                         "(the TextPrompts capability); remove sample.prompts or use a text data set")
    dataset = build_dataset(config, registry) if dataset is None else dataset
    length = resolve_sizes(config, dataset.num_classes, dataset.length).model.length
    fixed_rows(collect_prompts(dataset, list(s.prompts), None, []), s.per_prompt, length)


def _complete_prompts(model, sampler, shown, s, progress: bool) -> dict:
    """``sample.prompts``, ``sample.per_prompt`` rows each: the prompt's tokens fixed at the start of L
    positions, the rest drawn by the configured sampler (row seeds of seed 1, so they differ from the
    unconditional rows of seed 0); returns the rows (prompt, completion), their scores, NFE and idle steps."""
    prompts = collect_prompts(shown, list(s.prompts), None, [])
    rows = [p for p in prompts for _ in range(s.per_prompt)]
    g = generate_prompted(model, sampler, shown, model.length, seeds=row_seeds(len(rows), 1),
                          fixed=fixed_rows(prompts, s.per_prompt, model.length), prompts=rows, steps=s.steps,
                          temperature=s.temperature, top_p=s.top_p, draw_dtype=getattr(torch, s.draw_dtype),
                          progress=progress, eos_id=shown.eos_id)  # as `prime sample --stop-at-eos`
    decoded = [decode_row(shown, g.tokens[i].tolist(), p, g.stopped_at[i]) for i, p in enumerate(rows)]
    return {"rows": [{"prompt": d.prompt, "completion": d.completion, "stopped_at_eos": stop}
                     for d, stop in zip(decoded, g.stopped_at)],
            "stopped": sum(stop is not None for stop in g.stopped_at),
            "scores": shown.score_samples([d.decoded for d in decoded], [d.prompt for d in decoded]),
            "nfe_mean": float(g.nfe.float().mean()),
            "idle_ratio": float(g.idle_steps.float().mean() / (g.steps * g.blocks))}


def _value(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
