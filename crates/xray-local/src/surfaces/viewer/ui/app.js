// xray-local UI: polls the JSON API every 2 s and renders the trace list,
// the timeline of the selected trace, the service map and the counters.
// Everything is built with DOM calls (textContent only), never innerHTML.
"use strict";

const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
const state = {
  selected: null, selectedRow: null, timeline: null, summaries: [], stats: null,
  // JSON text of what each panel shows now: a poll that brings the same data
  // leaves the panel's DOM alone (text selections and clicks survive).
  shown: {},
  // The selected trace's summary when its timeline was last fetched: a settled
  // timeline is fetched again only when the summary changes.
  timelineSummary: null,
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

function readHash() {
  return new URLSearchParams(location.hash.replace(/^#\/?/, ""));
}

function writeHash(params) {
  const s = params.toString();
  history.replaceState(null, "", s ? "#" + s : location.pathname);
}

const FILTER_FIELDS = ["service", "status", "min_ms", "annotation", "range"];

function filtersFromHash() {
  const h = readHash();
  const form = document.getElementById("filters");
  for (const f of FILTER_FIELDS) form.elements[f].value = h.get(f) || "";
  const id = h.get("trace");
  if (id !== state.selected) forgetTrace();
  state.selected = id;
  markSelected("tr.trace-row", id);
}

function syncHash() {
  const form = document.getElementById("filters");
  const h = new URLSearchParams();
  if (state.selected) h.set("trace", state.selected);
  for (const f of FILTER_FIELDS) if (form.elements[f].value) h.set(f, form.elements[f].value);
  writeHash(h);
}

function summaryQuery() {
  const form = document.getElementById("filters");
  const q = new URLSearchParams({ limit: "200" });
  const v = (n) => form.elements[n].value.trim();
  if (v("service")) q.set("service", v("service"));
  if (v("status")) q.set("status", v("status"));
  if (v("min_ms") && isFinite(Number(v("min_ms")))) q.set("min_duration", String(Number(v("min_ms")) / 1000));
  if (v("annotation").includes("=")) q.set("annotation", v("annotation"));
  if (v("range")) q.set("start", String(Date.now() / 1000 - Number(v("range"))));
  return q.toString();
}

// Rejects with an Error carrying the HTTP status (none for network errors).
async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(body.error || r.statusText || "HTTP " + r.status), { status: r.status });
  return body;
}

// A 4xx answers a bad request (a filter the API rejects), not a lost server.
function isClientError(e) {
  return e.status >= 400 && e.status < 500;
}

// ---- Trace list

function statusBadge(s) {
  if (s.HasFault) return el("span", { class: "badge fault" }, "fault");
  if (s.HasThrottle) return el("span", { class: "badge throttle" }, "throttle");
  if (s.HasError) return el("span", { class: "badge error" }, "error");
  if (s.IsPartial) return el("span", { class: "badge partial" }, "in progress");
  return el("span", { class: "badge" }, "ok");
}

// What to say when the list is empty: nothing stored at all is not the same
// as a filter matching nothing.
function emptyListText(data) {
  if (data.TracesProcessedCount > 0) return "No traces match.";
  const st = state.stats;
  if (st && st.Intake.Received > 0) {
    return `No traces stored: ${st.Intake.Received} datagrams received, ${st.Intake.RejectedTotal} rejected (see Intake).`;
  }
  return "No traces received yet. Point an X-Ray SDK or daemon client at UDP " + (st ? st.UdpAddress : "…") + ".";
}

function renderList(data) {
  state.summaries = data.TraceSummaries;
  const empty = data.TraceSummaries.length ? "" : emptyListText(data);
  if (changed("list", [data.TraceSummaries, data.MatchedCount, data.TracesProcessedCount, empty])) {
    const body = document.querySelector("#traces tbody");
    const rows = data.TraceSummaries.map((s) => {
      const http = s.Http || {};
      const entry = [s.EntryPoint ? text(s.EntryPoint.Name) : "?", text(http.HttpMethod), text(http.HttpURL)].filter(Boolean).join(" ");
      const services = s.ServiceIds.map((x) => text(x.Name)).join(", ");
      return el(
        "tr",
        {
          class: "trace-row" + (s.Id === state.selected ? " selected" : ""),
          "data-id": s.Id,
          title: s.Id,
          tabindex: "0",
          "aria-selected": String(s.Id === state.selected),
          onclick: () => selectTrace(s.Id),
          onkeydown: (ev) => rowKeys(ev, () => selectTrace(s.Id)),
        },
        // Cells are cut with an ellipsis: their title holds the whole text.
        el("td", { title: isFinite(s.StartTime) ? new Date(s.StartTime * 1000).toString() : null }, clock(s.StartTime)),
        el("td", { title: entry }, entry),
        el("td", {}, ms(s.Duration)),
        el("td", {}, statusBadge(s)),
        el("td", {}, text(http.HttpStatus)),
        el("td", { title: services }, services),
        el("td", {}, s.ProblemCount ? el("span", { class: "badge problem" }, String(s.ProblemCount)) : ""),
      );
    });
    const focused = focusedId("tr.trace-row");
    body.replaceChildren(...rows);
    refocus("tr.trace-row", focused);
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "empty" }, empty)));
    document.getElementById("trace-count").textContent =
      `${data.TraceSummaries.length} shown of ${data.MatchedCount} matching, ${data.TracesProcessedCount} stored`;
  }
  if (!state.selected && data.TraceSummaries.length) selectTrace(data.TraceSummaries[0].Id, true);
}

