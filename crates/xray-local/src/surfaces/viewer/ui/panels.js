// The panels beside the traces: intake counters, validation problems, the
// sampling rules (listed and editable through the X-Ray API) and the
// requests each service saw and sampled.
"use strict";

function counts(pairs) {
  return el("div", { class: "counts" }, pairs.map(([k, v]) => el("div", { class: v ? "" : "zero" }, el("span", {}, k), el("b", {}, String(v)))));
}

// The OTLP intake's counters (HTTP requests, T1S datagrams, spans): the
// totals, then only the reasons that happened.
function otlpCounts(o) {
  if (!o) return [];
  const reasons = (prefix, m) => Object.entries(m || {}).filter(([, v]) => v > 0).map(([k, v]) => [prefix + k.replaceAll("_", " "), v]);
  return [
    ["OTLP/HTTP requests", o.Requests], ...reasons("OTLP request refused: ", o.RequestsRejected),
    ["OTLP datagrams", o.Datagrams], ["OTLP spans", o.Spans], ...reasons("OTLP span rejected: ", o.SpansRejected),
    ["OTLP unsampled spans (not stored)", o.SpansUnsampled], ["documents from OTLP spans", o.Documents],
  ];
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
      ["documents through the API", i.ApiDocuments || 0],
      ...otlpCounts(i.Otlp),
      ["forwarded", i.Forwarded], ["forward errors", i.ForwardErrors],
      ["traces stored", s.Traces], ["documents stored", s.Documents],
      ["evicted traces", c.EvictedTraces], ["evicted (count cap)", c.EvictedForCount], ["evicted (memory cap)", c.EvictedForMemory],
      ["replaced in-progress", c.Replaced], ["late in-progress ignored", c.StaleInProgress],
    ]),
    el("p", { class: "muted" }, `UDP ${stats.UdpAddress} · OTLP/HTTP ${location.origin}/v1/traces · caps: ${s.MaxTraces} traces, ${(s.MaxBytes / 1048576).toFixed(0)} MiB · UDP receive buffer ${(stats.UdpReceiveBufferBytes / 1024).toFixed(0)} KiB`),
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

// ---- Sampling rules: the X-Ray API's records, the SDKs' statistics, editing.

// Rule members the editor shows, with their input types.
const RULE_FIELDS = [
  ["Priority", "number", "1"], ["FixedRate", "number", "0.01"], ["ReservoirSize", "number", "1"],
  ["ServiceName", "text"], ["ServiceType", "text"], ["Host", "text"], ["HTTPMethod", "text"], ["URLPath", "text"],
];

function ruleMatch(r) {
  const parts = [r.HTTPMethod, r.URLPath, r.Host !== "*" ? "host " + r.Host : "", r.ServiceName !== "*" ? "service " + r.ServiceName : "",
    r.ServiceType !== "*" ? "type " + r.ServiceType : ""].filter((x) => x && x !== "*");
  return parts.length ? parts.join(" ") : "every request";
}

function ruleForm(rule, onSave, onCancel) {
  const inputs = {};
  const error = el("output", { class: "rule-error", role: "status" });
  const fields = RULE_FIELDS.map(([k, type, step]) => {
    // The Default rule keeps its matchers and priority (as on the service).
    const locked = rule && rule.RuleName === "Default" && !["FixedRate", "ReservoirSize"].includes(k);
    inputs[k] = el("input", { name: k, type, step, value: rule ? String(rule[k]) : k === "Priority" ? "100" : k === "FixedRate" ? "1" : k === "ReservoirSize" ? "1" : "*", disabled: locked });
    return el("label", {}, k, inputs[k]);
  });
  if (!rule) {
    inputs.RuleName = el("input", { name: "RuleName", required: true, maxlength: "32", placeholder: "name" });
    fields.unshift(el("label", {}, "RuleName", inputs.RuleName));
  }
  const form = el("form", { class: "rule-form", "data-rule": rule ? rule.RuleName : "" },
    fields,
    el("button", { type: "submit" }, rule ? "Save" : "Create"),
    el("button", { type: "button", onclick: onCancel }, "Cancel"),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const [k, type] of RULE_FIELDS) {
      if (inputs[k].disabled) continue;
      values[k] = type === "number" ? Number(inputs[k].value) : inputs[k].value;
    }
    if (inputs.RuleName) values.RuleName = inputs.RuleName.value;
    try {
      await onSave(values);
    } catch (e) {
      error.textContent = e.message;
    }
  });
  return form;
}

