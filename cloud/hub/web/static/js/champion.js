// The champion check of a version (GET /api/v1/models/<name>/<version>/comparison, or a
// rollout's "champion"): the decision and why, field accuracy with 95 % Wilson intervals,
// agreement, per class, and both bundles' own test accuracy.
import { h, fmtPct, fmtTime } from "./common.js";

const CLASS = { worse: "bad", better: "ok", similar: "info", unknown: "" };

const interval = (p) => (p ? `${fmtPct(p.value, 1)} (${fmtPct(p.low, 1)}–${fmtPct(p.high, 1)})` : "—");

export function comparisonView(c) {
  if (!c) return h("p", { class: "muted" }, "No champion check yet.");
  const champ = c.champion;
  const f = c.field;
  const head = h("p", {},
    h("span", { class: `badge ${CLASS[c.decision] ?? ""}`, "data-testid": "champion-decision" }, c.decision),
    " ", `v${c.candidate.version}`, champ ? ` against v${champ.version} (the version the devices run)` : "",
    c.forced ? h("span", { class: "badge warn" }, " forced") : "",
    h("span", { class: "muted" }, ` · ${c.context || ""} ${fmtTime(c.created || c.at)}${c.actor ? ` by ${c.actor}` : ""}`));
  const rows = [
    ["Own test accuracy", fmtPct(c.candidate.test_accuracy, 1), champ ? fmtPct(champ.test_accuracy, 1) : "—"],
    ["Field accuracy (95 %)", interval(f?.candidate), interval(f?.champion)],
    ["Variant run by the hub", c.candidate.variant || "—", champ?.variant || "—"],
  ];
  const table = h("table", { class: "data", "data-testid": "champion-table" },
    h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, `candidate v${c.candidate.version}`),
      h("th", {}, champ ? `champion v${champ.version}` : "champion"))),
    h("tbody", {}, ...rows.map(([k, a, b]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, a), h("td", { class: "num" }, b)))));
  const notes = [h("p", { class: "champion-reason" }, c.reason)];
  if (f) {
    const devices = Object.entries(f.by_device || {}).map(([d, n]) => `${d} ${n}`).join(", ");
    notes.push(h("p", { class: "muted" }, `${f.n} labeled field samples${devices ? ` (${devices})` : ""}; agreement ${interval(f.agreement)}`
      + `${c.excluded ? `; ${c.excluded} left out (the candidate was trained on them)` : ""}${f.skipped ? `; ${f.skipped} unusable` : ""}.`));
  }
  for (const e of c.errors || []) notes.push(h("p", { class: "form-error" }, e));
  const perClass = Object.entries(f?.per_class || {});
  const classes = perClass.length ? h("details", {}, h("summary", {}, "Per class"),
    h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", {}, "class"), h("th", { class: "num" }, "n"),
      h("th", { class: "num" }, "candidate"), h("th", { class: "num" }, "champion"))),
    h("tbody", {}, ...perClass.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, v.n),
      h("td", { class: "num" }, fmtPct(v.candidate, 1)), h("td", { class: "num" }, fmtPct(v.champion, 1))))))) : "";
  return h("div", { class: "champion" }, head, table, ...notes, classes);
}