// The list cannot be shown for these filters: say why next to them.
function showFilterError(message) {
  const out = document.getElementById("filter-error");
  if (out.textContent !== (message || "")) out.textContent = message || "";
  document.getElementById("filters").classList.toggle("invalid", !!message);
  if (!message || !changed("list", "filter error")) return;
  state.summaries = [];
  document.querySelector("#traces tbody").replaceChildren(
    el("tr", {}, el("td", { colspan: "7", class: "empty" }, "Fix the filter to see traces.")));
  document.getElementById("trace-count").textContent = "";
}

// Drops everything shown for the previously selected trace.
function forgetTrace() {
  state.selectedRow = null;
  state.timeline = null;
  state.timelineSummary = null;
  state.shown.timeline = null;
  clearDetails();
}

function selectTrace(id, quiet) {
  if (state.selected !== id) forgetTrace();
  state.selected = id;
  if (!quiet) syncHash();
  markSelected("tr.trace-row", id);
  refreshTimeline();
}

// ---- Timeline

function rowStatus(r) {
  if (r.InProgress) return "partial";
  if (r.Fault) return "fault";
  if (r.Throttle) return "throttle";
  if (r.Error) return "error";
  return "";
}

// What the row did, next to its name: the AWS operation or the HTTP method,
// then the HTTP status ("PutItem 400", "GET 200"). Documents may hold any
// type in these fields: only strings and numbers are shown.
function operationText(r) {
  const pick = (v) => (typeof v === "string" || typeof v === "number" ? String(v) : "");
  const obj = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
  const http = obj(r.Http);
  return [pick(obj(r.Aws).operation) || pick(obj(http.request).method), pick(obj(http.response).status)]
    .filter(Boolean).join(" ");
}

// Error, fault and throttle as a symbol and a word too, not by colour alone.
const STATUS_MARKS = { fault: "✕ fault", error: "! error", throttle: "⏸ throttle" };

// Indentation stops growing here: deeper rows would push their track right
// (the label is a fixed share of the row); their depth is shown as a number.
const MAX_INDENT_DEPTH = 12;
// A duration label for a bar ending past this share of the track goes before
// the bar (or inside it, when there is no room before it).
const LABEL_FLIP_PCT = 85;

function durationLabel(left, width, textValue) {
  const end = left + width;
  if (end <= LABEL_FLIP_PCT) return el("span", { class: "wf-dur", style: `left:${end}%` }, textValue);
  if (left >= 100 - LABEL_FLIP_PCT) return el("span", { class: "wf-dur before", style: `right:${100 - left}%` }, textValue);
  return el("span", { class: "wf-dur inside", style: `right:${100 - end}%` }, textValue);
}

