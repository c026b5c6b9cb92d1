// dbtassets' asset-graph page: plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const SHOWN = ["building", "failed", "missing", "late", "stale", "not_due", "unobserved", "fresh"];
const LABELS = {not_due: "not due", unobserved: "unobserved"};
const OVERVIEW_OVER = 300;  // more assets than this (and no selector): folders collapsed until clicked
const W = 190, H = 26, COL = 250, ROW = 36, PAD = 20;
const SVG = "http://www.w3.org/2000/svg";

const token = new URLSearchParams(location.search).get("token");
const state = {doc: null, select: "", expanded: new Set(), chosen: null, byName: new Map(), loading: null};

function url(path, params = {}) {
  const q = new URLSearchParams(params);
  if (token) q.set("token", token);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function getJSON(path, params) {
  const response = await fetch(url(path, params), {cache: "no-store"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// -- loading -------------------------------------------------------------------------------

async function load() {
  const select = state.select;
  try {
    const doc = await getJSON("api/graph", select ? {select} : {});
    if (select !== state.select) return;  // the selector changed meanwhile
    document.getElementById("select-error").textContent = "";
    state.doc = doc;
    draw();
  } catch (error) {
    document.getElementById("select-error").textContent = error.message;
  }
}

let reloadTimer = null;
function reloadSoon() {  // many events in a burst: read the statuses once
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => { load(); if (state.chosen) showAsset(state.chosen.name, false); }, 150);
}

// -- the graph -----------------------------------------------------------------------------

function units(doc) {
  // What to lay out: every asset, or (a large project, no selector) a box per folder until it is expanded.
  const overview = !state.select && doc.assets.length > OVERVIEW_OVER;
  const unitOf = new Map();
  const list = new Map();
  for (const a of doc.assets) {
    const collapsed = overview && !state.expanded.has(a.group);
    const id = collapsed ? `group:${a.group}` : a.unique_id;
    unitOf.set(a.unique_id, id);
    if (!list.has(id)) list.set(id, collapsed ? {id, group: a.group, members: []} : {id, asset: a});
    if (collapsed) list.get(id).members.push(a);
  }
  const parents = new Map([...list.keys()].map(id => [id, new Set()]));
  for (const a of doc.assets) {
    for (const p of a.parents) {
      const from = unitOf.get(p), to = unitOf.get(a.unique_id);
      if (from && from !== to) parents.get(to).add(from);
    }
  }
  return {overview, list, parents};
}

function layout(list, parents) {
  // Layered left to right: a unit's column is one past its deepest parent's; rows by the parents' mean row.
  const column = new Map();
  const depth = id => {
    if (column.has(id)) return column.get(id);
    column.set(id, 0);  // cycles cannot happen in a dbt graph; this only guards the recursion
    let d = 0;
    for (const p of parents.get(id)) d = Math.max(d, depth(p) + 1);
    column.set(id, d);
    return d;
  };
  const columns = [];
  for (const id of list.keys()) (columns[depth(id)] ||= []).push(id);
  const row = new Map();
  columns.forEach(ids => {
    const key = id => {
      const ps = [...parents.get(id)].map(p => row.get(p));
      return ps.length ? ps.reduce((x, y) => x + y, 0) / ps.length : -1;
    };
    ids.sort((a, b) => key(a) - key(b) || a.localeCompare(b));
    ids.forEach((id, i) => row.set(id, i));
  });
  return {column, row, columns};
}

function draw() {
  const doc = state.doc;
  document.getElementById("project").textContent = doc.project;
  drawCounts(doc.counts);
  const {overview, list, parents} = units(doc);
  const {column, row, columns} = layout(list, parents);
  const g = document.getElementById("graph");
  g.replaceChildren();
  state.byName = new Map();
  const height = Math.max(...columns.map(c => c.length), 1);
  g.setAttribute("width", PAD * 2 + columns.length * COL);
  g.setAttribute("height", PAD * 2 + height * ROW);
  const xy = id => [PAD + column.get(id) * COL, PAD + row.get(id) * ROW];
  const edges = svg("g", {id: "edges"});
  for (const [to, ps] of parents) {
    for (const from of ps) {
      const [x1, y1] = xy(from), [x2, y2] = xy(to);
      const path = svg("path", {class: "edge", "data-from": from, "data-to": to,
        d: `M${x1 + W},${y1 + H / 2} C${x1 + W + 30},${y1 + H / 2} ${x2 - 30},${y2 + H / 2} ${x2},${y2 + H / 2}`});
      edges.append(path);
    }
  }
  g.append(edges);
  for (const unit of list.values()) {
    const [x, y] = xy(unit.id);
    const node = svg("g", {transform: `translate(${x},${y})`, "data-id": unit.id});
    const label = svg("text", {x: 8, y: H / 2 + 4});
    if (unit.asset) {
      const a = unit.asset;
      node.setAttribute("class", `node s-${a.shown}`);
      node.setAttribute("data-name", a.name);
      node.setAttribute("data-status", a.shown);
      label.textContent = a.name.length > 26 ? a.name.slice(0, 25) + "…" : a.name;
      const title = svg("title");
      title.textContent = `${a.name}: ${a.shown}${a.reasons.length ? "\n" + a.reasons.map(r => r.message).join("\n") : ""}`;
      node.append(title);
      node.addEventListener("click", () => showAsset(a.name, true));
      state.byName.set(a.name, node);
    } else {
      const worst = SHOWN.find(s => unit.members.some(m => m.shown === s));
      node.setAttribute("class", `group s-${worst}`);
      node.setAttribute("data-group", unit.group);
      label.textContent = `▸ ${unit.group} (${unit.members.length})`;
      node.addEventListener("click", () => { state.expanded.add(unit.group); draw(); });
    }
    node.prepend(svg("rect", {width: W, height: H}));
    node.append(label);
    g.append(node);
  }
  document.getElementById("overview-note").textContent = overview
    ? `${doc.assets.length} assets: folders are collapsed, click one to open it, or type a selector`
    : (doc.selected < doc.total ? `${doc.selected} of ${doc.total} assets selected` : "");
  g.setAttribute("data-drawn", String(list.size));
  if (state.chosen) highlight(state.chosen);
  document.body.setAttribute("data-ready", "1");
  if (window.drawnAt === undefined) window.drawnAt = performance.now();  // since navigation (benchmarks/bench_ui.py)
}

function drawCounts(counts) {
  const box = document.getElementById("counts");
  box.replaceChildren();
  for (const s of SHOWN) {
    const item = el("span", {class: "count", "data-status": s});
    item.append(el("span", {class: `swatch s-${s}`}), `${LABELS[s] || s} ${counts[s] || 0}`);
    box.append(item);
  }
}

function highlight(detail) {
  const near = new Set([detail.unique_id, ...detail.upstream, ...detail.downstream]);
  for (const node of document.querySelectorAll("#graph .node")) {
    const id = node.getAttribute("data-id");
    node.classList.toggle("dim", !near.has(id));
    node.classList.toggle("selected", id === detail.unique_id);
  }
  for (const edge of document.querySelectorAll("#graph .edge")) {
    const on = near.has(edge.getAttribute("data-from")) && near.has(edge.getAttribute("data-to"));
    edge.classList.toggle("hl", on);
    edge.classList.toggle("dim", !on);
  }
}

// -- one asset -----------------------------------------------------------------------------

function whyList(doc) {
  const list = el("ul", {class: "why"});
  if (!doc.reasons.length) list.append(el("li", {}, `${doc.name} is ${doc.status}`));
  for (const r of doc.reasons) {
    const item = el("li", {"data-code": r.code});
    item.append(el("span", {class: "reason-code"}, r.code), " ", r.message);
    if (r.cause) item.append(whyList(r.cause));
    list.append(item);
  }
  return list;
}

async function showAsset(name, scroll) {
  let detail;
  try {
    detail = await getJSON("api/asset", {name});
  } catch (error) {
    document.getElementById("detail").replaceChildren(el("p", {class: "bad"}, error.message));
    return;
  }
  state.chosen = detail;
  const pane = document.getElementById("detail");
  pane.replaceChildren();
  pane.append(el("h2", {}, detail.name));
  const status = detail.why.status;
  pane.append(el("p", {}, `${detail.resource_type} · ${status}${detail.path ? " · " + detail.path : ""}`));
  pane.append(el("h3", {}, "Why"));
  const why = whyList(detail.why);
  why.id = "why";
  pane.append(why);
  pane.append(el("h3", {}, "Checks"));
  if (!detail.checks.length) pane.append(el("p", {class: "hint"}, "none"));
  for (const c of detail.checks) {
    pane.append(el("p", {class: `check c-${c.state}`, "data-check": c.name || c.unique_id, "data-state": c.state},
                   `${c.name || c.unique_id}: ${c.state}${c.message ? " (" + c.message + ")" : ""}`));
  }
  pane.append(el("h3", {}, "Last builds"));
  const table = el("table", {id: "history"});
  table.append(rowOf(["when", "status", "run", "seconds", "code"], "th"));
  for (const h of detail.history) {
    table.append(rowOf([h.finished_at || "", h.status || "", h.run_id ?? "", h.duration != null ? h.duration.toFixed(2) : "",
                        (h.code_version || "").slice(0, 10)], "td"));
  }
  pane.append(detail.history.length ? table : el("p", {class: "hint"}, "never built"));
  pane.append(el("h3", {}, "Code version"));
  pane.append(el("code", {}, detail.code_version || "—"));
  highlight(detail);
  if (scroll) state.byName.get(detail.name)?.scrollIntoView?.({block: "nearest", inline: "nearest"});
}

function rowOf(cells, tag) {
  const tr = el("tr");
  for (const c of cells) tr.append(el(tag, {}, String(c)));
  return tr;
}

// -- live ----------------------------------------------------------------------------------

const RELOAD_ON = new Set(["changed", "build_started", "node_finished", "build_finished", "new_data", "parsed",
  "reported", "error", "source_late", "source_recovered", "not_due", "stale", "fresh", "watching"]);

function logLine(event) {
  const log = document.getElementById("log");
  const time = (event.at || "").slice(11, 19);
  const rest = Object.entries(event).filter(([k]) => !["event", "at", "building"].includes(k))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  const bad = ["error", "observe_failed", "source_late"].includes(event.event) ||
    (event.event === "build_finished" && Object.keys(event.failed || {}).length);
  log.append(el("li", {class: bad ? "bad" : ""}, `${time} ${event.event} ${rest}`.slice(0, 400)));
  while (log.children.length > 300) log.firstChild.remove();
  log.parentElement.scrollTop = log.parentElement.scrollHeight;
}

function markBuilding(names) {
  // At once, before the statuses are read again: a fast model may finish before they arrive.
  for (const name of names) {
    const node = state.byName.get(name);
    if (node && node.getAttribute("data-status") !== "building") {
      node.setAttribute("class", node.getAttribute("class").replace(/s-[a-z_]+/, "s-building"));
      node.setAttribute("data-status", "building");
    }
  }
}

function connect() {
  const conn = document.getElementById("connection");
  const source = new EventSource(url("events"));
  source.onopen = () => { conn.textContent = "live"; conn.className = "conn live"; reloadSoon(); };
  source.onmessage = message => {
    const event = JSON.parse(message.data);
    if (event.event !== "changed") logLine(event);
    if (Array.isArray(event.building)) markBuilding(event.building);
    if (RELOAD_ON.has(event.event)) reloadSoon();
  };
  source.onerror = () => {
    conn.textContent = "reconnecting…"; conn.className = "conn lost";
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);  // the browser gave up: we do not
  };
}

async function start() {
  document.getElementById("select-form").addEventListener("submit", event => {
    event.preventDefault();
    state.select = document.getElementById("select").value.trim();
    load();
  });
  document.getElementById("select-clear").addEventListener("click", () => {
    document.getElementById("select").value = "";
    state.select = "";
    load();
  });
  try {
    const log = await getJSON("api/log");
    log.events.forEach(logLine);
  } catch (error) { /* the graph's error says it */ }
  await load();
  connect();
}

start();
