// The playground: POST /v1/denoise and draw each step as it arrives (server-sent events over fetch).
// A token is drawn by its known digits (base b, ℓ of them) until all are known, then by its text.
"use strict";
const $ = (id) => document.getElementById(id);
let cells = [], digits = [], length = 0, ell = 1;

function headers() {
  const h = {"Content-Type": "application/json"};
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}

function body() {
  const b = {prompt: $("prompt").value, n: 1};
  for (const k of ["max_tokens", "steps", "seed"]) if ($(k).value !== "") b[k] = parseInt($(k).value, 10);
  for (const k of ["temperature", "top_p"]) if ($(k).value !== "") b[k] = parseFloat($(k).value);
  return b;
}

function drawDigits(cell, ds) {
  cell.textContent = "";
  for (const d of ds) {
    const s = document.createElement("span");
    s.className = d === null ? "d m" : "d";
    s.textContent = d === null ? "?" : String(d);
    cell.appendChild(s);
  }
}

function layout(row) {
  const box = $("tokens");
  box.textContent = "";
  cells = []; digits = []; length = row.length;
  for (let i = 0; i < length; i++) {
    const c = document.createElement("span");
    c.className = "tok masked";
    digits.push(new Array(ell).fill(null));
    drawDigits(c, digits[i]);
    box.appendChild(c); cells.push(c);
  }
  for (const [i, ds, text] of row.fixed) {
    if (i >= length) continue;
    digits[i] = ds; cells[i].className = "tok fixed"; cells[i].textContent = text;
  }
}

function step(ev) {
  for (const c of cells) c.classList.remove("new");
  for (const [i, j, v] of ev.revealed) {
    digits[i][j] = v;
    const c = cells[i];
    c.className = "tok part new";
    drawDigits(c, digits[i]);
  }
  for (const [i, [, text]] of Object.entries(ev.tokens)) {
    const c = cells[+i];
    c.className = "tok full new";
    c.textContent = text === "" ? "∅" : text;
    c.title = "digits " + digits[+i].join(" ");
  }
  $("step").textContent = (ev.step + 1) + " / " + ev.steps;
  $("nfe").textContent = ev.nfe;
  $("idle").textContent = ev.idle_steps;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(e) {
  if (e) e.preventDefault();
  $("error").textContent = ""; $("text").textContent = "";
  const res = await fetch("/v1/denoise", {method: "POST", headers: headers(), body: JSON.stringify(body())});
  if (!res.ok) { $("error").textContent = (await res.json()).error.message; return; }
  if (window.whole) {  // ?whole: read the stream to its end first, then draw it (headless screenshots)
    for (const block of (await res.text()).split("\n\n")) if (block.trim()) await handle(block);
    return;
  }
  const reader = res.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buf += dec.decode(value, {stream: true});
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
      await handle(block);
    }
  }
}

// one server-sent event: "event: KIND" and "data: JSON" lines
async function handle(block) {
  const kind = (block.match(/^event: (.*)$/m) || [, "message"])[1];
  const data = JSON.parse(block.match(/^data: (.*)$/m)[1]);
  if (kind === "start") {
    ell = data.ell; $("ell").textContent = data.ell; $("base").textContent = data.base;
    layout(data.rows[0]);
  } else if (kind === "step" && data.index === 0) {
    if (window.stopAt !== undefined && data.step > window.stopAt) return;  // freeze mid-denoising
    step(data);
    if ($("slow").checked) await sleep(60);
  } else if (kind === "done" && window.stopAt !== undefined) {
    $("text").textContent = "(frozen at step " + (window.stopAt + 1) + " by ?stop_at; the completion is: "
      + JSON.stringify(data.choices[0].text) + ")";
    document.body.dataset.done = "1";
  } else if (kind === "done") {
    $("text").textContent = $("prompt").value + data.choices[0].text;
    $("nfe").textContent = data.prime.nfe[0]; $("idle").textContent = data.prime.idle_steps[0];
    document.body.dataset.done = "1";
  } else if (kind === "error") {
    $("error").textContent = data.error.message;
  }
}

async function init() {
  $("form").addEventListener("submit", run);
  try {
    const res = await fetch("/v1/models", {headers: headers()});
    const m = (await res.json()).data[0];
    $("model").textContent = m.id + " · L = " + m.prime.length + ", ℓ = " + m.prime.ell + ", b = " + m.prime.base;
  } catch (err) { $("model").textContent = "(model list needs the API key)"; }
  const q = new URLSearchParams(location.search);
  for (const k of ["prompt", "max_tokens", "steps", "seed", "temperature", "top_p"]) if (q.has(k)) $(k).value = q.get(k);
  window.whole = q.has("whole");
  if (q.has("stop_at")) window.stopAt = parseInt(q.get("stop_at"), 10);
  if (q.has("autorun")) { $("slow").checked = false; run(); }
}
init();
