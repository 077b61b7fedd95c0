// mirrorsim live page: draws the loaded config (GET /live/config, SSE "config") and the
// traffic (SSE "batch": events + exact counts). No dependencies, no network beyond mirrorsim.
// Data from requests (paths, hosts) is only ever set with textContent, never parsed as HTML.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const MAX_ROWS = 40;          // request rows kept on the page
const MAX_ORPHANS = 300;      // shadow events waiting for their request's row
const MAX_PAUSED = 300;       // events held while paused

const state = {
  picture: null,
  counts: {}, fates: {}, skipped: 0, lost: 0, since: 0,
  rows: new Map(),            // request id -> {tr, chips: Map(cluster -> element)}
  orphans: new Map(),         // request id -> [shadow events]
  paused: false, held: [], heldDropped: 0,
  edges: {},                  // count key -> {path, label, text}
  clusterNames: {},           // cluster -> "httpbin v1"
  statsTimer: null,
};

// Other helpers publish more event kinds: handlers[kind] = function(event).
const handlers = {
  request: addRequest,
  shadow: addShadow,
  annotate: annotate,
  note: (e) => addNote(e.text || JSON.stringify(e)),
};
window.mirrorsimLive = { handlers, state };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmtTime(t) {
  const d = new Date(t * 1000);
  const p = (n, w) => String(n).padStart(w, "0");
  return `${p(d.getHours(), 2)}:${p(d.getMinutes(), 2)}:${p(d.getSeconds(), 2)}.${p(d.getMilliseconds(), 3)}`;
}

function fmtPct(p) {
  return (Math.round(p * 100) / 100) + "%";
}

function clusterName(c) {
  return state.clusterNames[c] || c || "-";
}

