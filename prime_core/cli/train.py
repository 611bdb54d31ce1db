"""``prime train`` (one training run into a run folder) and ``prime run`` (the main job: train, sample, evaluate,
report). Both take the same run options (`options.add_run_options`)."""

from __future__ import annotations

import argparse
import os

from .. import cliargs
from ..errors import PrimeError
from .options import add_run_options, registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("train", help="train a model from a TOML config")
    add_run_options(sp, "runs/default", what="trains")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("run", help="the main job: train, sample, evaluate and write a report")
    add_run_options(sp, "runs/main", what="trains, samples and evaluates")
    sp.add_argument("--jobs", type=cliargs.count("--jobs", 1, 256), help="[[compare]]: models trained at once, "
                    "each a child process with its share of the cores (default: the usable cores)")
    sp.add_argument("--no-compare", action="store_true", help="train only the main model, not [[compare]]'s")
    sp.set_defaults(func=cmd_run)


def _check_run_flags(args) -> None:
    """``--resume`` continues the folder's run; ``--force`` replaces it: together they contradict each other."""
    if args.resume and args.force:
        raise PrimeError("--resume continues the folder's run and --force starts it over: pass one of them")


def cmd_train(args) -> int:
    from ..device import with_train_device
    from ..runs.config import load_config
    from ..runs.report import finish_training
    from ..runs.rundir import claim, local_out_dir

    _check_run_flags(args)
    config = with_train_device(load_config(args.config, args.set), args.device)
    trainer = registry().build("trainer", config.train.trainer)
    out = local_out_dir(args.out)
    # held until loss.png is drawn; under torchrun the trainer takes the lock on rank 0 (see prime_core.runs.rundir)
    with claim(out, lock="WORLD_SIZE" not in os.environ):
        url = trainer.fit(config, out_dir=out, resume=args.resume, progress=not args.quiet, force=args.force)
        finish_training(out)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every process returns here; rank 0 speaks
        print(f"checkpoint: {url}")
    return 0


def cmd_run(args) -> int:
    from ..device import with_train_device
    from ..runs.config import load_config
    from ..runs.compare import run_main_job

    _check_run_flags(args)
    config = with_train_device(load_config(args.config, args.set), args.device)
    report = run_main_job(config, args.out, resume=args.resume, force=args.force, progress=not args.quiet,
                          jobs=args.jobs, compare=not args.no_compare)  # with the config's [[compare]] models
    return 1 if report.get("comparison", {}).get("failed") else 0  # a compared model failed (its row says so)
