// Shared helpers for the hub pages: JSON API calls with the session cookie and CSRF
// header, a polling loop that never stacks requests, a tiny DOM builder, formatting.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
export const CSRF = meta("csrf-token");
export const ROLE = meta("user-role") || "viewer";
export const API = meta("api-root") || "/api/v1";
const RANK = { viewer: 0, operator: 1, admin: 2 };
export const can = (role) => (RANK[ROLE] ?? 0) >= (RANK[role] ?? 99);

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// fetch() an API path; JSON in and out; throws ApiError with the hub's error message.
export async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = CSRF;
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  const res = await fetch(path.startsWith("/") ? path : `${API}/${path}`, {
    method, headers, body, credentials: "same-origin",
  });
  if (res.status === 401) { window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`); }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = data?.error;
    const msg = (typeof err === "object" ? err?.message : err) || data?.message || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

// Unwraps list responses whether the API returns [...] or {items: [...]} / {<key>: [...]}.
export function items(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

// Runs `fn` now and every `ms`, waiting for each run to finish; shows failures in #live.
export function poll(fn, ms = 2000) {
  const live = document.getElementById("live");
  let timer = null;
  let lastError = "";
  const tick = async () => {
    try {
      await fn();
      if (live) { live.textContent = `live · ${new Date().toLocaleTimeString()}`; live.className = "live ok"; }
      lastError = "";
    } catch (e) {
      if (live) { live.textContent = `update failed: ${e.message}`; live.className = "live bad"; }
      if (e.message !== lastError) flash(e.message, "bad");  // once per distinct failure
      lastError = e.message;
    }
    timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
  };
  tick();
  return () => clearTimeout(timer);
}

// h("td", {class: "x", onclick: fn}, "text", child...) — text is always escaped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function flash(message, kind = "ok") {
  const box = document.getElementById("flash");
  if (!box) return;
  const item = h("div", { class: `flash ${kind}`, role: kind === "bad" ? "alert" : "status" }, message);
  box.replaceChildren(item);
  if (kind !== "bad") setTimeout(() => item.remove(), 6000);
}

export function fmtTime(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

// A compact local date for narrow cells, "2026-11-26 14:03" (the full time goes in a title).
export function fmtDate(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function fmtAgo(ts) {
  if (ts === null || ts === undefined) return "never";
  const t = typeof ts === "number" ? ts * 1000 : Date.parse(ts);
  if (!Number.isFinite(t)) return String(ts);
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function fmtPct(v, digits = 1) {
  return Number.isFinite(v) ? `${(v * 100).toFixed(digits)} %` : "–";
}

export function fmtMs(v) {
  return Number.isFinite(v) ? `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms` : "–";
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export const modelLabel = (m) => (m && m.name ? `${m.name} v${m.version}` : "—");

// Disables every element marked data-needs="operator|admin" the user may not use.
export function applyRole(root = document) {
  for (const el of root.querySelectorAll("[data-needs]")) {
    if (!can(el.dataset.needs)) {
      el.disabled = true;
      el.title = `needs the ${el.dataset.needs} role`;
      el.classList.add("locked");
    }
  }
}

// The latest KPIs of a device, whatever spelling the telemetry summary uses.
export function kpisOf(device) {
  const k = device?.kpis || {};
  const pick = (...names) => {
    for (const n of names) {
      const v = n.split(".").reduce((o, p) => (o == null ? undefined : o[p]), k);
      if (Number.isFinite(v)) return v;
    }
    return null;
  };
  return {
    p95: pick("p95_latency_ms", "latency_p95", "latency_ms.p95"),
    errorRate: pick("error_rate"),
    drift: pick("drift", "drift.input_psi", "input_psi"),
    driftAlert: Boolean(k.drift_alert ?? k.drift?.alert ?? false),
    accuracy: pick("accuracy", "accuracy.value"),
    throughput: pick("throughput", "throughput_per_s"),
  };
}