// ------------------------------------------------------------------ the picture
function drawPicture(pic) {
  state.picture = pic;
  state.clusterNames = {};
  const g = document.getElementById("graph");
  while (g.firstChild) g.removeChild(g.firstChild);
  state.edges = {};
  const defs = svg("defs", {});
  for (const [id, color] of [["arrow-plain", "#334155"], ["arrow-primary", "#1d4ed8"], ["arrow-mirror", "#c2410c"]]) {
    const m = svg("marker", { id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "14", markerHeight: "14",
      markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
    m.appendChild(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }));
    defs.appendChild(m);
  }
  g.appendChild(defs);

  const routes = pic.routes || [];
  const services = pic.services || [];
  const W = 1280, RH = 96, RBOX = 80, SH = 66, SVC_HEAD = 36, GAP = 18;
  const col = { client: 10, proxy: 170, route: 370, routeW: 330, svc: 890 };
  const routeY = {}, subsetY = {};
  let y = 14;
  routes.forEach((r) => { routeY[r.id] = y; y += RH; });
  const routesBottom = y;
  let sy = 10;
  const svcBoxes = [];
  for (const s of services) {
    const top = sy;
    sy += SVC_HEAD;
    for (const sub of s.subsets) {
      subsetY[sub.cluster] = sy;
      state.clusterNames[sub.cluster] = sub.subset === "(all)" ? s.short : `${s.short} ${sub.subset}`;
      sy += SH;
    }
    sy += 6;
    svcBoxes.push({ s, top, bottom: sy });
    sy += GAP;
  }
  const H = Math.max(routesBottom, sy, 150) + 6;
  g.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const mid = H / 2;

  const servicesLayer = svg("g", {});
  const edgesLayer = svg("g", {});
  const nodesLayer = svg("g", {});
  const labelsLayer = svg("g", {});
  for (const layer of [servicesLayer, edgesLayer, nodesLayer, labelsLayer]) g.appendChild(layer);

  function box(cls, x, y0, w, h, lines) {
    const n = svg("g", { class: "node " + cls });
    n.appendChild(svg("rect", { x, y: y0, width: w, height: h }));
    lines.forEach(([text, tcls], i) => {
      n.appendChild(svg("text", { x: x + 12, y: y0 + 24 + i * 21, class: tcls || "" }, text));
    });
    nodesLayer.appendChild(n);
    return n;
  }

  function edge(key, kind, x1, y1, x2, y2, labelText, lx, ly) {
    const dx = Math.max(30, (x2 - x1) / 2);
    const p = svg("path", {
      d: `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`,
      class: "edge " + kind, "marker-end": `url(#arrow-${kind})`,
    });
    edgesLayer.appendChild(p);
    const label = svg("text", { x: lx, y: ly, class: "elabel " + kind, "text-anchor": "middle" });
    labelsLayer.appendChild(label);
    state.edges[key] = { path: p, label, text: labelText };
  }

  box("client", col.client, mid - 30, 120, 60, [["client", "title"], ["curl, browser", "small"]]);
  const proxyH = 84;
  box("proxy", col.proxy, mid - proxyH / 2, 150, proxyH, [["proxy", "title"], ["Envoy sidecar", "small"], ["(mirrorsim)", "small"]]);
  edge("client", "plain", col.client + 120, mid, col.proxy, mid, "", (col.client + 120 + col.proxy) / 2, mid - 10);

  for (const r of routes) {
    const ry = routeY[r.id];
    const rmid = ry + RBOX / 2;
    const title = r.source || r.name || r.id;
    const host = (r.hosts || []).slice().sort((a, b) => a.length - b.length)[0] || "*";
    const line2 = (r.origin || "").replace(/^VirtualService /, "VirtualService ");
    const line3 = `${host}:${r.port} · ${r.match}` + (r.kind === "redirect" || r.kind === "direct" ? ` · ${r.kind} ${r.status}` : "");
    const n = box("route", col.route, ry, col.routeW, RBOX, [[title, "title"], [line2, "small"], [line3, "small"]]);
    n.appendChild(svg("title", {}, `${r.origin} ${r.source_path || ""}`));
    edge(r.id, "plain", col.proxy + 150, mid, col.route, rmid, "", col.route - 26, rmid - 8);
    const rx = col.route + col.routeW;
    const tx = col.svc + 20;
    (r.primary || []).forEach((p, i) => {
      const ty = subsetY[p.cluster];
      if (ty === undefined) return;
      const tmid = ty + (SH - 10) / 2 - 7;
      edge(`${r.id}>${p.cluster}`, "primary", rx, rmid - 8 + i * 3, tx, tmid, fmtPct(p.weight),
        rx + (tx - rx) * 0.42, rmid + (tmid - rmid) * 0.42 - 12);
    });
    (r.mirrors || []).forEach((m, i) => {
      const ty = subsetY[m.cluster];
      if (ty === undefined) return;
      const tmid = ty + (SH - 10) / 2 + 7;
      edge(`${r.id}~${m.cluster}`, "mirror", rx, rmid + 8 + i * 3, tx, tmid, "mirror " + fmtPct(m.percent),
        rx + (tx - rx) * 0.42, rmid + (tmid - rmid) * 0.42 + 28);
    });
  }

  for (const b of svcBoxes) {
    const s = b.s;
    const sg = svg("g", { class: "node service" });
    sg.appendChild(svg("rect", { x: col.svc, y: b.top, width: 380, height: b.bottom - b.top }));
    sg.appendChild(svg("text", { x: col.svc + 12, y: b.top + 25, class: "title" }, `${s.short}:${s.port}`));
    sg.appendChild(svg("text", { x: col.svc + 140, y: b.top + 25, class: "small" }, s.host));
    servicesLayer.appendChild(sg);
    for (const sub of s.subsets) {
      const ty = subsetY[sub.cluster];
      const n = box("subset" + (sub.used ? "" : " unused"), col.svc + 20, ty, 340, SH - 10,
        [[sub.subset, "title"]]);
      n.appendChild(svg("text", { x: col.svc + 80, y: ty + 24, class: "small" }, sub.endpoints.join(" ")));
      n.appendChild(svg("title", {}, sub.cluster));
      const f = svg("text", { x: col.svc + 32, y: ty + 46, class: "small fates" }, "");
      f.dataset.cluster = sub.cluster;
      n.appendChild(f);
    }
  }

  const meta = document.getElementById("config-meta");
  const when = pic.loaded_at ? fmtTime(pic.loaded_at) : "";
  meta.textContent = `config${pic.version ? " " + pic.version : ""} loaded ${when} (counts since)` +
    (pic.hidden_routes ? ` · ${pic.hidden_routes} more routes not drawn` : "");
  const banner = document.getElementById("banner");
  if (pic.workers > 1) {
    banner.hidden = false;
    banner.textContent = `mirrorsim runs ${pic.workers} worker processes: this page shows the config, and on each ` +
      `subset the responses summed over every worker (from /stats, every 2 s). The request list needs --workers 1.`;
    startStatsPolling();
  } else {
    banner.hidden = true;
  }
  renderCounts();
}

