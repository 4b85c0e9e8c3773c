// Samples page: label field data fast. Image and array samples as a grid of thumbnails,
// tabular rows as a table; the model's prediction is pre-filled (its class button is
// marked), one click or one key per class labels the focused sample and moves on; bulk
// select + label / accept / clear / delete; filters in the URL; progress of the filter.
import { api, can, h, flash, fmtAgo, fmtPct, fmtTime, applyRole, poll } from "./common.js";
import { progressBar } from "./charts.js";

const $ = (s) => document.querySelector(s);
const PAGE = 48;
const REASONS = ["low_confidence", "out_of_range", "drift", "shadow_disagreement", "wrong_label", "random", "requested"];
const FILTERS = ["device", "model", "reason", "predicted", "labeled", "label"];
const state = {
  filter: {}, offset: 0, samples: [], total: 0, selected: new Set(), focus: null,
  labels: new Map(), // "name@version" -> the model's class labels (from the registry)
  seen: { predicted: [], label: [] }, // classes seen in the store (for models not in the registry)
};

// ---------------------------------------------------------------- filters (in the URL)

function readUrl() {
  const q = new URLSearchParams(location.search);
  for (const k of FILTERS) state.filter[k] = q.get(k) ?? "";
  if (q.get("version")) state.filter.model = `${state.filter.model}@${q.get("version")}`;
  if (!q.has("labeled")) state.filter.labeled = "false"; // labeling starts with what is left
  if (state.filter.labeled === "all") state.filter.labeled = "";
}

function query(extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...state.filter, ...extra })) {
    if (v === "" || v === null || v === undefined) continue;
    if (k === "model") {
      const [name, version] = v.split("@");
      q.set("model", name);
      if (version) q.set("version", version);
    } else q.set(k, v);
  }
  return q;
}

function writeUrl() {
  const q = query();
  if (!state.filter.labeled) q.set("labeled", "all");
  if (state.filter.labeled === "false") q.delete("labeled");
  history.replaceState(null, "", `${location.pathname}${q.toString() ? `?${q}` : ""}`);
}

function options(select, values, current, first) {
  const opts = [h("option", { value: "" }, first)];
  for (const [value, text] of values) opts.push(h("option", { value }, text));
  if (current && !values.some(([v]) => v === current)) opts.push(h("option", { value: current }, current));
  select.replaceChildren(...opts);
  select.value = current || "";
}

let menusFor = "";
function renderFilters(all) {
  const f = state.filter;
  const key = JSON.stringify([all, f]);
  if (key === menusFor) return; // rebuilding an open menu would close it under the pointer
  menusFor = key;
  options($("#f-device"), Object.entries(all.by_device).map(([d, c]) => [d, `${d} (${c.total})`]), f.device, "every device");
  options($("#f-model"), all.by_model.map((m) => [`${m.name}@${m.version}`, `${m.name} v${m.version} (${m.total})`]), f.model, "every model");
  options($("#f-reason"), REASONS.map((r) => [r, `${r.replace(/_/g, " ")}${all.by_reason[r] ? ` (${all.by_reason[r]})` : ""}`]), f.reason, "every reason");
  options($("#f-predicted"), Object.entries(all.by_predicted).map(([p, n]) => [p, `predicted ${p} (${n})`]), f.predicted, "any prediction");
  options($("#f-label"), Object.entries(all.by_label).map(([l, n]) => [l, `label ${l} (${n})`]), f.label, "any label");
  $("#f-labeled").value = f.labeled;
  state.seen = { predicted: Object.keys(all.by_predicted), label: Object.keys(all.by_label) };
}

// ---------------------------------------------------------------- classes and keys

const KEYS = "0123456789abcdefghijklmnopqrstuvwxyz";
function classesFor(s) {
  const known = state.labels.get(`${s.model.name}@${s.model.version}`);
  if (known && known.length) return known;
  return [...new Set([...state.seen.predicted, ...state.seen.label])].sort();
}
const keyFor = (i) => (i < KEYS.length ? KEYS[i] : null);
const confidence = (s) => s.prediction.confidence ?? null;

// ---------------------------------------------------------------- rendering

