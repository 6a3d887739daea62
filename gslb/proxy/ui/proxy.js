// gslb proxy page: polls the admin API (/v1/backends, /v1/events, /healthz) and draws it. No libraries.
"use strict";

const POLL_MS = 1000;
const WINDOW_S = 300;
const COLORS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#9e9d24", "#4e342e"];
let lastEventId = 0;
let busy = false;
const samples = [];             // [{t, requests: Map("pool|address" -> count)}]

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

async function get(path) {
  const response = await fetch(path, {cache: "no-store"});
  if (!response.ok && response.status !== 503) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function stateOf(b) {
  if (b.drain) return "drained";
  return b.state;
}

function renderBackends(doc) {
  const now = Date.now() / 1000;
  const counts = new Map();
  const blocks = [];
  for (const [name, pool] of Object.entries(doc.pools)) {
    const rows = pool.backends.map(b => {
      counts.set(name + "|" + b.address, b.requests);
      const state = stateOf(b);
      return el("tr", {"data-pool": name, "data-address": b.address, class: "backend"},
        el("td", {}, b.address), el("td", {class: "state " + state}, state),
        el("td", {class: "num"}, b.weight + (b.effective_weight !== b.weight ? " (" + b.effective_weight + ")" : "")),
        el("td", {class: "num"}, b.active), el("td", {class: "num requests"}, b.requests),
        el("td", {class: "num"}, b.ewma_latency_ms === null ? "–" : b.ewma_latency_ms.toFixed(1) + " ms"),
        el("td", {class: "num"}, b.ejections));
    });
    blocks.push(el("div", {"data-pool": name}, el("h3", {}, "pool " + name + " ", el("span", {class: "muted"}, "(" + pool.algorithm + ")")),
      el("table", {}, el("thead", {}, el("tr", {}, ["backend", "state", "weight", "in flight", "requests", "latency", "ejections"]
        .map(h => el("th", {}, h)))), el("tbody", {}, rows))));
  }
  document.getElementById("pools").replaceChildren(...blocks);
  samples.push({t: now, requests: counts});
  while (samples.length > 2 && samples[0].t < now - WINDOW_S) samples.shift();
}

function renderTraffic() {
  const box = document.getElementById("traffic");
  if (samples.length < 2) { box.textContent = "collecting…"; return; }
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t, span = Math.max(1, t1 - t0);
  const pools = new Map();        // pool -> [addresses]
  for (const key of samples[samples.length - 1].requests.keys()) {
    const [pool, address] = key.split("|");
    if (!pools.has(pool)) pools.set(pool, []);
    pools.get(pool).push(address);
  }
  const blocks = [];
  for (const [pool, addresses] of pools) {
    const steps = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = Math.max(0.001, samples[i].t - samples[i - 1].t);
      steps.push({t: samples[i].t, rates: addresses.map(a => {
        const k = pool + "|" + a, now = samples[i].requests.get(k) || 0, before = samples[i - 1].requests.get(k) || 0;
        return Math.max(0, now - before) / dt;
      })});
    }
    const peak = Math.max(1, ...steps.map(s => s.rates.reduce((x, y) => x + y, 0)));
    const W = 600, H = 120, x = t => (t - t0) / span * W;
    const root = svg("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
                             "aria-label": "requests per second, pool " + pool});
    const bottoms = steps.map(() => 0);
    addresses.forEach((a, i) => {
      const upper = [], lower = [];
      steps.forEach((s, j) => {
        lower.push([x(s.t), H - bottoms[j] / peak * H]);
        bottoms[j] += s.rates[i];
        upper.push([x(s.t), H - bottoms[j] / peak * H]);
      });
      root.append(svg("polygon", {points: upper.concat(lower.reverse()).map(p => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" "),
                                  fill: COLORS[i % COLORS.length], opacity: "0.85"}, svg("title", {}, a)));
    });
    const last = steps[steps.length - 1];
    blocks.push(el("div", {"data-pool": pool}, el("h3", {}, "pool " + pool + " ",
      el("span", {class: "muted"}, "peak " + peak.toFixed(1) + " req/s")), root,
      el("div", {}, addresses.map((a, i) => el("span", {class: "legend-row"},
        el("span", {class: "swatch", style: "background:" + COLORS[i % COLORS.length]}),
        a + " " + last.rates[i].toFixed(1) + "/s")))));
  }
  box.replaceChildren(...blocks);
}

function renderEvents(doc) {
  const list = document.getElementById("events");
  for (const e of doc.events) {
    list.prepend(el("li", {"data-kind": e.kind, "data-id": e.id},
      el("span", {class: "muted"}, new Date(e.time * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") + " "),
      el("span", {class: "kind"}, e.kind), " ", [e.pool && "pool " + e.pool, e.address].filter(Boolean).join(" ") + ": ",
      el("span", {class: "reason"}, e.reason || e.message)));
    lastEventId = Math.max(lastEventId, e.id);
  }
  while (list.children.length > 300) list.lastChild.remove();
}

async function poll() {
  if (busy) return;
  busy = true;
  try {
    const [backends, events, ready] = await Promise.all([get("/v1/backends"), get("/v1/events?since=" + lastEventId),
                                                         get("/healthz")]);
    renderBackends(backends);
    renderTraffic();
    renderEvents(events);
    const r = document.getElementById("ready");
    r.textContent = ready.ok ? "ready" : "NOT READY: " + (ready.why || "no healthy backend in " + (ready.pools_without_healthy_backend || []).join(", "));
    r.className = ready.ok ? "up" : "down";
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.getElementById("updated").className = "muted";
  } catch (err) {
    document.getElementById("updated").textContent = "cannot reach the proxy: " + err.message;
    document.getElementById("updated").className = "error";
  } finally {
    busy = false;
  }
}

poll();
setInterval(poll, POLL_MS);