function renderCounts() {
  const c = state.counts;
  const workers = state.picture && state.picture.workers > 1;
  for (const key in state.edges) {
    const e = state.edges[key];
    const n = c[key] || 0;
    // with --workers the events stay in the workers: the edges carry no count
    e.label.textContent = workers ? e.text : (e.text ? `${e.text} · ${n}` : String(n));
  }
  for (const f of document.querySelectorAll("text.fates")) {
    const t = state.fates[f.dataset.cluster];
    if (!t) { f.textContent = ""; continue; }
    const parts = [];
    if (t.answered) parts.push(`copies answered ${t.answered}`);
    if (t.failed) parts.push(`failed ${t.failed}`);
    if (t.dropped) parts.push(`dropped ${t.dropped}`);
    if (t["unknown cluster"]) parts.push(`no cluster ${t["unknown cluster"]}`);
    if (t.primary) parts.push(`responses ${t.primary}`);
    if (t.copies) parts.push(`copies ${t.copies}`);
    f.textContent = parts.join(" · ");
  }
  if (workers) {
    const sum = (k) => Object.values(state.fates).reduce((a, t) => a + (t[k] || 0), 0);
    document.getElementById("totals").textContent =
      `all workers: ${sum("primary")} responses to primaries · ${sum("copies")} to shadow copies`;
    return;
  }
  const copies = Object.values(state.fates).reduce((a, t) => a + (t.answered || 0) + (t.failed || 0) + (t.dropped || 0), 0);
  let s = `${c.client || 0} requests · ${copies} shadow copies`;
  if (state.skipped) s += ` · ${state.skipped} not listed (sampled)`;
  if (state.lost) s += ` · ${state.lost} lost (page too slow)`;
  document.getElementById("totals").textContent = s;
}

// Edges that carried traffic in the last batch are drawn thicker until the next batch
// (one class change per edge per batch: no animation, no timer).
let pulsed = new Set();

function pulse(key) {
  if (state.edges[key]) pulsed.add(key);
}

function applyPulses() {
  for (const key in state.edges) {
    state.edges[key].path.classList.toggle("pulse", pulsed.has(key));
  }
  pulsed = new Set();
}

// ------------------------------------------------------------------ the request list
function statusSpan(status, flags) {
  const ok = status > 0 && status < 500;
  const s = el("span", "status " + (ok ? "ok" : "bad"), status ? String(status) : "no response");
  const wrap = el("span");
  wrap.appendChild(s);
  if (flags && flags !== "-") wrap.appendChild(el("span", "flags", " " + flags));
  return wrap;
}

function addBadges(node, e) {
  if (e.diff) {
    const b = el("span", "badge diff-" + String(e.diff).toLowerCase(), "diff: " + e.diff);
    node.appendChild(b);
  }
}

