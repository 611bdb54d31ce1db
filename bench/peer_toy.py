"""prime against the MDM-Prime paper's 2-D toy reference recipe, timed in one process (issue 9 item 7).

The reference (our own plain-torch re-implementation of the recipe of chen-hao-chao/mdm-prime ``toy/``; no code
of it is copied): C = 512 grid classes, L = 2 tokens, ℓ = 2 digits, b = 23 (the reference takes ⌈512^(1/2)⌉),
so ℓ·L = 4 sub-tokens over b + 1 = 24 symbols (the mask is b).

- Network: each sub-token → a 512-dim embedding; the 4 are concatenated with a 1-dim linear embedding of t
  (2049 dims) → learnable swish → Linear(2049→512) → learnable swish → 2 × [Linear(512→512), LayerNorm, swish,
  dropout 0.1] → Linear(512 → L·C = 2·512): C logits per token.
- Training: Adam lr 1e-3, batch 4096, t ~ U(0, 1), each sub-token masked with probability t (α_t = 1 − t), loss
  mean over tokens of −log softmax_C(x₀) / (t + 0.005).
- Sampler: Euler over T uniform steps from t = 1 to 10⁻³; every row is evaluated at every step; x̂ ~
  `torch.multinomial` over the C-way softmax, encoded to digits; each masked digit becomes x̂'s with probability
  (α_s − α_t)/(1 − α_t); the last step fills every mask.

prime side: the toy-2d data set at size 512 (C = 512, L = 2, ℓ = 2, b = 23), the built-in ``mlp`` backbone sized to
the reference's multiply-adds (width D = 1024 = 512 per digit, hidden 512, depth 1: 2049·512 + 2·512² + 512·1024 ≈
2·512·1024 + 2·512² + 512·1024 multiply-adds per row), prime's NELBO training objective (``training_nelbo``) with
AdamW, and the registered samplers ``ancestral`` (idle-step cache on / off) and ``first-hitting`` (when some
distribution registers it; else "n/a (not registered)").

End-to-end mode (``--end-to-end``, issue 21 item 3): what a user runs, timed from process start to exit. A
checkpoint of the prime model above (two training steps: speed does not depend on the weights) is written once;
then, interleaved, each repeat times (a) the exact command ``prime sample CKPT -n N --steps T --json --quiet
--show 0`` as a fresh process, (b) the reference sampler as a fresh process (``python bench/peer_toy.py
--reference-process N T``: import torch, build the network, sample, exit), (c) the library call
``AncestralSampler.sample`` on the loaded checkpoint in this process and (d) the reference sampler in this
process. Subprocesses get ``OMP_NUM_THREADS`` = ``--threads``. Target (issue 21): (a) ≥ 20× (d)'s samples/s.

    python bench/peer_toy.py --end-to-end --threads 1 --num-samples 5000 --steps 128 --json runs/peer_e2e.json

Both sides run in the same process on the same threads (``torch.set_num_threads``), with repeats interleaved
(reference, prime, reference, prime, …); each number is the median over repeats. Only speed is compared: the
networks are freshly initialised (how many rows change state per step, and so the cache, does not depend on the
weights). Targets (issue 9): prime samples/s ≥ 20× the reference at T = 128, ≥ 2× at T = 16, first-hitting
≥ 20× at any T; prime's training step ≤ 1.0× the reference's time.

    python bench/peer_toy.py --threads 1 --quick --json runs/peer_toy.json
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from _common import seconds, write_json
from torch import nn

C, L, ELL, EMB, HIDDEN = 512, 2, 2, 512, 512
EPS_LOSS, T_FINAL = 0.005, 1e-3


# ------------------------------------------------------------------------------------------------ reference
def reference_base(num_classes: int, ell: int) -> int:
    """The reference's b = ⌈C^(1/ℓ)⌉ (float root, as it computes it; 23 for C = 512, ℓ = 2)."""
    return math.ceil(num_classes ** (1 / ell))


