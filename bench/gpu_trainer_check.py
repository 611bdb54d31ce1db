"""GPU check of the "torch" trainer (prime-plugin-trainer): bf16 autocast training and a torchrun NCCL run.

Run from the repository root on a CUDA machine (torch already installed there):
    pip install -e . -e plugins/prime-plugin-trainer [-e plugins/prime-plugin-dit]
    python bench/gpu_trainer_check.py [--steps 200] [--compile] [--json out.json]

What it does (≈1–2 minutes on one H100; --compile adds a torch.compile run):
  1. trains on the toy Markov chain (C = 256, L = 128, ℓ = 2) with the DiT backbone ("dit", preset small,
     D = 256) when prime-plugin-dit is installed, else the core's MLP, for --steps steps with precision "auto"
     (bf16 autocast on CUDA) — a forward hook records whether autocast was on and the Linear output dtype;
  2. the same number of steps in fp32, for the bf16/fp32 throughput ratio measured in this run;
  3. `torchrun --nproc_per_node 1 -m prime_core train …` (DDP over NCCL, one GPU) and checks it finished,
     that its log says backend nccl, and that its first logged loss equals run 1's (same data and noise);
  4. (--compile) a short run with train.options.compile = true.
It prints losses (the training objective "nelbo": MDLM's estimator, a training objective, not a reported
bound), tokens/s and the autocast finding, and exits 0 if every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch


SIZE = {"length": 128, "width": 256}


def make_config(path: str, backbone: str, steps: int, precision: str, compile_: bool = False) -> str:
    opts = f'{{ precision = "{precision}", ema = 0.999, compile = {str(compile_).lower()} }}'
    backbone_options = '{ preset = "small" }' if backbone == "dit" else "{ hidden = 1024, depth = 4 }"
    text = f"""
[model]
ell = 2
width = {SIZE["width"]}
backbone = "{backbone}"
backbone_options = {backbone_options}

[data]
dataset = "toy-markov"
options = {{ num_classes = 256, length = {SIZE["length"]}, num_train = 20000, num_eval = 512 }}

