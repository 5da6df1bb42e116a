// infoway-mock console: plain JavaScript, no build step, no library, no network beyond the mock.
// The mock pushes aggregated state over /console/ws a few times a second; this page only renders it and
// sends commands (view, chart, fault, clear, play, stop). Fault buttons are built from the registry the
// mock sends in its hello, so a new fault kind shows up here without any change to this file.
"use strict";

const $ = (sel) => document.querySelector(sel);
const token = new URLSearchParams(location.search).get("token") || "";

const state = {
  ws: null,
  kinds: [],
  library: [],
  server: {},
  nextId: 1,
  pending: new Map(),
  view: { filter: "", offset: 0, limit: 50 },
  matched: 0,
  symbol: null,
  retry: 500,
  rows: new Map(), // conn id -> <tr>
  report: null,
  reportAt: null,
  lastT: 0,
};

// -- the socket ------------------------------------------------------------------------------------------

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/console/ws?token=${encodeURIComponent(token)}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    state.retry = 500;
    setStatus("live", "live");
    sendView();
    if (state.symbol) send({ op: "chart", symbol: state.symbol });
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello") onHello(msg);
    else if (msg.type === "state") onState(msg);
    else if (msg.type === "reply") onReply(msg);
  };
  ws.onclose = (ev) => {
    state.ws = null;
    const why = ev.code === 1006 && !ev.wasClean ? "disconnected" : `closed (${ev.code})`;
    setStatus("off", `${why}, retrying…`);
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 5000);
  };
}

function setStatus(cls, text) {
  const el = $("#status");
  el.className = `status ${cls}`;
  el.textContent = text;
}

function send(cmd) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("not connected"));
  const id = state.nextId++;
  state.ws.send(JSON.stringify({ id, ...cmd }));
  return new Promise((resolve, reject) => state.pending.set(id, { resolve, reject }));
}

function onReply(msg) {
  const p = state.pending.get(msg.id);
  if (!p) {
    if (!msg.ok) toast(msg.error, true);
    return;
  }
  state.pending.delete(msg.id);
  if (msg.ok) p.resolve(msg);
  else p.reject(new Error(msg.error));
}

function sendView() {
  send({ op: "view", ...state.view }).catch((e) => toast(e.message, true));
}

// -- hello: the registry and the library ----------------------------------------------------------------

function onHello(msg) {
  state.kinds = msg.kinds;
  state.library = msg.scenarios;
  state.server = msg.server;
  renderLibrary();
}

function renderLibrary() {
  const ul = $("#library");
  ul.replaceChildren();
  for (const sc of state.library) {
    const li = el("li", { "data-scenario": sc.name });
    const text = el("div", { class: "grow" });
    text.append(el("strong", {}, sc.name), " ", el("span", { class: "muted" }, `${fmtSeconds(sc.duration)} · ${sc.steps.length} step(s)`));
    text.append(el("div", { class: "desc", title: sc.description }, sc.description));
    const play = el("button", { type: "button", class: "play" }, "play");
    play.addEventListener("click", () => {
      const scale = Number($("#scale").value) || 1;
      send({ op: "play", name: sc.name, scale }).then(() => toast(`playing ${sc.name}`), (e) => toast(e.message, true));
    });
    li.append(text, play);
    ul.append(li);
  }
}

// -- state ------------------------------------------------------------------------------------------------

function onState(s) {
  state.lastT = s.t;
  $("#uptime").textContent = fmtSeconds(s.t);
  $("#total-conns").textContent = fmtInt(s.conns.total);
  $("#push-rate").textContent = fmtInt(Math.round(s.market.push_rate));
  $("#faults-applied").textContent = fmtInt(s.faults.applied);
  renderConnections(s.conns);
  renderKeys(s.keys);
  renderFaults(s.faults);
  renderScenario(s.scenario);
  if (s.report) {
    state.report = s.report;
    state.reportAt = s.t;
    renderReport(s.report);
  }
  if (state.reportAt !== null) $("#report-age").textContent = `as of ${fmtSeconds(state.reportAt)} (rebuilt every few seconds)`;
  renderMarket(s.market, s.chart);
}

