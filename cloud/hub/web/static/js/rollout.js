// One rollout: per-wave progress, gates against thresholds, devices, audit log, actions.
import { api, poll, h, flash, fmtTime, fmtAgo, fmtMs, fmtPct, applyRole, can } from "./common.js";
import { progressBar, fmtNumber } from "./charts.js";
import { comparisonView } from "./champion.js";

const $ = (s) => document.querySelector(s);
const id = $("#rollout-head").dataset.rolloutId;
const path = `rollouts/${encodeURIComponent(id)}`;
const STATE_CLASS = { running: "info", paused: "warn", completed: "ok", aborted: "bad", rolled_back: "bad", draft: "" };
// Which actions make sense in which state (the API has the final word).
const ALLOWED = {
  draft: ["start", "abort"],
  running: ["pause", "abort", "rollback", "retry", "approve"],
  paused: ["resume", "abort", "rollback", "retry"],
  completed: ["rollback"],
  aborted: ["rollback"],
  rolled_back: [],
};
const CONFIRM = {
  abort: "Abort this rollout? Devices keep what they run now.",
  rollback: "Roll back? Every device this rollout updated goes back to its previous version.",
};

function fmtGate(metric, v) {
  if (!Number.isFinite(v)) return "–";
  return metric === "p95_latency_ms" ? `${fmtNumber(v)} ms` : metric === "drift" ? fmtNumber(v) : `${(v * 100).toFixed(2)} %`;
}

// A device's shadow run (rollouts with "shadow" set): agreement with the model it served,
// and the candidate's latency next to the served model's on the same inputs.
function shadowCells(d, min) {
  const s = d.shadow;
  if (!s) return [h("td", { class: "num muted", "data-col": "agreement" }, "–"), h("td", { class: "num muted", "data-col": "shadow-latency" }, "–")];
  const under = Number.isFinite(s.agreement) && Number.isFinite(min) && s.agreement < min;
  const agreement = s.inputs ? `${fmtPct(s.agreement)} of ${s.inputs}` : "no inputs";
  const lat = (v) => v ? [v.p50 ?? v.mean, v.p95].filter(Number.isFinite).map(fmtMs).join(" / ") || "–" : "–";
  return [
    h("td", { class: `num${under ? " under-gate" : ""}`, "data-col": "agreement", title: `${s.errors ?? 0} candidate errors` }, agreement),
    h("td", { class: "num", "data-col": "shadow-latency" }, lat(s.candidate_latency_ms),
      h("span", { class: "muted" }, ` (served ${lat(s.served_latency_ms)})`)),
  ];
}

// The hub keeps a failed device's own reason in front of its later notes
// ("device rolled back: probation failed: … → already runs the previous version v2"):
// show the device's words first, the hub's note after them.
function reasonCell(d) {
  const reason = d.reason || "";
  const cut = reason.lastIndexOf(" → ");
  const bad = ["failed", "reverted", "reverting", "stranded", "incompatible"].includes(d.status);
  if (cut < 0) return h("td", { class: bad ? "reason" : "reason muted" }, reason);
  return h("td", { class: "reason" }, h("span", { class: "device-reason" }, reason.slice(0, cut)),
    h("span", { class: "muted" }, reason.slice(cut)));
}

