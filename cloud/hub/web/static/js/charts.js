// The hub's charts, drawn by the vendored uPlot (static/vendor/uplot, loaded by the page
// before this module): a time-axis line chart with a cursor tooltip, a live legend and drag
// to zoom (double-click resets), a grouped bar chart, and a segmented progress bar.
// Nothing is fetched: the pages work without internet access. Charts keep their uPlot
// instance between polls, so a zoom or a hover survives the page's 2 s refresh, and follow
// their container's width (never wider than it).

export const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#64748b"];
const charts = new WeakMap(); // container -> {u, key, sig, zoomed, resize}

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

function fmtClock(ts) {
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function drop(container) {
  const c = charts.get(container);
  if (c) { c.resize.disconnect(); c.u.destroy(); charts.delete(container); }
}

function empty(container, message) {
  drop(container);
  container.replaceChildren();
  const p = document.createElement("p");
  p.className = "chart-empty";
  p.textContent = message;
  container.appendChild(p);
}

function missingLibrary(container) {
  if (window.uPlot) return false;
  empty(container, "Charts unavailable: uPlot did not load");
  return true;
}

const width = (container) => Math.max(Math.floor(container.clientWidth || 0), 200);

// A tooltip that follows the cursor: the hovered sample's time and every series' value.
// Built with textContent only; data-idx / data-x say which sample it shows.
function tooltipPlugin(label, valueText) {
  let tip = null;
  return {
    hooks: {
      init: (u) => {
        tip = document.createElement("div");
        tip.className = "chart-tip";
        tip.hidden = true;
        u.over.appendChild(tip);
        u.over.addEventListener("mouseleave", () => { tip.hidden = true; });
      },
      setCursor: (u) => {
        const idx = u.cursor.idx;
        if (idx == null || u.cursor.left < 0) { tip.hidden = true; return; }
        const lines = [label(u, idx)];
        u.series.forEach((s, i) => {
          if (i === 0 || !s.show) return;
          lines.push(`${s.label}: ${valueText(u.data[i][idx], i)}`);
        });
        tip.replaceChildren(...lines.map((t, i) => {
          const row = document.createElement("div");
          if (i === 0) row.className = "chart-tip-head";
          row.textContent = t;
          return row;
        }));
        tip.dataset.idx = String(idx);
        tip.dataset.x = String(u.data[0][idx]);
        tip.hidden = false;
        const x = u.valToPos(u.data[0][idx], "x");
        const w = tip.offsetWidth;
        const h = tip.offsetHeight;
        const ow = u.over.clientWidth;
        tip.style.left = `${Math.max(0, Math.min(x + w + 12 > ow ? x - w - 8 : x + 8, ow - w))}px`;
        tip.style.top = `${Math.max(0, Math.min(u.cursor.top + 8, u.over.clientHeight - h))}px`;
      },
    },
  };
}

// Tells the page (and tests) the x range shown: data-x-min / data-x-max / data-zoomed.
function scaleWatcher(container, state) {
  return {
    hooks: {
      setScale: (u, key) => {
        if (key !== "x") return;
        const xs = u.data[0];
        const { min, max } = u.scales.x;
        state.zoomed = xs.length > 1 && (min > xs[0] + 1e-6 || max < xs[xs.length - 1] - 1e-6);
        container.dataset.xMin = String(min);
        container.dataset.xMax = String(max);
        container.dataset.zoomed = String(state.zoomed);
      },
    },
  };
}

function thresholdPlugin(threshold) {
  return {
    hooks: {
      draw: (u) => {
        if (!threshold || !Number.isFinite(threshold.value)) return;
        const y = u.valToPos(threshold.value, "y", true);
        const { left, width: w, top, height } = u.bbox;
        if (y < top || y > top + height) return;
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#dc2626";
        ctx.lineWidth = devicePixelRatio;
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + w, y); ctx.stroke();
        ctx.fillStyle = "#dc2626";
        ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
        ctx.textAlign = "right";
        ctx.fillText(threshold.label || "threshold", left + w - 4, y - 4 * devicePixelRatio);
        ctx.restore();
      },
    },
  };
}

function mount(container, key, build, data) {
  const state = { zoomed: false };
  container.replaceChildren();
  const u = new window.uPlot(build(state), data, container);
  const resize = new ResizeObserver(() => {
    const w = width(container);
    if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: u.height });
  });
  resize.observe(container);
  const entry = { u, key, sig: null, state, resize };
  charts.set(container, entry);
  return entry;
}

// Union of every series' timestamps, each series' values aligned on it (null = gap).
function align(series) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0]).filter(Number.isFinite)))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const col = new Array(xs.length).fill(null);
    for (const [t, v] of s.points) if (at.has(t)) col[at.get(t)] = Number.isFinite(v) ? v : null;
    return col;
  });
  return [xs, ...ys];
}

const signature = (data) => data.map((col) => `${col.length}:${col[0]}:${col[col.length - 1]}:${col.reduce((a, v) => a + (v ?? 0), 0)}`).join("|");