function addRequest(e) {
  document.getElementById("empty").hidden = true;
  const tbody = document.getElementById("rows");
  const tr = el("tr", "fresh");
  tr.dataset.id = e.id || "";
  tr.appendChild(el("td", "time", fmtTime(e.t)));
  const req = el("td", "req");
  req.appendChild(el("span", "method", e.method + " "));
  req.appendChild(el("span", "path", e.path));
  req.appendChild(el("span", "host", e.host));
  addBadges(req, e);
  tr.appendChild(req);
  const rule = el("td", "rule", e.rule || "-");
  if (e.rule_path) rule.title = e.rule_path;
  tr.appendChild(rule);
  const prim = el("td", "primary");
  if (e.cluster) {
    prim.appendChild(el("span", "cl", "→ " + clusterName(e.cluster) + " · "));
    prim.title = e.cluster;
  } else if (e.local) {
    prim.appendChild(el("span", "cl", e.local + " · "));
  }
  prim.appendChild(statusSpan(e.status, e.flags));
  prim.appendChild(el("span", "ms", ` · ${e.ms} ms`));
  tr.appendChild(prim);
  const sh = el("td", "shadows");
  tr.appendChild(sh);
  const row = { tr, chips: new Map(), cell: sh };
  if (e.cluster && !(e.mirrors || []).length) sh.appendChild(el("span", "none", "none (no mirror sampled)"));
  for (const m of e.mirrors || []) {
    const chip = el("span", "chip pending", `⤳ ${clusterName(m)} …`);
    chip.title = m;
    sh.appendChild(chip);
    row.chips.set(m, chip);
  }
  if (e.id) {
    state.rows.set(e.id, row);
    const waiting = state.orphans.get(e.id);
    if (waiting) {
      state.orphans.delete(e.id);
      waiting.forEach((s) => fillShadow(row, s));
    }
  }
  tbody.insertBefore(tr, tbody.firstChild);
  while (tbody.children.length > MAX_ROWS) {
    const last = tbody.lastChild;
    tbody.removeChild(last);
    if (last.dataset.id && state.rows.get(last.dataset.id) && state.rows.get(last.dataset.id).tr === last) {
      state.rows.delete(last.dataset.id);
    }
  }
  if (e.route) pulse(e.route);
  if (e.route && e.cluster) pulse(`${e.route}>${e.cluster}`);
  if (e.route) for (const m of e.mirrors || []) pulse(`${e.route}~${m}`);
  pulse("client");
}

function fillShadow(row, s) {
  let chip = row.chips.get(s.cluster);
  if (!chip) {
    chip = el("span", "chip");
    row.cell.appendChild(chip);
    row.chips.set(s.cluster, chip);
  }
  chip.className = "chip " + (s.fate === "answered" ? "answered" : s.fate === "failed" ? "failed" : "dropped");
  chip.title = s.cluster;
  while (chip.firstChild) chip.removeChild(chip.firstChild);
  chip.appendChild(el("span", "", "⤳ "));
  chip.appendChild(el("span", "shost", s.host));
  chip.appendChild(el("span", "", ` → ${clusterName(s.cluster)} · `));
  if (s.fate === "answered") {
    chip.appendChild(statusSpan(s.status, s.flags));
    chip.appendChild(el("span", "", ` · ${s.ms} ms · discarded`));
  } else if (s.fate === "failed") {
    chip.appendChild(el("span", "status bad", `failed ${s.status} ${s.flags}`));
  } else if (s.fate === "dropped") {
    chip.appendChild(el("span", "status", "dropped by the cap"));
  } else {
    chip.appendChild(el("span", "status", s.fate));
  }
  addBadges(chip, s);
}