function thumb(s) {
  if (s.kind === "image") return h("img", { class: "thumb", src: s.input_url, alt: `sample ${s.id}`, loading: "lazy" });
  if (s.kind === "array") return h("img", { class: "thumb", src: `${s.input_url}?as=png`, alt: `sample ${s.id}`, loading: "lazy" });
  return null;
}

function classButtons(s) {
  return h("div", { class: "classes" }, classesFor(s).map((c, i) => {
    const k = keyFor(i);
    const cls = ["class-btn", c === s.prediction.label ? "predicted" : "", c === s.label ? "active" : ""].filter(Boolean).join(" ");
    return h("button", {
      class: cls, type: "button", "data-class": c, "data-needs": "operator",
      title: `${c === s.prediction.label ? "the model's prediction · " : ""}label ${c}${k ? ` (key ${k})` : ""}`,
      onclick: (ev) => { ev.stopPropagation(); labelOne(s.id, c); },
    }, k && k !== c ? h("kbd", {}, k) : null, c);
  }));
}

function stateBadge(s) {
  if (s.label === null) return h("span", { class: "badge", "data-state": "unlabeled" }, "unlabeled");
  const ok = s.label === s.prediction.label;
  return h("span", {
    class: `badge ${ok ? "ok" : "warn"}`, "data-state": "labeled",
    title: `labeled ${fmtTime(s.labeled_at)}${s.labeled_by ? ` by ${s.labeled_by}` : ""}`,
  }, `label ${s.label}${s.labeled_by ? ` · ${s.labeled_by}` : ""}`);
}

function selectBox(s) {
  return h("input", {
    type: "checkbox", class: "pick", "aria-label": `select sample ${s.id}`, checked: state.selected.has(s.id),
    onclick: (ev) => { ev.stopPropagation(); toggle(s.id, ev.target.checked); },
  });
}

function card(s) {
  const conf = confidence(s);
  return h("div", {
    class: `sample-card${s.label !== null ? " labeled" : ""}${state.selected.has(s.id) ? " selected" : ""}`,
    tabindex: 0, "data-sample": s.id, onfocus: () => { state.focus = s.id; },
    onclick: () => focusSample(s.id),
  },
  h("div", { class: "card-top" }, selectBox(s), h("span", { class: `badge info reason` }, s.reason.replace(/_/g, " "))),
  thumb(s),
  h("div", { class: "pred", "data-predicted": s.prediction.label },
    "predicted ", h("b", {}, s.prediction.label), conf !== null ? ` · ${fmtPct(conf, 0)}` : ""),
  s.known_label !== null ? h("div", { class: "muted small" }, `device knew: ${s.known_label}`) : null,
  h("div", { class: "muted small", title: fmtTime(s.captured_at) }, `${s.device} · ${fmtAgo(s.captured_at)}`),
  stateBadge(s),
  classButtons(s));
}

function tableRows(rows) {
  const names = [...new Set(rows.flatMap((s) => Object.keys(s.features || {})))].slice(0, 12);
  $("#table thead").replaceChildren(h("tr", {}, h("th", {}, ""), names.map((n) => h("th", { class: "num" }, n)),
    h("th", {}, "Predicted"), h("th", { class: "num" }, "Confidence"), h("th", {}, "Reason"), h("th", {}, "Device"),
    h("th", {}, "Label"), h("th", {}, "Classes")));
  $("#table tbody").replaceChildren(...rows.map((s) => h("tr", {
    tabindex: 0, "data-sample": s.id, class: `${s.label !== null ? "labeled" : ""}${state.selected.has(s.id) ? " selected" : ""}`,
    onfocus: () => { state.focus = s.id; }, onclick: () => focusSample(s.id),
  },
  h("td", {}, selectBox(s)),
  names.map((n) => h("td", { class: "num" }, fmtFeature(s.features?.[n]))),
  h("td", { class: "pred", "data-predicted": s.prediction.label }, h("b", {}, s.prediction.label)),
  h("td", { class: "num" }, fmtPct(confidence(s), 0)),
  h("td", {}, h("span", { class: "badge info" }, s.reason.replace(/_/g, " "))),
  h("td", { class: "muted" }, s.device),
  h("td", {}, stateBadge(s)),
  h("td", {}, classButtons(s)))));
}