function renderConnections(c) {
  state.matched = c.matched;
  const from = c.matched ? c.offset + 1 : 0;
  const to = c.offset + c.rows.length;
  $("#page-info").textContent = c.matched === c.total ? `${from}–${to} of ${c.total}` : `${from}–${to} of ${c.matched} (of ${c.total})`;
  $("#prev").disabled = c.offset === 0;
  $("#next").disabled = c.offset + state.view.limit >= c.matched;
  $("#no-conns").hidden = c.total > 0;
  const tbody = $("#conn-table tbody");
  const seen = new Set();
  let prev = null;
  for (const r of c.rows) {
    seen.add(r.id);
    let tr = state.rows.get(r.id);
    if (!tr) {
      tr = buildRow(r);
      state.rows.set(r.id, tr);
      tr.classList.add("flash");
    }
    updateRow(tr, r);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const [id, tr] of state.rows) {
    if (!seen.has(id)) {
      tr.remove();
      state.rows.delete(id);
    }
  }
}

function buildRow(r) {
  const tr = el("tr", { "data-conn": String(r.id) });
  tr.cells_ = {};
  for (const name of ["id", "key", "business", "peer", "age", "subs", "io", "hb", "window", "buffer", "act"]) {
    const td = el("td", { class: name });
    tr.append(td);
    tr.cells_[name] = td;
  }
  tr.cells_.io.classList.add("num");
  tr.cells_.age.classList.add("num");
  for (const name of ["hb", "window", "buffer"]) tr.cells_[name].append(meter());
  const btn = el("button", { type: "button", class: "faults-btn", "data-scope": "conn", title: "inject a fault into this connection" }, "faults ▾");
  btn.addEventListener("click", (ev) => {
    ev.stopPropagation();
    openFaults(btn, "conn", { conn: r.id }, `conn ${r.id} (${r.key})`);
  });
  tr.cells_.act.append(btn);
  return tr;
}

function updateRow(tr, r) {
  const c = tr.cells_;
  c.id.textContent = `#${r.id}`;
  c.key.textContent = r.key;
  c.business.textContent = r.kind === "news" ? "news" : r.business;
  c.peer.textContent = r.peer;
  c.age.textContent = fmtSeconds(r.age);
  c.subs.replaceChildren(...(r.subs.length ? r.subs.map(([name, n]) => el("span", { class: "chip" }, `${name} ${n}`)) : [el("span", { class: "muted" }, "none")]),
    ...r.faults.map((id) => el("span", { class: "chip fault", title: "an ongoing fault bends this connection" }, `fault #${id}`)));
  c.subs.title = r.symbols.join(", ");
  c.io.textContent = `${fmtInt(r.in)} / ${fmtInt(r.out)}`;
  if (r.hb_age === null) setMeter(c.hb, 0, 1, "paused (not read)");
  else setMeter(c.hb, r.hb_age, r.hb_timeout, `${r.hb_age.toFixed(1)} / ${fmtSeconds(r.hb_timeout)}`);
  setMeter(c.window, r.window, r.window_limit, `${r.window} / ${r.window_limit}`);
  setMeter(c.buffer, r.buffer, r.buffer_limit, `${fmtBytes(r.buffer)} / ${fmtBytes(r.buffer_limit)}`);
}

function meter() {
  const m = el("span", { class: "meter" });
  const bar = el("span", { class: "bar" });
  bar.append(el("span", { class: "fill" }));
  m.append(bar, el("span", { class: "txt" }));
  return m;
}

function setMeter(td, value, limit, text) {
  const m = td.firstChild;
  const frac = limit > 0 ? Math.min(1, Math.max(0, value / limit)) : 0;
  m.querySelector(".fill").style.width = `${(frac * 100).toFixed(1)}%`;
  m.classList.toggle("mid", frac >= 0.6 && frac < 0.85);
  m.classList.toggle("high", frac >= 0.85);
  m.querySelector(".txt").textContent = text;
  m.title = `${Math.round(frac * 100)}% of the limit`;
}

function renderKeys(keys) {
  const tbody = $("#key-table tbody");
  tbody.replaceChildren();
  for (const k of keys) {
    const tr = el("tr", { "data-key": k.ref });
    const btn = el("button", { type: "button", class: "faults-btn", "data-scope": "key" }, "faults ▾");
    btn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      openFaults(btn, "key", { key: k.ref }, `key ${k.key}`);
    });
    const act = el("td");
    act.append(btn);
    tr.append(el("td", { class: "key" }, k.key), el("td", {}, k.plan), el("td", { class: "num" }, String(k.open)), act);
    tbody.append(tr);
  }
}