[train]
trainer = "torch"
steps = {steps}
batch_size = 64
lr = 1e-3
warmup = 20
log_every = 20
checkpoint_every = {steps}
options = {opts}
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def run_with_timeout(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run; on timeout kill the whole process tree (torchrun's workers survive their agent otherwise)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in reversed(_descendants(proc.pid)):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        out, err = proc.communicate()
        err += f"\n(timed out after {timeout:.0f} s)"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        if int(fh.read().rsplit(")", 1)[1].split()[1]) == current:
                            todo.append(int(entry))
                except OSError:
                    continue
    return found


def read_metrics(out: str) -> list[dict]:
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def train_in_process(config_path: str, out: str) -> tuple[list[dict], dict, float]:
    """Runs TorchTrainer.fit with a forward hook on the first nn.Linear that records the autocast state."""
    from prime_core import load_config
    from prime_plugin_trainer import trainer as trainer_module

    seen: dict = {}
    original_build = trainer_module.build_model

    def build_and_hook(config, registry=None):
        model = original_build(config, registry)
        linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))

        def hook(module, inputs, output):
            seen.setdefault("autocast_enabled", torch.is_autocast_enabled(output.device.type))
            seen.setdefault("linear_output_dtype", str(output.dtype))
        linear.register_forward_hook(hook)
        return model

    trainer_module.build_model = build_and_hook
    try:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer_module.TorchTrainer().fit(load_config(config_path), out_dir=out, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        trainer_module.build_model = original_build
    seen["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    return read_metrics(out), seen, seconds


def summary(name: str, rows: list[dict], extra: str = "") -> str:
    losses = ", ".join(f"{r['step']}:{r['loss']:.3f}" for r in rows[:: max(1, len(rows) // 6)])
    return (f"{name:<22} tokens/s {rows[-1]['tokens_per_s']:>12,.0f}   loss (step:nats/token, training objective "
            f"nelbo) {losses} … {rows[-1]['step']}:{rows[-1]['loss']:.3f}  {extra}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--compile", action="store_true", help="also run a short torch.compile training")
    ap.add_argument("--json", help="write the findings here")
    ap.add_argument("--allow-cpu", action="store_true", help="run anyway without CUDA (to test this script; the "
                    "bf16/NCCL checks then fail)")
    ap.add_argument("--length", type=int, default=128, help="L (sequence length)")
    ap.add_argument("--width", type=int, default=256, help="D (model width)")
    args = ap.parse_args()
    SIZE.update(length=args.length, width=args.width)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("FAIL: CUDA is not available on this machine")
        return 1
    from prime_core import get_registry

    backbone = "dit" if "dit" in get_registry().names("backbone") else "mlp"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device {device}, torch {torch.__version__}, backbone {backbone}, "
          f"bf16 supported {torch.cuda.is_available() and torch.cuda.is_bf16_supported()}")
    checks: dict[str, bool] = {}
    report: dict = {"device": device, "torch": torch.__version__, "backbone": backbone}
    tmp = tempfile.mkdtemp(prefix="prime-gpu-check-")

    # 1. bf16 autocast (precision auto)
    bf16_rows, seen, secs = train_in_process(make_config(os.path.join(tmp, "bf16.toml"), backbone, args.steps,
                                                         "auto"), os.path.join(tmp, "bf16"))
    print(summary("bf16 autocast (auto)", bf16_rows, f"[{secs:.1f} s, peak {seen['peak_memory_gib']:.2f} GiB]"))
    print(f"    autocast active in forward: {seen.get('autocast_enabled')}, Linear output dtype "
          f"{seen.get('linear_output_dtype')}, logged bf16 flag {bf16_rows[-1]['bf16']}")
    checks["bf16 autocast active"] = bool(seen.get("autocast_enabled")) and seen.get("linear_output_dtype") == \
        "torch.bfloat16" and bf16_rows[-1]["bf16"] is True
    checks["bf16 loss finite and decreasing"] = all(r["loss"] == r["loss"] for r in bf16_rows) and \
        bf16_rows[-1]["loss"] < bf16_rows[0]["loss"]
    report["bf16"] = {"rows": bf16_rows, **seen, "seconds": secs}

    # 2. fp32, same steps
    fp32_rows, seen32, secs32 = train_in_process(make_config(os.path.join(tmp, "fp32.toml"), backbone, args.steps,
                                                             "fp32"), os.path.join(tmp, "fp32"))
    ratio = bf16_rows[-1]["tokens_per_s"] / fp32_rows[-1]["tokens_per_s"]
    print(summary("fp32", fp32_rows, f"[{secs32:.1f} s]  bf16/fp32 throughput ratio {ratio:.2f}"))
    checks["fp32 run has autocast off"] = seen32.get("linear_output_dtype") == "torch.float32"
    report["fp32"] = {"rows": fp32_rows, **seen32, "seconds": secs32, "bf16_over_fp32_tokens_per_s": ratio}

    # 3. torchrun, one process, NCCL
    cfg = make_config(os.path.join(tmp, "ddp.toml"), backbone, args.steps, "auto")
    out = os.path.join(tmp, "torchrun")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "prime_core", "train", "--config", cfg, "--out", out, "--quiet"]
    t0 = time.perf_counter()
    res = run_with_timeout(cmd, 300)
    secs_tr = time.perf_counter() - t0
    if res.returncode != 0:
        print(f"torchrun failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
        checks["torchrun nccl run"] = False
    else:
        rows = read_metrics(out)
        print(summary("torchrun ×1 (DDP)", rows, f"[{secs_tr:.1f} s incl. start-up, backend {rows[-1]['backend']}]"))
        checks["torchrun nccl run"] = rows[-1]["backend"] == "nccl" and rows[-1]["step"] == args.steps
        first, ref = rows[0]["loss"], bf16_rows[0]["loss"]
        print(f"    first logged loss {first:.6f} vs in-process {ref:.6f} "
              "(same rows and noise; bf16 kernels may differ)")
        checks["torchrun matches in-process run (rel 1e-2)"] = abs(first - ref) <= 1e-2 * abs(ref)
        report["torchrun"] = {"rows": rows, "seconds_with_startup": secs_tr}

    # 4. torch.compile (optional)
    if args.compile:
        steps = min(args.steps, 60)
        rows, seen_c, secs_c = train_in_process(make_config(os.path.join(tmp, "compile.toml"), backbone, steps,
                                                            "auto", compile_=True), os.path.join(tmp, "compile"))
        print(summary("bf16 + torch.compile", rows, f"[{secs_c:.1f} s incl. compilation]"))
        checks["compile run finite"] = all(r["loss"] == r["loss"] for r in rows)
        report["compile"] = {"rows": rows, "seconds": secs_c}

    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    report["checks"] = checks
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
