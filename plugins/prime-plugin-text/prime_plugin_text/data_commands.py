"""``prime data prepare``: the text plugin's data commands, added through ``register_commands``."""

from __future__ import annotations

import sys
import tomllib

from prime_core import PrimeError, hookimpl
from prime_core.cliargs import count


@hookimpl
def register_commands(commands):
    data = commands.add_parser("data", help="data tools: prepare a corpus as memory-mapped token files")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    doc = "tokenise text sources into memory-mapped token files per split (train / valid / test) plus a sidecar"
    p = sub.add_parser("prepare", help=doc, description=doc)
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="files, folders, globs or fsspec URLs: .jsonl/.json/.parquet/.arrow (one document per row) "
                        "or UTF-8 text")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (a local folder)")
    p.add_argument("--tokenizer", default="bytes", help="a registered tokenizer: bytes, bpe, gpt2, … (default bytes)")
    p.add_argument("--tokenizer-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a tokenizer constructor option, e.g. vocab_size=8192 (bpe) or encoder=PATH (gpt2); "
                        "values in TOML syntax, bare words as strings (repeatable)")
    p.add_argument("--text-field", default="text", help="the text field of JSON-lines / Parquet / Arrow rows")
    p.add_argument("--split", default=None,
                   help="fractions per split, by document (default train=0.98,valid=0.01,test=0.01, whose cuts move "
                        "so that valid and test get a document each when the corpus has ≥ 3; see docs/data.md)")
    p.add_argument("--text-unit", default="file", choices=["file", "paragraph", "line"],
                   help="what one document is in a plain text file (default: the whole file)")
    p.add_argument("--workers", type=count("--workers", 1, 256), default=1, help="tokenising processes")
    p.add_argument("--force", action="store_true", help="replace a prepared corpus already in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_options(items: list[str]) -> dict:
    """["key=value", …] → {key: value}; values in TOML syntax, bare words kept as strings."""
    out = {}
    for text in items:
        key, eq, raw = text.partition("=")
        if not eq or not key.strip():
            raise PrimeError(f"--tokenizer-option {text!r} must look like KEY=VALUE, e.g. vocab_size=8192")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()
    return out


def run(args) -> int:
    from .prepare import PrepareRequest, prepare

    meta = prepare(PrepareRequest(sources=args.sources, out=args.out, tokenizer=args.tokenizer,
                                  tokenizer_options=parse_options(args.tokenizer_option), text_field=args.text_field,
                                  split=args.split, text_unit=args.text_unit, workers=args.workers,
                                  force=args.force, progress=not args.quiet))
    parts = ", ".join(f"{s} {c['tokens']:,} tokens / {c['documents']:,} documents" for s, c in meta["splits"].items())
    rule = meta["split_rule"]
    if rule["cuts_moved"]:  # only the default split moves its cuts (a small corpus)
        print(f"prime: note: {sum(c['documents'] for c in meta['splits'].values())} documents: the default split's "
              f"cuts moved so that each held-out split gets a document (cuts {rule['cuts']})", file=sys.stderr)
    print(f"{args.out}: {meta['tokenizer']['name']} tokenizer, C={meta['num_classes']}, {meta['dtype']}; {parts}")
    return 0
