"use strict";
// The station dashboard. Everything comes from the main: GET /api/history once (the chart ring),
// then snapshots over /ws (each carries the newest 1 Hz sample); /api/log when log_version moves.
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const kW = (w) => (w / 1000).toFixed(2) + " kW";
const kWh = (wh) => (wh / 1000).toFixed(3) + " kWh";
const amps = (a) => a.toFixed(1) + " A";
const clock = (t) => t ? new Date(t * 1000).toLocaleTimeString() : "—";
const stamp = (t) => t ? new Date(t * 1000).toLocaleString() : "—";
function bytes(n) {
  if (n >= 1048576) return (n / 1048576).toFixed(1) + " MiB";
  if (n >= 1024) return (n / 1024).toFixed(0) + " KiB";
  return n + " B";
}

let readOnly = true, operator = false, logVersion = -1, last = null;
let windowS = 3600;
const guns = new Map();   // connector -> {el, plot, data: [t[], kW[], L1[], L2[], L3[]]}
const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#f85149"];

function msg(text) { $("msg").textContent = text; }

// ------------------------------------------------------------------ charts (uPlot)

function chartOpts(width) {
  return {
    width, height: 170,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, kW: { range: (u, lo, hi) => [0, Math.max(1, hi)] }, A: { range: (u, lo, hi) => [0, Math.max(6, hi)] } },
    axes: [
      { stroke: "#8a96a3", grid: { stroke: "#26303c" } },
      { scale: "kW", label: "Power (kW)", stroke: "#8a96a3", grid: { stroke: "#26303c" }, size: 50 },
      { scale: "A", label: "Current (A)", side: 1, stroke: "#8a96a3", grid: { show: false }, size: 50 },
    ],
    series: [
      {},
      { label: "Power", scale: "kW", stroke: COLORS[0], width: 2, value: (u, v) => v == null ? "—" : v.toFixed(2) + " kW" },
      { label: "L1", scale: "A", stroke: COLORS[1], width: 1, value: (u, v) => v == null ? "—" : v.toFixed(1) + " A" },
      { label: "L2", scale: "A", stroke: COLORS[2], width: 1, value: (u, v) => v == null ? "—" : v.toFixed(1) + " A" },
      { label: "L3", scale: "A", stroke: COLORS[3], width: 1, value: (u, v) => v == null ? "—" : v.toFixed(1) + " A" },
    ],
  };
}

function redraw(g) {
  const t = g.data[0];
  const end = t.length ? t[t.length - 1] : Date.now() / 1000;
  g.plot.setData(g.data, false);
  g.plot.setScale("x", { min: end - windowS, max: end });
  g.chart.dataset.points = String(t.length);
}

function addSample(g, row) {   // row: [t, power_w, l1, l2, l3, energy_wh]
  const t = g.data[0];
  if (t.length && row[0] <= t[t.length - 1]) return false;
  t.push(row[0]); g.data[1].push(row[1] / 1000);
  g.data[2].push(row[2]); g.data[3].push(row[3]); g.data[4].push(row[4]);
  const keep = 3600;   // the main's ring holds one hour; so does the page
  if (t.length > keep) for (const col of g.data) col.splice(0, t.length - keep);
  return true;
}

// The site chart: mains per phase against the site limit, what the guns may share, and the
// allocation per gun, in amps.
let site = null;   // {plot, chart, guns: [connector...], data: [t[], L1[], L2[], L3[], limit[], avail[], gun...[]]}
const SITE_COLORS = ["#3fb950", "#d29922", "#f85149", "#e6e9ec", "#8a96a3", "#58a6ff", "#a371f7", "#39c5cf", "#ff7b72"];

function siteChart(conns) {
  const el = $("site-chart");
  const series = [{},
    ...["Mains L1", "Mains L2", "Mains L3"].map((label, i) => ({ label, stroke: SITE_COLORS[i], width: 1.5 })),
    { label: "Site limit", stroke: SITE_COLORS[3], width: 1, dash: [6, 4] },
    { label: "Available", stroke: SITE_COLORS[4], width: 1, dash: [2, 3] },
    ...conns.map((c, i) => ({ label: `Gun ${c}`, stroke: SITE_COLORS[5 + i % 4], width: 2 })),
  ];
  const opts = {
    width: Math.max(200, el.clientWidth), height: 170, legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(6, hi)] } },
    axes: [
      { stroke: "#8a96a3", grid: { stroke: "#26303c" } },
      { label: "Current (A)", stroke: "#8a96a3", grid: { stroke: "#26303c" }, size: 50 },
    ],
    series,
  };
  const data = series.map(() => []);
  return { el, chart: el, guns: conns, data, plot: new uPlot(opts, data, el) };
}

