"""`prime data prepare`: sources → memory-mapped token files + sidecar; the window views training reads; bad input
is one line and exit 2 with nothing written; an interrupted prepare leaves nothing a reader would take."""

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import prime_plugin_text.prepare as prepare_mod
from prime_core import PrimeError
from prime_core.cli.app import main
from prime_plugin_text.dataset import TextDataset
from prime_plugin_text.prepare import PrepareRequest, cumulative, parse_split, prepare, split_of
from prime_plugin_text.prepared import PreparedCorpus, WindowView

WORDS = "the quick brown fox jumps over a lazy dog while Emma and Harriet walk to Highbury".split()


def _doc(i: int, n: int = 30) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n)) + f" {i}"


@pytest.fixture
def sources(tmp_path):
    """A folder with 12 text files and a JSON-lines file of 60 rows; returns (folder, texts in source order)."""
    src = tmp_path / "src"
    src.mkdir()
    texts = []
    with open(src / "a.jsonl", "w", encoding="utf-8") as fh:
        for i in range(60):
            fh.write(json.dumps({"text": _doc(i), "id": i}) + "\n")
            texts.append(_doc(i))
    for i in range(12):
        (src / f"t{i:02d}.txt").write_text(_doc(100 + i, 80), encoding="utf-8")
        texts.append(_doc(100 + i, 80))
    return src, texts


def _stream_documents(out, split):
    corpus = PreparedCorpus(str(out))
    stream, off = np.asarray(corpus.tokens(split)), np.asarray(corpus.offsets(split))
    return [stream[off[d]:off[d + 1]].tolist() for d in range(len(off) - 1)]


def _one_line(capsys, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prime: error:") and pattern in err[0], err


# ------------------------------------------------------------------------------------------------ the split rule
@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30),
       st.floats(0.05, 0.9), st.floats(0.01, 0.05))
def test_split_rule_is_a_deterministic_function_of_the_text(texts, train, valid):
    fractions = {"train": train, "valid": valid, "test": 1 - train - valid}
    cuts = cumulative(fractions)
    for t in texts:
        assert split_of(t, cuts) == split_of(t, cuts) in fractions
    assert split_of("same text", cuts) == split_of("same text", cumulative(dict(fractions)))


def test_split_rule_follows_the_fractions():
    cuts = cumulative(parse_split("train=0.8,valid=0.1,test=0.1"))
    got = [split_of(f"document {i}", cuts) for i in range(4000)]
    assert abs(got.count("train") / 4000 - 0.8) < 0.03 and abs(got.count("valid") / 4000 - 0.1) < 0.02


@pytest.mark.parametrize("text", ["train=0.5,valid=0.4", "train=1.2", "valid=0.5,test=0.5", "train=0.5,train=0.5",
                                  "train=x", "train=0.9,dev=0.1"])
def test_bad_split_specs_are_refused(text):
    with pytest.raises(PrimeError, match="--split"):
        parse_split(text)


# ------------------------------------------------------------------------------------------------ preparing
def test_prepare_bytes_round_trips_every_document(sources, tmp_path, capsys):
    src, texts = sources
    out = tmp_path / "out"
    assert main(["data", "prepare", str(src), "--tokenizer", "bytes", "--out", str(out), "--quiet",
                 "--split", "train=0.8,valid=0.1,test=0.1"]) == 0
    meta = json.loads((out / "prepared.json").read_text())
    assert meta["format"] == "prime-prepared-tokens" and meta["format_version"] == 1 and meta["dtype"] == "uint16"
    assert meta["tokenizer"] == {"name": "bytes"} and meta["num_classes"] == 256
    assert sum(c["documents"] for c in meta["splits"].values()) == len(texts)
    assert [s["url"] for s in meta["sources"]][0].endswith("a.jsonl") and all(s["size"] for s in meta["sources"])
    cuts = cumulative(meta["split_rule"]["fractions"])
    for split, count in meta["splits"].items():
        expected = [t for t in texts if split_of(t, cuts) == split]  # source order, filtered by the rule
        docs = _stream_documents(out, split)
        assert docs == [[0xFE, *t.encode(), 0xFF] for t in expected]
        assert count["tokens"] == sum(map(len, docs)) and count["bytes"] == sum(len(t.encode()) for t in expected)
        assert os.path.getsize(out / f"{split}.bin") == 2 * count["tokens"]
    assert not (out / ".prepare-tmp").exists()
    assert "train" in capsys.readouterr().out