// series: [{name, points: [[ts_seconds, value|null], ...], color?}]
// opts: {height, unit, yLabel, yMin, threshold: {value, label}, title, emptyText}
export function lineChart(container, series, opts = {}) {
  const data = align(series);
  if (!data.slice(1).some((col) => col.some((v) => v !== null))) return empty(container, opts.emptyText || "No data yet");
  if (missingLibrary(container)) return;
  const unit = opts.unit || "";
  const key = JSON.stringify([series.map((s) => s.name), unit, opts.yLabel, opts.yMin, opts.threshold?.value ?? null]);
  let entry = charts.get(container);
  if (!entry || entry.key !== key) {
    drop(container);
    const valueText = (v) => (v == null ? "–" : `${fmtNumber(v)}${unit}`);
    const yLabel = opts.yLabel ?? unit.trim().replace(/^\//, "per ");
    entry = mount(container, key, (state) => ({
      width: width(container),
      height: opts.height || 200,
      title: undefined,
      class: "chart",
      cursor: { drag: { x: true, y: false, setScale: true } },
      legend: { live: true },
      scales: {
        x: { time: true },
        y: {
          range: (u, lo, hi) => {
            const low = Math.min(opts.yMin ?? Math.min(0, lo), lo);
            let high = Math.max(hi, opts.threshold?.value ?? -Infinity);
            if (!(high > low)) high = low + 1;
            return [low, high + (high - low) * 0.08];
          },
        },
      },
      axes: [
        { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e5e7eb" } },
        {
          stroke: "#6b7280", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e5e7eb" },
          label: yLabel || undefined, labelSize: 18, size: 52,
          values: (u, splits) => splits.map((v) => fmtNumber(v)),
        },
      ],
      series: [
        { label: "time", value: (u, v) => (v == null ? "–" : fmtClock(v)) },
        ...series.map((s, i) => ({
          label: s.name,
          stroke: s.color || PALETTE[i % PALETTE.length],
          width: 2,
          spanGaps: false,
          points: { show: (u) => u.data[0].length < 3, size: 6 },  // a lone sample stays visible
          value: (u, v) => valueText(v),
        })),
      ],
      plugins: [
        tooltipPlugin((u, idx) => fmtClock(u.data[0][idx]), valueText),
        scaleWatcher(container, state),
        thresholdPlugin(opts.threshold),
      ],
    }), data);
    entry.u.root.setAttribute("role", "img");
    entry.u.root.setAttribute("aria-label", opts.title || series.map((s) => s.name).join(", "));
  }
  const sig = signature(data);
  if (sig === entry.sig) return;  // same data: leave hover and zoom alone
  entry.sig = sig;
  container.dataset.points = String(data[0].length);
  if (entry.state.zoomed) {
    const { min, max } = entry.u.scales.x;
    entry.u.setData(data, false);
    entry.u.setScale("x", { min, max });  // keep the zoom, rescale y to what is visible
  } else {
    entry.u.setData(data);
  }
}

// categories: ["litert-int8", ...]; series: [{name, values: [number|null per category]}]
export function barChart(container, categories, series, opts = {}) {
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  if (categories.length === 0 || all.length === 0) return empty(container, opts.emptyText || "No data");
  if (missingLibrary(container)) return;
  const unit = opts.unit || "";
  const data = [categories.map((_, i) => i), ...series.map((s) => s.values.map((v) => (Number.isFinite(v) ? v : null)))];
  const key = JSON.stringify([categories, series.map((s) => s.name), unit]);
  let entry = charts.get(container);
  if (!entry || entry.key !== key) {
    drop(container);
    const valueText = (v) => (v == null ? "–" : `${fmtNumber(v)}${unit}`);
    const n = series.length;
    const bars = window.uPlot.paths.bars;
    entry = mount(container, key, () => ({
      width: width(container),
      height: opts.height || 220,
      class: "chart",
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      legend: { live: true },
      scales: {
        x: { time: false, range: () => [-0.5, categories.length - 0.5] },
        y: { range: (u, lo, hi) => [0, (hi > 0 ? hi : 1) * 1.1] },
      },
      axes: [
        {
          stroke: "#6b7280", grid: { show: false }, ticks: { show: false },
          splits: () => categories.map((_, i) => i),
          values: (u, splits) => splits.map((i) => categories[i] ?? ""),
          rotate: categories.length > 3 ? -25 : 0, size: categories.length > 3 ? 64 : 36,
        },
        {
          stroke: "#6b7280", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e5e7eb" },
          label: opts.yLabel ?? (unit.trim() || undefined), labelSize: 18, size: 52,
          values: (u, splits) => splits.map((v) => fmtNumber(v)),
        },
      ],
      series: [
        { label: "variant", value: (u, v) => (v == null ? "–" : categories[v] ?? "") },
        ...series.map((s, i) => {
          const color = s.color || PALETTE[i % PALETTE.length];
          return {
            label: s.name, stroke: color, fill: color, width: 0, points: { show: false },
            paths: bars({ size: [0.8 / n, 48], align: n === 2 ? (i === 0 ? -1 : 1) : 0 }),
            value: (u, v) => valueText(v),
          };
        }),
      ],
      plugins: [tooltipPlugin((u, idx) => categories[idx], valueText)],
    }), data);
    entry.u.root.setAttribute("role", "img");
    entry.u.root.setAttribute("aria-label", opts.title || "bar chart");
  }
  const sig = signature(data);
  if (sig !== entry.sig) { entry.sig = sig; entry.u.setData(data); }
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
