// Device page: info, editable tags, capabilities, what drifts (feature, PSI, since when),
// KPI charts over time, event timeline.
import { api, items, poll, h, flash, fmtAgo, fmtTime, applyRole, modelLabel } from "./common.js";
import { lineChart, fmtNumber } from "./charts.js";
import { describeEvent, eventClass } from "./events.js";

const $ = (s) => document.querySelector(s);
const id = $("#device-head").dataset.deviceId;
const path = `devices/${encodeURIComponent(id)}`;
let tagsDirty = false;

const num = (p, ...names) => {
  for (const n of names) {
    const v = n.split(".").reduce((o, k) => (o == null ? undefined : o[k]), p);
    if (Number.isFinite(v)) return v;
  }
  return null;
};
const series = (points, name, ...fields) => ({ name, points: points.map((p) => [p.ts ?? p.minute, num(p, ...fields)]) });

function kv(target, entries) {
  target.replaceChildren(...entries.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function flatCaps(obj, prefix = "") {
  return Object.entries(obj || {}).flatMap(([k, v]) =>
    v && typeof v === "object" && !Array.isArray(v) ? flatCaps(v, `${prefix}${k}.`)
      : [[`${prefix}${k}`, Array.isArray(v) ? v.map((x) => (typeof x === "object" ? JSON.stringify(x) : x)).join(", ") : String(v)]]);
}

function renderDevice(d) {
  $("#online-dot").className = `dot ${d.online ? "on" : ""}`;
  $("#badges").replaceChildren(
    h("span", { class: `badge ${d.online ? "ok" : ""}` }, d.online ? "online" : "offline"), " ",
    d.enrolled ? h("span", { class: "badge info" }, "enrolled") : h("span", { class: "badge warn" }, "unenrolled"));
  kv($("#info"), [
    ["Model", modelLabel(d.model)],
    ["Variant", [d.model?.runtime, d.model?.precision].filter(Boolean).join(" · ") || null],
    ["Agent", d.agent_version],
    ["Last seen", `${fmtAgo(d.last_seen)} (${fmtTime(d.last_seen)})`],
    ["First seen", fmtTime(d.first_seen)],
  ]);
  const caps = flatCaps(d.capabilities);
  kv($("#capabilities"), caps.length ? caps : [["", "not reported"]]);
  if (!tagsDirty && document.activeElement !== $("#tags-input")) $("#tags-input").value = (d.tags || []).join(", ");
}

const SIGNALS = { mean: "mean of all inputs", output: "predicted classes", confidence: "confidence" };

function renderDrift(d) {
  const rows = Array.isArray(d.drift) ? d.drift : [];
  const k = d.kpis || {};
  const worst = k.drift_worst;
  $("#drift-state").textContent = k.drift_alert
    ? `Drift alert on ${(k.drift_alert_on || []).join(", ") || "drift"}${worst ? `; worst ${worst.name} (PSI ${fmtNumber(worst.psi)})` : ""}.`
    : "No drift alert.";
  $("#drift-panel").classList.toggle("alert", Boolean(k.drift_alert));
  $("#drift tbody").replaceChildren(...(rows.length ? rows.map((r) =>
    h("tr", { "data-drift": r.name, "data-kind": r.kind },
      h("td", {}, r.kind === "feature" || r.kind === "channel"
        ? [h("span", { class: "mono" }, r.name), " ", h("span", { class: "muted" }, r.kind)]
        : SIGNALS[r.kind] || r.name),
      h("td", { class: "num kpi-bad" }, fmtNumber(r.psi)),
      h("td", { class: "num" }, fmtNumber(r.threshold)),
      h("td", {}, fmtTime(r.since), h("div", { class: "detail muted" }, fmtAgo(r.since))),
      h("td", { class: "muted", title: fmtTime(r.last_seen) }, fmtAgo(r.last_seen))))
    : [h("tr", {}, h("td", { colspan: 5, class: "empty" }, "Nothing drifts."))]));
}

function renderCharts(points) {
  points.sort((a, b) => (a.ts ?? a.minute) - (b.ts ?? b.minute));
  lineChart($("#chart-latency"), [
    series(points, "p50", "latency_p50", "latency_ms.p50"),
    series(points, "p95", "latency_p95", "latency_ms.p95"),
  ], { unit: " ms", title: "latency", legend: true });
  lineChart($("#chart-throughput"), [series(points, "throughput", "throughput", "throughput_per_s")], { unit: "/s", yLabel: "inferences/s" });
  const threshold = points.map((p) => num(p, "drift_threshold", "metrics.drift.threshold")).filter(Number.isFinite).pop();
  lineChart($("#chart-drift"), [series(points, "drift (max PSI)", "drift", "drift.input_psi")],
    { yLabel: "PSI", threshold: threshold ? { value: threshold, label: `alert at ${threshold}` } : null });
  lineChart($("#chart-confidence"), [
    series(points, "confidence", "confidence", "confidence_mean"),
    series(points, "accuracy", "accuracy", "accuracy.value"),
  ], { yMin: 0, yLabel: "share (0–1)", legend: true });
}

// One row per event: time, kind badge, the sentence, its rollout, and the raw JSON behind a
// toggle. Rows are keyed by event id so an open toggle stays open across polls.
const openRaw = new Set();

function eventRow(e) {
  const key = String(e.id ?? `${e.ts}-${e.seq}`);
  const raw = h("details", { class: "raw", open: openRaw.has(key) },
    h("summary", {}, "raw event"), h("pre", { class: "mono" }, JSON.stringify(e, null, 2)));
  raw.addEventListener("toggle", () => (raw.open ? openRaw.add(key) : openRaw.delete(key)));
  return h("li", { class: "event", "data-kind": e.kind, "data-step": e.step || "", "data-event": key },
    h("time", { datetime: new Date(e.ts * 1000).toISOString(), title: fmtTime(e.ts) }, fmtTime(e.ts)),
    h("div", { class: "event-body" },
      h("span", { class: `badge ${eventClass(e)}` }, e.step ? `${e.kind} · ${e.step}` : e.kind), " ",
      h("span", { class: "sentence" }, describeEvent(e)),
      e.rollout ? h("div", { class: "detail" }, "rollout ", h("a", { href: `/rollouts/${encodeURIComponent(e.rollout)}` }, e.rollout)) : null,
      raw));
}

function renderEvents(events) {
  events.sort((a, b) => b.ts - a.ts);
  $("#events").replaceChildren(...(events.length ? events.slice(0, 200).map(eventRow)
    : [h("li", { class: "muted" }, "No events yet.")]));
}

$("#tags-input").addEventListener("input", () => { tagsDirty = true; });
$("#tags-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const tags = $("#tags-input").value.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    const d = await api(path, { method: "PATCH", json: { tags } });
    tagsDirty = false;
    if (d && d.id) renderDevice(d);
    flash(`Tags saved: ${tags.join(", ") || "none"}`);
  } catch (e) { flash(`Could not save tags: ${e.message}`, "bad"); }
});
$("#revoke-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!window.confirm(`Revoke ${id}? Its token and broker account stop working now.`)) return;
  try {
    const r = await api(`${path}/revoke`, { method: "POST", json: {} });
    $("#access-state").textContent = `Revoked (broker account: ${r.broker}).`;
    flash(`${id} revoked`);
  } catch (e) { flash(`Could not revoke: ${e.message}`, "bad"); }
});
applyRole();

poll(async () => {
  const span = Number($("#range").value);
  const since = Date.now() / 1000 - span;
  const resolution = span > 21600 ? "minute" : "raw";  // raw rows are kept for a day
  const [d, tel, ev] = await Promise.all([
    api(path), api(`${path}/telemetry?since=${since.toFixed(0)}&resolution=${resolution}`),
    api(`${path}/events?limit=200`),
  ]);
  renderDevice(d);
  renderDrift(d);
  renderCharts(items(tel, "telemetry").length ? items(tel, "telemetry") : items(tel, "points"));
  renderEvents(items(ev, "events"));
});
$("#range").addEventListener("change", () => renderCharts([]));