function renderTimeline(tl) {
  state.timeline = tl;
  if (!changed("timeline", tl)) return;
  const box = document.getElementById("timeline");
  document.getElementById("timeline-title").textContent = `${tl.Id} · ${ms(tl.Duration)} · ${tl.Rows.length} rows`;
  const t0 = tl.StartTime;
  const span = tl.Duration > 0 ? tl.Duration : 1e-3;
  const axis = el("div", { class: "wf-axis" }, ...[0, 0.25, 0.5, 0.75, 1].map((f) => el("span", {}, ms(f * span))));
  const rows = tl.Rows.map((r) => {
    const start = Number(r.StartTime);
    const end = typeof r.EndTime !== "number" || r.InProgress ? t0 + span : r.EndTime;
    const left = isFinite(start) ? Math.max(0, Math.min(100, ((start - t0) / span) * 100)) : 0;
    const width = isFinite(end - start) ? Math.max(0, Math.min(100 - left, ((end - start) / span) * 100)) : 0;
    const problems = r.Problems.length ? el("span", { class: "wf-problem", title: r.Problems.map((p) => p.Message).join("\n") }, "!") : null;
    const name = r.Name === null ? "(no name)" : text(r.Name);
    const indent = Math.min(r.Depth, MAX_INDENT_DEPTH) * 14;
    return el(
      "div",
      {
        class: `wf-row ${r.Kind}` + (r.Id === state.selectedRow ? " selected" : ""),
        "data-id": r.Id,
        "data-depth": String(r.Depth),
        tabindex: "0",
        "aria-selected": String(r.Id === state.selectedRow),
        onclick: () => selectRow(r.Id),
        onkeydown: (ev) => rowKeys(ev, () => selectRow(r.Id)),
      },
      // The cap in % keeps the indent inside the label on narrow screens too.
      el("div", { class: "wf-label", style: `padding-left:min(${indent}px, 20%)`, title: text(r.Name) },
        r.Depth > MAX_INDENT_DEPTH ? el("span", { class: "depth", title: `depth ${r.Depth}` }, String(r.Depth)) : null,
        problems,
        STATUS_MARKS[rowStatus(r)] ? el("span", { class: `wf-status ${rowStatus(r)}` }, STATUS_MARKS[rowStatus(r)]) : null,
        name,
        operationText(r) ? el("span", { class: "wf-op" }, operationText(r)) : null,
        r.Namespace ? el("span", { class: "ns" }, text(r.Namespace)) : null,
        // The callee's times come from another host: outside its call, they
        // are more likely a clock difference than what really happened.
        typeof r.ClockSkew === "number"
          ? el("span", { class: "wf-skew", title: `${ms(r.ClockSkew)} outside the call it is nested under: the two hosts' clocks may differ` }, "possible clock skew")
          : null),
      el("div", { class: "wf-track" },
        el("div", { class: `wf-bar ${rowStatus(r)}`, style: `left:${left}%;width:${width}%` }),
        durationLabel(left, width, r.InProgress ? "in progress" : ms(end - start))),
    );
  });
  const traceProblems = tl.Problems.length
    ? el("ul", { class: "problem-list" }, tl.Problems.map((p) => el("li", {}, el("code", {}, p.Code), " ", p.Message)))
    : null;
  const focused = focusedId(".wf-row");
  box.replaceChildren(axis, ...rows, traceProblems || "");
  refocus(".wf-row", focused);
  if (state.selectedRow) selectRow(state.selectedRow);
}

function section(title, value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) return null;
  return [el("h3", {}, title), el("pre", {}, JSON.stringify(value, null, 2))];
}

function rawJSON(v) {
  return el("pre", {}, JSON.stringify(v, null, 2));
}

function frameText(f) {
  if (!f || typeof f !== "object") return text(f);
  return `${text(f.label) || "?"}  ${text(f.path)}:${text(f.line)}`;
}

function exceptionView(x) {
  if (!x || typeof x !== "object" || Array.isArray(x)) return rawJSON(x);
  const stack = x.stack === null || x.stack === undefined ? null
    : Array.isArray(x.stack) ? el("pre", {}, x.stack.map(frameText).join("\n"))
    : rawJSON(x.stack);
  return el("div", { class: "exception" },
    el("b", {}, text(x.type) || "Exception"), ": ", text(x.message), x.remote === true ? " (remote)" : "", stack);
}

