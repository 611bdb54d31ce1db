"""``prime import {mdlm,mdm-prime,ar,bd3lm} CKPT --out MODEL.safetensors``: added through ``register_commands``."""

from __future__ import annotations

from prime_core import hookimpl


@hookimpl
def register_commands(commands):
    sp = commands.add_parser("import", help="import a released MDLM / MDM-Prime / AR / BD3-LM checkpoint (no pickled "
                             "code runs)",
                             description="Read an official Lightning checkpoint, plain state dict or Hugging-Face "
                                         "folder without executing pickled code and write a prime checkpoint.")
    sp.add_argument("arch", choices=["mdlm", "mdm-prime", "ar", "bd3lm"], help="the released model's kind")
    sp.add_argument("checkpoint", help="Lightning .ckpt, a state-dict file, or a folder with config.json")
    sp.add_argument("--out", required=True, help="the prime checkpoint to write (.safetensors, a local path)")
    sp.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    sp.add_argument("--weights", choices=["ema", "model"],
                    help="EMA (ema.shadow_params; the default when present) or the trained weights")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a hyper-parameter the file lacks, in the official config's names, e.g. model.n_heads=12, "
                         "model.length=1024, prime.carry_over=true, time_conditioning=false (repeatable; unknown "
                         "keys are refused)")
    sp.add_argument("--tokenizer", default="gpt2", help="tokenizer stored with the model: gpt2 (default) or bytes")
    sp.add_argument("--tokenizer-option", action="append", default=[], metavar="KEY=PATH",
                    help="its local files, e.g. encoder=…/encoder.json merges=…/vocab.bpe, or tiktoken=…/gpt2.tiktoken")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=_run)  # prime's main runs it under cliargs.run_command (one line, exit 2)


def _run(args) -> int:
    import json

    from .importer import import_checkpoint, parse_overrides

    options = {}
    for item in args.tokenizer_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--tokenizer-option expects KEY=PATH, e.g. encoder=…/encoder.json, got {item!r}")
        options[key] = value
    summary = import_checkpoint(args.arch, args.checkpoint, args.out, weights=args.weights,
                                overrides=parse_overrides(args.set), tokenizer=args.tokenizer,
                                tokenizer_options=options, force=args.force)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        off = summary["official"]
        print(f"imported {summary['source']} (sha256 {summary['sha256'][:12]}…, {summary['kind']}, "
              f"{summary['weights']} weights) → {summary['out']}: {summary['arch']}, C={off['num_classes']}, "
              f"ℓ={off['ell']}, b={off['base']}, L={off['length']}, D={off['width']}, {off['n_blocks']} blocks × "
              f"{off['n_heads']} heads, carry-over={off['carry_over']}, time-conditioned={off['time_conditioned']}"
              + (f", block size B={off['block_size']}" if off.get("block_size") else ""))
    return 0
