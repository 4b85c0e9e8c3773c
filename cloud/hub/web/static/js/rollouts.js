// Rollouts list and the form that creates one (POST /api/v1/rollouts).
import { api, items, poll, h, flash, fmtAgo, applyRole } from "./common.js";
import { progressBar } from "./charts.js";

const $ = (s) => document.querySelector(s);
const state = { models: [], loadedModels: false };
const params = new URLSearchParams(location.search);
// metric -> [label, default tolerance, how the tolerance reads]
const GATES = {
  error_rate: ["Error rate", 0.02, "may rise by (absolute share)"],
  p95_latency_ms: ["p95 latency", 0.5, "may rise by (fraction, 0.5 = +50 %)"],
  drift: ["Drift score", 0.1, "may rise by (PSI)"],
  accuracy: ["Live accuracy", 0.05, "may fall by (absolute share)"],
};

export const STATE_CLASS = { running: "info", paused: "warn", completed: "ok", aborted: "bad", rolled_back: "bad", draft: "" };

$("#gates").replaceChildren(...Object.entries(GATES).map(([m, [label, tol, hint]]) =>
  h("div", { class: "row u-center" },
    h("label", { class: "check u-w130" }, h("input", { type: "checkbox", checked: true, "data-gate": m }), label),
    h("input", { type: "number", step: "any", min: "0", value: tol, "data-tolerance": m, "aria-label": `${label} tolerance`, title: hint }))));

function fillModels() {
  const names = [...new Set(state.models.map((m) => m.name))].sort();
  const sel = $("#model");
  const want = params.get("model") || sel.value || names[0] || "";
  sel.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  sel.value = want;
  fillVersions(params.get("version"));
}

function fillVersions(want) {
  const versions = state.models.filter((m) => m.name === $("#model").value).map((m) => m.version).sort((a, b) => b - a);
  const sel = $("#version");
  const keep = want || sel.value;
  sel.replaceChildren(...versions.map((v) => h("option", { value: v }, `v${v}`)));
  if (keep && versions.includes(Number(keep))) sel.value = keep;
}
$("#model").addEventListener("change", () => fillVersions(null));

const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

// The shadow fields matter only with inputs > 0; the hub checks the ranges again.
function syncShadow() {
  const off = !(Number($("#shadow-inputs").value) > 0);
  $("#shadow-agreement").disabled = off;
  $("#shadow-timeout").disabled = off;
}
$("#shadow-inputs").addEventListener("input", syncShadow);
syncShadow();

function readShadow() {
  const raw = $("#shadow-inputs").value.trim();
  const inputs = raw === "" ? 0 : Number(raw);
  if (!Number.isInteger(inputs) || inputs < 0) throw new Error("shadow inputs must be a whole number (0: no shadow run)");
  if (inputs === 0) return null;
  const agreement = Number($("#shadow-agreement").value);
  const timeout = Number($("#shadow-timeout").value);
  if ($("#shadow-agreement").value.trim() === "" || !Number.isFinite(agreement) || agreement < 0 || agreement > 100) {
    throw new Error("shadow min agreement must be a percentage from 0 to 100");
  }
  if ($("#shadow-timeout").value.trim() === "" || !Number.isFinite(timeout)) throw new Error("shadow timeout must be a number of seconds");
  return { inputs, min_agreement: agreement / 100, timeout };
}

function readForm() {
  const kind = $("#wave-kind").value;
  const waves = list($("#waves").value).map(Number);
  if (!waves.length || waves.some((w) => !Number.isFinite(w))) throw new Error("waves must be numbers, e.g. 10, 50, 100");
  const gates = {};
  for (const m of Object.keys(GATES)) {
    gates[m] = document.querySelector(`[data-gate="${m}"]`).checked ? Number(document.querySelector(`[data-tolerance="${m}"]`).value) : null;
  }
  return {
    model: $("#model").value,
    version: Number($("#version").value),
    target: { tags: list($("#tags").value), devices: list($("#devices").value), all: $("#all").checked },
    waves: kind === "count" ? waves.map((c) => ({ count: c })) : waves,
    soak_seconds: Number($("#soak").value),
    deploy_timeout_s: Number($("#timeout").value),
    success_threshold: Number($("#success").value) / 100,
    error_threshold: Number($("#error").value) / 100,
    error_action: $("#error-action").value,
    gates,
    gate_min_devices: Number($("#gate-min").value),
    gate_min_inferences: Number($("#gate-min-inferences").value),
    p95_latency_min_increase_ms: Number($("#latency-floor").value),
    shadow: readShadow(),
    manual_approval: $("#approval").checked,
    start: $("#start").checked,
    ...($("#force").checked ? { force: true } : {}),
  };
}

$("#rollout-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#form-error").textContent = "";
  try {
    const r = await api("rollouts", { method: "POST", json: readForm() });
    flash(`Rollout ${r.id} created`);
    location.assign(`/rollouts/${encodeURIComponent(r.id)}`);
  } catch (e) {
    $("#form-error").textContent = e.message;
  }
});
applyRole();

export function overallBar(r) {
  const total = r.target_size ?? r.waves.reduce((a, w) => Math.max(a, w.size || w.devices || 0), 0);
  const reverted = r.waves.reduce((a, w) => a + (w.counts?.reverted || 0), 0);
  const pending = r.waves.reduce((a, w) => a + (w.pending || 0), 0);
  return progressBar([
    { value: r.committed, label: "committed", cls: "committed" },
    { value: pending, label: "in progress", cls: "active" },
    { value: r.failed, label: "failed", cls: "failed" },
    { value: reverted, label: "rolled back", cls: "rolled_back" },
  ], Math.max(total || 0, r.committed + pending + r.failed + reverted),
  `${r.committed} of ${total ?? "?"} committed${r.failed ? `, ${r.failed} failed` : ""}`);
}

poll(async () => {
  const [rollouts, models, devices] = await Promise.all([
    api("rollouts"), state.loadedModels ? null : api("models"), api("devices"),
  ]);
  if (models) { state.models = items(models, "models"); state.loadedModels = true; fillModels(); }
  $("#device-ids").replaceChildren(...items(devices, "devices").map((d) => h("option", { value: d.id })));
  const rows = items(rollouts, "rollouts").sort((a, b) => b.created - a.created).map((r) =>
    h("tr", { "data-rollout": r.id },
      h("td", {}, h("a", { href: `/rollouts/${encodeURIComponent(r.id)}`, class: "mono" }, r.id)),
      h("td", {}, `${r.model} v${r.version}`),
      h("td", {}, h("span", { class: `badge ${STATE_CLASS[r.state] ?? ""}` }, r.state.replace("_", " "))),
      h("td", {}, overallBar(r)),
      h("td", {}, r.waves.map((w) => (typeof w.wave === "object" ? `${w.wave.count}` : `${w.wave}%`)).join(" → ")),
      h("td", { class: "muted" }, fmtAgo(r.updated))));
  $("#rollouts tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No rollouts yet."))]));
});