// The `cause` block; any shape the X-Ray format does not allow is shown as JSON.
function causeView(cause) {
  if (cause === null || cause === undefined) return [];
  const head = el("h3", {}, "Cause");
  if (typeof cause === "string") return [head, el("p", {}, "Exception id ", el("code", {}, cause))];
  if (typeof cause !== "object" || Array.isArray(cause)) return [head, rawJSON(cause)];
  const ex = cause.exceptions;
  if (ex !== undefined && ex !== null && !Array.isArray(ex)) return [head, rawJSON(cause)];
  const parts = [];
  if (cause.working_directory) parts.push(el("p", { class: "muted" }, text(cause.working_directory)));
  parts.push(...(ex || []).map(exceptionView));
  return [head, ...(parts.length ? parts : [rawJSON(cause)])];
}

function detailsView(r) {
  const start = r.StartTime, end = r.EndTime;
  const duration = typeof end === "number" && typeof start === "number" && !r.InProgress ? ms(end - start) : "in progress";
  return [
    el("h3", { class: "title" }, `${text(r.Kind)} ${r.Name === null ? "(no name)" : text(r.Name)} (${text(r.Id)})`),
    el("p", {}, duration, r.Origin ? ` · ${text(r.Origin)}` : "", r.Namespace ? ` · namespace ${text(r.Namespace)}` : ""),
    r.Problems.length ? el("ul", { class: "problem-list" }, r.Problems.map((p) => el("li", {}, el("code", {}, p.Code), " ", p.Message))) : "",
    ...[["HTTP", r.Http], ["AWS", r.Aws], ["SQL", r.Sql], ["Annotations", r.Annotations], ["Metadata", r.Metadata]]
      .flatMap(([t, v]) => section(t, v) || []),
    ...causeView(r.Cause),
  ];
}

function clearDetails() {
  state.shown.details = null;
  document.getElementById("details").replaceChildren();
}

function selectRow(id) {
  state.selectedRow = id;
  const tl = state.timeline;
  if (!tl) return;
  markSelected(".wf-row", id);
  const r = tl.Rows.find((x) => x.Id === id);
  if (!r) return clearDetails();
  // Unchanged row: keep the panel as it is (and any text selected in it).
  if (!changed("details", r)) return;
  const box = document.getElementById("details");
  // Documents are untrusted: whatever slips through the checks above must not
  // take the timeline down with it (it re-selects the row on every poll).
  try {
    box.replaceChildren(...detailsView(r));
  } catch (e) {
    box.replaceChildren(
      el("h3", { class: "title" }, text(r.Id)),
      el("p", { class: "empty" }, "Could not show this row: " + e.message),
      rawJSON(r));
  }
}

async function refreshTimeline() {
  const id = state.selected;
  if (!id) return;
  const seq = ++timelineSeq;
  const summary = JSON.stringify(state.summaries.find((s) => s.Id === id) || null);
  try {
    const tl = await getJSON("/api/Timeline?id=" + encodeURIComponent(id));
    if (seq !== timelineSeq || id !== state.selected) return;
    state.timelineSummary = summary;
    renderTimeline(tl);
  } catch (e) {
    if (seq !== timelineSeq || id !== state.selected) return;
    forgetTrace();
    document.getElementById("timeline-title").textContent = "";
    document.getElementById("timeline").replaceChildren(el("p", { class: "empty" }, `Trace ${id}: ${e.message}`));
  }
}

// A settled timeline changes only when a document arrives, which shows in its
// summary; one not in the list (filtered out, evicted) is fetched each poll.
function timelineIsCurrent() {
  const tl = state.timeline;
  if (!tl || tl.Id !== state.selected || !tl.Settled) return false;
  const s = state.summaries.find((x) => x.Id === state.selected);
  return !!s && JSON.stringify(s) === state.timelineSummary;
}

// ---- Service map

function nodeClass(type) {
  if (type === "client") return "client";
  if (type === "remote") return "remote";
  if (type.startsWith("AWS::") && !["AWS::EC2::Instance", "AWS::ECS::Container", "AWS::EKS::Container", "AWS::ElasticBeanstalk::Environment"].includes(type)) return "aws";
  return "service";
}

