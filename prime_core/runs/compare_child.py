"""One model of ``prime run``'s comparison (`prime_core.runs.compare`), in its own process: its config as one JSON
line on stdin, `run_pipeline` into ``--out`` with no progress bar; errors are the CLI's one line ("prime: error: …",
exit 2), which the parent shows in the model's row. Later lines on stdin are torch thread counts, each announced
by SIGUSR1 (the parent gives a model more cores when another one ends)."""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys

from ..cliargs import run_command

#: The child's first line on stdout: its `GROW_SIGNAL` handler is in place (before, the signal would end it).
READY = "prime-compare-child: ready"
GROW_SIGNAL = getattr(signal, "SIGUSR1", None)  # None off POSIX: no growth there


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

        config = Config.from_dict(json.loads(sys.stdin.readline()))
        if GROW_SIGNAL is not None:  # stdin's first line is read: later lines are thread counts
            signal.signal(GROW_SIGNAL, _set_threads)
            print(READY, flush=True)
        try:
            run_pipeline(config, args.out, resume=args.resume, force=args.force, progress=False)
        finally:
            # from here on the signal means nothing; ignored, it cannot end the process while Python shuts down
            # (finalisation puts a Python handler back to the default action, which would kill it)
            if GROW_SIGNAL is not None:
                signal.signal(GROW_SIGNAL, signal.SIG_IGN)
        return 0

    return run_command("prime", body)


def _set_threads(signum, frame) -> None:
    """`GROW_SIGNAL`: the parent wrote a new torch thread count on stdin (Python runs this between two operations
    of the main thread, which is where torch's thread pool may be resized). Two signals may arrive as one, so all
    that was written is read (from the descriptor: the config line was read before `READY`) and the last count
    is taken."""
    fd, data = sys.stdin.fileno(), b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    counts = [int(word) for word in data.split() if word.isdigit() and int(word) > 0]
    if counts:
        import torch

        torch.set_num_threads(counts[-1])


if __name__ == "__main__":
    raise SystemExit(main())