def test_prepare_bpe_trains_on_train_split_and_workers_give_the_same_files(sources, tmp_path):
    src, _ = sources
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"bpe{workers}"
        prepare(PrepareRequest([str(src)], str(out), tokenizer="bpe", tokenizer_options={"vocab_size": 300},
                               workers=workers, progress=False, split="train=0.8,valid=0.1,test=0.1"))
        outs.append(out)
    meta = json.loads((outs[0] / "prepared.json").read_text())
    assert meta["tokenizer"]["name"] == "bpe" and meta["num_classes"] == 300
    for name in ("train.bin", "valid.bin", "test.bin", "train.docs.npy", "prepared.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes() or name == "prepared.json"
    ds = TextDataset(prepared=str(outs[0]), length=16)
    assert ds.num_classes == 300 and ds.tokenizer.name == "bpe"
    first = _stream_documents(outs[0], "train")[0]
    assert ds.tokenizer.decode(first) in {_doc(i) for i in range(60)} | {_doc(100 + i, 80) for i in range(12)}


def test_prepare_reads_parquet_globs_and_fsspec_urls(tmp_path):
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": [_doc(i) for i in range(40)], "n": list(range(40))}), tmp_path / "p.parquet")
    out = tmp_path / "pq"
    prepare(PrepareRequest([str(tmp_path / "*.parquet")], str(out), text_field="body", progress=False,
                           split="train=0.9,valid=0.05,test=0.05"))
    assert sum(c["documents"] for c in PreparedCorpus(str(out)).splits.values()) == 40
    with pa.ipc.new_stream(str(tmp_path / "rows.arrow"), pa.schema([("text", pa.string())])) as writer:
        writer.write_table(pa.table({"text": [_doc(i) for i in range(40, 70)]}))
    prepare(PrepareRequest([str(tmp_path / "rows.arrow")], str(tmp_path / "arrow"), progress=False,
                           split="train=0.6,valid=0.4"))
    assert sum(c["documents"] for c in PreparedCorpus(str(tmp_path / "arrow")).splits.values()) == 30
    fs = fsspec.filesystem("memory")
    for i in range(30):
        fs.pipe(f"/corpus-prep/d{i}.txt", _doc(i).encode())
    prepare(PrepareRequest(["memory://corpus-prep"], str(tmp_path / "mem"), progress=False,
                           split="train=0.8,valid=0.1,test=0.1"))
    assert sum(c["documents"] for c in PreparedCorpus(str(tmp_path / "mem")).splits.values()) == 30


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_inputs_are_one_line_and_write_nothing(sources, tmp_path, capsys):
    src, _ = sources
    (tmp_path / "blank.txt").write_text("   \n\n", encoding="utf-8")
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    out = tmp_path / "new"
    cases = [
        ([str(tmp_path / "missing.txt")], [], "source not found"),
        ([str(src / "a.jsonl")], ["--text-field", "body"], "has no field 'body' (its fields: text, id)"),
        ([str(src)], ["--tokenizer", "nope"], "unknown tokenizer 'nope'"),
        ([str(src)], ["--tokenizer", "bpe", "--tokenizer-option", "vocab_size=3"], "vocab_size"),
        ([str(src)], ["--split", "train=0.5"], "sum to 0.5"),
        ([str(tmp_path / "*.nothing")], [], "matches no file"),
        ([str(src / "a.jsonl")], ["--split", "train=0.99999,valid=0.00001"], "valid split got no document"),
    ]
    for srcs, extra, pattern in cases:
        assert main(["data", "prepare", *srcs, "--out", str(out), "--quiet", *extra]) == 2, pattern
        _one_line(capsys, pattern)
        assert not out.exists(), pattern
    assert main(["data", "prepare", str(tmp_path / "blank.txt"), "--out", str(out), "--quiet"]) == 2
    _one_line(capsys, "is empty")
    assert main(["data", "prepare", str(src), "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    _one_line(capsys, "is a file")
    assert not out.exists()


def test_tables_without_the_data_extra_name_it(sources, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if HF datasets were not installed
    assert main(["data", "prepare", str(sources[0] / "a.jsonl"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    _one_line(capsys, "pip install 'prime-plugin-text[data]'")
    assert not (tmp_path / "o").exists()


def test_a_complete_folder_is_refused_without_force(sources, tmp_path, capsys):
    src, _ = sources
    out = tmp_path / "out"
    args = ["data", "prepare", str(src), "--out", str(out), "--quiet", "--split", "train=0.8,valid=0.1,test=0.1"]
    assert main(args) == 0
    before = (out / "train.bin").read_bytes()
    assert main(args) == 2
    _one_line(capsys, "already holds a prepared corpus (prepared.json); pass --force")
    assert (out / "train.bin").read_bytes() == before
    assert main([*args[:-2], "--split", "train=0.9,valid=0.1", "--force"]) == 0
    assert not (out / "test.bin").exists() and set(PreparedCorpus(str(out)).splits) == {"train", "valid"}


def test_an_interrupted_prepare_leaves_nothing_a_reader_takes_and_a_rerun_restarts(sources, tmp_path, monkeypatch):
    src, _ = sources
    out = tmp_path / "out"
    req = PrepareRequest([str(src)], str(out), progress=False, split="train=0.8,valid=0.1,test=0.1")
    real_add, calls = prepare_mod._Writer.add, []

    def crash(self, *args):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt  # as Ctrl-C would, mid-way through the corpus
        return real_add(self, *args)

    monkeypatch.setattr(prepare_mod._Writer, "add", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(req)
    assert not (out / "prepared.json").exists() and not list(out.glob("*.bin"))
    with pytest.raises(PrimeError, match="not a prepared corpus"):
        TextDataset(prepared=str(out), length=8).split("train")
    # a killed process (no cleanup) leaves its work folder: the next run removes it and starts again
    (out / ".prepare-tmp").mkdir(parents=True, exist_ok=True)
    (out / ".prepare-tmp" / "train.bin").write_bytes(b"\x01\x02")
    monkeypatch.setattr(prepare_mod._Writer, "add", real_add)
    meta = prepare(req)
    assert PreparedCorpus(str(out)).tokens("train").shape == (meta["splits"]["train"]["tokens"],)
    assert not (out / ".prepare-tmp").exists()
    # a --force run interrupted before it publishes keeps the old, complete corpus
    old = (out / "train.bin").read_bytes()
    monkeypatch.setattr(prepare_mod._Writer, "add", crash)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        prepare(PrepareRequest([str(src)], str(out), progress=False, force=True, split="train=0.5,valid=0.5"))
    assert (out / "train.bin").read_bytes() == old and len(TextDataset(prepared=str(out), length=8).split("test"))


def test_a_changed_token_file_is_refused(sources, tmp_path):
    src, _ = sources
    out = tmp_path / "out"
    prepare(PrepareRequest([str(src)], str(out), progress=False, split="train=0.8,valid=0.1,test=0.1"))
    with open(out / "train.bin", "ab") as fh:
        fh.write(b"\0\0")
    with pytest.raises(PrimeError, match="incomplete or was changed"):
        TextDataset(prepared=str(out), length=8).split("train")[0]


# ------------------------------------------------------------------------------------------------ window views
@pytest.fixture
def prepared(sources, tmp_path):
    out = tmp_path / "prepared"
    prepare(PrepareRequest([str(sources[0])], str(out), progress=False, split="train=0.8,valid=0.1,test=0.1"))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # read-only
@given(st.integers(2, 64), st.lists(st.integers(0, 10_000), min_size=1, max_size=8))
def test_wrap_windows_are_consecutive_blocks_of_the_stream(prepared, length, picks):
    view = TextDataset(prepared=str(prepared), length=length).split("train")
    stream = np.asarray(PreparedCorpus(str(prepared)).tokens("train")).astype(np.int64)
    assert isinstance(view, WindowView) and len(view) == len(stream) // length == view.shape[0]
    ids = torch.tensor([p % len(view) for p in picks])
    rows = view[ids]
    assert rows.dtype == torch.long and rows.shape == (len(picks), length)
    for r, i in zip(rows, ids.tolist()):
        assert r.tolist() == stream[i * length:(i + 1) * length].tolist()
    assert torch.equal(view[:3], view[torch.arange(3)]) and torch.equal(view[int(ids[0])], rows[0])


def test_a_view_reads_only_the_windows_asked_for(prepared, monkeypatch):
    corpus = PreparedCorpus(str(prepared))
    reads, real = [], corpus.read
    monkeypatch.setattr(corpus, "read", lambda split, a, b: reads.append(b - a) or real(split, a, b))
    view = WindowView(corpus, "train", 16, "wrap", 0xFF)
    assert view[torch.tensor([3, 1, 4])].shape == (3, 16) and reads == [16, 16, 16]
    assert len(view) * 16 <= corpus.splits["train"]["tokens"] and reads == [16, 16, 16]  # len reads nothing


def test_pad_windows_hold_one_document_each(prepared):
    ds = TextDataset(prepared=str(prepared), length=40, packing="pad")
    view, docs = ds.split("train"), _stream_documents(prepared, "train")
    assert len(view) == len(docs)
    rows = view[torch.arange(len(docs))]
    for row, doc in zip(rows.tolist(), docs):
        kept = doc[:40]
        assert row[:len(kept)] == kept and all(t == 0xFF for t in row[len(kept):])  # EOS padding
    assert ds.bytes_per_token("train") is None  # truncated documents: no bits per byte
    assert TextDataset(prepared=str(prepared), length=40).bytes_per_token("train") > 0


def test_prepared_option_errors(prepared, corpus):
    with pytest.raises(ValueError, match="not both"):
        TextDataset(source=str(corpus), prepared=str(prepared))
    with pytest.raises(PrimeError, match="tokenized with 'bytes'"):
        TextDataset(prepared=str(prepared), tokenizer="bpe").split("train")
    with pytest.raises(PrimeError, match="packing must be one of"):
        TextDataset(prepared=str(prepared), packing="squash").split("train")
    with pytest.raises(PrimeError, match="needs a prepared corpus"):
        TextDataset(source=str(corpus), tokenizer="bytes", packing="pad").split("train")
    with pytest.raises(PrimeError, match="shorter than one window"):
        TextDataset(prepared=str(prepared), length=100_000).split("valid")


@pytest.mark.parametrize("packing", ["wrap", "pad"])
def test_prime_train_on_a_prepared_corpus(prepared, tmp_path, capsys, packing):
    """The documented interface: --set data.dataset=text --set 'data.options={prepared="DIR", length=L}'."""
    from prime_core import read_checkpoint

    out = tmp_path / f"run-{packing}"
    assert main(["train", "--out", str(out), "--quiet", "--set", "data.dataset=text",
                 "--set", f'data.options={{prepared="{prepared}", length=16, packing="{packing}"}}',
                 "--set", 'model.backbone="dit-tiny"', "--set", "model.width=16", "--set", "model.ell=2",
                 "--set", 'train.trainer="torch"', "--set", "train.steps=2", "--set", "train.batch_size=4",
                 "--set", "train.warmup=0", "--set", "train.eval_every=1", "--set", "train.eval_sequences=3",
                 "--set", "eval.mc_samples=1"]) == 0
    meta = read_checkpoint(str(out / "checkpoint.safetensors")).meta
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if "valid_nelbo" in r]  # validation during training read the lazy valid view
    assert [r["step"] for r in valid] == [1, 2] and all(r["valid_sequences"] == 3 for r in valid)
    assert meta["data"]["tokenizer"] == {"name": "bytes"} and meta["config"]["model"]["num_classes"] == 256