function siteRows(s) {   // series-shaped columns -> one array per chart series
  return [s.t, ...s.mains_a, s.site_limit_a, s.available_a, ...site.guns.map(c => s.allocation[String(c)] || [])];
}

function setSite(s) {
  if (!s) return;
  if (!site) site = siteChart(Object.keys(s.allocation).map(Number));
  site.data = siteRows(s).map(col => col.slice());
  redraw(site);
}

function addSite(s) {
  if (!s || !site) return;
  const row = siteRows(s);
  if (site.data[0].length && row[0][0] <= site.data[0][site.data[0].length - 1]) return;
  row.forEach((col, i) => site.data[i].push(col[0]));
  if (site.data[0].length > 3600) for (const col of site.data) col.splice(0, site.data[0].length - 3600);
  redraw(site);
}

let historyPending = false;
async function loadHistory() {
  if (historyPending) return;
  historyPending = true;
  let body;
  try {
    const r = await fetch("/api/history");
    if (!r.ok) return;
    body = await r.json();
  } finally {
    historyPending = false;
  }
  for (const [c, s] of Object.entries(body.guns)) {
    const g = guns.get(Number(c));
    if (!g) continue;
    g.data = [s.t.slice(), s.power_w.map(p => p / 1000), s.current_a[0].slice(), s.current_a[1].slice(), s.current_a[2].slice()];
    redraw(g);
  }
  setSite(body.site);
}

// ------------------------------------------------------------------ gun cards

function gunCard(c) {
  const el = document.createElement("section");
  el.className = "gun card";
  el.dataset.connector = c;
  el.innerHTML = `
    <h2><span>Gun ${c}</span><span class="pill" data-field="link-pill"></span></h2>
    <div class="state" data-field="state"></div>
    <dl>
      <dt>Power</dt><dd data-field="power"></dd>
      <dt>Current</dt><dd data-field="current"></dd>
      <dt>Voltage</dt><dd data-field="voltage"></dd>
      <dt>Session</dt><dd data-field="session"></dd>
      <dt>Meter</dt><dd data-field="meter"></dd>
      <dt>CP / temp</dt><dd data-field="cp"></dd>
      <dt>Link</dt><dd data-field="link"></dd>
      <dt>Errors</dt><dd data-field="errors"></dd>
      <dt>Signed</dt><dd data-field="signed" class="signed" title="the board's last OCMF record (check it with chargeport meter verify)"></dd>
    </dl>
    <div class="chart" data-points="0"></div>
    <div class="actions">
      <button type="button" data-action="enable" data-connector="${c}">Enable</button>
      <button type="button" data-action="disable" data-connector="${c}">Disable</button>
    </div>`;
  $("guns").appendChild(el);
  const chart = el.querySelector(".chart");
  const plot = new uPlot(chartOpts(Math.max(200, chart.clientWidth)), [[], [], [], [], []], chart);
  const g = { el, chart, plot, data: [[], [], [], [], []] };
  guns.set(c, g);
  for (const id of ["tx-connector", "ev-connector"]) {
    const o = document.createElement("option");
    o.value = String(c); o.textContent = String(c);
    $(id).appendChild(o);
  }
  return g;
}

const DOWN_WORDS = new Set(["Link lost", "Connecting"]);

function setField(el, name, text) {
  const f = el.querySelector(`[data-field="${name}"]`);
  if (f.textContent !== text) f.textContent = text;
}

