"""``prime-images``: train the FD-FMNIST feature network, and score samples with FD-FMNIST or FID.

    prime-images train-classifier --out runs/fd/fmnist14.safetensors --size 14
    prime-images fd SAMPLES.json|CKPT --features runs/fd/fmnist14.safetensors   (FD-FMNIST)
    prime-images fd ... --inception [FILE]                                       (FID, TorchScript Inception)

Errors print one line and exit 2, as ``prime`` does.
"""

from __future__ import annotations

import argparse
import json

import torch

from prime_core import PrimeError
from prime_core.api import resolve_device
from prime_core.cliargs import DEBUG_HELP, Parser, add_device, count, run_command, seed


def cmd_train_classifier(args) -> int:
    from .data import FashionMNIST
    from .features import accuracy, save_classifier, train_classifier

    ds = FashionMNIST(root=args.root, size=args.size)
    x, y = ds.load_split("train"), ds.labels("train")
    if args.num_train:
        x, y = x[:args.num_train], y[:args.num_train]
    device = resolve_device(args.device)
    net = train_classifier(x, y, epochs=args.epochs, seed=args.seed, device=device)
    acc = accuracy(net.to(device), ds.load_split("test"), ds.labels("test"))
    save_classifier(args.out, net, {"dataset": "fashion-mnist", "size": ds.height, "epochs": args.epochs,
                                    "test_accuracy": acc, "name": "FD-FMNIST"})
    print(f"test accuracy {acc:.4f}; feature network → {args.out}")
    return 0


def _images_from(path: str):
    """Token rows [N, L] from a `prime sample --out` samples.json."""
    try:
        with open(path, encoding="utf-8") as fh:
            return torch.tensor(json.load(fh)["tokens"])
    except (OSError, ValueError, KeyError) as exc:
        raise PrimeError(f"cannot read sampled tokens from {path}: {str(exc).splitlines()[0]}") from None


def cmd_fd(args) -> int:
    from prime_core import build_dataset, load_config

    from .features import InceptionFeatures, load_classifier
    from .frechet import frechet_distance, metric_name

    config = load_config(args.config, args.set)
    ds = build_dataset(config)
    fake = ds.images_from_tokens(_images_from(args.samples))
    # real images at the samples' quantisation (bin centres of the configured levels)
    real = ds.images_from_tokens(ds.split(args.split)[: len(fake) if args.num_real is None else args.num_real])
    if args.inception is not None:
        feature = InceptionFeatures(args.inception or None)
    elif args.features:
        feature = load_classifier(args.features)
    else:
        raise PrimeError("pass --features CLASSIFIER.safetensors (FD-FMNIST) or --inception [FILE] (FID)")
    score = frechet_distance(real, fake, feature, device=resolve_device(args.device))
    print(json.dumps({"metric": metric_name(feature), "value": score, "real": len(real), "generated": len(fake)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """``prime-images`` (kept for existing scripts; the same commands are ``prime images …``)."""
    p = Parser(prog="prime-images")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    add_subcommands(p.add_subparsers(dest="command", required=True))
    return p


def add_subcommands(sub) -> None:
    """train-classifier and fd, under ``prime images`` or ``prime-images``."""
    sp = sub.add_parser("train-classifier", help="train the FD-FMNIST feature network on Fashion-MNIST")
    sp.add_argument("--out", required=True, help="where to write the feature network (safetensors)")
    sp.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST folder (Debian dataset-fashion-mnist)")
    sp.add_argument("--size", type=count("--size", 8, 1024), default=28, help="image side the network scores; must match the samples' size")
    sp.add_argument("--epochs", type=count("--epochs", 1, 10_000), default=2, help="training epochs")
    sp.add_argument("--num-train", type=count("--num-train"), help="use only the first N training images (default: all 60,000)")
    sp.add_argument("--seed", type=seed, default=0)
    add_device(sp, what="trains (default auto)")
    sp.set_defaults(func=cmd_train_classifier)
    sp = sub.add_parser("fd", help="Fréchet distance of sampled tokens (samples.json) to real images")
    sp.add_argument("samples", help="samples.json written by prime sample --out")
    sp.add_argument("--config", required=True, help="the data config the samples belong to")
    sp.add_argument("--set", action="append", default=[])
    sp.add_argument("--split", default="test", help="real images from this split")
    sp.add_argument("--num-real", type=count("--num-real"), help="number of real images (default: the whole split)")
    sp.add_argument("--features", help="FD-FMNIST classifier checkpoint")
    sp.add_argument("--inception", nargs="?", const="", help="TorchScript Inception file (default: fid-helper's)")
    add_device(sp, what="computes the features (default auto)")
    sp.set_defaults(func=cmd_fd)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("prime-images", lambda: args.func(args), args)


if __name__ == "__main__":
    raise SystemExit(main())
