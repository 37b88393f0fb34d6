// The service map: nodes in columns by call depth, edges with labels placed
// clear of the lines and the nodes, and the details of a picked node or edge
// (requests, rates, latency percentiles, a histogram).
"use strict";


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

// Label boxes: about 6 px per character at 10 px, 12 px per line.
const LABEL_CHAR = 5.8, LABEL_LINE = 12, NODE_R = 24;

function boxesOverlap(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

// `true` when the segment (x1,y1)-(x2,y2) crosses or touches the box.
function segmentHitsBox(x1, y1, x2, y2, b) {
  // Liang–Barsky clipping of the segment against the box.
  let t0 = 0, t1 = 1;
  const dx = x2 - x1, dy = y2 - y1;
  for (const [p, q] of [[-dx, x1 - b.x], [dx, b.x + b.w - x1], [-dy, y1 - b.y], [dy, b.y + b.h - y1]]) {
    if (p === 0) {
      if (q < 0) return false;
    } else {
      const t = q / p;
      if (p < 0) t0 = Math.max(t0, t);
      else t1 = Math.min(t1, t);
      if (t0 > t1) return false;
    }
  }
  return true;
}

// Places each edge's label beside its line: at the middle if that spot is
// clear of every node (and its name), every line and every label placed so
// far, else further along the line or on the other side; failing all, the
// spot with the fewest collisions.
function placeLabels(items, nodeBoxes, lines, width, height) {
  const placed = [];
  for (const it of items) {
    const w = it.lines.reduce((m, l) => Math.max(m, l.length), 0) * LABEL_CHAR + 8;
    const h = it.lines.length * LABEL_LINE + 2;
    let best = null;
    const { x1, y1, x2, y2 } = it;
    const len = Math.hypot(x2 - x1, y2 - y1) || 1;
    search:
    for (const gap of [3, 14]) {
      for (const t of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8]) {
        for (const side of [1, -1]) {
          const nx = (-(y2 - y1) / len) * side, ny = ((x2 - x1) / len) * side;
          // Far enough along the normal that the box clears its own line.
          const d = (w / 2) * Math.abs(nx) + (h / 2) * Math.abs(ny) + gap;
          const cx = x1 + (x2 - x1) * t + nx * d, cy = y1 + (y2 - y1) * t + ny * d;
          const box = { x: cx - w / 2, y: cy - h / 2, w, h };
          let hits = 0;
          if (box.x < 0 || box.y < 0 || box.x + w > width || box.y + h > height) hits += 1;
          for (const n of nodeBoxes) if (boxesOverlap(box, n)) hits += 3;
          for (const l of lines) if (segmentHitsBox(l.x1, l.y1, l.x2, l.y2, box)) hits += 2;
          for (const p of placed) if (boxesOverlap(box, p)) hits += 2;
          if (!best || hits < best.hits) best = { hits, box, cx, cy };
          if (hits === 0) break search;
        }
      }
    }
    placed.push(best.box);
    it.place = best;
  }
}

