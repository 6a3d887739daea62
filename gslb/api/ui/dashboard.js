// gslb dashboard: polls the server's JSON routes and draws them. Plain JS, no libraries, no build step.
// Data: /v1/health (pools, sites, endpoints, regions, overrides), /v1/events (the feed), /v1/zones,
// /v1/map (coordinates), /metrics (gslb_dns_answers_total, for the answer share).
"use strict";

const POLL_MS = 1000;            // health and events
const SLOW_EVERY = 5;            // zones and the map every 5 polls
const TRAFFIC_WINDOW_S = 600;    // the chart shows the last 10 minutes
const SHARE_WINDOW_S = 60;       // the table gives the share over the last minute
const MAX_EVENTS = 300;
const COLORS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#9e9d24", "#4e342e",
                "#ad1457", "#283593"];

let token = sessionStorage.getItem("gslb-token") || "";
let lastEventId = 0;
let tick = 0;
let waitingForToken = false;
let health = null;
let mapData = null;
const traffic = [];              // [{t: seconds, counts: Map(key -> count)}]

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class NeedToken extends Error {}

async function get(path, asText) {
  const headers = token ? {Authorization: "Bearer " + token} : {};
  const response = await fetch(path, {headers, cache: "no-store"});
  if (response.status === 401) throw new NeedToken();
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return asText ? response.text() : response.json();
}

