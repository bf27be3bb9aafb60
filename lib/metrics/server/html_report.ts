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
  <div class="card"><b id="gone">0</b><span>on <span id="nodes-gone">0</span> gone nodes</span></div>
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
  <span><i style="background:#c9d3e6"></i>done in an earlier run, not yet in this one</span>
</div>
<div class="filters">
  <label>Show <select id="node-show">
    <option value="all">all nodes</option>
    <option value="failed">nodes with failures</option>
    <option value="slow">slow nodes (a quarter of their pulls slower than p95)</option>
    <option value="unfinished">unfinished nodes</option>
    <option value="gone">gone nodes</option>
  </select></label>
  <label>Node <input id="node-filter" type="search" placeholder="part of a name" size="24"></label>
  <span id="shown" class="muted"></span>
  <span id="affixes" class="muted"></span>
</div>
<p class="muted">Rows: nodes with failed images first, then gone, retrying, slow and unfinished ones, then the rest by name.</p>
<div id="grid-wrap"><canvas id="grid"></canvas><div id="tip" hidden></div></div>
<h2>Nodes to look at <span id="attention-count" class="muted"></span></h2>
<table id="attention"><thead><tr><th>node</th><th>failed</th><th>retrying</th><th>slow pulls</th><th>pending</th><th>state</th><th>last heard</th><th>last finished</th></tr></thead><tbody></tbody></table>
<h2>Downloading now <span id="downloading-count" class="muted"></span></h2>
<table id="downloads"><thead><tr><th>node</th><th>image</th><th>percent</th><th>received</th><th>total</th><th>rate</th><th>time left</th></tr></thead><tbody></tbody></table>
<h2>Slowest pulls</h2>
<table id="slowest"><thead><tr><th>node</th><th>image</th><th>duration</th><th>attempt</th><th>size</th></tr></thead><tbody></tbody></table>
<h2>Errors <span id="error-count" class="muted"></span></h2>
<table id="errors"><thead><tr><th>image</th><th>error</th><th>attempts</th><th>failed nodes</th><th>nodes</th></tr></thead><tbody></tbody></table>
${WAVES_HTML}
<h2>Images</h2>
<table id="images"><thead><tr><th>image</th><th>done</th><th>failed</th><th>pending</th><th>p50</th><th>p95</th><th>max</th><th>size</th><th>last finished</th></tr></thead><tbody></tbody></table>
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
.filters{display:flex;gap:14px;align-items:center;flex-wrap:wrap;font-size:12px;margin:6px 0}
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
const COLORS = { d: "#f2b632", P: "#2e9e4f", p: "#7fa7c9", F: "#d62f2f", r: "#9b59b6", ".": "#e4e4e4", o: "#c9d3e6" };
const NAMES = { d: "downloading", P: "pulled", p: "already present", F: "failed", r: "retrying", ".": "pending", o: "pending (done in an earlier run)" };
const params = new URLSearchParams(location.search);
let summary = JSON.parse(document.getElementById("data").textContent);
let layout = null;
let downloads = new Map();
let nodeInfo = new Map();
let rowFacts = [];
let affixes = { prefix: "", suffix: "" };

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
function ago(seconds) { return seconds === undefined ? "" : seconds < 90 ? seconds + " s ago" : ms(seconds * 1000) + " ago"; }
function when(epochSeconds) { return epochSeconds ? new Date(epochSeconds * 1000).toLocaleString() : ""; }
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

// The part of the node names that tells them apart: the suffix every name shares is left out
// (e.g. .eu-west-1.compute.internal), and so is a shared prefix longer than 12 characters (e.g.
// gke-prod-default-pool-); cuts fall on a '.', '-' or '_' so names keep whole parts.
function commonAffixes(names) {
  if (names.length < 2) return { prefix: "", suffix: "" };
  let prefix = names[0], suffix = names[0];
  for (const name of names) {
    while (!name.startsWith(prefix)) prefix = prefix.slice(0, -1);
    while (!name.endsWith(suffix)) suffix = suffix.slice(1);
  }
  const separators = ".-_";
  let end = prefix.length; while (end > 0 && !separators.includes(prefix[end - 1])) end--;
  prefix = end > 12 ? prefix.slice(0, end) : "";
  let start = 0; while (start < suffix.length && !separators.includes(suffix[start])) start++;
  suffix = suffix.slice(start);
  const shortest = Math.min(...names.map((name) => name.length));
  if (prefix.length + suffix.length >= shortest) prefix = "";
  if (suffix.length >= shortest) suffix = "";
  return { prefix, suffix };
}
function short(name) {
  const { prefix, suffix } = affixes;
  if (!name.startsWith(prefix) || !name.endsWith(suffix)) return name;
  return name.slice(prefix.length, name.length - suffix.length);
}

