// Datasets: every dataset's newest version, one dataset's versions and one version's
// counts per class and per device (GET /api/v1/datasets[/<name>]); the form freezes the
// next version (POST /api/v1/datasets, operator). Versions are immutable: nothing else
// here writes.
import { api, poll, h, flash, fmtAgo, fmtTime, applyRole, ApiError } from "./common.js";

const $ = (s) => document.querySelector(s);
const root = $("#dataset-page").dataset;
const selected = { name: root.name || "", version: root.version ? Number(root.version) : null };
const FILTER_FIELDS = ["model", "version", "device", "reason", "label", "predicted"];

const short = (fp) => (fp ? `${fp.slice(0, 19)}…` : "–");  // "sha256:" + 12 hex digits
const datasetHref = (name, version) =>
  `/datasets/${encodeURIComponent(name)}${version ? `/${version}` : ""}`;

// {"model": "digits", "labeled": true} -> "model=digits, labeled=true"; {} -> "every labeled sample"
function filterText(f) {
  const parts = Object.entries(f || {}).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(", ") : "every labeled sample";
}

function kindText(dv) {
  return dv.model ? `${dv.kind} · ${dv.model}` : dv.kind;
}

function countRows(counts, total, key) {
  const entries = Object.entries(counts || {});
  if (!entries.length) return [h("tr", {}, h("td", { colspan: 3, class: "empty" }, "none"))];
  return entries.map(([k, n]) =>
    h("tr", { [`data-${key}`]: k },
      h("td", { class: "mono" }, k),
      h("td", { class: "num" }, n),
      h("td", { class: "num muted" }, total ? `${((100 * n) / total).toFixed(1)} %` : "–")));
}

function renderList(rows) {
  $("#dataset-names").replaceChildren(...rows.map((d) => h("option", { value: d.name })));
  const body = rows.map((d) =>
    h("tr", { "data-dataset": d.name, class: d.name === selected.name ? "selected" : null },
      h("td", {}, h("a", { href: datasetHref(d.name), class: "mono" }, d.name)),
      h("td", { class: "num" }, h("a", { href: datasetHref(d.name, d.version) }, `v${d.version}`)),
      h("td", { class: "num" }, d.versions),
      h("td", { class: "num" }, d.counts?.total ?? "–"),
      h("td", {}, kindText(d)),
      h("td", { class: "mono", title: d.fingerprint }, short(d.fingerprint)),
      h("td", {}, d.created_by || "–"),
      h("td", { class: "muted nowrap", title: fmtTime(d.created) }, fmtAgo(d.created))));
  $("#datasets tbody").replaceChildren(...(body.length ? body : [h("tr", {},
    h("td", { colspan: 8, class: "empty" },
      "No datasets yet. Label samples on the Samples page, then freeze them here or with edgekit hub dataset create NAME."))]));
}

function renderVersion(dv) {
  $("#version-title").textContent = `${dv.name} v${dv.version}`;
  const total = dv.counts?.total ?? 0;
  const pairs = [
    ["Fingerprint", h("span", { class: "mono", "data-testid": "fingerprint" }, dv.fingerprint)],
    ["Filter", h("span", { "data-testid": "filter" }, filterText(dv.filter))],
    ["Samples", `${total} (${Object.keys(dv.counts?.by_device || {}).length} device(s), ${dv.labels.length} class(es))`],
    ["Kind", kindText(dv)],
    ["Created by", h("span", { "data-testid": "created-by" }, dv.created_by || "–")],
    ["Created", fmtTime(dv.created)],
    ["Export", h("span", {},
      h("code", {}, `edgekit hub dataset export ${dv.name}@${dv.version} --out DIR`), " or ",
      h("a", { href: dv.archive_url, "data-testid": "archive" }, "download the archive"))],
  ];
  $("#version-kv").replaceChildren(...pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  $("#by-label tbody").replaceChildren(...countRows(dv.counts?.by_label, total, "label"));
  $("#by-device tbody").replaceChildren(...countRows(dv.counts?.by_device, total, "device"));
}

function detailError(message) {
  $("#detail-error").textContent = message;
  $("#detail-error").hidden = false;
  $("#detail-body").hidden = true;
}

async function loadDetail() {
  if (!selected.name) return;
  $("#detail").hidden = false;
  $("#detail-title").textContent = `Dataset ${selected.name}`;
  let data;
  try {
    data = await api(`datasets/${encodeURIComponent(selected.name)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) { detailError(`Dataset ${selected.name} does not exist.`); return; }
    throw e;
  }
  const versions = data.versions || [];
  const want = selected.version ?? versions[versions.length - 1]?.version;
  const dv = versions.find((v) => v.version === want);
  if (!dv) { detailError(`Dataset ${selected.name} has no version ${want} (it has v1 to v${versions.length}).`); return; }
  $("#detail-error").hidden = true;
  $("#detail-body").hidden = false;
  $("#versions tbody").replaceChildren(...[...versions].reverse().map((v) =>
    h("tr", { "data-version": v.version, class: v.version === dv.version ? "selected" : null },
      h("td", {}, h("a", { href: datasetHref(v.name, v.version) }, `v${v.version}`)),
      h("td", { class: "num" }, v.counts?.total ?? "–"),
      h("td", { class: "mono", title: v.fingerprint }, short(v.fingerprint)),
      h("td", {}, filterText(v.filter)),
      h("td", {}, v.created_by || "–"),
      h("td", { class: "muted nowrap", title: fmtTime(v.created) }, fmtAgo(v.created)))));
  renderVersion(dv);
}

function readFilter() {
  const filter = {};
  for (const key of FILTER_FIELDS) {
    const raw = $(`#ds-${key}`).value.trim();
    if (!raw) continue;
    if (key === "version") {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) throw new Error("the version filter is a version number (1 or more)");
      filter.version = n;
    } else {
      filter[key] = raw;
    }
  }
  return filter;
}

$("#dataset-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#ds-error").textContent = "";
  try {
    const dv = await api("datasets", { method: "POST", json: { name: $("#ds-name").value.trim(), filter: readFilter() } });
    flash(`${dv.name} v${dv.version} frozen: ${dv.counts.total} samples, ${dv.fingerprint.slice(0, 19)}…`);
    location.assign(datasetHref(dv.name, dv.version));
  } catch (e) {
    $("#ds-error").textContent = e.message;
  }
});
applyRole();

poll(async () => {
  const [rows] = await Promise.all([api("datasets"), loadDetail()]);
  renderList(rows || []);
});