function render(r) {
  $("#title").textContent = `${r.model} v${r.version}`;
  const st = $("#state");
  st.textContent = r.state.replace("_", " ");
  st.className = `badge ${STATE_CLASS[r.state] ?? ""}`;
  st.dataset.state = r.state;
  const waiting = r.waiting_for ? ` · waiting for ${r.waiting_for}` : "";
  $("#summary").textContent = `${r.committed} of ${r.target_size ?? "?"} devices committed, ${r.failed} failed${r.incompatible ? `, ${r.incompatible} incompatible` : ""} · wave ${Math.min(r.current_wave + 1, r.waves.length)} of ${r.waves.length}${waiting}`;
  for (const b of document.querySelectorAll("#actions button")) {
    const show = (ALLOWED[r.state] || []).includes(b.dataset.action) && (b.dataset.action !== "approve" || r.waiting_for === "approval");
    b.hidden = !show;
    b.disabled = !can("operator");
  }

  $("#waves").replaceChildren(...r.waves.map((w) => {
    const size = w.size ?? w.devices;
    const c = w.counts || {};
    const label = typeof w.wave === "object" ? `${w.wave.count} devices` : `${w.wave} %`;
    const status = w.finished ? "done" : w.soak_started ? `soaking since ${fmtAgo(w.soak_started)}` : w.started ? "deploying" : "waiting";
    const prev = r.waves.filter((x) => x.index < w.index).reduce((a, x) => a + (x.devices || 0), 0);
    const own = Math.max((size ?? 0) - prev, w.devices);
    return h("div", { class: "wave", "data-wave": w.index },
      h("div", { class: "wave-head" }, h("strong", {}, `Wave ${w.index + 1} · up to ${label}`), h("span", { class: "muted" }, status)),
      progressBar([
        { value: w.committed, label: "committed", cls: "committed" },
        { value: w.pending, label: "in progress", cls: "active" },
        { value: w.failed, label: "failed", cls: "failed" },
        { value: (c.reverted || 0) + (c.reverting || 0), label: "rolled back", cls: "rolled_back" },
        { value: w.incompatible || 0, label: "incompatible", cls: "incompatible" },
      ], own, `${w.committed}/${own} committed · ${w.pending} in progress · ${w.failed} failed${w.incompatible ? ` · ${w.incompatible} incompatible` : ""}${c.reverted ? ` · ${c.reverted} reverted` : ""}${c.stranded ? ` · ${c.stranded} stranded` : ""}`));
  }));

  const gates = r.gates || [];
  $("#gates tbody").replaceChildren(...(gates.length ? gates.map((g) => h("tr", { "data-gate": g.metric },
    h("td", {}, g.metric.replace(/_/g, " ")),
    h("td", { class: "num" }, fmtGate(g.metric, g.value)),
    h("td", { class: "num" }, fmtGate(g.metric, g.baseline)),
    h("td", { class: "num" }, `${g.mode === "min_abs" || g.mode === "min_device" ? "≥" : "≤"} ${fmtGate(g.metric, g.threshold)}`),
    h("td", { class: "num" }, g.devices),
    h("td", {}, g.ok === null || g.ok === undefined ? h("span", { class: "badge" }, "no data yet")
      : g.ok ? h("span", { class: "badge ok" }, "pass") : h("span", { class: "badge bad" }, "fail"))))
    : [h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No gate evaluated yet."))]));

  const s = r.spec || {};
  const t = s.target || {};
  $("#spec").replaceChildren(...[
    ["Target", [t.all ? "every device" : null, t.tags?.length ? `tags ${t.tags.join(", ")}` : null, t.devices?.length ? `devices ${t.devices.join(", ")}` : null].filter(Boolean).join("; ")],
    ["Soak", `${s.soak_seconds ?? 0} s per wave`],
    ["Success threshold", `${((s.success_threshold ?? 1) * 100).toFixed(0)} % committed`],
    ["Error threshold", `${((s.error_threshold ?? 0) * 100).toFixed(0)} % failed → ${s.error_action}`],
    ["Gates judged after", `${s.gate_min_devices ?? 1} device(s), ${s.gate_min_inferences ?? 0} inferences`],
    ["p95 latency floor", `${s.p95_latency_min_increase_ms ?? 0} ms`],
    ["Manual approval", s.manual_approval ? "yes" : "no"],
    ["Shadow", s.shadow ? `${s.shadow.inputs} live inputs per device, agreement ≥ ${fmtPct(s.shadow.min_agreement)}, at most ${s.shadow.timeout} s` : "off"],
  ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v || "—")]));

  const deps = r.deployments || [];
  const depCls = { committed: "ok", current: "ok", failed: "bad", reverted: "info", reverting: "warn", pending: "info", retry: "warn", stranded: "bad", incompatible: "incompatible" };
  $("#deployments tbody").replaceChildren(...(deps.length ? deps.map((d) => h("tr", { "data-device": d.device },
    h("td", {}, h("a", { href: `/devices/${encodeURIComponent(d.device)}` }, d.device)),
    h("td", { class: "num" }, d.wave + 1),
    h("td", {}, h("span", { class: `badge ${depCls[d.status] ?? ""}` }, d.status)),
    h("td", {}, d.from ? `${d.from.name} v${d.from.version}` : "—"),
    h("td", { class: "num" }, d.attempts),
    ...shadowCells(d, s.shadow?.min_agreement),
    h("td", { class: "muted nowrap", title: fmtTime(d.updated) }, fmtAgo(d.updated)),
    reasonCell(d)))
    : [h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No device assigned yet."))]));

  $("#champion-panel").hidden = !r.champion;
  if (r.champion) $("#champion").replaceChildren(comparisonView(r.champion));

  $("#audit tbody").replaceChildren(...[...(r.audit || [])].reverse().map((a) => h("tr", {},
    h("td", { class: "muted" }, fmtTime(a.ts)), h("td", {}, a.action),
    h("td", {}, a.from === a.to ? a.to : `${a.from} → ${a.to}`), h("td", {}, a.actor || "hub"), h("td", {}, a.reason))));
}

const refresh = async () => render(await api(path));
for (const b of document.querySelectorAll("#actions button")) {
  b.addEventListener("click", async () => {
    const action = b.dataset.action;
    if (CONFIRM[action] && !window.confirm(CONFIRM[action])) return;
    b.disabled = true;
    try {
      const r = await api(`${path}/${action}`, { method: "POST", json: {} });
      flash(`${action}: done`);
      if (r && r.id) render(r); else await refresh();
    } catch (e) { flash(`${action} refused: ${e.message}`, "bad"); }
    finally { applyRole(); }
  });
}
applyRole();
poll(refresh);