function layout(services) {
  // Columns by longest distance from a root (client or nodes without inbound edges).
  const inbound = new Map(services.map((s) => [s.ReferenceId, 0]));
  for (const s of services) for (const e of s.Edges) inbound.set(e.ReferenceId, inbound.get(e.ReferenceId) + 1);
  const depth = new Map();
  let frontier = services.filter((s) => s.Type === "client" || inbound.get(s.ReferenceId) === 0).map((s) => s.ReferenceId);
  frontier.forEach((id) => depth.set(id, 0));
  for (let round = 0; round < services.length && frontier.length; round++) {
    const next = [];
    for (const id of frontier) {
      for (const e of services[id].Edges) {
        const d = depth.get(id) + 1;
        if (!depth.has(e.ReferenceId) || (depth.get(e.ReferenceId) < d && d < services.length)) {
          depth.set(e.ReferenceId, d);
          next.push(e.ReferenceId);
        }
      }
    }
    frontier = next;
  }
  for (const s of services) if (!depth.has(s.ReferenceId)) depth.set(s.ReferenceId, 0);
  const columns = [];
  for (const s of services) (columns[depth.get(s.ReferenceId)] ||= []).push(s.ReferenceId);
  return { depth, columns };
}

// Sorts each column by the mean position of its callers in the columns before
// it (the barycentre heuristic): edges then run mostly straight across and
// cross far less than in name order.
function orderColumns(columns, services) {
  const callers = new Map();
  for (const s of services) {
    for (const e of s.Edges) {
      if (e.ReferenceId === s.ReferenceId) continue;
      if (!callers.has(e.ReferenceId)) callers.set(e.ReferenceId, []);
      callers.get(e.ReferenceId).push(s.ReferenceId);
    }
  }
  const place = new Map(); // id -> position in its column, 0..1
  for (const col of columns) {
    if (!col) continue;
    const key = new Map(col.map((id, i) => {
      const ys = (callers.get(id) || []).filter((c) => place.has(c)).map((c) => place.get(c));
      return [id, ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : (i + 0.5) / col.length];
    }));
    col.sort((a, b) => key.get(a) - key.get(b) || a - b);
    col.forEach((id, i) => place.set(id, (i + 0.5) / col.length));
  }
}

// Faults, then errors other than throttles, then throttles: a throttle asks
// the caller to slow down, it is not a broken request.
function problemClass(st) {
  const thr = st.ErrorStatistics.ThrottleCount || 0;
  if (st.FaultStatistics.TotalCount) return "fault";
  if (st.ErrorStatistics.TotalCount - thr > 0) return "error";
  if (thr) return "throttle";
  return "";
}

// Shows the traces through `name` in the list, as typing it would.
function filterByService(name) {
  const f = document.getElementById("filters").elements.service;
  f.value = name;
  f.dispatchEvent(new Event("input", { bubbles: true }));
}