function when(unix) {
  if (!unix) return "";
  return new Date(unix * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(unix) {
  if (!unix) return "";
  const s = Math.max(0, Date.now() / 1000 - unix);
  return s < 90 ? s.toFixed(0) + " s ago" : s < 5400 ? (s / 60).toFixed(0) + " min ago" : (s / 3600).toFixed(1) + " h ago";
}

function overrideText(o) {
  if (!o) return "";
  return o.state.toUpperCase() + " (" + o.selector + ", " + o.source + (o.by ? " by " + o.by : "") +
    (o.until_text ? ", until " + o.until_text : "") + "): " + o.reason;
}

// --- pools -> sites -> endpoints ---------------------------------------------------------------------
function renderHealth(doc) {
  health = doc;
  document.getElementById("node").textContent = doc.node_id ? "node " + doc.node_id : "";
  document.getElementById("health-version").textContent = "health v" + doc.version +
    (doc.region ? ", region " + doc.region : "");
  document.getElementById("failopen").hidden = !doc.fail_open;

  const probers = Object.entries(doc.probers).sort();
  document.getElementById("probers").replaceChildren(el("p", {},
    "Prober regions: ",
    probers.length ? probers.map(([name, p], i) => el("span", {
      class: "region " + (p.counted ? "up" : "down"), "data-region": name,
      title: "last report " + p.age.toFixed(1) + " s ago" + (p.blind ? ", blind: " + p.blind : ""),
    }, (i ? ", " : "") + name + (p.counted ? "" : p.live ? " (not counted)" : " (silent)"))) : "none reporting"));

  const overrides = doc.overrides || [];
  document.getElementById("overrides").replaceChildren(overrides.length ? el("ul", {class: "override-list"},
    overrides.map(o => el("li", {class: "override", "data-selector": o.selector},
      overrideText(o) + (o.active ? "" : " (expired)")))) : "");

  const regions = [...new Set(probers.map(([name]) => name))];
  const blocks = [];
  for (const zone of doc.zones) {
    for (const pool of zone.pools) {
      const head = el("tr", {}, el("th", {}, "address"), el("th", {}, "state"), el("th", {}, "answered"),
        regions.map(r => el("th", {}, r)), el("th", {}, "override"));
      const rows = [];
      for (const site of pool.sites) {
        rows.push(el("tr", {class: "site-row", "data-site": site.name},
          el("td", {colSpan: 4 + regions.length}, "site " + site.name +
            (site.status !== "auto" ? " (status " + site.status + ")" : ""))));
        for (const e of site.endpoints) {
          rows.push(el("tr", {"data-zone": zone.origin, "data-pool": pool.name, "data-site": site.name,
                              "data-address": e.address, class: "endpoint"},
            el("td", {}, e.address),
            el("td", {class: "state " + e.state, title: e.reason || ""}, e.state),
            el("td", {class: e.answered ? "answered" : "answered-no", title: e.why || ""},
              e.answered ? "yes" : "no (" + e.why + ")"),
            regions.map(r => {
              const v = e.regions[r];
              if (!v) return el("td", {class: "region"}, "–");
              const rtt = v.rtt_ms === null ? "" : " " + v.rtt_ms.toFixed(1) + " ms";
              return el("td", {class: "region " + v.state, title: v.error || ""}, v.state + rtt);
            }),
            el("td", {class: "override"}, overrideText(e.override))));
        }
      }
      blocks.push(el("div", {class: "pool", "data-pool": pool.name},
        el("h3", {}, zone.origin + " pool " + pool.name + " ", el("span", {class: "muted"},
          "(" + pool.policy + ", check " + (pool.check || "none") + ")")),
        el("table", {}, el("thead", {}, head), el("tbody", {}, rows))));
    }
  }
  document.getElementById("pools").replaceChildren(...blocks);
}

// --- events ------------------------------------------------------------------------------------------
function renderEvents(doc) {
  const list = document.getElementById("events");
  for (const e of doc.events) {
    const names = ["zone", "pool", "site", "address", "region"].filter(k => e[k]).map(k => k + " " + e[k]).join(", ");
    list.prepend(el("li", {class: "level-" + e.level, "data-kind": e.kind, "data-id": e.id},
      el("span", {class: "muted"}, when(e.time) + " "), el("span", {class: "kind"}, e.kind), " ",
      names ? el("span", {}, names + ": ") : "", el("span", {class: "reason"}, e.reason || e.message)));
    lastEventId = Math.max(lastEventId, e.id);
  }
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  if (!list.children.length) list.append(el("li", {class: "muted empty"}, "no events yet"));
  else list.querySelectorAll("li.empty").forEach(n => n.remove());
}

// --- zones -------------------------------------------------------------------------------------------
function renderZones(doc) {
  const files = new Map(doc.files.map(f => [f.origin, f]));
  const rows = doc.zones.map(z => {
    const f = files.get(z.origin);
    return el("tr", {"data-zone": z.origin}, el("td", {}, z.origin), el("td", {class: "num serial"}, z.serial),
      el("td", {}, z.names), el("td", {}, f ? (f.ok ? "ok" : "REFUSED: " + f.problems.join("; ")) : ""),
      el("td", {class: "muted"}, f ? ago(f.loaded_at) : ""));
  });
  const bad = doc.files.filter(f => !f.ok && !doc.zones.some(z => z.origin === f.origin));
  for (const f of bad) {
    rows.push(el("tr", {}, el("td", {}, f.file), el("td", {}), el("td", {}),
      el("td", {class: "error"}, "REFUSED: " + f.problems.join("; ")), el("td", {class: "muted"}, ago(f.loaded_at))));
  }
  document.getElementById("zones").replaceChildren(
    el("table", {}, el("thead", {}, el("tr", {}, ["zone", "serial", "names", "last load", "when"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows)),
    el("p", {class: "muted"}, "zone files last checked " + ago(doc.last_reload)));
}

// --- traffic: answer share from gslb_dns_answers_total ----------------------------------------------
function parseLabels(text) {
  const out = {};
  const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(text)) !== null) out[m[1]] = m[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
  return out;
}

function parseAnswers(metricsText) {
  const counts = new Map();
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith("gslb_dns_answers_total{")) continue;
    const close = line.lastIndexOf("}");
    const labels = parseLabels(line.slice(line.indexOf("{") + 1, close));
    const value = parseFloat(line.slice(close + 1));
    if (!Number.isFinite(value)) continue;
    counts.set(JSON.stringify([labels.zone, labels.pool, labels.site, labels.address]), value);
  }
  return counts;
}

function delta(newer, older) {
  const out = new Map();
  for (const [key, value] of newer) {
    const before = older.get(key) || 0;
    out.set(key, value >= before ? value - before : value);     // a restart resets the counters
  }
  return out;
}

function byPool(deltas, level) {
  // pool key -> Map(site or "site address" -> answers)
  const pools = new Map();
  for (const [key, n] of deltas) {
    const [zone, pool, site, address] = JSON.parse(key);
    const pk = zone + " pool " + pool;
    if (!pools.has(pk)) pools.set(pk, new Map());
    const part = level === "site" ? site : site + " " + address;
    pools.get(pk).set(part, (pools.get(pk).get(part) || 0) + n);
  }
  return pools;
}

function recordTraffic(metricsText) {
  const now = Date.now() / 1000;
  traffic.push({t: now, counts: parseAnswers(metricsText)});
  while (traffic.length > 2 && traffic[0].t < now - TRAFFIC_WINDOW_S) traffic.shift();
}

function renderTraffic() {
  const box = document.getElementById("traffic");
  const note = document.getElementById("traffic-note");
  if (traffic.length < 2) { note.textContent = "collecting…"; return; }
  const last = traffic[traffic.length - 1];
  if (!last.counts.size) {
    note.textContent = "no answers counted yet (gslb_dns_answers_total is empty)";
    box.replaceChildren();
    return;
  }
  const span = last.t - traffic[0].t;
  document.getElementById("traffic-window").textContent = "(last " + (span < 120 ? Math.round(span) + " s)" :
    Math.round(span / 60) + " min)");
  note.textContent = "share of addresses answered per site; the table: per endpoint over the last minute";
  // series per pool: for each interval, each site's share
  const steps = [];
  for (let i = 1; i < traffic.length; i++) {
    steps.push({t: traffic[i].t, pools: byPool(delta(traffic[i].counts, traffic[i - 1].counts), "site")});
  }
  const pools = new Set();
  for (const s of steps) for (const p of s.pools.keys()) pools.add(p);
  let base = traffic[0];
  for (const s of traffic) if (s.t <= last.t - SHARE_WINDOW_S) base = s;
  const recent = byPool(delta(last.counts, base.counts), "endpoint");
  const seconds = Math.max(1, last.t - base.t);
  const blocks = [];
  for (const pool of [...pools].sort()) {
    const sites = new Set();
    for (const s of steps) for (const site of (s.pools.get(pool) || new Map()).keys()) sites.add(site);
    const siteList = [...sites].sort();
    blocks.push(el("div", {class: "traffic-pool", "data-pool": pool}, el("h3", {}, pool),
      chart(steps, pool, siteList, traffic[0].t, last.t),
      el("div", {}, siteList.map((site, i) => el("span", {class: "legend-row"},
        el("span", {class: "swatch", style: "background:" + COLORS[i % COLORS.length]}), site))),
      shareTable(recent.get(pool) || new Map(), seconds)));
  }
  box.replaceChildren(...blocks);
}

function chart(steps, pool, sites, t0, t1) {
  if (steps.length === 1) steps = [{t: t0, pools: steps[0].pools}, steps[0]];    // one interval: a full band
  const W = 600, H = 140, span = Math.max(1, t1 - t0);
  const x = t => ((t - t0) / span) * W;
  const root = svg("svg", {class: "chart", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none",
                           role: "img", "aria-label": "answer share per site, " + pool});
  // stacked shares: for each site a polygon between the running bottom and top
  const bottoms = steps.map(() => 0);
  sites.forEach((site, i) => {
    const upper = [], lower = [];
    steps.forEach((s, j) => {
      const counts = s.pools.get(pool) || new Map();
      let total = 0;
      for (const n of counts.values()) total += n;
      const share = total ? (counts.get(site) || 0) / total : 0;
      lower.push([x(s.t), H - bottoms[j] * H]);
      bottoms[j] += share;
      upper.push([x(s.t), H - bottoms[j] * H]);
    });
    const points = upper.concat(lower.reverse()).map(p => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
    root.append(svg("polygon", {points, fill: COLORS[i % COLORS.length], opacity: "0.85"},
      svg("title", {}, site)));
  });
  for (const f of [0.25, 0.5, 0.75]) {
    root.append(svg("line", {x1: 0, x2: W, y1: H * f, y2: H * f, stroke: "#fff", "stroke-width": 0.5, opacity: 0.7}));
  }
  return root;
}

function shareTable(counts, seconds) {
  let total = 0;
  for (const n of counts.values()) total += n;
  const rows = [...counts.entries()].sort().map(([part, n]) => {
    const [site, address] = part.split(" ");
    return el("tr", {"data-site": site, "data-address": address}, el("td", {}, site), el("td", {}, address),
      el("td", {class: "num share"}, total ? (100 * n / total).toFixed(1) + " %" : "–"),
      el("td", {class: "num"}, (n / seconds).toFixed(2) + "/s"));
  });
  return el("table", {class: "share-table"},
    el("thead", {}, el("tr", {}, ["site", "address", "share", "answers"].map(h => el("th", {}, h)))),
    el("tbody", {}, rows));
}

// --- map ---------------------------------------------------------------------------------------------
function renderMap() {
  if (!mapData) return;
  const W = 720, H = 360;
  const px = lon => (lon + 180) / 360 * W, py = lat => (90 - lat) / 180 * H;
  const root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "sites and prober regions"});
  for (let lon = -150; lon <= 150; lon += 30) {
    root.append(svg("line", {x1: px(lon), x2: px(lon), y1: 0, y2: H, stroke: "#c5d5e5", "stroke-width": lon ? 0.5 : 1}));
  }
  for (let lat = -60; lat <= 60; lat += 30) {
    root.append(svg("line", {x1: 0, x2: W, y1: py(lat), y2: py(lat), stroke: "#c5d5e5", "stroke-width": lat ? 0.5 : 1}));
  }
  const answered = new Map();      // "pool/site" -> any endpoint answered
  for (const zone of (health ? health.zones : [])) {
    for (const pool of zone.pools) {
      for (const site of pool.sites) {
        answered.set(zone.origin + "|" + pool.name + "|" + site.name, site.endpoints.some(e => e.answered));
      }
    }
  }
  for (const p of mapData.probers) {
    const x = px(p.lon), y = py(p.lat);
    root.append(svg("polygon", {points: `${x},${y - 7} ${x - 6},${y + 5} ${x + 6},${y + 5}`,
                                fill: p.counted ? "#1565c0" : "#999", "data-region": p.name, class: "prober"},
      svg("title", {}, "prober region " + p.name + (p.counted ? " (counted)" : " (not counted)"))));
    root.append(svg("text", {x: x + 8, y: y + 12, "font-size": 9, fill: "#1565c0"}, p.name));
  }
  for (const s of mapData.sites) {
    const ok = answered.get(s.zone + "|" + s.pool + "|" + s.site);
    const x = px(s.lon), y = py(s.lat);
    root.append(svg("circle", {cx: x, cy: y, r: 5, fill: ok ? "#1a7f37" : "#c62828", stroke: "#fff",
                               "data-site": s.site, "data-pool": s.pool, class: "site " + (ok ? "up" : "down")},
      svg("title", {}, s.pool + "/" + s.site + (s.region ? " (" + s.region + ")" : "") + (ok ? "" : ": not answered"))));
    root.append(svg("text", {x: x + 7, y: y - 5, "font-size": 10}, s.pool + "/" + s.site));
  }
  document.getElementById("map").replaceChildren(root);
}

