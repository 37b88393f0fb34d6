// The viewer's heartbeat: polls the server every 2 s and hands each answer
// to its panel; live tail (pausable); wires the controls.
"use strict";

async function poll() {
  const seq = ++pollSeq;
  const conn = document.getElementById("conn");
  const form = document.getElementById("filters");
  const graphQ = form.elements.range.value ? "?start=" + (Date.now() / 1000 - Number(form.elements.range.value)) : "";
  // Paused: the list, the map and the timeline stay as they are.
  const live = state.live;
  const idle = Promise.resolve(null);
  const [list, graph, stats, validation, services, rules] = await Promise.allSettled([
    live ? getJSON("/api/TraceSummaries?" + summaryQuery()) : idle,
    live ? getJSON("/api/ServiceGraph" + graphQ) : idle,
    getJSON("/api/stats"),
    getJSON("/api/validation?limit=100"),
    getJSON("/api/services"),
    xrayCall("/GetSamplingRules", {}),
  ]);
  // A later poll (a later keystroke) was started: its answers are the ones to show.
  if (seq !== pollSeq) return;
  const all = [list, graph, stats, validation, services, rules];
  const failed = all.filter((r) => r.status === "rejected").map((r) => r.reason);
  const lost = failed.find((e) => !isClientError(e));
  const filterError = [list, graph].find((r) => r.status === "rejected" && isClientError(r.reason));
  // Each panel on its own: one failing must not blank the others.
  const render = (r, f) => {
    if (r.status !== "fulfilled" || r.value === null) return;
    try { f(r.value); } catch (e) { console.error(e); }
  };
  render(stats, renderStats);
  render(services, renderServices);
  render(graph, renderMap);
  render(list, renderList);
  render(validation, renderValidation);
  render(rules, (v) => {
    state.rules = v.SamplingRuleRecords.map((r) => r.SamplingRule);
    renderRules();
  });
  if (live) showFilterError(filterError ? filterError.reason : null);
  refreshMapPick();
  exportLink();
  if (live && state.selected && !timelineIsCurrent()) await refreshTimeline();
  if (seq !== pollSeq) return;
  // #conn is a live region: its status text changes only when the connection
  // does, and the time of each poll sits in a part screen readers skip.
  const arrived = state.stats ? state.stats.Intake.Accepted - state.pausedAt : 0;
  const status = lost ? "disconnected: " + lost.message : live ? "live · updated " : "paused · ";
  if (conn.firstChild?.nodeType !== Node.TEXT_NODE || conn.firstChild.data !== status) {
    conn.replaceChildren(status, el("span", { "aria-hidden": "true" }));
  }
  conn.lastChild.textContent = lost ? "" : live ? new Date().toLocaleTimeString() : `${arrived} documents arrived since`;
  conn.classList.toggle("down", !!lost);
}

// Live tail on and off: paused, new traces are counted, not shown.
function toggleLive() {
  state.live = !state.live;
  state.pausedAt = state.stats ? state.stats.Intake.Accepted : 0;
  const b = document.getElementById("live");
  b.textContent = state.live ? "Pause" : "Resume live";
  b.setAttribute("aria-pressed", String(!state.live));
  document.body.classList.toggle("paused", !state.live);
  poll();
}

function start() {
  filtersFromHash();
  const form = document.getElementById("filters");
  form.addEventListener("input", filtersChanged);
  form.addEventListener("submit", (e) => e.preventDefault());
  form.elements.id.addEventListener("change", searchTraceId);
  form.elements.id.addEventListener("keydown", (ev) => { if (ev.key === "Enter") searchTraceId(); });
  document.getElementById("clear").addEventListener("click", () => {
    form.reset();
    state.rt = null;
    filtersChanged();
  });
  document.getElementById("live").addEventListener("click", toggleLive);
  document.getElementById("import").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    if (f) importFile(f);
    ev.target.value = "";
  });
  window.addEventListener("hashchange", () => {
    filtersFromHash();
    poll();
  });
  poll();
  setInterval(poll, POLL_MS);
}

start();