function addShadow(s) {
  const row = s.id ? state.rows.get(s.id) : undefined;
  if (row) { fillShadow(row, s); return; }
  if (!s.id) return;
  const list = state.orphans.get(s.id) || [];
  list.push(s);
  state.orphans.set(s.id, list);
  if (state.orphans.size > MAX_ORPHANS) {
    const first = state.orphans.keys().next().value;
    state.orphans.delete(first);
  }
}

function annotate(a) {
  const row = a.id ? state.rows.get(a.id) : undefined;
  if (!row) return;
  const fields = a.fields || {};
  const target = a.cluster ? row.chips.get(a.cluster) : row.tr.querySelector("td.req");
  if (target) addBadges(target, fields);
}

function addNote(text) {
  document.getElementById("empty").hidden = true;
  const tbody = document.getElementById("rows");
  const tr = el("tr", "fresh");
  const td = el("td", "note", text);
  td.colSpan = 5;
  tr.appendChild(td);
  tbody.insertBefore(tr, tbody.firstChild);
}

function handle(e) {
  const h = handlers[e.kind];
  if (h) h(e); else addNote(`${e.kind}: ${JSON.stringify(e)}`);
}

// ------------------------------------------------------------------ the event stream
function onBatch(msg) {
  state.counts = msg.counts || {};
  state.fates = msg.fates || {};
  state.skipped = msg.skipped || 0;
  if (state.paused) {
    for (const e of msg.events || []) {
      if (state.held.length < MAX_PAUSED) state.held.push(e); else state.heldDropped++;
    }
    const note = document.getElementById("paused-note");
    note.textContent = `paused: ${state.held.length + state.heldDropped} new events`;
    return;
  }
  for (const tr of document.querySelectorAll("#rows tr.fresh")) tr.classList.remove("fresh");
  for (const e of msg.events || []) handle(e);
  applyPulses();
  renderCounts();
}

function setPaused(p) {
  state.paused = p;
  const b = document.getElementById("pause");
  b.setAttribute("aria-pressed", p ? "true" : "false");
  b.textContent = p ? "Resume" : "Pause";
  const note = document.getElementById("paused-note");
  note.hidden = !p;
  note.textContent = "paused";
  if (!p) {
    const held = state.held;
    state.held = [];
    if (state.heldDropped) addNote(`${state.heldDropped} events arrived while paused and are not listed`);
    state.heldDropped = 0;
    held.forEach(handle);
    renderCounts();
  }
}

document.getElementById("pause").addEventListener("click", () => setPaused(!state.paused));
document.addEventListener("keydown", (ev) => {
  if (ev.key === " " && ev.target === document.body) { ev.preventDefault(); setPaused(!state.paused); }
});

function startStatsPolling() {
  if (state.statsTimer) return;
  const poll = async () => {
    try {
      const r = await fetch("/stats?format=json", { cache: "no-store" });
      if (!r.ok) return;
      const body = await r.json();
      const fates = {};
      for (const s of body.stats || []) {
        const m = /^cluster\.(.+)\.(external|internal)\.upstream_rq_(\d{3})$/.exec(s.name);
        if (!m) continue;
        const f = fates[m[1]] || (fates[m[1]] = {});
        const k = m[2] === "external" ? "primary" : "copies";
        f[k] = (f[k] || 0) + s.value;
      }
      state.fates = fates;
      if (!state.paused) renderCounts();
    } catch (err) {
      // the admin surface restarted: try again at the next tick
    }
  };
  poll();
  state.statsTimer = setInterval(poll, 2000);
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/live/events");
  es.addEventListener("open", () => { conn.className = "conn on"; conn.textContent = "live"; });
  es.addEventListener("error", () => { conn.className = "conn off"; conn.textContent = "reconnecting…"; });
  es.addEventListener("config", (m) => drawPicture(JSON.parse(m.data)));
  es.addEventListener("batch", (m) => onBatch(JSON.parse(m.data)));
  es.addEventListener("lost", (m) => { state.lost = JSON.parse(m.data).lost; renderCounts(); });
}

connect();