function renderGun(g, s) {
  const el = g.el;
  // One field decides both the headline and the link line: they cannot disagree.
  const up = s.link_up;
  const faults = Object.keys(s.active_errors);
  el.classList.toggle("down", !up);
  el.classList.toggle("fault", up && faults.length > 0);
  el.classList.toggle("charging", up && s.state === "Charging");
  // Down: the view's own word for it ("Link lost", or "Connecting" before the first link),
  // never a session state left over from before the link went.
  setField(el, "state", up ? s.state : DOWN_WORDS.has(s.state) ? s.state : "Link lost");
  const pill = el.querySelector('[data-field="link-pill"]');
  pill.textContent = `${s.remote ? "satellite" : "local"} ${s.serial}`;
  pill.className = "pill " + (up ? "ok" : "bad");
  setField(el, "power", kW(s.power_w));
  setField(el, "current", (s.current_a.length ? s.current_a.map(a => a.toFixed(1)).join(" / ") : "—") + ` A (limit ${amps(s.limit_a)})`);
  setField(el, "voltage", s.voltage_v && s.voltage_v.length ? s.voltage_v.map(v => v.toFixed(0)).join(" / ") + " V" : "—");
  setField(el, "session", kWh(s.session_energy_wh) + (s.id_tag ? " · " + s.id_tag : ""));
  setField(el, "meter", `${kWh(s.energy_wh)} · ${s.sessions_completed} sessions`);
  setField(el, "cp", `${s.cp_state} · ${s.temperature_c.toFixed(1)} °C`);
  setField(el, "link", `${up ? "up" : "down"} · fw ${s.firmware_version} · boot ${s.boot_id.slice(0, 8)}`);
  setField(el, "errors", faults.join(", ") || "none");
  // The board's own signed reading (OCMF), as transparency software takes it: shown whole.
  setField(el, "signed", s.signed_meter || "—");
  el.querySelector('[data-action="enable"]').disabled = !operator || s.enabled;
  el.querySelector('[data-action="disable"]').disabled = !operator || !s.enabled;
}

// ------------------------------------------------------------------ site and jobs

function bar(label, value, max, unit, cls) {
  const pct = max > 0 ? Math.min(100, 100 * value / max) : 0;
  return `<div class="bar ${cls || ""}" data-label="${esc(label)}"><span class="bar-label">${esc(label)}</span>` +
    `<progress max="100" value="${pct.toFixed(1)}"></progress><span class="bar-value">${value.toFixed(1)} ${unit}</span></div>`;
}

const MAINS_TEXT = { live: "live reading", stale: "reading stale: fallback limit in force", none: "no mains meter" };

function renderSite(site, allocation) {
  if (!site) {
    setField($("site"), "site-limit", "—");
    $("allocation").innerHTML = Object.entries(allocation).map(([c, a]) => bar(`Gun ${c}`, a, 32, "A")).join("");
    return;
  }
  setField($("site"), "site-limit", amps(site.site_limit_a) + (site.station_limit_a != null ? ` (CSMS cap ${amps(site.station_limit_a)})` : ""));
  setField($("site"), "available", amps(site.available_a));
  setField($("site"), "mains-status", MAINS_TEXT[site.mains_status] || site.mains_status);
  $("site").classList.toggle("stale", site.mains_status === "stale");
  $("mains").innerHTML = site.mains_a
    ? site.mains_a.map((a, i) => bar(`L${i + 1}`, a, site.site_limit_a, "A", a > site.site_limit_a ? "over" : "")).join("")
    : "";
  $("allocation").innerHTML = Object.entries(site.allocation).map(([c, a]) => {
    const tag = site.paused.includes(Number(c)) ? " (paused)" : site.reserved[c] != null ? " (link lost, reserved)" : "";
    return bar(`Gun ${c}${tag}`, a, site.site_limit_a, "A");
  }).join("");
}

function renderJob(tableId, rows) {
  $(tableId).querySelector("tbody").innerHTML = (rows || []).map(r => {
    const pct = r.percent == null ? "" : r.percent.toFixed(0) + " %";
    const size = r.total ? `${bytes(r.bytes)} / ${bytes(r.total)}` : bytes(r.bytes);
    const eta = r.finished ? "done" : r.eta_s == null ? "" : `ETA ${Math.ceil(r.eta_s)} s`;
    return `<tr data-board="${esc(r.board)}" data-percent="${r.percent == null ? "" : r.percent}" data-phase="${esc(r.phase)}">` +
      `<td>${esc(r.board)}</td><td>${esc(r.phase)}</td><td><progress max="100" value="${r.percent || 0}"></progress> ${pct}</td>` +
      `<td>${size}</td><td>${eta}</td></tr>`;
  }).join("");
}

// ------------------------------------------------------------------ transactions and events

let log = { transactions: [], events: [] };

function renderLog() {
  const c = $("tx-connector").value, tag = $("tx-tag").value.trim().toLowerCase();
  $("tx-rows").innerHTML = log.transactions
    .filter(t => (!c || String(t.connector) === c) && (!tag || t.id_tag.toLowerCase().includes(tag)))
    .map(t => `<tr><td>${t.connector}</td><td>${stamp(t.start)}</td><td>${t.stop ? stamp(t.stop) : "running"}</td>` +
      `<td>${t.energy_wh == null ? "—" : kWh(t.energy_wh)}</td><td>${esc(t.id_tag)}</td><td>${esc(t.stop_reason || "")}</td></tr>`)
    .join("") || '<tr><td colspan="6" class="dim">no transactions</td></tr>';
  const k = $("ev-kind").value, ec = $("ev-connector").value;
  $("ev-rows").innerHTML = log.events
    .filter(e => (!k || e.kind === k) && (!ec || String(e.connector) === ec))
    .map(e => `<tr class="ev-${esc(e.kind)}"><td>${clock(e.t)}</td><td>${esc(e.kind)}</td><td>${e.connector ?? "station"}</td><td>${esc(e.text)}</td></tr>`)
    .join("") || '<tr><td colspan="4" class="dim">no events</td></tr>';
}

