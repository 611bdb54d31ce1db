"""Bad input, limits, authentication, overload, disconnects and SIGTERM (docs/reliability.md, issue 22)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import pytest

from prime_core.cli import main


def _post(server, body=None, *, raw: bytes | None = None, headers=None, path="/v1/completions"):
    if raw is not None:
        return httpx.post(server.url + path, content=raw, headers={"content-type": "application/json",
                                                                     **(headers or {})}, timeout=60)
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def _error(r, status: int, code: str | None = None, words: str = ""):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert code is None or err["code"] == code, err
    assert words in err["message"], err
    return err


@pytest.mark.parametrize("body, code, words", [
    ({"prompt": "x", "best_of": 2}, "unknown_field", "unknown field 'best_of'"),
    ({"prompt": "x", "checkpoint": "/etc/passwd"}, "unknown_field", "unknown field 'checkpoint'"),
    ({"prompt": "x", "sampler": "my_pkg.module:Sampler"}, "invalid_value", "installed samplers"),
    ({"prompt": "x", "temperature": "hot"}, "invalid_type", "temperature must be a number"),
    ({"prompt": "x", "temperature": -1}, "invalid_value", "temperature must be a finite number in [0, 100]"),
    ({"prompt": "x", "top_p": 0}, "invalid_value", "top_p"),
    ({"prompt": "x", "max_tokens": 17}, "invalid_value", "max_tokens must lie in [1, 16]"),
    ({"prompt": "x", "max_tokens": 2.5}, "invalid_type", "max_tokens must be a whole number"),
    ({"prompt": "x", "max_tokens": True}, "invalid_type", "max_tokens must be a whole number"),
    ({"prompt": "x", "n": 17}, "invalid_value", "n must lie in [1, 16]"),
    ({"prompt": "x", "steps": 0}, "invalid_value", "steps must lie in [1, 1024]"),
    ({"prompt": "x", "seed": -1}, "invalid_value", "seed must lie in [0, 4294967295]"),
    ({"prompt": "x", "stream": "yes"}, "invalid_type", "stream must be true or false"),
    ({"prompt": "x", "stop": [""]}, "invalid_type", "stop must be"),
    ({"prompt": [1, 2, 3]}, "invalid_type", "token-id prompts are not accepted"),
    ({"prompt": []}, "invalid_type", "non-empty list"),
    ({"prompt": "x", "max_tokens": 3, "length": 8}, "invalid_value", "send one of them"),
    ({"prompt": "x", "infill": "a [MASK:2] b"}, "invalid_value", "replaces prompt"),
    ({"infill": "no gap here"}, "invalid_value", "has no [MASK:k] span"),
    ({"prompt": "the quick brown fox jumps over a lazy dog while Emma and Harriet"}, "invalid_value",
     "no token is left to generate"),
    ({"prompt": ["x"] * 17}, "invalid_value", "at most 16"),
])
def test_bad_fields_are_400(server, body, code, words):
    _error(_post(server, body), 400, code, words)


def test_unknown_model_is_404_through_openai(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="gpt-4", prompt="x")
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="run", prompt="x", extra_body={"plugin": "evil"})
    assert "unknown field 'plugin'" in info.value.message


@pytest.mark.parametrize("raw, words", [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"),
                                        (b'{"prompt": "x", "temperature": NaN}', "not valid JSON"),
                                        (b"\xff\xfe", "not UTF-8"), (b"", "not valid JSON")])
def test_malformed_bodies_are_400(server, raw, words):
    _error(_post(server, raw=raw), 400, "invalid_json", words)


def test_lone_surrogate_prompt_is_400(server):
    _error(_post(server, raw=b'{"prompt": "a\\ud800b"}'), 400, "invalid_value", "not valid Unicode")


def test_body_too_large_is_413(server):
    _error(_post(server, raw=b'{"prompt": "' + b"a" * 70_000 + b'"}'), 413, "body_too_large", "at most 65536")


def test_unknown_route_and_method(server):
    _error(httpx.get(server.url + "/v1/nothing"), 404, "not_found")
    _error(httpx.get(server.url + "/v1/completions"), 405, "method_not_allowed")
    _error(httpx.get(server.url + "/static/../../etc/passwd"), 404)


def test_api_key_required_and_checked(start):
    s = start("--api-key", "s3cret")
    _error(_post(s, {"prompt": "x", "max_tokens": 1}), 401, "invalid_api_key")
    _error(_post(s, {"prompt": "x", "max_tokens": 1}, headers={"Authorization": "Bearer wrong"}), 401)
    assert httpx.get(s.url + "/health").status_code == 200  # the load balancer's probe
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0)
    assert client.completions.create(model="run", prompt="x", max_tokens=2, seed=1).choices[0].text is not None
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=s.url + "/v1", api_key="nope", max_retries=0).models.list()


def test_api_key_from_environment(start):
    s = start(env={"PRIME_SERVE_API_KEY": "k2"})
    _error(httpx.get(s.url + "/v1/models"), 401)
    assert httpx.get(s.url + "/v1/models", headers={"Authorization": "Bearer k2"}).status_code == 200


def test_other_address_needs_a_key(ckpt, capsys, monkeypatch):
    monkeypatch.delenv("PRIME_SERVE_API_KEY", raising=False)
    assert main(["serve", ckpt, "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--api-key" in err and "Traceback" not in err


@pytest.mark.parametrize("args, words", [(["--port", "70000"], "--port"), (["--max-n", "0"], "--max-n"),
                                         (["--grace", "-1"], "--grace"), (["--api-key", " "], "--api-key is empty"),
                                         (["--runtime", "nope"], "unknown --runtime 'nope'")])
def test_bad_flags_are_one_line(ckpt, capsys, args, words):
    try:
        code = main(["serve", ckpt, *args])
    except SystemExit as exc:  # argparse's own refusal: one line, exit 2
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err and "Traceback" not in err


def test_port_in_use_is_one_line(ckpt, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["serve", ckpt, "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot listen on 127.0.0.1" in err


def test_help_lists_the_limits(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--max-body-bytes", "65536"), ("--max-prompt-chars", "8192"), ("--max-tokens", "L"),
                          ("--max-n", "16"), ("--max-steps", "1024"), ("--max-batch-rows", "64"),
                          ("--max-waiting", "64"), ("--grace", "30"), ("--max-prompts", "16")]:
        assert flag in out and f"default {default}" in out


def _long_stream(s, steps=1024):
    """Open a streamed denoising of ``steps`` steps and return (client, response) after its first step event."""
    client = httpx.Client(timeout=60)
    req = client.build_request("POST", s.url + "/v1/denoise", json={"prompt": "", "steps": steps, "seed": 1})
    r = client.send(req, stream=True)
    lines = r.iter_lines()
    while not next(lines).startswith("event: step"):
        pass
    r.lines = lines  # keep the iterator: collecting it would close the stream
    return client, r


def test_overload_is_429_with_retry_after(start):
    s = start("--max-batch-rows", "1", "--max-waiting", "1", "--max-steps", "100000")
    client, first = _long_stream(s, steps=100000)  # holds the only batch row
    try:
        waiting = threading.Thread(target=lambda: _post(s, {"prompt": "", "max_tokens": 1, "steps": 1}))
        waiting.start()
        s.wait_for(lambda h: h["requests_waiting"] == 1)
        r = _post(s, {"prompt": "", "max_tokens": 1, "steps": 1})
        _error(r, 429, "overloaded", "retry later")
        assert r.headers["retry-after"] == "1"
    finally:
        first.close()
        client.close()
    waiting.join(timeout=60)
    assert s.wait_for(lambda h: h["rows_in_batch"] == 0)["rejected"] == 1


def test_disconnect_frees_rows(start):
    s = start("--max-steps", "100000")
    client, r = _long_stream(s, steps=100000)
    assert s.health()["rows_in_batch"] == 1
    r.close()
    client.close()
    h = s.wait_for(lambda h: h["rows_in_batch"] == 0)
    assert h["cancelled"] == 1 and h["finished"] == 0


def test_disconnect_of_a_plain_request_frees_rows(start):
    s = start("--max-steps", "100000")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(s.url + "/v1/completions", json={"prompt": "", "steps": 100000, "seed": 2}, timeout=1.5)
    h = s.wait_for(lambda h: h["rows_in_batch"] == 0)
    assert h["cancelled"] == 1 and h["finished"] == 0


def test_sigterm_finishes_requests_in_flight(start):
    s = start("--max-steps", "100000")
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("r", _post(s, {"prompt": "", "steps": 3000, "seed": 9})))
    worker.start()
    s.wait_for(lambda h: h["rows_in_batch"] == 1)
    t0 = time.monotonic()
    assert s.stop() == 0
    worker.join(timeout=60)
    assert out["r"].status_code == 200 and out["r"].json()["prime"]["steps"] == 3000
    assert time.monotonic() - t0 < 60
