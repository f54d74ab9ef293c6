"use strict";
const $ = (id) => document.getElementById(id);
let readOnly = true;

function chart(history) {
  if (history.length < 2) return '<svg class="chart" viewBox="0 0 100 40"></svg>';
  const t0 = history[0][0], t1 = history[history.length - 1][0] || t0 + 1;
  const pmax = Math.max(1000, ...history.map(h => h[1]));
  const pts = history.map(([t, p]) =>
    `${(100 * (t - t0) / Math.max(1e-9, t1 - t0)).toFixed(2)},${(38 - 36 * p / pmax).toFixed(2)}`).join(" ");
  return `<svg class="chart" viewBox="0 0 100 40" preserveAspectRatio="none"><polyline points="${pts}"/></svg>`;
}

function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c])); }

function render(s) {
  readOnly = s.read_only;
  $("station").textContent = s.station_id;
  $("csms").textContent = s.ocpp_connected ? "CSMS connected" : "CSMS offline";
  $("csms").className = "pill " + (s.ocpp_connected ? "ok" : "bad");
  $("fw").textContent = s.firmware_status;
  $("diag").textContent = s.diagnostics_status;
  $("problems").innerHTML = (s.discovery_problems || []).map(p => `<p>⚠ ${esc(p)}</p>`).join("");
  $("alloc").textContent = Object.entries(s.allocation).map(([c, a]) => `#${c}: ${a.toFixed(1)} A`).join("  ") || "—";
  $("mode").textContent = readOnly ? "read-only (no operator password configured)" : "operator actions enabled";
  $("collect").disabled = readOnly;
  $("guns").innerHTML = s.guns.map(g => {
    const cls = !g.link_up ? "down" : Object.keys(g.active_errors).length ? "fault" : g.state === "Charging" ? "charging" : "";
    return `<section class="gun ${cls}" data-connector="${g.connector}">
      <h2><span>Gun ${g.connector}</span><span class="pill ${g.link_up ? "ok" : "bad"}">${g.remote ? "satellite" : "local"} ${esc(g.serial)}</span></h2>
      <div class="state" data-field="state">${esc(g.state)}</div>
      <dl>
        <dt>Power</dt><dd data-field="power">${(g.power_w / 1000).toFixed(2)} kW</dd>
        <dt>Current</dt><dd>${g.current_a.map(c => c.toFixed(1)).join(" / ") || "—"} A (limit ${g.limit_a.toFixed(1)} A)</dd>
        <dt>Session</dt><dd>${(g.session_energy_wh / 1000).toFixed(3)} kWh ${g.id_tag ? "· " + esc(g.id_tag) : ""}</dd>
        <dt>Meter</dt><dd>${(g.energy_wh / 1000).toFixed(3)} kWh · ${g.sessions_completed} sessions</dd>
        <dt>CP / temp</dt><dd>${esc(g.cp_state)} · ${g.temperature_c.toFixed(1)} °C</dd>
        <dt>Link</dt><dd>${g.link_up ? "up" : "DOWN"} · fw ${esc(g.firmware_version)} · boot ${esc(g.boot_id.slice(0, 8))}</dd>
        <dt>Errors</dt><dd>${Object.keys(g.active_errors).map(esc).join(", ") || "none"}</dd>
      </dl>
      ${chart(g.history)}
      <div class="actions">
        <button data-action="enable" data-connector="${g.connector}" ${readOnly || g.enabled ? "disabled" : ""}>Enable</button>
        <button data-action="disable" data-connector="${g.connector}" ${readOnly || !g.enabled ? "disabled" : ""}>Disable</button>
      </div>
    </section>`;
  }).join("");
}

async function post(path) {
  $("msg").textContent = "…";
  const r = await fetch(path, { method: "POST", headers: { "X-Operator-Password": $("pw").value } });
  const body = await r.json();
  $("msg").textContent = r.ok ? (body.file ? `diagnostics: ${body.file}` : "done") : body.error;
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b || b.disabled) return;
  const a = b.dataset.action;
  post(a === "diagnostics" ? "/api/diagnostics" : `/api/connectors/${b.dataset.connector}/${a}`);
});

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => { $("link").textContent = "live"; $("link").className = "pill ok"; };
  ws.onmessage = (m) => render(JSON.parse(m.data));
  ws.onclose = () => { $("link").textContent = "reconnecting"; $("link").className = "pill bad"; setTimeout(connect, 1000); };
}
connect();