class Swish(nn.Module):
    """x · σ(β ⊙ x) with a learnable β per feature (initialised to 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class ReferenceMLP(nn.Module):
    """y [B, L·ℓ] sub-tokens, t [B] → logits [B, L, C] (the recipe of the module docstring)."""

    def __init__(self, base: int, dropout: float = 0.1):
        super().__init__()
        width = EMB * L * ELL + 1
        self.time = nn.Linear(1, 1)
        self.embed = nn.Embedding(base + 1, EMB)
        layers: list[nn.Module] = [Swish(width), nn.Linear(width, HIDDEN), Swish(HIDDEN)]
        for _ in range(2):
            layers += [nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN), Swish(HIDDEN), nn.Dropout(dropout)]
        layers.append(nn.Linear(HIDDEN, L * C))
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.embed(y).flatten(1), self.time(t.unsqueeze(-1))], dim=1)  # [B, 4·512 + 1]
        return self.net(h).view(-1, L, C)


def encode(x: torch.Tensor, base: int) -> torch.Tensor:
    """tokens [B, L] → digits [B, L·ℓ], most significant first."""
    powers = base ** torch.arange(ELL - 1, -1, -1, device=x.device)
    return (x.unsqueeze(-1) // powers % base).flatten(1)


def reference_train_step(model, opt, x0: torch.Tensor, base: int) -> float:
    """One Adam step on −log softmax_C(x₀)/(t + 0.005), masked with probability t."""
    b = x0.shape[0]
    t = torch.rand(b)
    y0 = encode(x0, base)
    y_t = torch.where(torch.rand(y0.shape) < t.unsqueeze(-1), torch.full_like(y0, base), y0)
    log_p = torch.log_softmax(model(y_t, t), dim=-1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)  # [B, L]
    loss = (-log_p / (t + EPS_LOSS).unsqueeze(-1)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


@torch.no_grad()
def reference_sample(model, n: int, steps: int, base: int) -> torch.Tensor:
    """The Euler sampler of the module docstring; returns tokens [n, L]."""
    h = 1.0 / steps
    n_steps = math.ceil((1.0 - T_FINAL) / h)
    y = torch.full((n, L * ELL), base, dtype=torch.long)
    for i in range(n_steps):
        t = 1.0 - h * i
        a_t, a_s = 1.0 - t, 1.0 - (t - h)
        probs = torch.softmax(model(y, torch.full((n,), t)), dim=-1)  # [n, L, C]
        x_hat = torch.multinomial(probs.flatten(0, 1), 1).view(n, L)
        digits = encode(x_hat, base)
        masked = y == base
        if i < n_steps - 1:
            masked &= torch.rand(y.shape) < (a_s - a_t) / (1.0 - a_t)
        y = torch.where(masked, digits, y)
    powers = base ** torch.arange(ELL - 1, -1, -1)
    return (y.view(n, L, ELL) * powers).sum(-1)


# ------------------------------------------------------------------------------------------------ prime
def prime_model(registry):
    """The toy-2d model at C = 512 with the MLP sized to the reference's multiply-adds (module docstring)."""
    from prime_core.api import build_dataset, build_model, load_config, resolve_sizes

    config = load_config("toy2d", ["data.options={size = 512, num_train = 8192, num_eval = 16}", "model.width=1024",
                                   "model.backbone_options={hidden = 512, depth = 1}", "model.ell=2"])
    dataset = build_dataset(config, registry)
    config = resolve_sizes(config, dataset.num_classes, dataset.length)
    return build_model(config, registry), dataset