function rates(st) {
  const n = st.TotalCount, thr = st.ErrorStatistics.ThrottleCount;
  return [["err", st.ErrorStatistics.TotalCount - thr], ["thr", thr], ["flt", st.FaultStatistics.TotalCount]]
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${pct(v, n)}`)
    .join(" · ");
}

function renderMap(graph) {
  const map = document.getElementById("map");
  const services = graph.Services;
  const width = map.clientWidth || 600;
  const udp = state.stats ? state.stats.UdpAddress : "";
  if (!changed("map", [services, width, udp])) return;
  const empty = document.getElementById("map-empty");
  empty.style.display = services.length ? "none" : "";
  empty.textContent = "No traffic yet. Point an SDK at UDP " + (udp || "…") + ".";
  const { columns } = layout(services);
  orderColumns(columns, services);
  const rowsMax = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  // Can be far taller than the screen: #map-scroll caps what the panel shows.
  const height = Math.max(240, rowsMax * 95 + 30);
  map.setAttribute("viewBox", `0 0 ${width} ${height}`);
  map.style.height = height + "px";
  const pos = new Map();
  const colW = width / Math.max(1, columns.length);
  columns.forEach((col, ci) => (col || []).forEach((id, ri) => {
    pos.set(id, { x: colW * ci + colW / 2, y: ((ri + 0.5) * height) / col.length });
  }));
  const defs = svg("defs", {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#7c8599" })));
  const edges = [];
  const R = 24;
  for (const s of services) {
    for (const e of s.Edges) {
      const a = pos.get(s.ReferenceId), b = pos.get(e.ReferenceId);
      const st = e.SummaryStatistics;
      const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
      const self = s.ReferenceId === e.ReferenceId;
      const x1 = a.x + (dx / len) * R, y1 = a.y + (dy / len) * R;
      const x2 = b.x - (dx / len) * (R + 3), y2 = b.y - (dy / len) * (R + 3);
      const d = self ? `M${a.x + R},${a.y} c40,-40 40,40 0,8` : `M${x1},${y1} L${x2},${y2}`;
      const faults = st.FaultStatistics.TotalCount, errors = st.ErrorStatistics.TotalCount;
      const cls = ("map-edge " + problemClass(st)).trim();
      const mx = self ? a.x + R + 34 : (x1 + x2) / 2, my = self ? a.y : (y1 + y2) / 2;
      const target = services[e.ReferenceId].Name;
      edges.push(svg("g", { class: cls, "data-from": s.Name, "data-to": target, "data-count": String(st.TotalCount) },
        svg("title", {}, `${s.Name} → ${target}`),
        svg("path", { d, "marker-end": "url(#arrow)" }),
        svg("text", { x: mx, y: my - 4 }, `${st.TotalCount} req · ${ms(st.TotalCount ? st.TotalResponseTime / st.TotalCount : NaN)}`),
        ...(errors || faults ? [svg("text", { class: "rates", x: mx, y: my + 9 }, rates(st))] : [])));
    }
  }
  const nodes = services.map((s) => {
    const p = pos.get(s.ReferenceId);
    const st = s.SummaryStatistics;
    const bad = problemClass(st);
    // The client node stands for callers, not a service the list can filter by.
    const pick = s.Type === "client" ? {} : { tabindex: "0", role: "button", "aria-label": `Show traces through ${s.Name}` };
    const g = svg("g", { class: `map-node ${nodeClass(s.Type)}`, "data-name": s.Name, "data-type": s.Type, transform: `translate(${p.x},${p.y})`, ...pick },
      svg("title", {}, `${s.Name} (${s.Type}) · ${st.TotalCount} requests`),
      svg("circle", { r: R }),
      ...(bad ? [svg("circle", { class: `ring ${bad}`, r: R + 3 })] : []),
      svg("text", { y: R + 14 }, s.Name.length > 26 ? s.Name.slice(0, 25) + "…" : s.Name),
      svg("text", { class: "type", y: R + 26 }, s.Type));
    if (s.Type !== "client") {
      g.addEventListener("click", () => filterByService(s.Name));
      g.addEventListener("keydown", (ev) => {
        if (ev.key !== "Enter" && ev.key !== " ") return;
        ev.preventDefault();
        filterByService(s.Name);
      });
    }
    return g;
  });
  map.replaceChildren(defs, ...edges, ...nodes);
  document.getElementById("services").replaceChildren(
    ...services.filter((s) => s.Type !== "client").map((s) => el("option", { value: s.Name })));
}

// ---- Counters

function counts(pairs) {
  return el("div", { class: "counts" }, pairs.map(([k, v]) => el("div", { class: v ? "" : "zero" }, el("span", {}, k), el("b", {}, String(v)))));
}

function renderStats(stats) {
  state.stats = stats;
  const i = stats.Intake, s = stats.Store, c = s.Counters;
  // The process size changes on every call and is not shown.
  if (!changed("stats", [i, s, stats.UdpReceiveBufferBytes, stats.UdpAddress, stats.Sampling.Statistics])) return;
  document.getElementById("headline").textContent =
    `${i.Accepted} accepted · ${i.RejectedTotal} rejected · ${s.Traces} traces · ${(s.ApproxBytes / 1048576).toFixed(1)} MiB`;
  document.getElementById("intake").replaceChildren(
    counts([
      ["received", i.Received], ["accepted", i.Accepted], ["rejected", i.RejectedTotal],
      ...Object.entries(i.Rejected).map(([k, v]) => ["rejected: " + k.replaceAll("_", " "), v]),
      ["forwarded", i.Forwarded], ["forward errors", i.ForwardErrors],
      ["traces stored", s.Traces], ["documents stored", s.Documents],
      ["evicted traces", c.EvictedTraces], ["evicted (count cap)", c.EvictedForCount], ["evicted (memory cap)", c.EvictedForMemory],
      ["replaced in-progress", c.Replaced], ["late in-progress ignored", c.StaleInProgress],
    ]),
    el("p", { class: "muted" }, `UDP ${stats.UdpAddress} · caps: ${s.MaxTraces} traces, ${(s.MaxBytes / 1048576).toFixed(0)} MiB · UDP receive buffer ${(stats.UdpReceiveBufferBytes / 1024).toFixed(0)} KiB`),
    el("h3", {}, "Sampling statistics"),
    counts(Object.entries(stats.Sampling.Statistics).map(([rule, st]) => [`${rule} (req/sampled/borrowed)`, `${st.RequestCount}/${st.SampledCount}/${st.BorrowCount}`])),
  );
}

function renderValidation(v) {
  if (!changed("validation", v)) return;
  const c = v.Counts;
  const codes = Object.entries(c.ByCode).filter(([, n]) => n > 0);
  const list = v.Problems.slice(0, 50).map((p) =>
    el("li", {}, el("code", {}, p.Code), " ",
      el("a", { href: "#trace=" + encodeURIComponent(p.TraceId), onclick: (ev) => { ev.preventDefault(); showTrace(p.TraceId); } }, p.TraceId.slice(0, 20) + "…"),
      ` ${p.DocumentId}: ${p.Message}`));
  const unfiled = v.Unfiled.slice(0, 10).map((u) => el("li", {}, u.Problems.map((p) => el("code", {}, p.Code)), " ", u.Excerpt.slice(0, 120)));
  document.getElementById("validation").replaceChildren(
    counts([["documents checked", c.DocumentsChecked], ["with problems", c.DocumentsWithProblems], ...codes.map(([k, n]) => [k.replaceAll("_", " "), n])]),
    list.length ? el("ul", { class: "problem-list" }, list) : el("p", { class: "empty" }, "No problems in stored traces."),
    ...(unfiled.length ? [el("h3", {}, "Documents without a usable trace_id"), el("ul", { class: "problem-list" }, unfiled)] : []),
  );
}

// Selects a trace from elsewhere on the page and brings its timeline into view.
function showTrace(id) {
  selectTrace(id);
  document.getElementById("timeline-panel").scrollIntoView({ block: "start" });
}

// ---- Polling

async function poll() {
  const seq = ++pollSeq;
  const conn = document.getElementById("conn");
  const form = document.getElementById("filters");
  const graphQ = form.elements.range.value ? "?start=" + (Date.now() / 1000 - Number(form.elements.range.value)) : "";
  const [list, graph, stats, validation] = await Promise.allSettled([
    getJSON("/api/TraceSummaries?" + summaryQuery()),
    getJSON("/api/ServiceGraph" + graphQ),
    getJSON("/api/stats"),
    getJSON("/api/validation?limit=100"),
  ]);
  // A later poll (a later keystroke) was started: its answers are the ones to show.
  if (seq !== pollSeq) return;
  const failed = [list, graph, stats, validation].filter((r) => r.status === "rejected").map((r) => r.reason);
  const lost = failed.find((e) => !isClientError(e));
  const filterError = [list, graph].find((r) => r.status === "rejected" && isClientError(r.reason));
  // Each panel on its own: one failing must not blank the others.
  const render = (r, f) => {
    if (r.status !== "fulfilled") return;
    try { f(r.value); } catch (e) { console.error(e); }
  };
  render(stats, renderStats);
  render(graph, renderMap);
  render(list, renderList);
  render(validation, renderValidation);
  showFilterError(filterError ? filterError.reason.message : null);
  if (state.selected && !timelineIsCurrent()) await refreshTimeline();
  if (seq !== pollSeq) return;
  // #conn is a live region: its status text changes only when the connection
  // does, and the time of each poll sits in a part screen readers skip.
  const status = lost ? "disconnected: " + lost.message : "live · updated ";
  if (conn.firstChild?.nodeType !== Node.TEXT_NODE || conn.firstChild.data !== status) {
    conn.replaceChildren(status, el("span", { "aria-hidden": "true" }));
  }
  conn.lastChild.textContent = lost ? "" : new Date().toLocaleTimeString();
  conn.classList.toggle("down", !!lost);
}

function start() {
  filtersFromHash();
  const form = document.getElementById("filters");
  form.addEventListener("input", () => { syncHash(); poll(); });
  form.addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("clear").addEventListener("click", () => {
    form.reset();
    syncHash();
    poll();
  });
  window.addEventListener("hashchange", () => {
    filtersFromHash();
    poll();
  });
  poll();
  setInterval(poll, POLL_MS);
}

start();