const fmtFeature = (v) => (Number.isFinite(v) ? (Math.abs(v) >= 1000 ? v.toFixed(0) : String(+v.toFixed(4))) : "–");

function render() {
  const grid = state.samples.filter((s) => s.kind !== "tabular");
  const rows = state.samples.filter((s) => s.kind === "tabular");
  $("#grid").replaceChildren(...grid.map(card));
  $("#grid").hidden = !grid.length;
  $("#table-wrap").hidden = !rows.length;
  if (rows.length) tableRows(rows);
  $("#empty").hidden = state.samples.length > 0;
  const last = Math.min(state.offset + state.samples.length, state.total);
  $("#page-info").textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "";
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = state.offset + state.samples.length >= state.total;
  renderSelection();
  applyRole();
}

function renderSelection() {
  const n = state.selected.size;
  $("#selected-count").textContent = `${n} selected`;
  $("#select-all").checked = n > 0 && state.samples.every((s) => state.selected.has(s.id));
  for (const id of ["#bulk-apply", "#bulk-accept", "#bulk-clear", "#bulk-delete"]) $(id).disabled = !n || !can("operator");
  const classes = [...new Set(state.samples.flatMap(classesFor))];
  const current = $("#bulk-label").value;
  $("#bulk-label").replaceChildren(...classes.map((c) => h("option", { value: c }, c)));
  if (classes.includes(current)) $("#bulk-label").value = current;
}

function replaceSample(updated) {
  const i = state.samples.findIndex((s) => s.id === updated.id);
  if (i < 0) return;
  state.samples[i] = updated;
  const old = document.querySelector(`[data-sample="${updated.id}"]`);
  if (old && updated.kind !== "tabular") old.replaceWith(card(updated));
  else if (updated.kind === "tabular") tableRows(state.samples.filter((s) => s.kind === "tabular"));
  applyRole();
}

// ---------------------------------------------------------------- focus and keys

function focusSample(id) {
  const el = id && document.querySelector(`[data-sample="${id}"]`);
  if (el) { el.focus(); state.focus = id; }
}

function neighbour(id, step) {
  const i = state.samples.findIndex((s) => s.id === id);
  return state.samples[Math.min(Math.max(i + step, 0), state.samples.length - 1)]?.id ?? null;
}

function nextUnlabeled(id) {
  const i = state.samples.findIndex((s) => s.id === id);
  const after = [...state.samples.slice(i + 1), ...state.samples.slice(0, i)];
  return after.find((s) => s.label === null)?.id ?? neighbour(id, 1);
}