function render() {
  const s = summary, p = s.progress;
  affixes = commonAffixes((s.grid || { nodes: [] }).nodes);
  $("affixes").textContent = affixes.prefix || affixes.suffix
    ? "node names shown without what they all share: " + [affixes.prefix && affixes.prefix + "…", affixes.suffix && "…" + affixes.suffix].filter(Boolean).join(" and ")
    : "";
  nodeInfo = new Map(s.nodes.map((n) => [n.node, n]));
  $("percent").textContent = p.percent + "%";
  $("nodes").textContent = p.nodes; $("nodes-finished").textContent = p.nodes_finished;
  $("done").textContent = p.done; $("failed").textContent = p.failed;
  $("pending").textContent = p.pending; $("results").textContent = s.results;
  $("gone").textContent = p.gone || 0; $("nodes-gone").textContent = p.nodes_gone || 0;
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
  fillTable("downloads", listed, [[r => short(r.node)], [r => r.image], [r => percent(r.percent), "num"], [r => bytes(r.received_bytes) || "0 B", "num"],
    [r => bytes(r.total_bytes), "num"], [r => rate(r.bytes_per_second), "num"], [r => r.eta_seconds === undefined ? "" : ms(r.eta_seconds * 1000), "num"]]);
  rowFacts = factsOfRows();
  drawGrid();
  fillAttention();
  fillTable("slowest", s.slowest, [[r => short(r.node)], [r => r.image], [r => ms(r.duration_ms), "num"], [r => r.attempt, "num"], [r => bytes(r.size_bytes), "num"]]);
  const groups = s.error_groups ?? s.errors.length;
  $("error-count").textContent = groups ? "(" + groups + (groups > s.errors.length ? ", the first " + s.errors.length + " listed" : "") + ")" : "(none)";
  fillTable("errors", s.errors, [[r => r.image], [r => r.error, "err"], [r => r.attempts, "num"], [r => r.final_failures, "num"],
    [r => r.nodes.map(short).join(", ") + (r.node_count > r.nodes.length ? " and " + (r.node_count - r.nodes.length) + " more" : "")]]);
  fillTable("images", s.images, [[r => r.image], [r => r.nodes_done, "num"], [r => r.nodes_failed, "num"], [r => r.nodes_pending, "num"],
    [r => ms(r.p50_ms), "num"], [r => ms(r.p95_ms), "num"], [r => ms(r.max_ms), "num"], [r => bytes(r.size_bytes), "num"], [r => when(r.last_finished_at)]]);
  renderWaves(s);
}

