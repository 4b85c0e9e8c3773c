// Models page: registry versions, upload, and per version the variant comparison (export
// measurements next to what devices report) and the safely rendered model card.
import { api, items, poll, h, flash, fmtBytes, fmtDate, fmtMs, fmtPct, fmtTime, applyRole, CSRF } from "./common.js";
import { barChart } from "./charts.js";
import { comparisonView } from "./champion.js";

const CHECK_CLASS = { worse: "bad", better: "ok", similar: "info", unknown: "" };

const $ = (s) => document.querySelector(s);
const state = { models: [], devices: [], selected: null, cardFor: null, details: {}, checks: {} };
const key = (m) => `${m.name}@${m.version}`;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };

function testAccuracy(m) {
  const x = m.metrics || {};
  return [x.test_accuracy, x.accuracy, x.val_accuracy].find(Number.isFinite) ?? null;
}

function runningOn(m) {
  return state.devices.filter((d) => d.model && d.model.name === m.name && d.model.version === m.version);
}

function renderVersions() {
  const rows = state.models.map((m) => h("tr", {
    class: state.selected === key(m) ? "selected u-pointer" : "u-pointer", "data-model": key(m),
    onclick: () => select(key(m)),
  },
  h("td", {}, h("a", { href: `#${encodeURIComponent(key(m))}` }, m.name)),
  h("td", { class: "num" }, `v${m.version}`),
  h("td", {}, (m.aliases || []).map((a) => h("span", { class: "badge info" }, a))),
  h("td", { class: "num" }, fmtBytes(m.size)),
  h("td", { class: "num" }, fmtPct(testAccuracy(m))),
  h("td", { class: "num" }, runningOn(m).length),
  h("td", {}, m.champion ? h("span", { class: `badge ${CHECK_CLASS[m.champion.decision] ?? ""}`,
    title: m.champion.champion_version ? `against v${m.champion.champion_version}` : "no champion" }, m.champion.decision) : "–"),
  h("td", { class: "muted nowrap uploaded", title: `${fmtTime(m.created)}${m.uploaded_by ? ` by ${m.uploaded_by}` : ""}` },
    fmtDate(m.created), m.uploaded_by ? ` · ${m.uploaded_by}` : "")));
  $("#versions tbody").replaceChildren(...(rows.length ? rows
    : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No models yet. Upload a bundle."))]));
}

function variantName(v) { return v.target || [v.runtime, v.precision].filter(Boolean).join("-"); }

async function renderDetail() {
  const m = state.models.find((x) => key(x) === state.selected);
  $("#detail").hidden = !m;
  if (!m) return;
  $("#detail-title").textContent = `${m.name} v${m.version}`;
  $("#detail-actions").replaceChildren(
    h("a", { class: "button", href: `/rollouts?model=${encodeURIComponent(m.name)}&version=${m.version}` }, "Start a rollout…"));
  const devices = runningOn(m);
  if (!state.details[key(m)]) {
    state.details[key(m)] = await api(`models/${encodeURIComponent(m.name)}/${m.version}`);
  }
  const checkKey = `${key(m)}:${m.champion?.decision ?? ""}`;
  if (state.checks.key !== checkKey) {
    state.checks = { key: checkKey, view: m.champion
      ? comparisonView(await api(`models/${encodeURIComponent(m.name)}/${m.version}/comparison`).catch(() => null))
      : comparisonView(null) };
  }
  $("#champion").replaceChildren(state.checks.view);
  const variants = state.details[key(m)].variant_table || [];
  const measured = variants.map((v) => {
    const on = devices.filter((d) => d.model.runtime === v.runtime && (!v.precision || d.model.precision === v.precision));
    const p95s = on.map((d) => d.kpis?.p95_latency_ms ?? d.kpis?.latency_p95).filter(Number.isFinite);
    return { n: on.length, p95: median(p95s) };
  });
  $("#variants tbody").replaceChildren(...(variants.length ? variants.map((v, i) => h("tr", { "data-variant": variantName(v) },
    h("td", { class: "mono" }, variantName(v)),
    h("td", {}, v.included === false ? h("span", { class: "badge" }, "left out") : h("span", { class: "badge ok" }, "yes")),
    h("td", { class: "num" }, fmtBytes(v.size)),
    h("td", { class: "num" }, fmtPct(v.accuracy, 2)),
    h("td", { class: "num" }, fmtPct(v.agreement, 2)),
    h("td", { class: "num" }, fmtMs(v.latency_ms)),
    h("td", { class: "num" }, fmtMs(v.latency_p95_ms)),
    h("td", { class: "num" }, fmtMs(measured[i].p95)),
    h("td", { class: "num" }, measured[i].n),
    h("td", { class: "muted" }, v.error ? `failed at ${v.failed_step || "?"}: ${v.error}` : v.reason || "")))
    : [h("tr", {}, h("td", { colspan: 10, class: "empty" }, "This bundle has no variant table."))]));
  const ok = variants.map((v, i) => [v, measured[i]]).filter(([v]) => !v.error);
  const cats = ok.map(([v]) => variantName(v));
  barChart($("#chart-latency"), cats, [
    { name: "export p95", values: ok.map(([v]) => v.latency_p95_ms ?? v.latency_ms ?? null) },
    { name: "devices p95", values: ok.map(([, x]) => x.p95) },
  ], { unit: " ms", title: "latency per variant" });
  barChart($("#chart-accuracy"), cats, [
    { name: "accuracy %", values: ok.map(([v]) => (Number.isFinite(v.accuracy) ? v.accuracy * 100 : null)), color: "#10b981" },
  ], { unit: " %", title: "test accuracy per variant" });
  if (state.cardFor !== state.selected) {
    state.cardFor = state.selected;
    const res = await fetch(`/models/${encodeURIComponent(m.name)}/${m.version}/card`, { credentials: "same-origin" });
    // The fragment is rendered by the hub's safe Markdown renderer: all card text is escaped.
    $("#card").innerHTML = res.ok ? await res.text() : "<p class=\"muted\">The model card could not be loaded.</p>";
  }
}

function select(k) {
  state.selected = k;
  history.replaceState(null, "", `#${encodeURIComponent(k)}`);
  renderVersions();
  renderDetail();
}

$("#upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("#bundle").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("bundle", file);
  form.append("csrf_token", CSRF);
  $("#upload-button").disabled = true;
  $("#upload-status").textContent = `Uploading ${file.name} (${fmtBytes(file.size)})…`;
  try {
    const r = await api("models", { method: "POST", form });
    flash(`Uploaded ${r.name} v${r.version}`);
    $("#upload-status").textContent = "";
    $("#upload-form").reset();
    await refresh();
    select(`${r.name}@${r.version}`);
  } catch (e) {
    $("#upload-status").textContent = "";
    flash(`Upload refused: ${e.message}`, "bad");
  } finally { $("#upload-button").disabled = false; applyRole(); }
});
applyRole();

async function refresh() {
  const [models, devices] = await Promise.all([api("models"), api("devices")]);
  state.models = items(models, "models").sort((a, b) => a.name.localeCompare(b.name) || b.version - a.version);
  state.devices = items(devices, "devices");
  if (!state.selected && location.hash) state.selected = decodeURIComponent(location.hash.slice(1));
  if (!state.selected && state.models.length) state.selected = key(state.models[0]);
  renderVersions();
  await renderDetail();
}
poll(refresh);
