// The timeline of the selected trace (a waterfall of its segments and
// subsegments) and the details of the selected row, in tabs: Overview,
// Resources, Annotations, Metadata, Exceptions and the raw JSON.
"use strict";

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

function rawJSON(v) {
  return el("pre", {}, JSON.stringify(v, null, 2));
}

// A value as rows of `key  value`, nested objects flattened to dotted keys
// (three levels; deeper values and lists as JSON).
function kvTable(value) {
  const rows = [];
  const walk = (v, key, depth) => {
    if (v && typeof v === "object" && !Array.isArray(v) && depth < 3 && Object.keys(v).length) {
      for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}.${k}` : k, depth + 1);
    } else {
      rows.push(el("tr", {}, el("th", { scope: "row" }, key), el("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : text(v))));
    }
  };
  walk(value, "", 0);
  return el("table", { class: "kv" }, el("tbody", {}, rows));
}

function isEmpty(v) {
  return v === null || v === undefined || (typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0);
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

function overviewView(r) {
  const start = r.StartTime, end = r.EndTime;
  const duration = typeof end === "number" && typeof start === "number" && !r.InProgress ? ms(end - start) : "in progress";
  const status = rowStatus(r);
  const http = r.Http && typeof r.Http === "object" ? r.Http : {};
  const req = http.request && typeof http.request === "object" ? http.request : {};
  const res = http.response && typeof http.response === "object" ? http.response : {};
  const facts = [
    ["Start", typeof start === "number" ? `${clock(start)} (${start})` : ""],
    ["Status", status === "partial" ? "in progress" : status || "ok"],
    ["Request", [text(req.method), text(req.url)].filter(Boolean).join(" ")],
    ["Response", text(res.status)],
    ["Origin", text(r.Origin)],
    ["Namespace", text(r.Namespace)],
    ["ID", text(r.Id)],
    ["Parent ID", text(r.ParentId)],
    ["Document", text(r.DocumentId)],
  ].filter(([, v]) => v);
  return [
    el("p", {}, duration, r.Origin ? ` · ${text(r.Origin)}` : "", r.Namespace ? ` · namespace ${text(r.Namespace)}` : ""),
    el("table", { class: "kv" }, el("tbody", {}, facts.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v))))),
    r.Problems.length ? el("ul", { class: "problem-list" }, r.Problems.map((p) => el("li", {}, el("code", {}, p.Code), " ", p.Message))) : "",
  ];
}

function resourcesView(r) {
  const parts = [["HTTP", r.Http], ["AWS", r.Aws], ["SQL", r.Sql]]
    .filter(([, v]) => !isEmpty(v))
    .flatMap(([t, v]) => [el("h3", {}, t), kvTable(v)]);
  return parts.length ? parts : [el("p", { class: "empty" }, "No HTTP, AWS or SQL details.")];
}

function annotationsView(a) {
  if (isEmpty(a)) return [el("p", { class: "empty" }, "No annotations.")];
  if (typeof a !== "object" || Array.isArray(a)) return [rawJSON(a)];
  return [kvTable(a)];
}

function metadataView(m) {
  if (isEmpty(m)) return [el("p", { class: "empty" }, "No metadata.")];
  if (typeof m !== "object" || Array.isArray(m)) return [rawJSON(m)];
  // One block per namespace (`default`, `debug`, ...): metadata is any JSON.
  return Object.entries(m).flatMap(([ns, v]) => [el("h3", {}, ns), rawJSON(v)]);
}

const DETAIL_TABS = [
  ["overview", "Overview"], ["resources", "Resources"], ["annotations", "Annotations"],
  ["metadata", "Metadata"], ["exceptions", "Exceptions"], ["raw", "Raw JSON"],
];

function detailsView(r) {
  const panels = {
    overview: overviewView(r),
    resources: resourcesView(r),
    annotations: annotationsView(r.Annotations),
    metadata: metadataView(r.Metadata),
    exceptions: r.Cause === null || r.Cause === undefined ? [el("p", { class: "empty" }, "No exceptions.")] : causeView(r.Cause),
    // Loaded when shown: the document as it was sent.
    raw: [],
  };
  const has = {
    resources: !isEmpty(r.Http) || !isEmpty(r.Aws) || !isEmpty(r.Sql), annotations: !isEmpty(r.Annotations),
    metadata: !isEmpty(r.Metadata), exceptions: r.Cause !== null && r.Cause !== undefined,
  };
  const active = state.detailsTab;
  const tabs = el("div", { class: "tabs", role: "tablist", "aria-label": "Details" },
    DETAIL_TABS.map(([key, label]) => el("button", {
      type: "button", role: "tab", id: "tab-" + key, "data-tab": key, "aria-controls": "panel-" + key,
      "aria-selected": String(key === active), class: (key === active ? "on" : "") + (has[key] === false ? " none" : ""),
      onclick: () => showDetailsTab(key),
    }, label)));
  return [
    el("h3", { class: "title" }, `${text(r.Kind)} ${r.Name === null ? "(no name)" : text(r.Name)} (${text(r.Id)})`),
    tabs,
    ...DETAIL_TABS.map(([key]) => el("div", {
      class: "tab-panel", role: "tabpanel", id: "panel-" + key, "data-panel": key, "aria-labelledby": "tab-" + key,
      hidden: key !== active,
    }, panels[key])),
  ];
}

// Shows one tab of the details (no re-render: a text selection elsewhere survives).
function showDetailsTab(key) {
  state.detailsTab = key;
  for (const t of document.querySelectorAll("#details [role=tab]")) {
    t.setAttribute("aria-selected", String(t.dataset.tab === key));
    t.classList.toggle("on", t.dataset.tab === key);
  }
  for (const p of document.querySelectorAll("#details [role=tabpanel]")) p.hidden = p.dataset.panel !== key;
  if (key === "raw") loadRaw();
}

// The selected row's JSON as the SDK sent it: its document from
// /api/Traces, and inside it the segment or subsegment with the row's id.
async function loadRaw() {
  const panel = document.querySelector("#details [data-panel=raw]");
  const tl = state.timeline;
  const r = tl && tl.Rows.find((x) => x.Id === state.selectedRow);
  if (!panel || !r || panel.dataset.loaded === r.Id) return;
  panel.dataset.loaded = r.Id;
  panel.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const v = await getJSON("/api/Traces?ids=" + encodeURIComponent(tl.Id));
    const seg = ((v.Traces[0] || {}).Segments || []).find((s) => s.Id === r.DocumentId);
    if (!seg) throw new Error("the document is no longer stored");
    const doc = JSON.parse(seg.Document);
    const find = (n, depth) => {
      if (!n || typeof n !== "object" || depth > 64) return null;
      if (n.id === r.Id) return n;
      for (const s of Array.isArray(n.subsegments) ? n.subsegments : []) {
        const hit = find(s, depth + 1);
        if (hit) return hit;
      }
      return null;
    };
    if (state.selectedRow !== r.Id) return;
    panel.replaceChildren(rawJSON(find(doc, 0) || doc));
  } catch (e) {
    panel.dataset.loaded = "";
    panel.replaceChildren(el("p", { class: "empty" }, "Could not load the document: " + e.message));
  }
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
    if (state.detailsTab === "raw") loadRaw();
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