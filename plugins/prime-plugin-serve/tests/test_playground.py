"""The playground page in headless Chromium (Debian's ``chromium``; skipped where it is absent): the page loads
with no outside resource, denoises a prompt and draws partially revealed tokens, NFE and idle steps.

``PRIME_SERVE_SCREENSHOT=PATH`` also writes the screenshot there (docs/serving.md's image is made so)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/install.sh)")


def _chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_page_has_no_outside_resources(server):
    html = httpx.get(server.url + "/").text
    for name in ("app.js", "style.css"):
        assert httpx.get(f"{server.url}/static/{name}").status_code == 200
    pages = html + httpx.get(server.url + "/static/app.js").text + httpx.get(server.url + "/static/style.css").text
    assert not re.search(r"https?://", pages) and "@font-face" not in pages and "@import" not in pages


def test_playground_denoises_and_draws_partial_tokens(server, tmp_path):
    # ?whole: Chromium's virtual time does not wait for a streamed body, so the page reads it whole, then draws it
    url = f"{server.url}/?autorun=1&whole=1&prompt=the%20quick&max_tokens=10&steps=16&seed=4&stop_at=3"
    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-done="1"' in html  # the stream ran to its end
    assert 'class="tok part' in html  # a token known in some of its digits, drawn as such
    assert 'class="tok fixed"' in html
    nfe = re.search(r'id="nfe">(\d+)<', html)
    idle = re.search(r'id="idle">(\d+)<', html)
    assert nfe and idle and int(nfe.group(1)) + int(idle.group(1)) == 4  # frozen after step 4 of 16
    shot = tmp_path / "playground.png"
    r = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,700", url)
    assert r.returncode == 0 and shot.stat().st_size > 10_000, r.stderr[-2000:]
    target = os.environ.get("PRIME_SERVE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
