// promptbus dashboard: reads /v1/usage and /dashboard/api/overview, draws them with uPlot.
"use strict";

const KEY_STORE = "promptbus.adminKey";
const $ = (id) => document.getElementById(id);
const charts = {};

class NeedsKey extends Error {}

async function api(path) {
  const key = sessionStorage.getItem(KEY_STORE);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const resp = await fetch(path, { headers });
  if (resp.status === 401 || resp.status === 403) throw new NeedsKey(`${resp.status}`);
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error ? body.error.message : `HTTP ${resp.status}`);
  return body;
}

function range() {
  const days = Number($("range").value);
  const to = new Date();
  const from = new Date(to.getTime() - days * 86400 * 1000);
  return `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
}

const integer = (n) => Number(n).toLocaleString("en-US");
const usd = (n) => Number(n).toFixed(6);
const ratio = (hits, requests) => (requests ? `${((100 * hits) / requests).toFixed(1)} %` : "-");
const ms = (n) => (n === null || n === undefined ? "-" : `${Number(n).toFixed(1)} ms`);

function fillTable(table, columns, rows) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const [title, , numeric] of columns) {
    const th = document.createElement("th");
    th.textContent = title;
    if (numeric) th.className = "num";
    head.appendChild(th);
  }
  const body = table.createTBody();
  if (!rows.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = columns.length;
    cell.className = "empty";
    cell.textContent = "nothing in this range";
    return;
  }
  for (const row of rows) {
    const tr = body.insertRow();
    for (const [, value, numeric, css] of columns) {
      const td = tr.insertCell();
      td.textContent = value(row);
      if (numeric) td.className = "num";
      if (css) td.classList.add(css(row));
    }
  }
}

function draw(id, days, series, values) {
  const target = $(id);
  const width = Math.max(320, target.clientWidth || 480);
  const xs = days.map((day) => Date.parse(`${day}T00:00:00Z`) / 1000);
  const data = [xs, ...values];
  const opts = {
    width,
    height: 220,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, scale: s.scale || "y" }))],
    axes: [{}, { scale: "y" }, ...(series.some((s) => s.scale === "r") ? [{ scale: "r", side: 1, grid: { show: false } }] : [])],
    scales: { x: { time: true } },
  };
  if (charts[id]) charts[id].destroy();
  target.replaceChildren();
  charts[id] = new uPlot(opts, data, target);
}

function render(daily, byModel, byTenant, overview) {
  const t = daily.totals;
  $("total-requests").textContent = integer(t.requests);
  $("total-errors").textContent = integer(t.errors);
  $("total-input-tokens").textContent = integer(t.input_tokens);
  $("total-output-tokens").textContent = integer(t.output_tokens);
  $("total-cost").textContent = usd(t.cost_usd);
  $("total-saved").textContent = usd(t.saved_usd);
  $("hit-ratio").textContent = ratio(t.cache_hits, t.requests);
  $("latency").textContent = `${ms(overview.latency.p50_ms)} / ${ms(overview.latency.p99_ms)}`;
  $("scope").textContent = overview.scope;

  const days = daily.series.map((r) => r.day);
  const latencyByDay = Object.fromEntries(overview.latency.days.map((d) => [d.day, d]));
  draw("chart-requests", days, [{ label: "requests", color: "#2563eb" }, { label: "errors", color: "#dc2626" }],
    [daily.series.map((r) => r.requests), daily.series.map((r) => r.errors)]);
  draw("chart-cost", days, [{ label: "cost", color: "#7c3aed" }, { label: "saved", color: "#059669" }],
    [daily.series.map((r) => r.cost_usd), daily.series.map((r) => r.saved_usd)]);
  draw("chart-tokens", days, [{ label: "input", color: "#0891b2" }, { label: "output", color: "#ea580c" }],
    [daily.series.map((r) => r.input_tokens), daily.series.map((r) => r.output_tokens)]);
  draw("chart-latency", days,
    [{ label: "hit %", color: "#059669", scale: "r" }, { label: "p50 ms", color: "#2563eb" }, { label: "p99 ms", color: "#dc2626" }],
    [daily.series.map((r) => (r.requests ? (100 * r.cache_hits) / r.requests : null)),
      days.map((d) => (latencyByDay[d] ? latencyByDay[d].p50_ms : null)),
      days.map((d) => (latencyByDay[d] ? latencyByDay[d].p99_ms : null))]);

  const usageColumns = (name) => [
    [name, (r) => r[name] ?? "(none)"],
    ["requests", (r) => integer(r.requests), true],
    ["errors", (r) => integer(r.errors), true],
    ["tokens in", (r) => integer(r.input_tokens), true],
    ["tokens out", (r) => integer(r.output_tokens), true],
    ["cost", (r) => usd(r.cost_usd), true],
    ["saved", (r) => usd(r.saved_usd), true],
    ["hit ratio", (r) => ratio(r.cache_hits, r.requests), true],
  ];
  fillTable($("by-model"), usageColumns("model"), byModel.series);
  fillTable($("by-tenant"), usageColumns("tenant"), byTenant.series);
  fillTable($("errors"), [["type", (r) => r.type], ["count", (r) => integer(r.count), true]], overview.errors);
  fillTable($("jobs"), [["job", (r) => r.id], ["tenant", (r) => r.tenant], ["state", (r) => r.state],
    ["stage", (r) => r.stage ?? ""], ["updated", (r) => new Date(r.updated_at * 1000).toISOString()]], overview.jobs);
  fillTable($("webhooks"), [["endpoint", (r) => r.id], ["tenant", (r) => r.tenant], ["url", (r) => r.url],
    ["health", (r) => r.health, false, (r) => (r.health === "ok" ? "ok" : "bad")]], overview.webhooks);
}

async function load() {
  const status = $("status");
  status.textContent = "loading";
  status.className = "";
  try {
    const q = range();
    const [daily, byModel, byTenant, overview] = await Promise.all([
      api(`/v1/usage?${q}&group_by=day`),
      api(`/v1/usage?${q}&group_by=model`),
      api(`/v1/usage?${q}&group_by=tenant`),
      api(`/dashboard/api/overview?${q}`),
    ]);
    $("login").hidden = true;
    $("board").hidden = false;
    render(daily, byModel, byTenant, overview);
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof NeedsKey) {
      $("board").hidden = true;
      $("login").hidden = false;
      status.textContent = "admin key needed";
      return;
    }
    status.textContent = `could not load: ${err.message}`;
    status.className = "error";
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("admin-key").value);
  load();
});
$("range").addEventListener("change", load);
load();
setInterval(load, 30000);
