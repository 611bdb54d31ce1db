"""One model of ``prime run``'s comparison (`prime_core.runs.compare`), in its own process: its config as JSON on
stdin, `run_pipeline` into ``--out`` with no progress bar; errors are the CLI's one line ("prime: error: …",
exit 2), which the parent shows in the model's row."""

from __future__ import annotations

import argparse
import json
import sys

from ..cliargs import run_command


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="prime-compare-child")
    p.add_argument("--out", required=True)
    flags = p.add_mutually_exclusive_group()
    flags.add_argument("--resume", action="store_true")
    flags.add_argument("--force", action="store_true")
    args = p.parse_args(argv)

    def body() -> int:
        from .config import Config
        from .pipeline import run_pipeline

        config = Config.from_dict(json.loads(sys.stdin.read()))
        run_pipeline(config, args.out, resume=args.resume, force=args.force, progress=False)
        return 0

    return run_command("prime", body)


if __name__ == "__main__":
    raise SystemExit(main())
