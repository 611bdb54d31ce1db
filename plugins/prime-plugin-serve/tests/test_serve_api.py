"""`prime serve` through the official `openai` client and httpx: completions, seeds equal to `prime sample`,
batched equal to alone, streaming and the denoising stream."""

from __future__ import annotations

import concurrent.futures as cf
import json

import httpx
import openai
import pytest

from prime_core.cli import main


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def _sample(capsys, ckpt, prompts, n, length, seed, steps, extra=()):  # `prime sample --json` completions
    args = ["sample", ckpt, "--json", "--quiet", "--seed", str(seed), "--steps", str(steps), "--length", str(length),
            "-n", str(n), *extra]
    for p in prompts:
        args += ["--prompt", p]
    capsys.readouterr()
    assert main(args) == 0
    return [r["completion"] for r in json.loads(capsys.readouterr().out)["rows"]]


def test_models_and_health(client, server):
    models = client.models.list().data
    assert [m.id for m in models] == ["run"]
    card = httpx.get(server.url + "/v1/models/run").json()
    assert card["prime"]["length"] == 16 and card["prime"]["ell"] == 2 and "ancestral" in card["prime"]["samplers"]
    assert server.health()["status"] == "ok"


def test_completion_equals_prime_sample(client, ckpt, capsys):
    prompts = ["the quick", "Emma and"]
    r = client.completions.create(model="run", prompt=prompts, n=2, seed=11, extra_body={"length": 12, "steps": 6})
    assert r.object == "text_completion" and [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == _sample(capsys, ckpt, prompts, 2, 12, 11, 6)
    assert all(c.finish_reason == "length" for c in r.choices)
    assert r.usage.completion_tokens == 4 * 12 - r.usage.prompt_tokens
    extra = r.model_extra["prime"]
    assert extra["seed"] == 11 and extra["steps"] == 6 and len(extra["nfe"]) == 4


def test_max_tokens_and_temperature_equal_prime_sample(client, ckpt, capsys):
    r = client.completions.create(model="run", prompt="a lazy", max_tokens=5, seed=3, temperature=0.7, top_p=0.9,
                                  extra_body={"steps": 10})
    size = r.usage.prompt_tokens
    expect = _sample(capsys, ckpt, ["a lazy"], 1, size + 5, 3, 10, ["--temperature", "0.7", "--top-p", "0.9"])
    assert [r.choices[0].text] == expect and r.usage.completion_tokens == 5


def test_batched_equals_alone(client, server):
    """Requests with different prompts, T, τ and top_p sent together share ticks, yet each equals itself alone."""
    asks = [dict(prompt=p, seed=s, max_tokens=m, temperature=t, top_p=tp, extra_body={"steps": st})
            for p, s, m, t, tp, st in [("the quick", 1, 6, 1.0, 1.0, 8), ("Emma and", 2, 9, 0.8, 0.95, 16),
                                        ("", 3, 16, 1.0, 1.0, 12), ("a lazy dog", 4, 3, 1.3, 1.0, 30),
                                        ("the quick", 5, 6, 1.0, 0.5, 8), ("over", 6, 10, 0.0, 1.0, 20)]]
    alone = [client.completions.create(model="run", n=2, **a) for a in asks]
    before = server.health()
    with cf.ThreadPoolExecutor(len(asks)) as pool:
        together = list(pool.map(lambda a: client.completions.create(model="run", n=2, **a), asks))
    after = server.health()
    for x, y in zip(alone, together):
        assert [c.text for c in x.choices] == [c.text for c in y.choices]
        assert x.model_extra["prime"]["nfe"] == y.model_extra["prime"]["nfe"]
    # they did share the batch: fewer scheduler ticks than the requests' steps one after another
    assert after["ticks"] - before["ticks"] < sum(a["extra_body"]["steps"] for a in asks)


def test_streaming_equals_plain(client):
    plain = client.completions.create(model="run", prompt="the quick", max_tokens=10, seed=5, extra_body={"steps": 12})
    chunks = list(client.completions.create(model="run", prompt="the quick", max_tokens=10, seed=5, stream=True,
                                            extra_body={"steps": 12}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == plain.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert sum(1 for c in chunks if c.choices and c.choices[0].text) >= 1


def test_stop_sequence(client):
    plain = client.completions.create(model="run", prompt="the", max_tokens=12, seed=8, extra_body={"steps": 8})
    text = plain.choices[0].text
    stop = text[3:5] if len(text) > 5 else None
    if not stop:
        pytest.skip("completion too short to choose a stop sequence")
    cut = client.completions.create(model="run", prompt="the", max_tokens=12, seed=8, stop=[stop],
                                    extra_body={"steps": 8})
    assert cut.choices[0].text == text[:text.find(stop)] and cut.choices[0].finish_reason == "stop"


def _events(response):
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])


def test_denoise_stream_shows_digits(server, client):
    body = {"prompt": "the quick", "max_tokens": 8, "seed": 4, "steps": 16}
    with httpx.stream("POST", server.url + "/v1/denoise", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = list(_events(r))
    start, steps, done = events[0][1], [e for k, e in events if k == "step"], events[-1]
    assert events[0][0] == "start" and done[0] == "done" and len(steps) == 16
    ell, length = start["ell"], start["rows"][0]["length"]
    fixed = {i for i, _, _ in start["rows"][0]["fixed"]}
    known = {}
    partial_seen = False
    for e in steps:
        for i, j, v in e["revealed"]:
            assert i not in fixed and 0 <= v < start["base"] and (i, j) not in known
            known[(i, j)] = v
        counts = {}
        for i, _ in known:
            counts[i] = counts.get(i, 0) + 1
        partial_seen |= any(0 < c < ell for c in counts.values())
    assert set(known) == {(i, j) for i in range(length) if i not in fixed for j in range(ell)}
    assert partial_seen  # MDM-Prime's intermediate states: a token known in some of its digits
    assert steps[-1]["nfe"] + steps[-1]["idle_steps"] == 16
    plain = client.completions.create(model="run", prompt="the quick", max_tokens=8, seed=4, extra_body={"steps": 16})
    assert done[1]["choices"][0]["text"] == plain.choices[0].text


@pytest.mark.slow
def test_onnxruntime_equals_prime_sample(start, ckpt, capsys):
    pytest.importorskip("onnxruntime")
    s = start("--runtime", "onnxruntime")
    r = httpx.post(s.url + "/v1/completions", json={"prompt": "the quick", "length": 10, "seed": 3, "steps": 8, "n": 2},
                   timeout=300).json()
    expect = _sample(capsys, ckpt, ["the quick"], 2, 10, 3, 8, ["--runtime", "onnxruntime"])
    assert [c["text"] for c in r["choices"]] == expect
    bad = httpx.post(s.url + "/v1/completions", json={"prompt": "x", "sampler": "first-hitting"}, timeout=60)
    assert bad.status_code == 400 and "ancestral sampler only" in bad.json()["error"]["message"]


@pytest.mark.parametrize("sampler, steps", [("first-hitting", None), ("first-hitting", 6)])
def test_other_samplers_run_whole_and_equal_prime_sample(client, ckpt, capsys, sampler, steps):
    extra = {"sampler": sampler, "length": 12, **({"steps": steps} if steps else {})}
    r = client.completions.create(model="run", prompt=["the quick", "over"], n=2, seed=21, extra_body=extra)
    args = ["--sampler", sampler, "--json", "--quiet", "--seed", "21", "--length", "12", "-n", "2",
            "--prompt", "the quick", "--prompt", "over", *(["--steps", str(steps)] if steps else [])]
    capsys.readouterr()
    assert main(["sample", ckpt, *args]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [c.text for c in r.choices] == [row["completion"] for row in rows]
    assert r.model_extra["prime"]["nfe"] == [row["nfe"] for row in rows]