function renderFaults(f) {
  const ul = $("#active-faults");
  ul.replaceChildren();
  if (!f.active.length) ul.append(el("li", { class: "muted" }, "none"));
  for (const a of f.active) {
    const li = el("li", { "data-fault": String(a.id) });
    const left = a.left !== undefined ? ` · ${fmtSeconds(a.left)} left` : "";
    li.append(el("span", { class: "chip fault" }, `#${a.id}`), el("span", { class: "grow" }, `${a.kind} → ${a.target}${describeParams(a)}${left}`));
    const clear = el("button", { type: "button", class: "ghost" }, "clear");
    clear.addEventListener("click", () => send({ op: "clear", fault_id: a.id }).catch((e) => toast(e.message, true)));
    li.append(clear);
    ul.append(li);
  }
  const log = $("#fault-log");
  log.replaceChildren();
  if (!f.log.length) log.append(el("li", {}, "none yet"));
  for (const e of f.log) {
    log.append(el("li", {}, `${fmtSeconds(e.t)}  #${e.id} ${e.kind} → ${e.target}${describeParams(e)}`));
  }
}

function describeParams(f) {
  const skip = new Set(["id", "kind", "target", "left", "t"]);
  const kind = state.kinds.find((k) => k.name === f.kind);
  const parts = [];
  for (const [k, v] of Object.entries(f)) {
    if (skip.has(k) || v === null || v === "") continue;
    const def = kind && kind.params[k] ? kind.params[k].default : undefined;
    if (def === v) continue;
    parts.push(`${k}=${v}`);
  }
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function renderScenario(sc) {
  const box = $("#playing");
  box.hidden = !sc;
  if (!sc) return;
  $("#playing-name").textContent = sc.name;
  const pill = $("#playing-state");
  pill.textContent = sc.state;
  pill.className = `pill ${sc.state}`;
  $("#stop").hidden = sc.state !== "playing";
  $("#progress-fill").style.width = `${sc.duration ? Math.min(100, (100 * sc.elapsed) / sc.duration) : 100}%`;
  $("#playing-time").textContent = `${fmtSeconds(sc.elapsed)} of ${fmtSeconds(sc.duration)} (time scale ${sc.scale})`;
  const ol = $("#steps");
  ol.replaceChildren();
  for (const st of sc.steps) {
    const cls = st.error ? "failed" : st.fired !== undefined ? "fired" : "pending";
    const what = `${st.fault.kind} → ${st.fault.target}${describeParams(st.fault)}`;
    const result = st.error ? ` — ${st.error}` : st.connections !== undefined ? ` — ${st.connections} connection(s)` : "";
    ol.append(el("li", { class: cls }, el("span", { class: "at" }, fmtSeconds(st.at)), el("span", {}, what + result)));
  }
}

function renderReport(r) {
  $("#verdict").textContent = r.verdict;
  $("#verdict").className = `pill ${r.verdict}`;
  const box = $("#report-clients");
  box.replaceChildren();
  if (!r.clients.length) {
    box.append(el("p", { class: "empty" }, "No clients yet."));
    return;
  }
  const rank = { fail: 3, warn: 2, pass: 1 };
  // Worst first, as in the HTML report: the failing client is the one to look at.
  const clients = [...r.clients].sort((a, b) => (rank[b.verdict] || 0) - (rank[a.verdict] || 0));
  for (const c of clients) {
    const card = el("div", { class: "client", "data-client": c.key });
    const head = el("div", { class: "client-head" });
    const streams = (c.streams || []).map((s) => s.business).join(", ");
    head.append(el("strong", { class: "mono" }, c.key), el("span", { class: `pill ${c.verdict}` }, c.verdict),
      el("span", { class: "muted" }, `${c.connections} connection(s) · ${streams} · limit ${c.rules_applied.rate_limit} per ${c.rules_applied.rate_window_s}s · heartbeat timeout ${c.rules_applied.heartbeat_timeout_s}s`));
    const table = el("table");
    const tbody = el("tbody");
    for (const [name, v] of Object.entries(c.rules)) {
      const tr = el("tr", { "data-rule": name });
      tr.append(el("td", { class: "rule" }, name), el("td", { class: "v" }, el("span", { class: `pill ${v.verdict === "n/a" ? "na" : v.verdict}` }, v.verdict)), el("td", { class: "detail" }, v.detail));
      tbody.append(tr);
    }
    table.append(tbody);
    card.append(head, table);
    box.append(card);
  }
}

function renderMarket(m, chart) {
  $("#streaming").textContent = `${m.streaming} symbol(s) streaming · ${fmtInt(m.pushed)} frames pushed`;
  drawLine($("#rate-chart"), m.rate_history.map((v, i) => [i, v]), { unit: "/s", color: "#2f6fde", zero: true });
  const tbody = $("#symbol-table tbody");
  tbody.replaceChildren();
  $("#no-symbols").hidden = m.symbols.length > 0;
  for (const s of m.symbols) {
    const tr = el("tr", { "data-symbol": s.symbol, class: s.symbol === state.symbol ? "chosen" : "" });
    tr.append(el("td", { class: "mono" }, s.symbol), el("td", { class: "num" }, String(s.trade)), el("td", { class: "num" }, String(s.depth)),
      el("td", { class: "num" }, String(s.kline)), el("td", { class: "num mono" }, s.price ?? "–"));
    tr.addEventListener("click", () => chooseSymbol(s.symbol));
    tbody.append(tr);
  }
  if (!state.symbol && m.symbols.length) chooseSymbol(m.symbols[0].symbol);
  if (chart && chart.symbol === state.symbol) {
    const last = chart.points.length ? chart.points[chart.points.length - 1][1] : null;
    $("#chart-symbol").textContent = `${chart.symbol}${last !== null ? " · " + last : ""}`;
    drawLine($("#price-chart"), chart.points, { color: "#1f9d55" });
  }
}

function chooseSymbol(symbol) {
  state.symbol = symbol;
  $("#chart-symbol").textContent = symbol;
  send({ op: "chart", symbol }).catch(() => {});
}

// A small line chart on a canvas: no library needed for one series.
function drawLine(canvas, points, opts) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7587";
  if (points.length < 2) {
    ctx.fillText("waiting for data…", 10, h / 2);
    return;
  }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (opts.zero) lo = Math.min(0, lo);
  if (hi === lo) { hi += 1; lo -= opts.zero ? 0 : 1; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const pad = { l: 8, r: 64, t: 10, b: 10 };
  const X = (x) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (w - pad.l - pad.r);
  const Y = (y) => h - pad.b - ((y - lo) / (hi - lo)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#e3e7ee";
  ctx.lineWidth = 1;
  // Enough decimals to tell the three grid lines apart, whatever the scale (a price moves by cents).
  const decimals = Math.max(0, Math.min(8, Math.ceil(-Math.log10((hi - lo) / 2)) + 1));
  for (const y of [lo, (lo + hi) / 2, hi]) {
    ctx.beginPath(); ctx.moveTo(pad.l, Y(y)); ctx.lineTo(w - pad.r, Y(y)); ctx.stroke();
    const label = opts.zero ? fmtNum(y) : y.toFixed(decimals);
    ctx.fillText(label + (opts.unit || ""), w - pad.r + 4, Y(y) + 4);
  }
  ctx.strokeStyle = opts.color;
  ctx.lineWidth = 1.6;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
  ctx.stroke();
}

// -- the fault popover: built from the registry ----------------------------------------------------------

let popTarget = null;

function openFaults(anchor, scope, target, label) {
  const pop = $("#popover");
  popTarget = { scope, target, label };
  $("#pop-title").textContent = `fault → ${label}`;
  $("#pop-form").hidden = true;
  $("#pop-error").hidden = true;
  const kinds = $("#pop-kinds");
  kinds.hidden = false;
  kinds.replaceChildren();
  for (const k of state.kinds.filter((k) => k.targets.includes(scope))) {
    const b = el("button", { type: "button", "data-kind": k.name, title: k.summary }, k.name);
    b.addEventListener("click", () => chooseKind(k));
    kinds.append(b);
  }
  pop.hidden = false;
  const r = anchor.getBoundingClientRect();
  const left = Math.max(8, Math.min(window.scrollX + r.right - pop.offsetWidth, window.scrollX + document.documentElement.clientWidth - pop.offsetWidth - 8));
  pop.style.left = `${left}px`;
  pop.style.top = `${window.scrollY + r.bottom + 6}px`;
}

function closeFaults() {
  $("#popover").hidden = true;
  popTarget = null;
}

function chooseKind(kind) {
  if (!Object.keys(kind.params).length) {
    applyFault(kind, {});
    return;
  }
  $("#pop-kinds").hidden = true;
  const form = $("#pop-form");
  form.hidden = false;
  form.dataset.kind = kind.name;
  $("#pop-summary").textContent = `${kind.name}: ${kind.summary}`;
  const fields = $("#pop-fields");
  fields.replaceChildren();
  for (const [name, spec] of Object.entries(kind.params)) fields.append(field(name, spec));
}

function field(name, spec) {
  const label = el("label", { title: spec.description || "" });
  label.append(el("span", {}, name.replace(/_/g, " ")));
  let input;
  if (spec.enum) {
    input = el("select");
    if (spec.default === undefined) input.append(el("option", { value: "" }, "–"));
    for (const v of spec.enum) input.append(el("option", { value: String(v) }, String(v)));
    if (spec.default !== undefined) input.value = String(spec.default);
  } else if (spec.type === "boolean") {
    input = el("input", { type: "checkbox" });
    input.checked = Boolean(spec.default);
  } else if (spec.type === "integer" || spec.type === "number") {
    input = el("input", { type: "number", step: spec.type === "integer" ? "1" : "any" });
    if (spec.minimum !== undefined) input.min = spec.minimum;
    if (spec.maximum !== undefined) input.max = spec.maximum;
    if (spec.default !== undefined) input.value = spec.default;
    else input.placeholder = "optional";
  } else {
    input = el("input", { type: "text" });
    if (spec.maxLength) input.maxLength = spec.maxLength;
    if (spec.default !== undefined) input.value = spec.default;
    else input.placeholder = "optional";
  }
  input.name = name;
  input.spec_ = spec;
  label.append(input);
  return label;
}

function readForm() {
  const params = {};
  for (const input of $("#pop-fields").querySelectorAll("input, select")) {
    const spec = input.spec_;
    if (input.type === "checkbox") { params[input.name] = input.checked; continue; }
    if (input.value === "") continue;
    if (spec.enum) {
      const match = spec.enum.find((v) => String(v) === input.value);
      params[input.name] = match === undefined ? input.value : match;
    } else if (spec.type === "integer" || spec.type === "number") params[input.name] = Number(input.value);
    else params[input.name] = input.value;
  }
  return params;
}

function applyFault(kind, params) {
  if (!popTarget) return;
  const { target, label } = popTarget;
  send({ op: "fault", fault: { kind: kind.name, ...params }, target })
    .then((msg) => {
      closeFaults();
      const n = msg.result.connections.length;
      toast(`${kind.name} → ${label}: fault #${msg.result.id}${kind.targets.includes("conn") && kind.name !== "restart" ? `, ${n} connection(s)` : ""}${msg.result.note ? " (" + msg.result.note + ")" : ""}`);
    })
    .catch((e) => {
      const err = $("#pop-error");
      err.textContent = e.message;
      err.hidden = false;
    });
}

// -- helpers ---------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== "" && v !== undefined) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function fmtInt(n) {
  return Number(n).toLocaleString("en-US");
}

function fmtNum(n) {
  const a = Math.abs(n);
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(0) + "k";
  if (a >= 100) return n.toFixed(0);
  if (a >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

function fmtBytes(n) {
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(n >= 10 << 20 ? 0 : 1) + " MiB";
  if (n >= 1024) return (n / 1024).toFixed(0) + " KiB";
  return `${n} B`;
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

let toastTimer = null;
function toast(text, bad = false) {
  const t = $("#toast");
  t.textContent = text;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), bad ? 6000 : 3000);
}

// -- wiring ----------------------------------------------------------------------------------------------

function init() {
  let filterTimer = null;
  $("#filter").addEventListener("input", (ev) => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      state.view.filter = ev.target.value;
      state.view.offset = 0;
      sendView();
    }, 200);
  });
  $("#prev").addEventListener("click", () => {
    state.view.offset = Math.max(0, state.view.offset - state.view.limit);
    sendView();
  });
  $("#next").addEventListener("click", () => {
    if (state.view.offset + state.view.limit < state.matched) state.view.offset += state.view.limit;
    sendView();
  });
  $("#fault-all").addEventListener("click", (ev) => {
    ev.stopPropagation();
    openFaults(ev.currentTarget, "all", {}, "all connections");
  });
  $("#clear-all").addEventListener("click", () => send({ op: "clear" }).then((m) => toast(`cleared ${m.cleared} fault(s)`), (e) => toast(e.message, true)));
  $("#stop").addEventListener("click", () => send({ op: "stop" }).then((m) => toast(`stopped; ${m.cleared} ongoing fault(s) ended`), (e) => toast(e.message, true)));
  $("#pop-close").addEventListener("click", closeFaults);
  $("#pop-back").addEventListener("click", () => {
    $("#pop-form").hidden = true;
    $("#pop-kinds").hidden = false;
    $("#pop-error").hidden = true;
  });
  $("#pop-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const kind = state.kinds.find((k) => k.name === ev.currentTarget.dataset.kind);
    if (kind) applyFault(kind, readForm());
  });
  document.addEventListener("click", (ev) => {
    if (!$("#popover").hidden && !$("#popover").contains(ev.target)) closeFaults();
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") closeFaults();
  });
  connect();
}

init();