function renderMap(graph) {
  const map = document.getElementById("map");
  const services = graph.Services;
  const width = map.clientWidth || 600;
  const udp = state.stats ? state.stats.UdpAddress : "";
  if (!changed("map", [services, width, udp])) return;
  state.graph = graph;
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
  const R = NODE_R;
  const short = (n) => (n.length > 26 ? n.slice(0, 25) + "…" : n);
  // What labels must keep clear of: each node's circle (and ring) and the two
  // lines of text under it.
  const nodeBoxes = services.flatMap((s) => {
    const p = pos.get(s.ReferenceId);
    const w = Math.max(short(s.Name).length * 6.6, s.Type.length * 6);
    return [
      { x: p.x - R - 4, y: p.y - R - 4, w: 2 * R + 8, h: 2 * R + 8 },
      { x: p.x - w / 2 - 2, y: p.y + R + 2, w: w + 4, h: 28 },
    ];
  });
  const items = [];
  const edges = [];
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
      const target = services[e.ReferenceId].Name;
      const lines = [`${st.TotalCount} req · ${ms(st.TotalCount ? st.TotalResponseTime / st.TotalCount : NaN)}`];
      if (errors || faults) lines.push(rates(st));
      const key = `${s.ReferenceId}>${e.ReferenceId}`;
      const g = svg("g", { class: cls, "data-from": s.Name, "data-to": target, "data-count": String(st.TotalCount),
        "data-key": key, tabindex: "0", role: "button", "aria-label": `Requests from ${s.Name} to ${target}` },
      svg("title", {}, `${s.Name} → ${target}`),
      svg("path", { d, "marker-end": "url(#arrow)" }),
      // A wide transparent copy of the line: easier to click.
      svg("path", { class: "hit", d }));
      const pick = () => pickOnMap({ kind: "edge", key, from: s, to: services[e.ReferenceId], edge: e });
      g.addEventListener("click", pick);
      g.addEventListener("keydown", (ev) => {
        if (ev.key !== "Enter" && ev.key !== " ") return;
        ev.preventDefault();
        pick();
      });
      edges.push(g);
      items.push(self ? { g, lines, self: true, x1: a.x + R + 20, y1: a.y - 30, x2: a.x + R + 60, y2: a.y - 30 } : { g, lines, x1, y1, x2, y2 });
    }
  }
  const straight = items.filter((it) => !it.self);
  placeLabels(items, nodeBoxes, straight, width, height);
  for (const it of items) {
    const { cx, cy, box } = it.place;
    const top = cy - box.h / 2 + 10;
    it.g.append(svg("rect", { class: "label-bg", x: box.x, y: box.y, width: box.w, height: box.h, rx: 3 }));
    it.lines.forEach((line, i) => it.g.append(svg("text", { class: i ? "rates" : "count", x: cx, y: top + i * LABEL_LINE }, line)));
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
      svg("text", { y: R + 14 }, short(s.Name)),
      svg("text", { class: "type", y: R + 26 }, s.Type));
    if (s.Type !== "client") {
      const choose = () => {
        filterByService(s.Name);
        pickOnMap({ kind: "node", key: s.Name + "|" + s.Type, node: s });
      };
      g.addEventListener("click", choose);
      g.addEventListener("keydown", (ev) => {
        if (ev.key !== "Enter" && ev.key !== " ") return;
        ev.preventDefault();
        choose();
      });
    }
    return g;
  });
  map.replaceChildren(defs, ...edges, ...nodes);
  document.getElementById("services").replaceChildren(
    ...services.filter((s) => s.Type !== "client").map((s) => el("option", { value: s.Name })));
  refreshMapPick();
}

// ---- A picked node or edge: its numbers under the map.

function pickOnMap(pick) {
  state.mapPick = pick;
  state.shown.mapDetails = null;
  refreshMapPick();
}

// Marks the picked node or edge and shows its details, from the latest map.
function refreshMapPick() {
  const p = state.mapPick;
  const box = document.getElementById("map-details");
  for (const g of document.querySelectorAll("#map .picked")) g.classList.remove("picked");
  if (!p || !state.graph) {
    box.replaceChildren();
    return;
  }
  const services = state.graph.Services;
  let title, st, hist, g;
  if (p.kind === "node") {
    const s = services.find((x) => x.Name + "|" + x.Type === p.key);
    if (!s) return box.replaceChildren(el("p", { class: "empty" }, "No requests to this node in the current map."));
    title = `${s.Name} (${s.Type})`;
    st = s.SummaryStatistics;
    hist = s.ResponseTimeHistogram || [];
    g = [...document.querySelectorAll("#map .map-node")].find((n) => n.dataset.name === s.Name && n.dataset.type === s.Type);
  } else {
    const [from, to] = p.key.split(">").map(Number);
    const e = services[from] && services[from].Edges.find((x) => x.ReferenceId === to);
    if (!e) return box.replaceChildren(el("p", { class: "empty" }, "No requests along this edge in the current map."));
    title = `${services[from].Name} → ${services[to].Name}`;
    st = e.SummaryStatistics;
    hist = e.ResponseTimeHistogram || [];
    g = document.querySelector(`#map .map-edge[data-key="${p.key}"]`);
  }
  if (g) g.classList.add("picked");
  if (!changed("mapDetails", [p.key, st, hist, state.serviceCounts])) return;
  const n = st.TotalCount, thr = st.ErrorStatistics.ThrottleCount;
  const seen = p.kind === "node" ? requestsSeen(p.key.split("|")[0]) : null;
  box.replaceChildren(
    el("h3", {}, title, el("button", { type: "button", class: "close", "aria-label": "Close", onclick: () => pickOnMap(null) }, "✕")),
    counts([
      ["requests", n], ["ok", pct(st.OkCount, n)], ["error", pct(st.ErrorStatistics.TotalCount - thr, n)],
      ["throttle", pct(thr, n)], ["fault", pct(st.FaultStatistics.TotalCount, n)],
      ["average", ms(n ? st.TotalResponseTime / n : NaN)],
      ["p50", ms(percentile(hist, 0.5))], ["p90", ms(percentile(hist, 0.9))], ["p99", ms(percentile(hist, 0.99))],
    ]),
    seen ? el("p", { class: "muted seen" }, seen) : "",
    histogramChart(hist, { width: 320, height: 50, bins: 24 }).chart);
}