def multiply_adds(model: nn.Module) -> int:
    """Multiply-adds per row of the Linear layers (what 'equal FLOPs' compares)."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def prime_train_step(model, opt, x0: torch.Tensor, g: torch.Generator) -> float:
    from prime_core.diffusion.losses import training_nelbo

    loss = training_nelbo(model, x0, generator=g).mean() / x0.shape[1]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


# ------------------------------------------------------------------------------------------------ timing
def bench(args) -> dict:
    from prime_core.api import get_registry

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    registry = get_registry()
    base = reference_base(C, ELL)
    ref = ReferenceMLP(base)
    model, dataset = prime_model(registry)
    assert model.base == base == 23 and model.num_classes == C and model.length == L
    data = dataset.split("train")
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    prime_opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    runs: dict[str, list[float]] = {}

    def record(key, seconds):
        runs.setdefault(key, []).append(seconds)

    def batch():
        return data[torch.randint(len(data), (args.batch_size,), generator=g)]

    ref.train(), model.train()
    for _ in range(args.warmup):  # first calls pay for allocation
        reference_train_step(ref, ref_opt, batch(), base)
        prime_train_step(model, prime_opt, batch(), g)
    for r in range(args.repeats):
        x0 = batch()
        record("train/reference", seconds(lambda: [reference_train_step(ref, ref_opt, x0, base)
                                                 for _ in range(args.train_steps)]) / args.train_steps)
        record("train/prime", seconds(lambda: [prime_train_step(model, prime_opt, x0, g)
                                             for _ in range(args.train_steps)]) / args.train_steps)
    ref.eval(), model.eval()
    samplers = {"ancestral": registry.build("sampler", "ancestral")}
    fh = "first-hitting" in registry.names("sampler")
    if fh:
        samplers["first-hitting"] = registry.build("sampler", "first-hitting")
    n = args.num_samples
    for steps in args.steps:
        for r in range(args.repeats):
            record(f"sample/{steps}/reference", seconds(lambda: reference_sample(ref, n, steps, base)))
            record(f"sample/{steps}/ancestral cache on",
                   seconds(lambda: samplers["ancestral"].sample(model, n, steps=steps, seed=r, cache=True)))
            record(f"sample/{steps}/ancestral cache off",
                   seconds(lambda: samplers["ancestral"].sample(model, n, steps=steps, seed=r, cache=False)))
            if fh:
                record(f"sample/{steps}/first-hitting",
                       seconds(lambda: samplers["first-hitting"].sample(model, n, steps=steps, seed=r)))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return summarise(args, med, runs, fh, multiply_adds(ref), multiply_adds(model))


def summarise(args, med, runs, fh, ref_macs, prime_macs) -> dict:
    n = args.num_samples
    rows = [{"what": "training step (s)", "reference": med["train/reference"], "prime": med["train/prime"],
             "ratio": med["train/prime"] / med["train/reference"], "target": "≤ 1.0× reference time"}]
    for steps in args.steps:
        ref_rate = n / med[f"sample/{steps}/reference"]
        for name, target in (("ancestral cache on", "≥ 20×" if steps >= 128 else "≥ 2×"),
                             ("ancestral cache off", ""), ("first-hitting", "≥ 20×")):
            key = f"sample/{steps}/{name}"
            rate = n / med[key] if key in med else None
            rows.append({"what": f"T={steps} {name} (samples/s)", "reference": ref_rate, "prime": rate,
                         "ratio": None if rate is None else rate / ref_rate, "target": target})
    return {"threads": args.threads, "num_samples": n, "batch_size": args.batch_size, "repeats": args.repeats,
            "train_steps_per_repeat": args.train_steps, "multiply_adds_per_row": {"reference": ref_macs,
                                                                                  "prime": prime_macs},
            "first_hitting_registered": fh, "rows": rows, "seconds": runs, "torch": torch.__version__}


def format_table(rep: dict) -> str:
    lines = [f"peer_toy: C=512, L=2, ℓ=2, {rep['threads']} thread(s), {rep['num_samples']} samples, batch "
             f"{rep['batch_size']}, median of {rep['repeats']} interleaved repeats; multiply-adds/row reference "
             f"{rep['multiply_adds_per_row']['reference']:,}, prime {rep['multiply_adds_per_row']['prime']:,}",
             f"| {'measure':<38} | {'reference':>11} | {'prime':>22} | {'prime/reference':>15} | target |",
             f"|{'-' * 40}|{'-' * 13}|{'-' * 24}|{'-' * 17}|--------|"]
    for r in rep["rows"]:
        prime = "n/a (not registered)" if r["prime"] is None else f"{r['prime']:.4g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        lines.append(f"| {r['what']:<38} | {r['reference']:>11.4g} | {prime:>22} | {ratio:>15} | {r['target']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ end to end
TOY_SETTINGS = ["data.options={size = 512, num_train = 8192, num_eval = 16}", "model.width=1024",
                "model.backbone_options={hidden = 512, depth = 1}", "model.ell=2"]


def toy_checkpoint(folder: str) -> str:
    """`prime train` of the toy model of `prime_model` for two steps (speed does not depend on the weights)."""
    import os
    import subprocess
    import sys

    ckpt = os.path.join(folder, "checkpoint.safetensors")
    if not os.path.exists(ckpt):
        sets = [a for s in TOY_SETTINGS + ["train.steps=2", "train.batch_size=64"] for a in ("--set", s)]
        subprocess.run([sys.executable, "-m", "prime_core", "train", "--config", "toy2d", "--out", folder,
                        "--quiet", *sets], check=True, stdout=subprocess.DEVNULL)
    return ckpt


def run_process(argv: list[str], threads: int) -> float:
    """Wall time of a fresh process, start to exit (fails loudly on a non-zero exit)."""
    import os
    import subprocess

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: .pyc caches, not every module compiled at each start
    return seconds(lambda: subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL))


def reference_process(n: int, steps: int, threads: int) -> None:
    """The reference script as a user runs it: build the network, sample ``n`` rows, exit."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = reference_base(C, ELL)
    reference_sample(ReferenceMLP(base).eval(), n, steps, base)


