// The trace list: the filters (and the URL fragment that holds them), the
// filter expression and where it is malformed, the response-time histogram
// and its range, sortable columns, paging, export and import.
"use strict";

// ---- URL state: #trace=<id>&service=..&status=..&min_ms=..&annotation=..&range=..
//      &filter=..&id=..&rt=<lo>-<hi>&sort=<key>|-<key>&offset=..

function readHash() {
  return new URLSearchParams(location.hash.replace(/^#\/?/, ""));
}

function writeHash(params) {
  const s = params.toString();
  history.replaceState(null, "", s ? "#" + s : location.pathname);
}

const FILTER_FIELDS = ["service", "status", "min_ms", "annotation", "range", "filter", "id"];
// The default order of each column: times and counts largest first.
const SORT_DESC = { time: true, duration: true, response: true, status: true, http: true, problems: true, entry: false, url: false };

function filtersFromHash() {
  const h = readHash();
  const form = document.getElementById("filters");
  for (const f of FILTER_FIELDS) form.elements[f].value = h.get(f) || "";
  const rt = (h.get("rt") || "").split("-").map(Number);
  state.rt = rt.length === 2 && rt.every((x) => isFinite(x) && x >= 0) && h.get("rt") ? rt : null;
  const sort = h.get("sort") || "";
  const key = sort.replace(/^-/, "");
  state.sort = key in SORT_DESC ? { key, desc: sort.startsWith("-") } : { key: "time", desc: true };
  state.offset = Math.max(0, Math.floor(Number(h.get("offset")) || 0));
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
  if (state.rt) h.set("rt", state.rt.join("-"));
  if (state.sort.key !== "time" || !state.sort.desc) h.set("sort", (state.sort.desc ? "-" : "") + state.sort.key);
  if (state.offset) h.set("offset", String(state.offset));
  writeHash(h);
}

// The list's filters as query parameters (shared by the list and the export).
function filterParams() {
  const form = document.getElementById("filters");
  const q = new URLSearchParams();
  const v = (n) => form.elements[n].value.trim();
  if (v("service")) q.set("service", v("service"));
  if (v("status")) q.set("status", v("status"));
  if (v("min_ms") && isFinite(Number(v("min_ms")))) q.set("min_duration", String(Number(v("min_ms")) / 1000));
  if (v("annotation").includes("=")) q.set("annotation", v("annotation"));
  if (v("range")) q.set("start", String(Date.now() / 1000 - Number(v("range"))));
  if (v("filter")) q.set("filter", form.elements.filter.value);
  if (v("id")) q.set("id", v("id"));
  if (state.rt) {
    q.set("rt_min", String(state.rt[0]));
    q.set("rt_max", String(state.rt[1]));
  }
  return q;
}

function summaryQuery() {
  const q = new URLSearchParams({ limit: String(PAGE) });
  for (const [k, v] of filterParams()) q.set(k, v);
  q.set("sort", state.sort.key);
  q.set("order", state.sort.desc ? "desc" : "asc");
  if (state.offset) q.set("offset", String(state.offset));
  return q.toString();
}

// A changed filter starts the list again from its first page.
function filtersChanged() {
  state.offset = 0;
  syncHash();
  poll();
}

// ---- Trace list

function statusBadge(s) {
  if (s.HasFault) return el("span", { class: "badge fault" }, "fault");
  if (s.HasThrottle) return el("span", { class: "badge throttle" }, "throttle");
  if (s.HasError) return el("span", { class: "badge error" }, "error");
  if (s.IsPartial) return el("span", { class: "badge partial" }, "in progress");
  return el("span", { class: "badge" }, "ok");
}

// The root answered without error, but a call or a service downstream failed.
function downstreamBadge(s) {
  if (!s.DownstreamFailed) return null;
  return el("span", { class: "badge downstream", title: "The entry answered without error, but a downstream call failed" }, "⚠ downstream");
}

// The path (and query) of a URL: the part one looks for in a list.
function urlPath(url) {
  const u = text(url);
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]*(\/.*)?$/i.exec(u);
  return m ? m[1] || "/" : u;
}

// What to say when the list is empty: nothing stored at all is not the same
// as a filter matching nothing.
function emptyListText(data) {
  if (data.TracesProcessedCount > 0) return "No traces match.";
  const st = state.stats;
  const otlp = st && st.Intake.Otlp ? st.Intake.Otlp.Requests : 0;
  if (st && (st.Intake.Received > 0 || otlp > 0)) {
    return `No traces stored: ${st.Intake.Received} datagrams received, ${st.Intake.RejectedTotal} rejected, ${otlp} OTLP/HTTP requests (see Intake).`;
  }
  return "No traces received yet. Point an X-Ray SDK or daemon client at UDP " + (st ? st.UdpAddress : "…") +
    ", or an OpenTelemetry exporter at " + location.origin + "/v1/traces.";
}

const COLUMNS = [
  ["time", "Time"], ["entry", "Entry point"], ["duration", "Duration"], ["status", "Status"],
  ["http", "HTTP"], [null, "Services"], ["problems", "Problems"],
];

// Sortable column headings; a click sorts by the column, a second click
// turns the order round.
function renderHeadings() {
  if (!changed("headings", state.sort)) return;
  const row = document.querySelector("#traces thead tr");
  row.replaceChildren(...COLUMNS.map(([key, label]) => {
    if (!key) return el("th", { scope: "col" }, label);
    const on = state.sort.key === key;
    const sortAttr = on ? (state.sort.desc ? "descending" : "ascending") : "none";
    return el("th", { scope: "col", "aria-sort": sortAttr },
      el("button", {
        type: "button", class: "sort" + (on ? " on" : ""), "data-sort": key,
        onclick: () => {
          state.sort = on ? { key, desc: !state.sort.desc } : { key, desc: SORT_DESC[key] };
          filtersChanged();
        },
      }, label, on ? (state.sort.desc ? " ▼" : " ▲") : ""));
  }));
}

function renderPager(data) {
  const pager = document.getElementById("pager");
  const n = data.TraceSummaries.length, total = data.MatchedCount, from = data.Offset || 0;
  if (!changed("pager", [n, total, from])) return;
  const go = (offset) => { state.offset = Math.max(0, offset); syncHash(); poll(); };
  pager.replaceChildren(
    el("button", { type: "button", id: "prev-page", disabled: from === 0, onclick: () => go(from - PAGE) }, "‹ Newer"),
    el("span", { class: "muted" }, total ? `${from + 1}–${from + n} of ${total}` : ""),
    el("button", { type: "button", id: "next-page", disabled: from + n >= total, onclick: () => go(from + PAGE) }, "Older ›"));
  pager.hidden = total <= PAGE && from === 0;
}

function renderList(data) {
  state.summaries = data.TraceSummaries;
  renderHeadings();
  const empty = data.TraceSummaries.length ? "" : emptyListText(data);
  if (changed("list", [data.TraceSummaries, data.MatchedCount, data.TracesProcessedCount, empty])) {
    const body = document.querySelector("#traces tbody");
    const rows = data.TraceSummaries.map((s) => {
      const http = s.Http || {};
      const name = s.EntryPoint ? text(s.EntryPoint.Name) : "?";
      const entry = [name, text(http.HttpMethod), text(http.HttpURL)].filter(Boolean).join(" ");
      const path = [text(http.HttpMethod), http.HttpURL ? urlPath(http.HttpURL) : ""].filter(Boolean).join(" ");
      const services = s.ServiceIds.map((x) => text(x.Name)).join(", ");
      return el(
        "tr",
        {
          class: "trace-row" + (s.Id === state.selected ? " selected" : "") + (s.DownstreamFailed ? " downstream" : ""),
          "data-id": s.Id,
          title: s.Id,
          tabindex: "0",
          "aria-selected": String(s.Id === state.selected),
          onclick: () => selectTrace(s.Id),
          onkeydown: (ev) => rowKeys(ev, () => selectTrace(s.Id)),
        },
        // Cells are cut with an ellipsis: their title holds the whole text.
        el("td", { title: isFinite(s.StartTime) ? new Date(s.StartTime * 1000).toString() : null }, clock(s.StartTime)),
        // The path first: the part of the URL one looks for.
        el("td", { title: entry }, path ? el("span", { class: "path" }, path) : null, el("span", { class: "entry" }, name)),
        el("td", {}, ms(s.Duration)),
        el("td", {}, statusBadge(s), downstreamBadge(s)),
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
  renderPager(data);
  renderHistogram(data.ResponseTimeHistogram || []);
  if (!state.selected && data.TraceSummaries.length) selectTrace(data.TraceSummaries[0].Id, true);
}

// The list cannot be shown for these filters: say why next to them, and for
// a malformed filter expression, where.
function showFilterError(error) {
  const message = error ? error.message : "";
  const out = document.getElementById("filter-error");
  if (out.textContent !== message) out.textContent = message;
  document.getElementById("filters").classList.toggle("invalid", !!message);
  markFilterPosition(error && error.field === "filter" ? error.position : null);
  if (!message || !changed("list", "filter error")) return;
  state.summaries = [];
  document.querySelector("#traces tbody").replaceChildren(
    el("tr", {}, el("td", { colspan: "7", class: "empty" }, "Fix the filter to see traces.")));
  document.getElementById("trace-count").textContent = "";
}

// Under the filter expression: its text up to the malformed place, then a
// marked character (a space at the end) and a caret.
function markFilterPosition(position) {
  const box = document.getElementById("filter-where");
  const input = document.getElementById("filters").elements.filter;
  input.setAttribute("aria-invalid", String(position !== null && position !== undefined));
  if (position === null || position === undefined) {
    box.hidden = true;
    box.replaceChildren();
    box.removeAttribute("data-position");
    return;
  }
  const chars = [...input.value];
  const at = Math.max(1, Math.min(position, chars.length + 1)) - 1;
  box.hidden = false;
  box.dataset.position = String(position);
  box.replaceChildren(
    el("span", {}, chars.slice(0, at).join("")),
    el("mark", { title: `position ${position}` }, chars[at] || " "),
    el("span", {}, chars.slice(at + 1).join("")));
}

// ---- Response-time histogram of the matching traces; drag to pick a range.

function renderHistogram(hist) {
  const box = document.getElementById("histogram");
  // Shown before it is measured: a hidden box has no width.
  box.hidden = !hist.length && !state.rt;
  const width = Math.max(200, (box.clientWidth || 600) - 8);
  if (!changed("histogram", [hist, state.rt, width])) return;
  const { chart, bins } = histogramChart(hist, { width, height: 48, bins: 40, cls: "hist rt-hist" });
  const clear = el("button", { type: "button", id: "rt-clear", hidden: !state.rt, onclick: () => { state.rt = null; filtersChanged(); } },
    state.rt ? `Response time ${ms(state.rt[0])} – ${ms(state.rt[1])} ✕` : "");
  box.replaceChildren(chart, clear);
  if (!bins.length) return;
  for (const r of chart.querySelectorAll("rect.bar")) {
    const b = bins[Number(r.dataset.i)];
    if (state.rt && b.hi >= state.rt[0] && b.lo <= state.rt[1]) r.classList.add("picked");
  }
  // A drag over the bars picks the range they cover (a click, one bar).
  const binAt = (ev) => {
    const box = chart.getBoundingClientRect();
    const i = Math.floor(((ev.clientX - box.left) / box.width) * bins.length);
    return Math.max(0, Math.min(bins.length - 1, i));
  };
  let from = null;
  chart.addEventListener("mousedown", (ev) => {
    from = binAt(ev);
    ev.preventDefault();
  });
  chart.addEventListener("mousemove", (ev) => {
    if (from === null) return;
    const [a, b] = [from, binAt(ev)].sort((x, y) => x - y);
    for (const r of chart.querySelectorAll("rect.bar")) {
      const i = Number(r.dataset.i);
      r.classList.toggle("picking", i >= a && i <= b);
    }
  });
  const finish = (ev) => {
    if (from === null) return;
    const [a, b] = [from, binAt(ev)].sort((x, y) => x - y);
    from = null;
    // Rounded out to the millisecond the histogram counts in.
    state.rt = [Math.floor(bins[a].lo * 1000) / 1000, Math.ceil(bins[b].hi * 1000) / 1000];
    filtersChanged();
  };
  chart.addEventListener("mouseup", finish);
  chart.addEventListener("mouseleave", (ev) => { if (from !== null) finish(ev); });
}

// ---- Trace-ID search: a whole ID opens that trace, whatever the filters.

function searchTraceId() {
  const v = document.getElementById("filters").elements.id.value.trim();
  if (/^1-[0-9a-f]{8}-[0-9a-f]{24}$/.test(v)) showTrace(v);
}

// ---- Export and import (NDJSON of segment documents)

function exportLink() {
  const a = document.getElementById("export");
  const href = "/api/export?" + filterParams().toString();
  if (a.getAttribute("href") !== href) a.setAttribute("href", href);
}

async function importFile(file) {
  const out = document.getElementById("import-result");
  out.textContent = `Importing ${file.name}…`;
  try {
    const r = await fetch("/api/import", { method: "POST", body: await file.text() });
    const v = await r.json();
    if (!r.ok) throw new Error(v.error || r.statusText);
    out.textContent = `${file.name}: ${v.Accepted} documents imported` +
      (v.WithProblems ? `, ${v.WithProblems} with problems` : "") +
      (v.Rejected ? `, ${v.Rejected} lines refused (first: line ${v.RejectedLines[0].Line}, ${v.RejectedLines[0].Reason.replaceAll("_", " ")})` : "");
    poll();
  } catch (e) {
    out.textContent = `${file.name}: import failed: ${e.message}`;
  }
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