document.addEventListener("keydown", (ev) => {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const el = document.activeElement?.closest?.("[data-sample]");
  if (!el || ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
  const s = state.samples.find((x) => x.id === el.dataset.sample);
  if (!s) return;
  const key = ev.key.toLowerCase();
  if (key === "arrowright" || key === "arrowdown") { ev.preventDefault(); focusSample(neighbour(s.id, 1)); return; }
  if (key === "arrowleft" || key === "arrowup") { ev.preventDefault(); focusSample(neighbour(s.id, -1)); return; }
  if (key === " ") { ev.preventDefault(); toggle(s.id, !state.selected.has(s.id)); return; }
  if (!can("operator")) return;
  if (key === "enter") { ev.preventDefault(); labelOne(s.id, s.prediction.label); return; }
  if (key === "backspace") { ev.preventDefault(); labelOne(s.id, null); return; }
  if (key === "delete") { ev.preventDefault(); removeSamples([s.id]); return; }
  const i = KEYS.indexOf(key);
  const classes = classesFor(s);
  if (key.length === 1 && i >= 0 && i < classes.length) { ev.preventDefault(); labelOne(s.id, classes[i]); }
});

// ---------------------------------------------------------------- actions

function toggle(id, on) {
  if (on) state.selected.add(id); else state.selected.delete(id);
  document.querySelector(`[data-sample="${id}"]`)?.classList.toggle("selected", on);
  const box = document.querySelector(`[data-sample="${id}"] input.pick`);
  if (box) box.checked = on;
  renderSelection();
}

async function labelOne(id, label) {
  try {
    await api("samples/labels", { method: "POST", json: { ids: [id], label } });
    replaceSample(await api(`samples/${id}`));
    await refreshSummary();
    if (state.filter.labeled === "false" && state.samples.every((s) => s.label !== null)) {
      await loadPage(); // this page is done: the next unlabeled ones move up
      focusSample(state.samples[0]?.id);
      return;
    }
    focusSample(label === null ? id : nextUnlabeled(id));
  } catch (e) { flash(`Label not saved: ${e.message}`, "bad"); }
}

async function bulk(json, what) {
  const ids = [...state.selected];
  if (!ids.length) return;
  try {
    const r = await api("samples/labels", { method: "POST", json: json(ids) });
    flash(`${what}: ${r.updated.length} changed, ${r.unchanged.length} unchanged`);
    state.selected.clear();
    await Promise.all([loadPage(), refreshSummary()]);
  } catch (e) { flash(`${what} failed: ${e.message}`, "bad"); }
}

async function removeSamples(ids) {
  if (!ids.length || !window.confirm(`Delete ${ids.length} sample${ids.length > 1 ? "s" : ""} and their files?`)) return;
  try {
    const r = await api("samples/delete", { method: "POST", json: { ids } });
    flash(`Deleted ${r.deleted.length} sample${r.deleted.length === 1 ? "" : "s"}`);
    for (const id of ids) state.selected.delete(id);
    await Promise.all([loadPage(), refreshSummary()]);
  } catch (e) { flash(`Delete failed: ${e.message}`, "bad"); }
}

$("#bulk-apply").addEventListener("click", () => bulk((ids) => ({ ids, label: $("#bulk-label").value }), `Labeled ${$("#bulk-label").value}`));
$("#bulk-accept").addEventListener("click", () => bulk((ids) => ({
  labels: Object.fromEntries(ids.map((id) => [id, state.samples.find((s) => s.id === id)?.prediction.label]).filter(([, l]) => l)),
}), "Accepted predictions"));
$("#bulk-clear").addEventListener("click", () => bulk((ids) => ({ ids, label: null }), "Cleared labels"));
$("#bulk-delete").addEventListener("click", () => removeSamples([...state.selected]));
$("#select-all").addEventListener("change", (ev) => {
  for (const s of state.samples) toggle(s.id, ev.target.checked);
});
$("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadPage(); });
$("#next").addEventListener("click", () => {
  // in the unlabeled view, what was labeled on this page has left the filter
  const left = state.filter.labeled === "false" ? state.samples.filter((s) => s.label === null).length : state.samples.length;
  state.offset += left;
  loadPage();
});
for (const k of FILTERS) {
  $(`#f-${k}`).addEventListener("change", (ev) => {
    state.filter[k] = ev.target.value;
    state.offset = 0;
    state.selected.clear();
    writeUrl();
    loadPage();
    refreshSummary();
  });
}

// ---------------------------------------------------------------- loading

async function loadModels() {
  try {
    const models = await api("models");
    for (const m of models) state.labels.set(`${m.name}@${m.version}`, m.labels || []);
  } catch { /* classes then come from what the store has seen */ }
}

async function loadPage() {
  const data = await api(`samples?${query({ limit: PAGE, offset: state.offset })}`);
  state.samples = data.samples;
  state.total = data.total;
  if (!state.samples.length && state.offset > 0 && state.total > 0) {
    state.offset = Math.max(0, state.total - PAGE);
    return loadPage();
  }
  const ids = new Set(state.samples.map((s) => s.id));
  for (const id of [...state.selected]) if (!ids.has(id)) state.selected.delete(id);
  render();
}

async function refreshSummary() {
  const [all, scope] = await Promise.all([
    api("samples/summary"),
    api(`samples/summary?${query({ labeled: "" })}`),
  ]);
  renderFilters(all);
  const pct = scope.total ? ` (${fmtPct(scope.labeled / scope.total, 0)})` : "";
  $("#progress").replaceChildren(progressBar([{ value: scope.labeled, label: "labeled", cls: "committed" }],
    scope.total, `${scope.labeled} of ${scope.total} labeled${pct}`));
}

readUrl();
await loadModels();
await refreshSummary();
await loadPage();
focusSample(state.samples[0]?.id);
poll(refreshSummary, 5000);