def end_to_end(args) -> dict:
    """The interleaved runs (a)–(d) of the module docstring; medians over --repeats."""
    import os
    import shlex
    import sys
    import tempfile

    from prime_core.api import get_registry
    from prime_core.api import load_model

    torch.set_num_threads(args.threads)
    folder = args.checkpoint_dir or tempfile.mkdtemp(prefix="peer-toy-")
    ckpt = toy_checkpoint(folder)
    n, steps = args.num_samples, args.steps[0]
    here = os.path.abspath(__file__)
    prime_cmd = [sys.executable, "-m", "prime_core", "sample", ckpt, "-n", str(n), "--steps", str(steps), "--json",
                 "--quiet", "--show", "0", *shlex.split(args.prime_args)]
    ref_cmd = [sys.executable, here, "--reference-process", str(n), str(steps), "--threads", str(args.threads)]
    model = load_model(ckpt)[0].eval()
    sampler = get_registry().build("sampler", "ancestral")
    ref = ReferenceMLP(reference_base(C, ELL)).eval()
    runs: dict[str, list[float]] = {}
    for r in range(args.repeats):
        runs.setdefault("prime sample (process)", []).append(run_process(prime_cmd, args.threads))
        if args.compare_batch_size:  # e.g. 16, the former default of --batch-size
            runs.setdefault(f"prime sample --batch-size {args.compare_batch_size}", []).append(
                run_process(prime_cmd + ["--batch-size", str(args.compare_batch_size)], args.threads))
        if not args.no_reference_process:
            runs.setdefault("reference script (process)", []).append(run_process(ref_cmd, args.threads))
        runs.setdefault("prime library call", []).append(
            seconds(lambda: sampler.sample(model, n, steps=steps, seed=r, draw_dtype=torch.float64)))
        runs.setdefault("reference sampler (in process)", []).append(
            seconds(lambda: reference_sample(ref, n, steps, ref.embed.num_embeddings - 1)))
    med = {k: statistics.median(v) for k, v in runs.items()}
    ref_rate = n / med["reference sampler (in process)"]
    ref_proc = n / med["reference script (process)"] if "reference script (process)" in med else math.nan
    rows = [{"what": k, "seconds": v, "samples_per_s": n / v, "vs_reference_sampler": n / v / ref_rate,
             "vs_reference_process": n / v / ref_proc} for k, v in med.items()]
    return {"mode": "end-to-end", "threads": args.threads, "num_samples": n, "steps": steps,
            "repeats": args.repeats, "command": " ".join(["prime", *prime_cmd[3:]]), "rows": rows,
            "seconds": runs, "torch": torch.__version__}


def format_end_to_end(rep: dict) -> str:
    lines = [f"peer_toy end to end: C=512, L=2, ℓ=2, {rep['threads']} thread(s), {rep['num_samples']} samples, "
             f"T={rep['steps']}, median of {rep['repeats']} interleaved repeats",
             f"command: {rep['command']}",
             f"| {'what':<32} | {'seconds':>8} | {'samples/s':>10} | {'÷ reference sampler':>19} | "
             f"{'÷ reference process':>19} |",
             f"|{'-' * 34}|{'-' * 10}|{'-' * 12}|{'-' * 21}|{'-' * 21}|"]
    for r in rep["rows"]:
        lines.append(f"| {r['what']:<32} | {r['seconds']:>8.3f} | {r['samples_per_s']:>10.4g} | "
                     f"{r['vs_reference_sampler']:>18.2f}× | {r['vs_reference_process']:>18.2f}× |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-samples", type=int, default=20_000)
    p.add_argument("--steps", type=int, nargs="+", default=[128, 16])
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--train-steps", type=int, default=5, help="training steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="~2 minutes on one thread: 1000 samples, 2 training steps, 2 repeats")
    p.add_argument("--json", help="write the report here")
    p.add_argument("--end-to-end", action="store_true", help="time `prime sample` as a process (module docstring)")
    p.add_argument("--checkpoint-dir", help="--end-to-end: where the toy checkpoint is written (default a temp dir)")
    p.add_argument("--prime-args", default="", help="--end-to-end: extra `prime sample` flags in one string, e.g. "
                   "'--batch-size 16' (the former default)")
    p.add_argument("--no-reference-process", action="store_true",
                   help="--end-to-end: skip (b), the reference as its own process (its sampling is (d) again)")
    p.add_argument("--compare-batch-size", type=int, help="--end-to-end: also time the command with --batch-size B")
    p.add_argument("--reference-process", type=int, nargs=2, metavar=("N", "T"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reference_process:
        reference_process(*args.reference_process, args.threads)
        return 0
    if args.end_to_end:
        rep = end_to_end(args)
        print(format_end_to_end(rep))
    else:
        if args.quick:
            args.num_samples, args.train_steps, args.repeats = 1000, 2, 2
        rep = bench(args)
        print(format_table(rep))
    write_json(args.json, rep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
