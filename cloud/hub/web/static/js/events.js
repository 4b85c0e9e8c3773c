// Device events in words: one sentence per event with its step, version, reason and key
// numbers ("probation failed: mean confidence 0.104 dropped … → rolled back to v2"). Event
// kinds and detail shapes are the agent's (docs/mqtt-api.md, edge/install/installer.py);
// anything unknown or malformed falls back to a generic sentence, never an exception.
import { fmtBytes, fmtMs, fmtPct } from "./common.js";

const STEP_WORDS = {
  downloading: "download", verifying: "verification", self_test: "self-test", shadow: "shadow run",
  activating: "activation", probation: "probation", committed: "commit", rolled_back: "rollback", failed: "install",
};
const stepWord = (s) => STEP_WORDS[s] || String(s || "install").replace(/_/g, " ");
const isObj = (x) => x !== null && typeof x === "object" && !Array.isArray(x);
const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : null);
const text = (x) => (typeof x === "string" && x.trim() ? x.trim() : null);
const fix = (x, d = 3) => (num(x) === null ? null : Number(x.toFixed(d)).toString());
const pct = (x) => (num(x) === null ? null : fmtPct(x, x === 1 || x === 0 ? 0 : 1));
const list = (...parts) => parts.filter(Boolean).join(", ");
const paren = (s) => (s ? ` (${s})` : "");
const ver = (v) => (num(v) !== null ? ` v${v}` : "");

// "digits-2" -> "v2"; the agent's slot ids are <name>-<version>.
function restoredLabel(d) {
  if (num(d.restored_version) !== null) return `v${d.restored_version}`;
  const id = text(d.restored);
  if (!id) return null;
  const m = /-(\d+)$/.exec(id);
  return m ? `v${m[1]}` : id;
}

function selfTest(e, d) {
  const v = isObj(d.variant) ? d.variant : {};
  const chosen = text(v.runtime) && text(v.precision) ? `${v.runtime}-${v.precision}` : text(d.selftest?.chosen);
  const numbers = list(
    pct(v.top1_agreement) && `agreement ${pct(v.top1_agreement)}`,
    num(v.latency_ms) !== null && fmtMs(v.latency_ms),
    num(v.mean_abs_error) !== null && `mean abs error ${fix(v.mean_abs_error, 4)}`);
  return `self-test${ver(e.version)} passed${chosen ? `: chose ${chosen}` : ""}${paren(numbers)}`;
}

function deploy(e, d) {
  const v = ver(e.version);
  switch (e.step) {
    case "downloading":
      return `download${v}: ${list(num(d.bytes) !== null && fmtBytes(d.bytes), num(d.seconds) !== null && `in ${fix(d.seconds, 2)} s`) || "bundle downloaded"}`;
    case "verifying":
      return `verify${v}: signature and file hashes good${text(d.name) ? ` (${d.name})` : ""}`;
    case "self_test":
      return selfTest(e, d);
    case "shadow":
      return `shadow run${v}: ${list(pct(d.agreement) && `agreement ${pct(d.agreement)}`,
        num(d.inputs) !== null && `${d.inputs} inputs`, num(d.errors) ? `${d.errors} errors` : null,
        num(d.candidate_latency_ms) !== null && `${fmtMs(d.candidate_latency_ms)} per input`,
        d.candidate_latency_ms && num(d.candidate_latency_ms.p50) !== null &&
          `candidate p50 ${fmtMs(d.candidate_latency_ms.p50)}, p95 ${fmtMs(d.candidate_latency_ms.p95)}`) || "finished"}`;
    case "activating": {
      const variant = text(d.runtime) && text(d.precision) ? `${d.runtime}-${d.precision}` : null;
      return `activate${v}: now serving${variant ? ` ${variant}` : " the new model"}`;
    }
    case "probation":
      return `probation${v} passed${paren(list(
        num(d.inferences) !== null && `${d.inferences} inferences`,
        num(d.errors) !== null && `${d.errors} errors`,
        num(d.p95_ms) !== null && `p95 ${fmtMs(d.p95_ms)}`,
        num(d.confidence_mean) !== null && `mean confidence ${fix(d.confidence_mean)}`))}`;
    case "committed":
      return `commit${v}: it is now the device's version`;
    case "failed": {
      const reason = text(d.reason) || text(e.message) || "no reason given";
      if (/^refused/.test(text(e.message) || "")) return `deploy${v} refused: ${reason}`;
      return `${stepWord(d.failed_step)}${v} failed: ${reason}`;
    }
    default:
      return null;
  }
}

function rollback(e, d) {
  const to = restoredLabel(d);
  const reason = text(d.reason);
  if (e.step === "failed") return `rollback${ver(e.version)} refused: ${reason || text(e.message) || "no reason given"}`;
  if (e.step !== "rolled_back") return null;
  if (reason === "commanded") return `rolled back to ${to || `v${e.version}`} as commanded`;
  if (reason === "error_rate") {
    return `error rate ${pct(d.error_rate) || "too high"}${text(d.from) ? ` on ${d.from}` : ""} → fell back to ${to || "the last good version"}`;
  }
  const cause = text(d.failed_step) ? `${stepWord(d.failed_step)}${ver(e.version)} failed: ${reason || "no reason given"}`
    : text(d.slot) ? `${d.slot} unusable: ${reason || "no reason given"}`
      : reason || text(e.message) || "rolled back";
  return to ? `${cause} → rolled back to ${to}` : `${cause} → rolled back`;
}

function info(e, d) {
  const msg = text(e.message) || "";
  if (msg === "pong") return `ping answered${num(d.uptime_s) !== null ? ` (up ${Math.round(d.uptime_s)} s)` : ""}`;
  if (msg === "config applied" && isObj(d.config)) {
    const keys = Object.entries(d.config).map(([k, v]) => `${k} = ${typeof v === "object" ? JSON.stringify(v) : v}`);
    return `config applied${keys.length ? `: ${keys.join(", ")}` : ""}`;
  }
  return null;
}

// The sentence for one event (a string; never throws).
export function describeEvent(e) {
  try {
    const d = isObj(e?.detail) ? e.detail : {};
    const out = e?.kind === "deploy" ? deploy(e, d)
      : e?.kind === "rollback" ? rollback(e, d)
        : e?.kind === "info" ? info(e, d) || text(e.message)
          : (e?.kind === "alert" || e?.kind === "error") ? text(e.message)  // already a sentence
            : null;
    if (out) return out;
  } catch { /* fall through to the generic sentence */ }
  return genericSentence(e);
}

export function genericSentence(e) {
  const what = [e?.kind || "event", e?.step ? stepWord(e.step) : null].filter(Boolean).join(" ");
  const msg = text(e?.message);
  return `${what}${ver(e?.version)}${msg ? `: ${msg}` : ""}`;
}

// Badge colour of an event.
export function eventClass(e) {
  if (e.step === "failed" || e.step === "rolled_back" || e.kind === "rollback" || e.kind === "error") return "bad";
  if (e.step === "committed") return "ok";
  return e.kind === "alert" ? "warn" : "info";
}