async function loadLog() {
  const r = await fetch("/api/log");
  if (r.ok) { log = await r.json(); renderLog(); }
}
for (const id of ["tx-connector", "tx-tag", "ev-kind", "ev-connector"]) $(id).addEventListener("input", renderLog);

// ------------------------------------------------------------------ the snapshot

function render(s) {
  last = s;
  readOnly = s.read_only;
  $("station").textContent = s.station_id;
  $("csms").textContent = s.ocpp_connected ? "CSMS connected" : "CSMS offline";
  $("csms").className = "pill " + (s.ocpp_connected ? "ok" : "bad");
  $("fw").textContent = s.firmware_status;
  $("diag").textContent = s.diagnostics_status;
  $("problems").innerHTML = (s.discovery_problems || []).map(p => `<p>⚠ ${esc(p)}</p>`).join("");
  let fresh = false;
  for (const gs of s.guns) {
    const g = guns.get(gs.connector) || (fresh = true, gunCard(gs.connector));
    renderGun(g, gs);
  }
  if (fresh) loadHistory();
  for (const [c, row] of Object.entries(s.sample || {})) {
    const g = guns.get(Number(c));
    if (g && addSample(g, row)) redraw(g);
  }
  if (s.site_sample && !site) loadHistory(); else addSite(s.site_sample);
  renderSite(s.site, s.allocation);
  renderJob("fw-progress", s.progress && s.progress.firmware);
  renderJob("diag-progress", s.progress && s.progress.diagnostics);
  if (s.log_version !== logVersion) { logVersion = s.log_version; loadLog(); }
  renderMode();
  document.body.dataset.version = String(s.version);   // which snapshot is on screen (tests)
}

function renderMode() {
  $("login").hidden = readOnly || operator;
  $("logout").hidden = !operator;
  $("who").textContent = readOnly ? "read-only (no operator password configured)" : operator ? "operator" : "viewer";
  $("mode").textContent = readOnly ? "read-only" : operator ? "operator actions enabled" : "log in for operator actions";
  $("collect").disabled = !operator;
  if (last) for (const gs of last.guns) { const g = guns.get(gs.connector); if (g) renderGun(g, gs); }
}

// ------------------------------------------------------------------ operator session

async function session() {
  const r = await fetch("/api/session");
  if (r.ok) { const b = await r.json(); readOnly = b.read_only; operator = b.operator; renderMode(); }
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  msg("…");
  const r = await fetch("/api/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("pw").value }),
  });
  const body = await r.json();
  $("pw").value = "";
  operator = r.ok;
  msg(r.ok ? "logged in" : body.error);
  renderMode();
});

$("logout").addEventListener("click", async () => {
  await fetch("/api/logout", { method: "POST" });
  operator = false;
  msg("logged out");
  renderMode();
});

async function post(path) {
  msg("…");
  const r = await fetch(path, { method: "POST" });
  const body = await r.json();
  if (r.status === 401) { operator = false; renderMode(); }
  msg(r.ok ? (body.file ? `diagnostics: ${body.file}` : "done") : body.error);
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b || b.disabled) return;
  const a = b.dataset.action;
  post(a === "diagnostics" ? "/api/diagnostics" : `/api/connectors/${b.dataset.connector}/${a}`);
});

$("window").addEventListener("change", () => {
  windowS = Number($("window").value);
  for (const g of guns.values()) redraw(g);
  if (site) redraw(site);
});

window.addEventListener("resize", () => {
  for (const g of [...guns.values(), ...(site ? [site] : [])]) g.plot.setSize({ width: Math.max(200, g.chart.clientWidth), height: 170 });
});

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => {
    $("link").textContent = "live"; $("link").className = "pill ok";
    if (guns.size) loadHistory();   // samples missed while away
  };
  ws.onmessage = (m) => render(JSON.parse(m.data));
  ws.onclose = () => { $("link").textContent = "reconnecting"; $("link").className = "pill bad"; setTimeout(connect, 1000); };
}
session();
connect();
