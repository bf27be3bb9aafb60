/**
 * The HTML report `GET /` serves: one self-contained page (inline CSS and script, no external
 * asset) with the overall progress, a node x image grid drawn on a canvas (usable at 500 nodes x
 * 100 images and beyond; hover a cell for its details), the images downloading now (their cells
 * in their own colour, the percent in the hover text), the slowest pulls and every error. The
 * first data is embedded in the page; while a run is in progress the page fetches `summary?grid=1`
 * again every few seconds.
 *
 * @module
 */
import type { MetricsSummary } from "./summary.ts";
import type { WavesSnapshot } from "../../waves/snapshot.ts";
import { WAVES_HTML, WAVES_SCRIPT } from "./waves_section.ts";

/** Options for {@linkcode renderHtmlReport}. */
export interface HtmlReportOptions {
  /**
   * The page's title.
   * @default {"image-prefetcher report"}
   */
  title?: string;
  /**
   * Seconds between refreshes while the run is in progress; 0 never refreshes.
   * @default {5}
   */
  refreshSeconds?: number;
  /** The waves coordinator's picture, when the server has one. */
  waves?: WavesSnapshot;
}

/**
 * Renders the report page around a summary made with `{ grid: true }`. The page holds no
 * credential: people open it through `kubectl port-forward` (the server's loopback port).
 */
