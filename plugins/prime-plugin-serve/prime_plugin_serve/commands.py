"""``prime serve CKPT [--host 127.0.0.1] [--port 8000] …``: added through the ``register_commands`` hook."""

from __future__ import annotations

import ipaddress
import os

from prime_core import hookimpl
from prime_core import cliargs

from .requests import Limits

API_KEY_ENV = "PRIME_SERVE_API_KEY"
_D = Limits()


def _limit(flag: str, lo: int = 1, hi: int = cliargs.MAX_COUNT):
    return cliargs.count(flag, lo, hi)


@hookimpl
def register_commands(commands):
    sp = commands.add_parser(
        "serve", help="serve a checkpoint over an OpenAI-compatible HTTP API (continuous batching, playground)",
        description="Serve CKPT: POST /v1/completions (OpenAI's completions API plus prime's steps, sampler, infill, "
                    "length), POST /v1/denoise (the denoising as server-sent events), GET /v1/models, GET /health and "
                    "a playground page at /. Concurrent requests share one sampler batch; rows join at step "
                    "boundaries (plain ancestral sampler) or between whole requests (other samplers, runtimes). "
                    "A request with a seed returns what `prime sample` returns with the same seed, prompt and "
                    "settings, whether served alone or batched. See docs/serving.md.")
    sp.add_argument("checkpoint", help="the prime checkpoint to serve (.safetensors, a local path)")
    sp.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only; any other address needs --api-key "
                         f"or ${API_KEY_ENV})")
    sp.add_argument("--port", type=_limit("--port", 0, 65535), default=8000, help="TCP port (default 8000; 0: any free)")
    sp.add_argument("--api-key", help=f"require 'Authorization: Bearer KEY' on every request except GET /, /health "
                                      f"and the page's files (default: ${API_KEY_ENV}, if set)")
    sp.add_argument("--model-name", help="the model id of /v1/models and of responses (default: the file's name)")
    sp.add_argument("--runtime", default="torch",
                    help="torch (eager, default; step-level batching) or a registered runtime such as onnxruntime "
                         "(prime-export; ancestral sampler, each request run whole)")
    sp.add_argument("--weights", default="model", choices=["model", "ema"])
    cliargs.add_device(sp, what="samples (default auto; --runtime torch only)")
    g = sp.add_argument_group("limits (a request beyond one is refused with a 4xx JSON error)")
    g.add_argument("--max-body-bytes", type=_limit("--max-body-bytes"), default=_D.max_body_bytes,
                   help=f"request body size (default {_D.max_body_bytes}; larger: 413)")
    g.add_argument("--max-prompt-chars", type=_limit("--max-prompt-chars"), default=_D.max_prompt_chars,
                   help=f"characters per prompt or infill template (default {_D.max_prompt_chars}); the prompt's "
                        "tokens must also leave room in the model's L")
    g.add_argument("--max-prompts", type=_limit("--max-prompts"), default=_D.max_prompts,
                   help=f"prompts in one request's list (default {_D.max_prompts})")
    g.add_argument("--max-tokens", type=_limit("--max-tokens"), default=None,
                   help="largest max_tokens (default L, the model's window; never above L)")
    g.add_argument("--max-n", type=_limit("--max-n", 1, 4096), default=_D.max_n,
                   help=f"largest n, rows per prompt (default {_D.max_n})")
    g.add_argument("--max-steps", type=_limit("--max-steps", 1, cliargs.MAX_STEPS), default=_D.max_steps,
                   help=f"largest steps, T (default {_D.max_steps})")
    g.add_argument("--max-batch-rows", type=_limit("--max-batch-rows", 1, 65536), default=_D.max_rows,
                   help=f"rows denoised together (default {_D.max_rows}); one request's prompts × n must fit")
    g.add_argument("--max-waiting", type=_limit("--max-waiting", 0, 1_000_000), default=_D.max_waiting,
                   help=f"requests waiting to join the batch (default {_D.max_waiting}; beyond: 429 with Retry-After)")
    g.add_argument("--grace", type=cliargs.real("--grace", lo=0.0, hi=3600.0, lo_open=False), default=_D.grace,
                   help=f"seconds SIGTERM waits for requests in flight (default {_D.grace:g}; new ones get 503)")
    sp.add_argument("--threads", type=_limit("--threads", 1, 1024),
                    help="torch intra-op threads of this replica (default: torch's; 1 per replica when several "
                         "replicas share a machine's cores)")
    sp.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                    help="uvicorn's log level (default warning)")
    sp.set_defaults(func=_run)  # prime's main runs it under cliargs.run_command (one line, exit 2)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _run(args) -> int:
    from prime_core.api import PrimeError

    key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    if key is not None and not key.strip():
        raise PrimeError("--api-key is empty; pass a non-empty key")
    if not is_loopback(args.host) and key is None:
        raise PrimeError(f"--host {args.host} is reachable from other machines: pass --api-key KEY (or set "
                         f"{API_KEY_ENV}) so every request must carry it, or bind 127.0.0.1")
    if args.runtime != "torch" and args.device is not None:
        raise PrimeError(f"--device places the eager model (--runtime torch); --runtime {args.runtime} runs on its "
                         "own: leave --device out")
    limits = Limits(max_body_bytes=args.max_body_bytes, max_prompt_chars=args.max_prompt_chars,
                    max_prompts=args.max_prompts, max_tokens=args.max_tokens, max_n=args.max_n,
                    max_steps=args.max_steps, max_rows=args.max_batch_rows, max_waiting=args.max_waiting,
                    grace=args.grace)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    from .server import serve

    return serve(args.checkpoint, host=args.host, port=args.port, api_key=key, limits=limits, device=args.device,
                 runtime=args.runtime, weights=args.weights, model_name=args.model_name, log_level=args.log_level)
