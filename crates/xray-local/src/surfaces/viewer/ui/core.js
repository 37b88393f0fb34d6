// xray-local viewer, shared pieces: the state, DOM helpers, formatting and
// the two ways of asking the server (the viewer's GET /api/* and the X-Ray
// API's POSTs). The other scripts (list, timeline, map, panels, app) are
// loaded after this one, in that order, and share its globals.
// Everything is built with DOM calls (textContent only), never innerHTML.
"use strict";

const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
// Trace list rows per page.
const PAGE = 200;
const state = {
  selected: null, selectedRow: null, timeline: null, summaries: [], stats: null,
  // JSON text of what each panel shows now: a poll that brings the same data
  // leaves the panel's DOM alone (text selections and clicks survive).
  shown: {},
  // The selected trace's summary when its timeline was last fetched: a settled
  // timeline is fetched again only when the summary changes.
  timelineSummary: null,
  // The list's order and page; the response-time range picked on the histogram.
  sort: { key: "time", desc: true }, offset: 0, rt: null,
  // Live tail: when paused, the list, map and timeline stay as they are.
  live: true, pausedAt: 0,
  // The details tab shown for a selected row; the map node or edge selected.
  detailsTab: "overview", mapPick: null,
  // The sampling rules (X-Ray API records) and the rule being edited.
  rules: [], editing: null,
};
// Each poll and each timeline fetch gets a number; an answer that is not the
// latest one asked for is dropped (typing fires a poll per keystroke).
let pollSeq = 0;
let timelineSeq = 0;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function ms(seconds) {
  if (!isFinite(seconds)) return "–";
  const v = seconds * 1000;
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(v < 10 ? 1 : 0) + " ms";
}

function clock(epoch) {
  if (!isFinite(epoch)) return "–";
  const d = new Date(epoch * 1000);
  const p = (n) => String(n).padStart(2, "0");
  const time = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${time}`;
}

// Any document value as display text: documents are untrusted and a field may
// hold any JSON type.
function text(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

// `true` (and remembers `data`) when `data` differs from what panel `key` shows.
function changed(key, data) {
  const json = JSON.stringify(data);
  if (state.shown[key] === json) return false;
  state.shown[key] = json;
  return true;
}

function pct(n, d) {
  return d ? Math.round((100 * n) / d) + "%" : "0%";
}

// Marks the rows matching `selector` whose data-id is `id` as the selected one.
function markSelected(selector, id) {
  for (const r of document.querySelectorAll(selector)) {
    r.classList.toggle("selected", r.dataset.id === id);
    r.setAttribute("aria-selected", String(r.dataset.id === id));
  }
}

// Keyboard use of a row list: arrows move the focus to the next or previous
// focusable row, Enter or Space picks the focused one.
function rowKeys(ev, pick) {
  if (ev.key === "Enter" || ev.key === " ") {
    ev.preventDefault();
    pick();
    return;
  }
  if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
  const next = ev.key === "ArrowDown" ? ev.currentTarget.nextElementSibling : ev.currentTarget.previousElementSibling;
  if (next && next.tabIndex === 0) {
    ev.preventDefault();
    next.focus();
  }
}

// A re-render replaces the rows: give the focus back to the row that had it.
function focusedId(selector) {
  const a = document.activeElement;
  return a && a.matches(selector) ? a.dataset.id : null;
}

function refocus(selector, id) {
  if (id === null) return;
  const r = [...document.querySelectorAll(selector)].find((x) => x.dataset.id === id);
  if (r) r.focus();
}

// ---- URL state: #trace=<id>&service=..&status=..&min_ms=..&annotation=..&range=..

// Rejects with an Error carrying the HTTP status (none for network errors)
// and, for a malformed filter expression, the position the server names.
async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    throw Object.assign(new Error(body.error || r.statusText || "HTTP " + r.status),
      { status: r.status, position: body.position, field: body.field });
  }
  return body;
}

// A call to the X-Ray API on this port (POST /Operation, a JSON body), as the
// AWS clients make it. Rejects with the service's error type and message.
async function xrayCall(path, body) {
  const r = await fetch(path, {
    method: "POST", cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  const out = await r.json().catch(() => ({}));
  if (!r.ok) {
    const kind = out.__type || r.headers.get("x-amzn-ErrorType") || "HTTP " + r.status;
    throw Object.assign(new Error(`${kind}: ${out.message || out.Message || r.statusText}`), { status: r.status });
  }
  return out;
}

// A 4xx answers a bad request (a filter the API rejects), not a lost server.
function isClientError(e) {
  return e.status >= 400 && e.status < 500;
}


// Percentiles (0..1) of a `[{Value, Count}]` histogram, in seconds.
function percentile(hist, p) {
  const total = hist.reduce((n, h) => n + h.Count, 0);
  if (!total) return NaN;
  let seen = 0;
  for (const h of hist) {
    seen += h.Count;
    if (seen >= p * total) return h.Value;
  }
  return hist[hist.length - 1].Value;
}

// A small bar chart of a `[{Value, Count}]` histogram (times in seconds):
// `bins` bars from the shortest to the longest time. Returns the SVG and the
// bins ([{lo, hi, count}]) it drew.
function histogramChart(hist, opts) {
  const { width = 300, height = 60, bins: n = 30, cls = "hist" } = opts || {};
  const chart = svg("svg", { class: cls, viewBox: `0 0 ${width} ${height + 14}`, width, height: height + 14, role: "img" });
  if (!hist.length) return { chart, bins: [] };
  const lo = hist[0].Value, hi = hist[hist.length - 1].Value;
  const step = hi > lo ? (hi - lo) / n : 0.001;
  const bins = Array.from({ length: hi > lo ? n : 1 }, (_, i) => ({ lo: lo + i * step, hi: lo + (i + 1) * step, count: 0 }));
  for (const h of hist) bins[Math.min(bins.length - 1, Math.floor((h.Value - lo) / step))].count += h.Count;
  bins[bins.length - 1].hi = Math.max(bins[bins.length - 1].hi, hi);
  const max = Math.max(...bins.map((b) => b.count));
  const w = width / bins.length;
  bins.forEach((b, i) => {
    const h = b.count ? Math.max(2, (b.count / max) * height) : 0;
    chart.append(svg("rect", { class: "bar", x: i * w + 0.5, y: height - h, width: Math.max(1, w - 1), height: h, "data-i": String(i) },
      svg("title", {}, `${ms(b.lo)} – ${ms(b.hi)}: ${b.count}`)));
  });
  chart.append(svg("text", { class: "axis", x: 0, y: height + 12 }, ms(lo)),
    svg("text", { class: "axis end", x: width, y: height + 12 }, ms(hi)));
  chart.setAttribute("aria-label", `Response times from ${ms(lo)} to ${ms(hi)}`);
  return { chart, bins };
}