// Per grid row: its counts of failed, retrying, slow (slower than the image's p95) and
// unfinished cells, and whether the node is gone or slow (over a quarter of its pulls slower than
// p95, where 5% would be usual); rows sorted the ones to look at first.
function factsOfRows() {
  const g = summary.grid || { images: [], nodes: [], states: [], durations: [] };
  const p95 = g.images.map((image) => summary.images.find((i) => i.image === image)?.p95_ms);
  const facts = g.nodes.map((name, row) => {
    const states = g.states[row], times = g.durations[row];
    const fact = { row, name, failed: 0, retrying: 0, slow: 0, pulled: 0, unfinished: 0, gone: !!nodeInfo.get(name)?.gone };
    for (let c = 0; c < states.length; c++) {
      const k = states[c];
      if (k === "F") fact.failed++;
      else if (k === "r") fact.retrying++;
      else if (k === "P") {
        fact.pulled++;
        if (p95[c] !== undefined && times[c] > p95[c]) fact.slow++;
      }
      if (k !== "P" && k !== "p" && k !== "F") fact.unfinished++;
    }
    fact.slowNode = fact.slow >= 2 && fact.slow * 4 >= fact.pulled;
    return fact;
  });
  return facts.sort((a, b) => b.failed - a.failed || (b.gone - a.gone) || b.retrying - a.retrying ||
    (b.slowNode - a.slowNode) || b.unfinished - a.unfinished || b.slow - a.slow ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
function shownRows() {
  const show = $("node-show").value, text = $("node-filter").value.trim().toLowerCase();
  return rowFacts.filter((f) => (!text || f.name.toLowerCase().includes(text)) &&
    (show === "all" || (show === "failed" && f.failed > 0) || (show === "slow" && f.slowNode) ||
      (show === "unfinished" && f.unfinished > 0) || (show === "gone" && f.gone)));
}
function fillAttention() {
  const wanted = rowFacts.filter((f) => f.failed || f.gone || f.retrying || f.slowNode || f.unfinished);
  $("attention-count").textContent = wanted.length ? "(" + wanted.length + (wanted.length > 50 ? ", the first 50 listed" : "") + ")" : "(none)";
  fillTable("attention", wanted.slice(0, 50), [[f => short(f.name)], [f => f.failed, "num"], [f => f.retrying, "num"], [f => f.slow, "num"],
    [f => nodeInfo.get(f.name)?.pending ?? f.unfinished, "num"], [f => f.gone ? "gone" : nodeInfo.get(f.name)?.finished ? "finished" : "in progress"],
    [f => ago(nodeInfo.get(f.name)?.last_seen_seconds_ago)], [f => when(nodeInfo.get(f.name)?.last_finished_at)]]);
}

function gridGeometry(cols, rows, names) {
  const wrap = $("grid-wrap");
  const avail = Math.max(300, wrap.clientWidth - 4);
  const ctx = $("grid").getContext("2d"); ctx.font = "12px system-ui,sans-serif";
  let widest = 0; for (const name of names) widest = Math.max(widest, ctx.measureText(short(name)).width);
  const labelW = Math.min(Math.max(60, Math.floor(avail * 0.3)), Math.max(60, Math.ceil(widest) + 10));
  const cw = Math.max(3, Math.min(18, Math.floor((avail - labelW) / Math.max(1, cols))));
  const ch = Math.max(3, Math.min(14, cw));
  const headerH = cw >= 10 ? 110 : 4;
  const showNames = ch >= 9;
  return { labelW, cw, ch, headerH, showNames, left: showNames ? labelW : 4 };
}
function drawGrid() {
  const g = summary.grid || { images: [], nodes: [], states: [], durations: [] };
  const canvas = $("grid");
  const order = shownRows().map((f) => f.row);
  const cols = g.images.length, rows = order.length;
  const { labelW, cw, ch, headerH, showNames, left } = gridGeometry(cols, rows, order.map((r) => g.nodes[r]));
  const ratio = window.devicePixelRatio || 1;
  canvas.width = (left + cols * cw + 4) * ratio; canvas.height = (headerH + rows * ch + 4) * ratio;
  canvas.style.width = (left + cols * cw + 4) + "px"; canvas.style.height = (headerH + rows * ch + 4) + "px";
  const ctx = canvas.getContext("2d"); ctx.scale(ratio, ratio);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  const stats = new Map(summary.images.map(i => [i.image, i]));
  const gap = cw >= 5 ? 1 : 0;
  order.forEach((r, y) => {
    const states = g.states[r], times = g.durations[r];
    for (let c = 0; c < cols; c++) {
      const k = states[c];
      let color = COLORS[k];
      if (k === "P") {
        const st = stats.get(g.images[c]);
        if (st && st.p95_ms !== undefined && times[c] > st.p95_ms) color = "#e0701f";
        else if (st && st.p50_ms !== undefined && times[c] > st.p50_ms) color = "#8fd19e";
      }
      ctx.fillStyle = color;
      ctx.fillRect(left + c * cw, headerH + y * ch, cw - gap, ch - gap);
    }
  });
  ctx.font = Math.min(12, ch) + "px system-ui,sans-serif"; ctx.textBaseline = "middle";
  if (showNames) order.forEach((r, y) => {
    ctx.fillStyle = nodeInfo.get(g.nodes[r])?.gone ? "#999" : "#333";
    ctx.fillText(clip(ctx, short(g.nodes[r]), labelW - 6), 2, headerH + y * ch + ch / 2);
  });
  ctx.fillStyle = "#333";
  if (headerH > 4) {
    ctx.font = Math.min(11, cw) + "px system-ui,sans-serif";
    for (let c = 0; c < cols; c++) {
      ctx.save(); ctx.translate(left + c * cw + cw / 2, headerH - 4); ctx.rotate(-Math.PI / 3);
      ctx.fillText(clip(ctx, shortName(g.images[c]), 120), 0, 0); ctx.restore();
    }
  }
  layout = { left, headerH, cw, ch, cols, rows, g, order };
  countCells(canvas, g, order);
}
function countCells(canvas, g, order) {
  const counts = { d: 0, P: 0, p: 0, F: 0, r: 0, ".": 0, o: 0 };
  for (const states of g.states) for (const k of states) counts[k]++;
  for (const [k, name] of [["d", "downloading"], ["P", "pulled"], ["p", "present"], ["F", "failed"], ["r", "retrying"], [".", "pending"], ["o", "earlier"]]) {
    canvas.dataset[name] = counts[k];
  }
  canvas.dataset.nodes = g.nodes.length; canvas.dataset.images = g.images.length;
  canvas.dataset.shown = order.length;
  canvas.dataset.firstRows = order.slice(0, 10).map((r) => g.nodes[r]).join(" ");
  $("shown").textContent = order.length === g.nodes.length ? g.nodes.length + " nodes" : order.length + " of " + g.nodes.length + " nodes shown";
}
function shortName(image) { const i = image.lastIndexOf("/"); return i >= 0 ? image.slice(i + 1) : image; }
function clip(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let t = text; while (t.length > 1 && ctx.measureText(t + "…").width > width) t = t.slice(0, -1);
  return t + "…";
}

$("grid").addEventListener("mousemove", (e) => {
  const tip = $("tip");
  if (!layout) return;
  const rect = e.target.getBoundingClientRect();
  const c = Math.floor((e.clientX - rect.left - layout.left) / layout.cw);
  const y = Math.floor((e.clientY - rect.top - layout.headerH) / layout.ch);
  if (c < 0 || y < 0 || c >= layout.cols || y >= layout.rows) { tip.hidden = true; return; }
  const r = layout.order[y], node = layout.g.nodes[r];
  const k = layout.g.states[r][c], d = layout.g.durations[r][c];
  let detail = d ? ", " + ms(d) : "";
  const download = k === "d" ? downloads.get(node + "\u0000" + layout.g.images[c]) : undefined;
  if (download) {
    detail = (download.percent !== undefined ? " " + download.percent + "%" : "") + ", " + (bytes(download.received_bytes) || "0 B") +
      (download.total_bytes ? " of " + bytes(download.total_bytes) : "") + (download.bytes_per_second ? " at " + rate(download.bytes_per_second) : "") +
      (download.eta_seconds !== undefined ? ", " + ms(download.eta_seconds * 1000) + " left" : "");
  }
  const info = nodeInfo.get(node);
  const seen = info ? "\n" + (info.gone ? "gone: " : "") + "last heard " + ago(info.last_seen_seconds_ago) +
    (info.last_finished_at ? ", last finished " + when(info.last_finished_at) : "") : "";
  tip.textContent = node + "\n" + layout.g.images[c] + "\n" + NAMES[k] + detail + seen;
  tip.style.left = (e.clientX + 14) + "px"; tip.style.top = (e.clientY + 14) + "px"; tip.hidden = false;
});
$("grid").addEventListener("mouseleave", () => { $("tip").hidden = true; });
window.addEventListener("resize", () => drawGrid());
$("node-show").addEventListener("change", () => drawGrid());
$("node-filter").addEventListener("input", () => drawGrid());
if (params.get("show")) $("node-show").value = params.get("show");
if (params.get("node")) $("node-filter").value = params.get("node");

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
