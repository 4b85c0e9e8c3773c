// Small dependency-free SVG charts for the hub pages: a time-axis line chart, a grouped
// bar chart and a segmented progress bar. Everything is drawn from data; nothing is
// fetched, so the pages work without internet access.

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#64748b"];

function svgEl(tag, attrs = {}, text = null) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== null) el.textContent = text;
  return el;
}

// "Nice" axis ticks (1, 2, 2.5, 5 x 10^k) covering [lo, hi].
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi === lo) { hi = lo + (lo === 0 ? 1 : Math.abs(lo) * 0.1); }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

export function fmtNumber(v, digits = 3) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(digits)));
}

function fmtClock(ts, spanS) {
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanS > 2 * 86400) return `${d.getMonth() + 1}/${d.getDate()} ${hm}`;
  return spanS < 600 ? `${hm}:${pad(d.getSeconds())}` : hm;
}

function empty(container, message) {
  container.replaceChildren();
  const p = document.createElement("p");
  p.className = "chart-empty";
  p.textContent = message;
  container.appendChild(p);
}

// series: [{name, points: [[ts_seconds, value|null], ...], color?}]
// opts: {height, unit, yMin, threshold: {value, label}}
export function lineChart(container, series, opts = {}) {
  const pts = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p[1])));
  if (pts.length === 0) return empty(container, opts.emptyText || "No data yet");
  const W = Math.max(container.clientWidth || 480, 240);
  const H = opts.height || 180;
  const m = { l: 48, r: 12, t: 10, b: 24 };
  const t0 = Math.min(...pts.map((p) => p[0]));
  const t1 = Math.max(...pts.map((p) => p[0]));
  const span = Math.max(t1 - t0, 1);
  const values = pts.map((p) => p[1]);
  if (opts.threshold && Number.isFinite(opts.threshold.value)) values.push(opts.threshold.value);
  const yTicks = niceTicks(opts.yMin ?? Math.min(0, ...values), Math.max(...values), 4);
  const y0 = yTicks[0];
  const y1 = yTicks[yTicks.length - 1];
  const x = (t) => m.l + ((t - t0) / span) * (W - m.l - m.r);
  const y = (v) => H - m.b - ((v - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  svg.appendChild(svgEl("title", {}, opts.title || series.map((s) => s.name).join(", ")));
  for (const v of yTicks) {
    svg.appendChild(svgEl("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(svgEl("text", { x: m.l - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, fmtNumber(v)));
  }
  const xCount = Math.max(2, Math.floor((W - m.l - m.r) / 90));
  for (let i = 0; i <= xCount; i++) {
    const t = t0 + (span * i) / xCount;
    const anchor = i === 0 ? "start" : i === xCount ? "end" : "middle";
    svg.appendChild(svgEl("text", { x: x(t), y: H - 6, class: "tick", "text-anchor": anchor }, fmtClock(t, span)));
  }
  if (opts.threshold && Number.isFinite(opts.threshold.value)) {
    const ty = y(opts.threshold.value);
    svg.appendChild(svgEl("line", { x1: m.l, x2: W - m.r, y1: ty, y2: ty, class: "threshold" }));
    svg.appendChild(svgEl("text", { x: W - m.r, y: ty - 4, class: "tick threshold-label", "text-anchor": "end" }, opts.threshold.label || "threshold"));
  }
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    let d = "";
    let pen = false;
    for (const [t, v] of s.points) {
      if (!Number.isFinite(v)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    const path = svgEl("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series" });
    path.appendChild(svgEl("title", {}, s.name));
    svg.appendChild(path);
    const last = [...s.points].reverse().find((p) => Number.isFinite(p[1]));
    if (last) svg.appendChild(svgEl("circle", { cx: x(last[0]), cy: y(last[1]), r: 3, fill: color }));
  });
  addHover(svg, series, { x, y, t0, span, m, W, H, unit: opts.unit || "" });
  container.replaceChildren(svg);
  if (series.length > 1 || opts.legend) container.appendChild(legend(series));
}

function legend(series) {
  const div = document.createElement("div");
  div.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = s.color || PALETTE[i % PALETTE.length];
    item.append(sw, document.createTextNode(s.name));
    div.appendChild(item);
  });
  return div;
}