async function refreshRules() {
  const v = await xrayCall("/GetSamplingRules", {});
  state.rules = v.SamplingRuleRecords.map((r) => r.SamplingRule);
  renderRules();
}

function renderRules() {
  const box = document.getElementById("rules");
  const stats = state.stats ? state.stats.Sampling.Statistics : {};
  // An open form is left alone by the polls.
  if (state.editing !== null) return;
  if (!changed("rules", [state.rules, stats])) return;
  const done = () => { state.editing = null; state.shown.rules = null; refreshRules(); };
  const rows = state.rules.map((r) => {
    const st = stats[r.RuleName] || {};
    const del = r.RuleName === "Default" ? "" : el("button", { type: "button", class: "delete", onclick: async (ev) => {
      const b = ev.currentTarget;
      // Two clicks: the first asks.
      if (b.dataset.armed !== "1") {
        b.dataset.armed = "1";
        b.textContent = "Really delete?";
        return;
      }
      try {
        await xrayCall("/DeleteSamplingRule", { RuleName: r.RuleName });
      } catch (e) {
        b.textContent = e.message;
      }
      done();
    } }, "Delete");
    const edit = el("button", { type: "button", class: "edit", onclick: () => {
      state.editing = r.RuleName;
      tr.replaceChildren(el("td", { colspan: "7" }, ruleForm(r, async (values) => {
        await xrayCall("/UpdateSamplingRule", { SamplingRuleUpdate: { RuleName: r.RuleName, ...values } });
        done();
      }, done)));
    } }, "Edit");
    const tr = el("tr", { class: "rule-row", "data-rule": r.RuleName },
      el("td", {}, r.RuleName), el("td", {}, String(r.Priority)), el("td", {}, ruleMatch(r)),
      el("td", {}, String(r.ReservoirSize) + "/s"), el("td", {}, pct(r.FixedRate * 100, 100)),
      el("td", { title: "requests seen / sampled, as the SDKs reported them" }, st.RequestCount !== undefined ? `${st.RequestCount} / ${st.SampledCount}` : "–"),
      el("td", { class: "actions" }, edit, del));
    return tr;
  });
  const add = el("button", { type: "button", id: "new-rule", onclick: () => {
    state.editing = "";
    add.replaceWith(ruleForm(null, async (values) => {
      await xrayCall("/CreateSamplingRule", { SamplingRule: { ResourceARN: "*", Version: 1, ...values } });
      done();
    }, done));
  } }, "New rule");
  box.replaceChildren(
    el("table", { class: "rules" },
      el("thead", {}, el("tr", {}, ["Rule", "Priority", "Matches", "Reservoir", "Rate", "Seen / sampled", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)),
    add,
    el("p", { class: "muted" }, "Rules are served to the SDKs through the sampling API; they pick up changes at their next report (about 10 s)."));
}

// ---- Requests seen and sampled per service (the SDKs' reports, matched to
// the services whose segments come from the same process).

function requestsSeen(name) {
  const g = (state.serviceCounts || []).find((x) => x.Services.includes(name));
  if (!g) return null;
  return `${g.Total.RequestCount} requests seen, ${g.Total.SampledCount} sampled (as the SDK reported)`;
}

function renderServices(v) {
  state.serviceCounts = v.Services;
  const box = document.getElementById("service-counts");
  if (!changed("serviceCounts", v.Services)) return;
  if (!v.Services.length) {
    box.replaceChildren(el("p", { class: "empty" },
      "No sampling statistics yet: SDKs using centralized sampling report every 10 s to the sampling API."));
    return;
  }
  box.replaceChildren(el("ul", { class: "service-counts" }, v.Services.map((g) => {
    const who = g.Services.length ? g.Services.join(", ")
      : g.Process ? `${g.Process} (no segments yet)` : `client ${g.Clients.join(", ")}`;
    const byRule = Object.entries(g.ByRule).map(([rule, c]) => `${rule}: ${c.RequestCount} seen, ${c.SampledCount} sampled`).join(" · ");
    const missing = g.Total.RequestCount - g.Total.SampledCount;
    return el("li", { "data-services": g.Services.join(",") },
      el("b", {}, who), ": ",
      el("span", { class: "seen" }, `${g.Total.RequestCount} requests seen, ${g.Total.SampledCount} sampled`),
      missing > 0 ? el("span", { class: "muted" }, ` (${missing} not traced, by rule)`) : "",
      el("div", { class: "muted by-rule" }, byRule));
  })));
}

