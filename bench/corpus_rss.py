"""Peak resident memory of `prime train` on a prepared corpus of ~1 GB vs ~10 MB: it must not grow with the corpus.

For each size a synthetic prepared folder is written directly (random byte-level tokens as uint16 — no
tokenizing — plus the sidecar and document offsets, one document per 4,096 tokens), then a short `prime train`
runs on it as a subprocess (tiny MLP backbone, torch trainer, CPU, a few steps, random window order), and its peak
RSS is read from the kernel's accounting of that child (``os.wait4`` → ``ru_maxrss``). The folders are deleted
afterwards (``--keep`` keeps them). Target: the two peaks within 200 MB of each other.

    python bench/corpus_rss.py [--big-gb 1.0] [--small-mb 10] [--steps 5] [--length 128] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

FORMAT, FORMAT_VERSION, DOC = "prime-prepared-tokens", 1, 4096
HELD_OUT = 1 << 16  # tokens in each of valid and test


def write_split(folder: str, split: str, n_tokens: int, rng: np.random.Generator) -> dict:
    """{split}.bin of n random byte tokens (uint16) written in 32 MB chunks, and {split}.docs.npy."""
    with open(os.path.join(folder, f"{split}.bin"), "wb") as fh:
        left = n_tokens
        while left:
            n = min(left, 1 << 24)
            rng.integers(0, 256, size=n, dtype=np.uint16).tofile(fh)
            left -= n
    offsets = np.append(np.arange(0, n_tokens, DOC, dtype=np.int64), np.int64(n_tokens))
    np.save(os.path.join(folder, f"{split}.docs.npy"), offsets, allow_pickle=False)
    return {"tokens": n_tokens, "documents": len(offsets) - 1, "bytes": n_tokens}


def make_corpus(folder: str, train_tokens: int, seed: int = 0) -> None:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = {"train": write_split(folder, "train", train_tokens, rng)}
    for s in ("valid", "test"):
        splits[s] = write_split(folder, s, HELD_OUT, rng)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "tokenizer": {"name": "bytes"}, "num_classes": 256,
            "dtype": "uint16", "bos_id": 0xFE, "eos_id": 0xFF, "splits": splits,
            "split_rule": {"method": "synthetic (bench/corpus_rss.py)"}, "sources": []}
    with open(os.path.join(folder, "prepared.json"), "w", encoding="utf-8") as fh:
        json.dump(meta, fh)


def peak_rss_mb(folder: str, out: str, args) -> tuple[float, float]:
    """(peak RSS of the `prime train` child in MB, its wall time in s)."""
    cmd = [sys.executable, "-m", "prime_core", "train", "--out", out, "--quiet", "--force",
           "--set", 'data.dataset="text"', "--set", f'data.options={{prepared="{folder}", length={args.length}}}',
           "--set", 'model.backbone="mlp"', "--set", "model.width=16", "--set", "model.ell=2",
           "--set", "model.backbone_options={hidden=64, depth=1}",
           "--set", 'train.trainer="torch"', "--set", f"train.steps={args.steps}",
           "--set", f"train.batch_size={args.batch_size}", "--set", "train.warmup=0",
           "--set", f"train.checkpoint_every={args.steps}", "--set", 'train.options={device="cpu", ema=0.0}']
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"prime train failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0  # Linux: ru_maxrss in KB


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--big-gb", type=float, default=1.0)
    p.add_argument("--small-mb", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dir", default=None, help="where to write the corpora (default: a temporary folder)")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    root = tempfile.mkdtemp(prefix="prime-corpus-rss-", dir=args.dir)
    rows = []
    try:
        for label, nbytes in (("small", args.small_mb * 2**20), ("big", args.big_gb * 2**30)):
            folder = os.path.join(root, label)
            t0 = time.perf_counter()
            make_corpus(folder, int(nbytes) // 2)
            made = time.perf_counter() - t0
            size = os.path.getsize(os.path.join(folder, "train.bin"))
            rss, wall = peak_rss_mb(folder, os.path.join(root, f"run-{label}"), args)
            rows.append({"corpus": label, "train_bytes": size, "train_tokens": size // 2,
                         "windows": size // 2 // args.length, "peak_rss_mb": rss, "train_wall_s": wall,
                         "write_s": made})
            if not args.keep:
                shutil.rmtree(folder)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"prime train, torch trainer on CPU, {args.steps} steps, B={args.batch_size}, L={args.length}, "
          "MLP backbone (width 16), random window order")
    print("| corpus | train.bin | train tokens | windows | peak RSS of `prime train` | wall |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['corpus']} | {r['train_bytes'] / 2**20:,.0f} MiB | {r['train_tokens']:,} | {r['windows']:,} | "
              f"{r['peak_rss_mb']:,.0f} MB | {r['train_wall_s']:.1f} s |")
    gap = rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    print(f"difference: {gap:+.0f} MB (target: within +200 MB)")
    return 0 if gap <= 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
