// Overview: the fleet matrix (device × version × KPIs × online), filtered by tag/version.
import { api, items, poll, h, fmtAgo, fmtPct, fmtMs, kpisOf, modelLabel } from "./common.js";
import { fmtNumber } from "./charts.js";

const $ = (s) => document.querySelector(s);
const state = { devices: [], tag: "", version: "", text: "" };
const params = new URLSearchParams(location.search);
state.tag = params.get("tag") || "";
state.version = params.get("version") || "";

function versionKey(d) { return d.model && d.model.name ? `${d.model.name} v${d.model.version}` : "none"; }

function syncUrl() {
  const p = new URLSearchParams();
  if (state.tag) p.set("tag", state.tag);
  if (state.version) p.set("version", state.version);
  history.replaceState(null, "", p.toString() ? `?${p}` : location.pathname);
}

function fillSelect(sel, values, current, allLabel) {
  const want = [allLabel, ...values].join("\n");
  if (sel.dataset.options !== want) {
    sel.replaceChildren(h("option", { value: "" }, allLabel), ...values.map((v) => h("option", { value: v }, v === "none" ? "no model" : v)));
    sel.dataset.options = want;
  }
  sel.value = current;
}

function render() {
  const devs = state.devices;
  const tags = [...new Set(devs.flatMap((d) => d.tags || []))].sort();
  const versions = [...new Set(devs.map(versionKey))].sort();
  fillSelect($("#filter-tag"), tags, state.tag, "All tags");
  fillSelect($("#filter-version"), versions, state.version, "All versions");

  const counts = {};
  for (const d of devs) counts[versionKey(d)] = (counts[versionKey(d)] || 0) + 1;
  $("#version-counts").replaceChildren(...Object.entries(counts).sort().map(([v, n]) =>
    h("button", {
      class: `chip ${state.version === v ? "active" : ""}`, type: "button", "data-version": v,
      onclick: () => { state.version = state.version === v ? "" : v; syncUrl(); render(); },
    }, v === "none" ? "no model" : v, h("b", {}, n))));

  const k = devs.map(kpisOf);
  const set = (name, v) => { document.querySelector(`[data-count="${name}"]`).textContent = v; };
  set("devices", devs.length);
  set("online", devs.filter((d) => d.online).length);
  set("unenrolled", devs.filter((d) => !d.enrolled).length);
  set("drift", k.filter((x) => x.driftAlert).length);

  const text = state.text.toLowerCase();
  const shown = devs.filter((d) =>
    (!state.tag || (d.tags || []).includes(state.tag)) &&
    (!state.version || versionKey(d) === state.version) &&
    (!text || d.id.toLowerCase().includes(text)));
  const body = shown.map((d) => {
    const x = kpisOf(d);
    const variant = [d.model?.runtime, d.model?.precision].filter(Boolean).join(" · ") || "—";
    return h("tr", { "data-device": d.id },
      h("td", {}, h("a", { href: `/devices/${encodeURIComponent(d.id)}` }, d.id),
        d.enrolled ? null : h("span", { class: "badge warn", title: "reports over MQTT without having enrolled" }, " unenrolled")),
      h("td", {}, h("span", { class: `dot ${d.online ? "on" : ""}` }), d.online ? "online" : "offline"),
      h("td", {}, modelLabel(d.model)),
      h("td", { class: "muted" }, variant),
      h("td", { class: "num" }, fmtMs(x.p95)),
      h("td", { class: `num ${x.errorRate > 0.05 ? "kpi-bad" : ""}` }, fmtPct(x.errorRate, 2)),
      h("td", { class: `num ${x.driftAlert ? "kpi-bad" : ""}`, title: x.driftAlert ? "drift alert" : "", "data-drift": x.driftAlert ? (d.kpis?.drift_worst?.name || "") : null },
        fmtNumber(x.drift),
        x.driftAlert && d.kpis?.drift_worst ? h("div", { class: "detail mono" }, `${d.kpis.drift_worst.name} ${fmtNumber(d.kpis.drift_worst.psi)}`) : null),
      h("td", { class: "num" }, fmtPct(x.accuracy)),
      h("td", { class: "muted", title: d.last_seen ? new Date(d.last_seen * 1000).toLocaleString() : "" }, fmtAgo(d.last_seen)),
      h("td", {}, (d.tags || []).map((t) => h("span", { class: "tag" }, t))));
  });
  $("#fleet tbody").replaceChildren(...(body.length ? body : [h("tr", {}, h("td", { colspan: 10, class: "empty" },
    devs.length ? "No device matches the filters." : "No devices yet. Start an agent pointed at this hub's broker."))]));
}

$("#filter-tag").addEventListener("change", (e) => { state.tag = e.target.value; syncUrl(); render(); });
$("#filter-version").addEventListener("change", (e) => { state.version = e.target.value; syncUrl(); render(); });
$("#filter-text").addEventListener("input", (e) => { state.text = e.target.value; render(); });

poll(async () => {
  state.devices = items(await api("devices"), "devices").sort((a, b) => a.id.localeCompare(b.id));
  render();
});