export function renderHtmlReport(summary: MetricsSummary, options: HtmlReportOptions = {}): string {
  const title = escapeHtml(options.title ?? "image-prefetcher report");
  const data = JSON.stringify({ ...summary, waves: options.waves }).replaceAll("<", "\\u003c");
  const refresh = options.refreshSeconds ?? 5;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>${title}</h1>
  <span id="status" class="badge"></span>
  <span id="updated" class="muted"></span>
</header>
<section class="cards">
  <div class="card"><b id="percent">0%</b><span>complete</span></div>
  <div class="card"><b id="nodes-finished">0</b><span>of <span id="nodes">0</span> nodes finished</span></div>
  <div class="card ok"><b id="done">0</b><span>images on nodes</span></div>
  <div class="card bad"><b id="failed">0</b><span>failed</span></div>
  <div class="card"><b id="pending">0</b><span>pending</span></div>
  <div class="card live"><b id="downloading">0</b><span>downloading now, <span id="in-flight">0 B</span> in</span></div>
  <div class="card"><b id="results">0</b><span>attempts received</span></div>
</section>
<div class="bar"><div id="bar-done"></div><div id="bar-failed"></div></div>
<h2>Nodes x images</h2>
<div class="legend">
  <span><i style="background:#2e9e4f"></i>pulled (fast)</span>
  <span><i style="background:#8fd19e"></i>pulled (slower than the median)</span>
  <span><i style="background:#e0701f"></i>pulled (slower than p95)</span>
  <span><i style="background:#7fa7c9"></i>already present</span>
  <span><i style="background:#f2b632"></i>downloading now</span>
  <span><i style="background:#9b59b6"></i>retrying</span>
  <span><i style="background:#d62f2f"></i>failed</span>
  <span><i style="background:#e4e4e4"></i>pending</span>
</div>
<div id="grid-wrap"><canvas id="grid"></canvas><div id="tip" hidden></div></div>
<h2>Downloading now <span id="downloading-count" class="muted"></span></h2>
<table id="downloads"><thead><tr><th>node</th><th>image</th><th>percent</th><th>received</th><th>total</th><th>rate</th><th>time left</th></tr></thead><tbody></tbody></table>
<h2>Slowest pulls</h2>
<table id="slowest"><thead><tr><th>node</th><th>image</th><th>duration</th><th>attempt</th><th>size</th></tr></thead><tbody></tbody></table>
<h2>Errors <span id="error-count" class="muted"></span></h2>
<table id="errors"><thead><tr><th>image</th><th>error</th><th>attempts</th><th>failed nodes</th><th>nodes</th></tr></thead><tbody></tbody></table>
${WAVES_HTML}
<h2>Images</h2>
<table id="images"><thead><tr><th>image</th><th>done</th><th>failed</th><th>pending</th><th>p50</th><th>p95</th><th>max</th><th>size</th></tr></thead><tbody></tbody></table>
<p class="muted">Raw data: <a href="metrics">/metrics</a> (JSON; Prometheus format for scrapers), <a href="summary">/summary</a>.</p>
<script type="application/json" id="data">${data}</script>
<script>const REFRESH_SECONDS = ${refresh};
${SCRIPT}${WAVES_SCRIPT}</script>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222;background:#fafafa}
header{display:flex;align-items:baseline;gap:12px}h1{font-size:20px;margin:0}
h2{font-size:16px;margin:22px 0 8px}.muted{color:#777;font-size:12px}
.badge{padding:2px 8px;border-radius:10px;font-size:12px;color:#fff;background:#888}
.badge.live{background:#2b7bd6}.badge.done{background:#2e9e4f}.badge.bad{background:#d62f2f}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:14px 0 8px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}.card span{color:#555;font-size:12px}
.card.ok b{color:#2e7d32}.card.bad b{color:#c62828}.card.live b{color:#b7791f}
.bar{display:flex;height:10px;background:#e4e4e4;border-radius:5px;overflow:hidden}
#bar-done{background:#2e9e4f}#bar-failed{background:#d62f2f}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;margin-bottom:6px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
#grid-wrap{position:relative;overflow:auto;max-height:75vh;background:#fff;border:1px solid #ddd}
#grid{display:block}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;font-size:12px;padding:5px 8px;
border-radius:4px;white-space:pre;z-index:2}
table{border-collapse:collapse;background:#fff;font-size:12px;max-width:100%}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.err{max-width:520px;word-break:break-word;color:#a61b1b}
`;

const SCRIPT = String.raw`
"use strict";
const COLORS = { d: "#f2b632", P: "#2e9e4f", p: "#7fa7c9", F: "#d62f2f", r: "#9b59b6", ".": "#e4e4e4" };
const NAMES = { d: "downloading", P: "pulled", p: "already present", F: "failed", r: "retrying", ".": "pending" };
let summary = JSON.parse(document.getElementById("data").textContent);
let layout = null;
let downloads = new Map();

function $(id) { return document.getElementById(id); }
function ms(v) {
  if (v === undefined || v === null) return "";
  return v < 1000 ? v + " ms" : v < 60000 ? (v / 1000).toFixed(1) + " s" : (v / 60000).toFixed(1) + " min";
}
function percent(v) { return v === undefined || v === null ? "" : v + "%"; }
function rate(v) { return v ? bytes(v) + "/s" : ""; }
function bytes(v) {
  if (!v) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v) + " " + u[i];
}
function cell(tr, text, cls) {
  const td = document.createElement("td"); td.textContent = text;
  if (cls) td.className = cls; tr.appendChild(td); return td;
}
function fillTable(id, rows, columns) {
  const body = $(id).tBodies[0]; body.textContent = "";
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const [get, cls] of columns) cell(tr, String(get(row)), cls);
    body.appendChild(tr);
  }
}

function render() {
  const s = summary, p = s.progress;
  $("percent").textContent = p.percent + "%";
  $("nodes").textContent = p.nodes; $("nodes-finished").textContent = p.nodes_finished;
  $("done").textContent = p.done; $("failed").textContent = p.failed;
  $("pending").textContent = p.pending; $("results").textContent = s.results;
  const status = $("status");
  status.textContent = p.complete ? (p.failed ? "finished with failures" : "finished") : (p.nodes ? "in progress" : "waiting for nodes");
  status.className = "badge " + (p.complete ? (p.failed ? "bad" : "done") : "live");
  $("updated").textContent = "updated " + new Date(s.generated_at).toLocaleTimeString();
  const total = Math.max(1, p.expected);
  $("bar-done").style.width = (100 * p.done / total) + "%";
  $("bar-failed").style.width = (100 * p.failed / total) + "%";
  $("downloading").textContent = p.downloading || 0; $("in-flight").textContent = bytes(p.bytes_in_flight) || "0 B";
  downloads = new Map();
  for (const n of s.nodes) for (const d of n.downloading || []) downloads.set(n.node + "\u0000" + d.image, d);
  const listed = s.downloading || [];
  $("downloading-count").textContent = p.downloading ? "(" + p.downloading + (p.downloading > listed.length ? ", the first " + listed.length + " listed" : "") + ", " + rate(p.bytes_per_second) + " in all)" : "(none)";
  fillTable("downloads", listed, [[r => r.node], [r => r.image], [r => percent(r.percent), "num"], [r => bytes(r.received_bytes) || "0 B", "num"],
    [r => bytes(r.total_bytes), "num"], [r => rate(r.bytes_per_second), "num"], [r => r.eta_seconds === undefined ? "" : ms(r.eta_seconds * 1000), "num"]]);
  drawGrid();
  fillTable("slowest", s.slowest, [[r => r.node], [r => r.image], [r => ms(r.duration_ms), "num"], [r => r.attempt, "num"], [r => bytes(r.size_bytes), "num"]]);
  $("error-count").textContent = s.errors.length ? "(" + s.errors.length + ")" : "(none)";
  fillTable("errors", s.errors, [[r => r.image], [r => r.error, "err"], [r => r.attempts, "num"], [r => r.final_failures, "num"],
    [r => r.nodes.join(", ") + (r.node_count > r.nodes.length ? " and " + (r.node_count - r.nodes.length) + " more" : "")]]);
  fillTable("images", s.images, [[r => r.image], [r => r.nodes_done, "num"], [r => r.nodes_failed, "num"], [r => r.nodes_pending, "num"],
    [r => ms(r.p50_ms), "num"], [r => ms(r.p95_ms), "num"], [r => ms(r.max_ms), "num"], [r => bytes(r.size_bytes), "num"]]);
  renderWaves(s);
}

function drawGrid() {
  const g = summary.grid || { images: [], nodes: [], states: [], durations: [] };
  const canvas = $("grid");
  const wrap = $("grid-wrap");
  const cols = g.images.length, rows = g.nodes.length;
  const avail = Math.max(300, wrap.clientWidth - 4);
  const labelW = Math.min(180, Math.max(60, Math.floor(avail * 0.15)));
  const cw = Math.max(3, Math.min(18, Math.floor((avail - labelW) / Math.max(1, cols))));
  const ch = Math.max(3, Math.min(14, cw));
  const headerH = cw >= 10 ? 110 : 4;
  const showNames = ch >= 9;
  const left = showNames ? labelW : 4;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = (left + cols * cw + 4) * ratio; canvas.height = (headerH + rows * ch + 4) * ratio;
  canvas.style.width = (left + cols * cw + 4) + "px"; canvas.style.height = (headerH + rows * ch + 4) + "px";
  const ctx = canvas.getContext("2d"); ctx.scale(ratio, ratio);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  const stats = new Map(summary.images.map(i => [i.image, i]));
  const counts = { d: 0, P: 0, p: 0, F: 0, r: 0, ".": 0 };
  const gap = cw >= 5 ? 1 : 0;
  for (let r = 0; r < rows; r++) {
    const states = g.states[r], times = g.durations[r];
    for (let c = 0; c < cols; c++) {
      const k = states[c]; counts[k]++;
      let color = COLORS[k];
      if (k === "P") {
        const st = stats.get(g.images[c]);
        if (st && st.p95_ms !== undefined && times[c] > st.p95_ms) color = "#e0701f";
        else if (st && st.p50_ms !== undefined && times[c] > st.p50_ms) color = "#8fd19e";
      }
      ctx.fillStyle = color;
      ctx.fillRect(left + c * cw, headerH + r * ch, cw - gap, ch - gap);
    }
  }
  ctx.fillStyle = "#333"; ctx.font = Math.min(12, ch) + "px system-ui,sans-serif"; ctx.textBaseline = "middle";
  if (showNames) for (let r = 0; r < rows; r++) {
    ctx.fillText(clip(ctx, g.nodes[r], labelW - 6), 2, headerH + r * ch + ch / 2);
  }
  if (headerH > 4) {
    ctx.font = Math.min(11, cw) + "px system-ui,sans-serif";
    for (let c = 0; c < cols; c++) {
      ctx.save(); ctx.translate(left + c * cw + cw / 2, headerH - 4); ctx.rotate(-Math.PI / 3);
      ctx.fillText(clip(ctx, shortName(g.images[c]), 120), 0, 0); ctx.restore();
    }
  }
  layout = { left, headerH, cw, ch, cols, rows, g };
  for (const [k, name] of [["d", "downloading"], ["P", "pulled"], ["p", "present"], ["F", "failed"], ["r", "retrying"], [".", "pending"]]) {
    canvas.dataset[name] = counts[k];
  }
  canvas.dataset.nodes = rows; canvas.dataset.images = cols;
}
function shortName(image) { const i = image.lastIndexOf("/"); return i >= 0 ? image.slice(i + 1) : image; }
function clip(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let t = text; while (t.length > 1 && ctx.measureText("…" + t).width > width) t = t.slice(1);
  return "…" + t;
}

$("grid").addEventListener("mousemove", (e) => {
  const tip = $("tip");
  if (!layout) return;
  const rect = e.target.getBoundingClientRect();
  const c = Math.floor((e.clientX - rect.left - layout.left) / layout.cw);
  const r = Math.floor((e.clientY - rect.top - layout.headerH) / layout.ch);
  if (c < 0 || r < 0 || c >= layout.cols || r >= layout.rows) { tip.hidden = true; return; }
  const k = layout.g.states[r][c], d = layout.g.durations[r][c];
  let detail = d ? ", " + ms(d) : "";
  const download = k === "d" ? downloads.get(layout.g.nodes[r] + "\u0000" + layout.g.images[c]) : undefined;
  if (download) {
    detail = (download.percent !== undefined ? " " + download.percent + "%" : "") + ", " + (bytes(download.received_bytes) || "0 B") +
      (download.total_bytes ? " of " + bytes(download.total_bytes) : "") + (download.bytes_per_second ? " at " + rate(download.bytes_per_second) : "") +
      (download.eta_seconds !== undefined ? ", " + ms(download.eta_seconds * 1000) + " left" : "");
  }
  tip.textContent = layout.g.nodes[r] + "\n" + layout.g.images[c] + "\n" + NAMES[k] + detail;
  tip.style.left = (e.clientX + 14) + "px"; tip.style.top = (e.clientY + 14) + "px"; tip.hidden = false;
});
$("grid").addEventListener("mouseleave", () => { $("tip").hidden = true; });
window.addEventListener("resize", () => drawGrid());

async function refresh() {
  try {
    const response = await fetch("summary?grid=1", { cache: "no-store" });
    if (response.ok) { summary = await response.json(); render(); }
  } catch (_) { /* the server may be restarting; try again later */ }
  schedule();
}
function schedule() {
  if (REFRESH_SECONDS > 0 && !summary.progress.complete) setTimeout(refresh, REFRESH_SECONDS * 1000);
}
render();
schedule();
`;