// --- the loop ----------------------------------------------------------------------------------------
let busy = false;

async function poll() {
  if (waitingForToken || busy) return;
  busy = true;
  try {
    await pollOnce();
  } finally {
    busy = false;
  }
}

async function pollOnce() {
  const slow = tick % SLOW_EVERY === 0;
  tick++;
  try {
    const [doc, events] = await Promise.all([get("/v1/health"), get("/v1/events?since=" + lastEventId + "&limit=200")]);
    renderHealth(doc);
    renderEvents(events);
    if (tick % 2 === 1) {
      recordTraffic(await get("/metrics", true));
      renderTraffic();
    }
    if (slow) {
      renderZones(await get("/v1/zones"));
      mapData = await get("/v1/map");
    }
    renderMap();
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.getElementById("updated").className = "muted";
  } catch (err) {
    if (err instanceof NeedToken) {
      waitingForToken = true;
      document.getElementById("token-form").hidden = false;
      document.getElementById("token-error").textContent = token ? "that token was refused" : "";
      return;
    }
    document.getElementById("updated").textContent = "cannot reach the server: " + err.message;
    document.getElementById("updated").className = "error";
  }
}

document.getElementById("token-form").addEventListener("submit", ev => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("gslb-token", token);
  document.getElementById("token-form").hidden = true;
  waitingForToken = false;
  tick = 0;
  poll();
});

poll();
setInterval(poll, POLL_MS);