// A vertical cursor that shows the nearest sample of every series.
function addHover(svg, series, g) {
  const cursor = svgEl("line", { y1: g.m.t, y2: g.H - g.m.b, class: "cursor", visibility: "hidden" });
  const label = svgEl("text", { y: g.m.t + 10, class: "tick cursor-label", visibility: "hidden" });
  svg.append(cursor, label);
  svg.addEventListener("mousemove", (ev) => {
    const box = svg.getBoundingClientRect();
    const t = g.t0 + ((ev.clientX - box.left - g.m.l) / (g.W - g.m.l - g.m.r)) * g.span;
    const parts = [];
    let near = null;
    for (const s of series) {
      let best = null;
      for (const p of s.points) if (Number.isFinite(p[1]) && (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t))) best = p;
      if (best) { parts.push(`${s.name} ${fmtNumber(best[1])}${g.unit}`); near = near ?? best[0]; }
    }
    if (near === null) return;
    const cx = g.x(near);
    cursor.setAttribute("x1", cx); cursor.setAttribute("x2", cx);
    label.textContent = `${fmtClock(near, g.span)}  ${parts.join("  ")}`;
    const right = cx > g.W / 2;
    label.setAttribute("x", right ? cx - 6 : cx + 6);
    label.setAttribute("text-anchor", right ? "end" : "start");
    cursor.setAttribute("visibility", "visible"); label.setAttribute("visibility", "visible");
  });
  svg.addEventListener("mouseleave", () => {
    cursor.setAttribute("visibility", "hidden"); label.setAttribute("visibility", "hidden");
  });
}

// categories: ["litert-int8", ...]; series: [{name, values: [number|null per category]}]
export function barChart(container, categories, series, opts = {}) {
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  if (categories.length === 0 || all.length === 0) return empty(container, opts.emptyText || "No data");
  const W = Math.max(container.clientWidth || 480, 240);
  const H = opts.height || 200;
  const m = { l: 48, r: 12, t: 12, b: 36 };
  const ticks = niceTicks(0, Math.max(...all), 4);
  const top = ticks[ticks.length - 1] || 1;
  const y = (v) => H - m.b - (v / top) * (H - m.t - m.b);
  const band = (W - m.l - m.r) / categories.length;
  const barW = Math.min(36, (band * 0.8) / series.length);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  svg.appendChild(svgEl("title", {}, opts.title || "bar chart"));
  for (const v of ticks) {
    svg.appendChild(svgEl("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(svgEl("text", { x: m.l - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, fmtNumber(v)));
  }
  categories.forEach((cat, ci) => {
    const cx = m.l + band * ci + band / 2;
    const x0 = cx - (barW * series.length) / 2;
    series.forEach((s, si) => {
      const v = s.values[ci];
      if (!Number.isFinite(v)) return;
      const rect = svgEl("rect", {
        x: x0 + si * barW + 1, y: y(v), width: barW - 2, height: Math.max(0, y(0) - y(v)),
        fill: s.color || PALETTE[si % PALETTE.length], rx: 2,
      });
      rect.appendChild(svgEl("title", {}, `${cat} · ${s.name}: ${fmtNumber(v)}${opts.unit || ""}`));
      svg.appendChild(rect);
    });
    svg.appendChild(svgEl("text", { x: cx, y: H - m.b + 16, class: "tick", "text-anchor": "middle" }, cat));
  });
  container.replaceChildren(svg);
  if (series.length > 1) container.appendChild(legend(series));
}

// segments: [{value, label, cls}] drawn left to right over `total`.
export function progressBar(segments, total, caption = "") {
  const wrap = document.createElement("div");
  wrap.className = "progress";
  wrap.setAttribute("role", "progressbar");
  const done = segments.reduce((a, s) => a + (s.value || 0), 0);
  wrap.setAttribute("aria-valuemax", String(total));
  wrap.setAttribute("aria-valuenow", String(done));
  const track = document.createElement("div");
  track.className = "progress-track";
  for (const s of segments) {
    if (!s.value) continue;
    const seg = document.createElement("div");
    seg.className = `progress-seg ${s.cls || ""}`;
    seg.style.width = `${(100 * s.value) / Math.max(total, 1)}%`;
    seg.title = `${s.label}: ${s.value}`;
    track.appendChild(seg);
  }
  wrap.appendChild(track);
  if (caption) {
    const c = document.createElement("div");
    c.className = "progress-caption";
    c.textContent = caption;
    wrap.appendChild(c);
  }
  return wrap;
}
