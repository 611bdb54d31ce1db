"""Load on `prime serve`: 1, 4, 16 and 64 concurrent clients, each for a bounded time, interleaved in rounds.

    python bench/serve_load.py CKPT [--clients 1,4,16,64] [--seconds 20] [--rounds 2] [--max-tokens 32]
                               [--steps 64] [--json runs/serve-load.json]

Starts `prime serve CKPT --port 0` (a subprocess, so server and clients are both on this machine's CPUs) and
sends POST /v1/completions from c concurrent clients (asyncio + httpx; each client sends its next request when its
last one is answered) for --seconds; requests still in flight when the window closes are waited for and counted.
Request i uses prompt i mod |prompts| and seed i, so every level sends the same requests in the same order.
One client is the sequential baseline: the same requests sent one at a time. Levels run interleaved
(1, 4, 16, 64, 1, 4, …) and are summed over --rounds, so drift of the machine hits every level alike.

Printed per level: requests/s, completion tokens/s, p50/p95 latency, errors (non-200 or transport), lost
(sent, never answered), tokens/s relative to one client, and how many answers equal the same request's answer at
one client (batch invariance: they must all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx

PROMPTS = ["It is a truth universally acknowledged", "Emma Woodhouse, handsome, clever, and rich",
           "She was the youngest of the two daughters", "The family of Dashwood had long been settled in Sussex",
           "No one who had ever seen Catherine Morland in her infancy", "Sir Walter Elliot, of Kellynch Hall",
           "Mr. Bennet was among the earliest of those", "He had been at the school"]


def start_server(ckpt: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "prime_core", "serve", ckpt, "--port", "0", "--max-waiting", "1024", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://\S+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"serve_load: prime serve did not start: {line!r}")
    return proc, match.group(0)


async def level(url: str, clients: int, seconds: float, body: dict, prompts: list[str], start_id: int = 0) -> dict:
    """c clients, each in a loop, until ``seconds`` pass; returns latencies, tokens, errors, texts by request id."""
    counter = iter(range(start_id, 10**9))
    lat, tokens, errors, texts, sent = [], 0, 0, {}, 0
    deadline = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient):
        nonlocal tokens, errors, sent
        while time.perf_counter() < deadline:
            i = next(counter)
            sent += 1
            t0 = time.perf_counter()
            try:
                r = await http.post(url + "/v1/completions",
                                    json={**body, "prompt": prompts[i % len(prompts)], "seed": i})
            except httpx.HTTPError:
                errors += 1
                continue
            if r.status_code != 200:
                errors += 1
                continue
            lat.append(time.perf_counter() - t0)
            data = r.json()
            tokens += data["usage"]["completion_tokens"]
            texts[i] = data["choices"][0]["text"]

    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    return {"elapsed": elapsed, "latencies": lat, "tokens": tokens, "errors": errors, "sent": sent, "texts": texts}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--clients", default="1,4,16,64")
    ap.add_argument("--seconds", type=float, default=20.0, help="per level and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable; default: Austen openings)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra prime serve flag (repeatable)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    prompts = args.prompt or PROMPTS
    proc, url = start_server(args.checkpoint, args.server_arg)
    body = {"max_tokens": args.max_tokens, "steps": args.steps}
    totals = {c: {"elapsed": 0.0, "latencies": [], "tokens": 0, "errors": 0, "sent": 0, "texts": {}} for c in levels}
    try:
        card = httpx.get(url + "/v1/models").json()["data"][0]
        asyncio.run(level(url, 1, 2.0, body, prompts, start_id=10**8))  # warm-up (not counted)
        for _ in range(args.rounds):
            for c in levels:
                r = asyncio.run(level(url, c, args.seconds, body, prompts))
                t = totals[c]
                t["elapsed"] += r["elapsed"]
                t["latencies"] += r["latencies"]
                t["tokens"] += r["tokens"]
                t["errors"] += r["errors"]
                t["sent"] += r["sent"]
                t["texts"].update(r["texts"])
        health = httpx.get(url + "/health").json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    base = totals[levels[0]]
    base_tps = base["tokens"] / base["elapsed"]
    if not base_tps:
        raise SystemExit(f"serve_load: no request succeeded at {levels[0]} client(s) ({base['errors']} errors); "
                         "are the prompts shorter than the model's L?")
    rows = []
    for c in levels:
        t = totals[c]
        same = [i for i in t["texts"] if i in base["texts"]]
        rows.append({"clients": c, "requests": len(t["latencies"]), "seconds": t["elapsed"],
                     "requests_per_s": len(t["latencies"]) / t["elapsed"], "tokens_per_s": t["tokens"] / t["elapsed"],
                     "p50_s": pct(t["latencies"], 0.5), "p95_s": pct(t["latencies"], 0.95), "errors": t["errors"],
                     "lost": t["sent"] - len(t["latencies"]) - t["errors"],
                     "vs_one_client": (t["tokens"] / t["elapsed"]) / base_tps,
                     "same_as_one_client": sum(t["texts"][i] == base["texts"][i] for i in same), "compared": len(same)})
    p = card["prime"]
    print(f"prime serve {os.path.basename(args.checkpoint)}: L = {p['length']}, ℓ = {p['ell']}, C = "
          f"{p['num_classes']}; max_tokens {args.max_tokens}, steps {args.steps}; {args.rounds} rounds × "
          f"{args.seconds:g} s per level; server flags {' '.join(args.server_arg) or 'none'}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| clients | requests | req/s | tokens/s | p50 s | p95 s | errors | lost | tokens/s vs 1 client | "
          "same text as 1 client |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clients']} | {r['requests']} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.1f} | "
              f"{r['p50_s']:.3f} | {r['p95_s']:.3f} | {r['errors']} | {r['lost']} | {r['vs_one_client']:.2f}× | "
              f"{r['same_as_one_client']}/{r['compared']} |")
    print(f"server: {health['forward_calls']} forward calls, {health['ticks']} ticks, {health['rejected']} rejected")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"model": card, "max_tokens": args.max_tokens, "steps": args.steps, "rounds": args.rounds,
                       "seconds": args.seconds, "rows": rows, "server": health}, fh, indent=1)


if __name__ == "__main__":
    main()
