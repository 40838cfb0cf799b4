// The play-test console: a game client in a page. Plain browser JavaScript, no build step, no libraries.
// Everything that shows server data goes through textContent, never innerHTML: logs and replies carry
// what players typed.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  functions: [],
  token: sessionStorage.getItem("gs.token"),
  uid: sessionStorage.getItem("gs.uid"),
  gate: null,
  nextId: 1,
  pending: new Map(),
  chat: null,
  logsAfter: 0,
  logsLoading: null,
  lastTotals: null,
};
const LEVELS = ["debug", "info", "warning", "error", "critical"];
const MAX_FEED = 300;
const CHAT_COMMAND = 10; // PROTOCOL.md, "Chat edge": a 10-byte command field

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function append(feedId, cls, meta, body) {
  const feed = $(feedId);
  const entry = el("div", "entry " + (cls || ""));
  entry.append(el("span", "meta", meta), document.createTextNode(body === undefined ? "" : " " + body));
  feed.append(entry);
  while (feed.childElementCount > MAX_FEED) feed.firstElementChild.remove();
  if (feedId !== "logs" || $("logs-follow").checked) feed.scrollTop = feed.scrollHeight;
  return entry;
}

const time = () => new Date().toLocaleTimeString();
const pretty = (value) => JSON.stringify(value, null, 2);

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* 304 or an empty body */ }
  return { status: response.status, ok: response.ok, body };
}

// ---- the gate: one WebSocket, JSON text frames (PROTOCOL.md, "Gate") ----

function gateUrl(path) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.hostname}:${state.info.ports.ws}${path}`;
}

function connectGate() {
  const ws = new WebSocket(gateUrl("/gate"));
  state.gate = ws;
  setChip("gate-state", "gate: connecting", "");
  ws.onopen = () => {
    setChip("gate-state", "gate: connected", "ok");
    if (state.token) bindSession();
  };
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch (_) { return; }
    if ("id" in message && message.id !== null && state.pending.has(message.id)) {
      const call = state.pending.get(message.id);
      state.pending.delete(message.id);
      call.resolve(message);
    } else if ("event" in message) {
      append("pushes", "", `${time()} ${message.event}`, pretty(message.data));
    } else {
      append("replies", "err", `${time()} (no request)`, pretty(message));
    }
  };
  ws.onclose = (event) => {
    setChip("gate-state", `gate: closed (${event.code})`, "bad");
    for (const call of state.pending.values()) call.resolve({ ok: false, error: { code: "closed", message: "connection closed" } });
    state.pending.clear();
    setTimeout(connectGate, 1000);
  };
}

function call(fn, args) {
  return new Promise((resolve) => {
    if (!state.gate || state.gate.readyState !== WebSocket.OPEN) {
      resolve({ ok: false, error: { code: "not_connected", message: "the gate is not connected" } });
      return;
    }
    const id = state.nextId++;
    const request = { id, fn, args };
    if (state.token) request.token = state.token;
    state.pending.set(id, { resolve });
    state.gate.send(JSON.stringify(request));
  });
}

async function callAndShow(fn, args) {
  const started = performance.now();
  append("replies", "", `${time()} → ${fn}`, JSON.stringify(args));
  const reply = await call(fn, args);
  const ms = (performance.now() - started).toFixed(1);
  if (reply.ok) append("replies", "ok", `${time()} ← ${fn} ok (${ms} ms)`, pretty(reply.data));
  else {
    const entry = append("replies", "err", `${time()} ← ${fn} ${reply.error.code} (${ms} ms)`, reply.error.message);
    if (reply.error.cid) entry.append(" ", logLink(reply.error.cid));
  }
  return reply;
}

// A failed call's correlation id (the `cid` of an internal error) links to the server's log line about it.
function logLink(cid) {
  const link = el("a", "log-link", `log line (${cid})`);
  link.href = "#logs";
  link.dataset.cid = cid;
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    let line = findLogLine(cid);
    if (!line) { await refreshLogs(); line = findLogLine(cid); }
    if (!line) { link.textContent = `log line (${cid}): not in the console's recent lines`; return; }
    for (const old of document.querySelectorAll("#logs .entry.found")) old.classList.remove("found");
    $("logs-follow").checked = false; // stay on the line
    line.classList.add("found");
    line.scrollIntoView({ block: "center" });
  });
  return link;
}

function findLogLine(cid) {
  return [...document.querySelectorAll("#logs .entry")].find((entry) => entry.dataset.cid === cid) || null;
}

async function bindSession() {
  // Bind the connection to the player so that pushes reach it (PROTOCOL.md, `session.bind`).
  if (!state.functions.some((f) => f.fn === "session.bind")) return;
  const reply = await call("session.bind", { token: state.token });
  if (!reply.ok) append("pushes", "err", `${time()} session.bind`, `${reply.error.code}: ${reply.error.message}`);
}

// ---- account: HTTP /auth/register and /auth/login ----

function setChip(id, text, cls) {
  const chip = $(id);
  chip.textContent = text;
  chip.className = "chip " + (cls || "");
}

function showWho() {
  setChip("who", state.token ? `uid ${state.uid}` : "not logged in", state.token ? "ok" : "");
  $("auth-logout").disabled = !state.token;
  $("chat-connect").disabled = !state.token || !state.info.ws_paths.includes("/chat");
}

async function authenticate(route) {
  const username = $("auth-user").value.trim();
  const password = $("auth-pass").value;
  if (!state.info.http_routes.includes(route)) {
    $("auth-result").textContent = `this server has no ${route} (is the auth role running?)`;
    return;
  }
  const result = await api(route, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (result.ok && result.body && result.body.token) {
    state.token = result.body.token;
    state.uid = String(result.body.uid);
    sessionStorage.setItem("gs.token", state.token);
    sessionStorage.setItem("gs.uid", state.uid);
    $("auth-result").textContent = `${route === "/auth/register" ? "registered" : "logged in"} as ${username} (uid ${state.uid})`;
    showWho();
    bindSession();
  } else {
    const error = result.body && result.body.error;
    $("auth-result").textContent = error ? `${result.status} ${error.code}: ${error.message}` : `HTTP ${result.status}`;
  }
}

function logout() {
  state.token = state.uid = null;
  sessionStorage.removeItem("gs.token");
  sessionStorage.removeItem("gs.uid");
  if (state.chat) state.chat.close();
  if (state.gate) state.gate.close(); // reconnects unbound
  $("auth-result").textContent = "logged out";
  showWho();
}

// ---- functions ----

const PLACEHOLDERS = { "a string": "", "an integer": 0, "a number": 0, "true or false": false, "a list": [], "a map": {} };

function argsTemplate(fn) {
  const args = {};
  for (const arg of fn.args) args[arg.name] = arg.required ? (PLACEHOLDERS[arg.type] ?? null) : arg.default;
  return args;
}

function renderFunctions() {
  const filter = $("functions-filter").value.trim().toLowerCase();
  const list = $("functions");
  list.replaceChildren();
  for (const fn of state.functions) {
    if (filter && !fn.fn.toLowerCase().includes(filter)) continue;
    const item = el("li");
    item.dataset.fn = fn.fn;
    item.title = fn.doc || "";
    item.append(el("span", "fn", fn.fn));
    if (fn.login) item.append(el("span", "lock", "login"));
    const args = fn.args.map((a) => (a.required ? a.name : a.name + "?") + ": " + a.type).join(", ");
    item.append(el("div", "args", args ? `(${args})` : "()"));
    item.addEventListener("click", () => selectFunction(fn, item));
    list.append(item);
  }
  $("functions-count").textContent = `(${state.functions.length})`;
  const names = $("fn-names");
  names.replaceChildren(...state.functions.map((fn) => { const o = el("option"); o.value = fn.fn; return o; }));
}

function selectFunction(fn, item) {
  for (const node of document.querySelectorAll("#functions li.selected")) node.classList.remove("selected");
  if (item) item.classList.add("selected");
  $("call-fn").value = fn.fn;
  $("call-args").value = pretty(argsTemplate(fn));
  $("call-doc").textContent = fn.doc || "";
}

async function loadFunctions() {
  const result = await api("/console/api/functions");
  state.functions = result.ok ? result.body.functions : [];
  renderFunctions();
}

async function submitCall(event) {
  event.preventDefault();
  $("call-error").textContent = "";
  const fn = $("call-fn").value.trim();
  let args;
  try {
    args = JSON.parse($("call-args").value || "{}");
  } catch (error) {
    $("call-error").textContent = `arguments are not JSON: ${error.message}`;
    return;
  }
  if (!fn) { $("call-error").textContent = "name a function, e.g. sys.echo"; return; }
  await callAndShow(fn, args);
}

// ---- chat: /chat with a nonce from /auth/nonce (PROTOCOL.md, "Chat edge") ----

async function connectChat() {
  if (state.chat) { state.chat.close(); return; }
  const result = await api("/auth/nonce", { method: "POST", headers: { Authorization: `Bearer ${state.token}` } });
  if (!result.ok) {
    append("chat", "err", time(), `no nonce: HTTP ${result.status}`);
    return;
  }
  const ws = new WebSocket(gateUrl("/chat"));
  state.chat = ws;
  $("chat-state").textContent = "connecting";
  ws.onopen = () => ws.send("LOGIN".padEnd(CHAT_COMMAND) + result.body.nonce);
  ws.onmessage = (event) => {
    const command = event.data.slice(0, CHAT_COMMAND).trim();
    const payload = event.data.slice(CHAT_COMMAND);
    if (command === "OK") {
      $("chat-state").textContent = "online";
      $("chat-connect").textContent = "Leave chat";
      append("chat", "ok", time(), `joined as ${payload}`);
    } else if (command === "PUBLIC" || command === "FAMILY") {
      let message;
      try { message = JSON.parse(payload); } catch (_) { message = { name: "?", text: payload }; }
      append("chat", "", `${time()} [${command.toLowerCase()}] ${message.name}:`, message.text);
    } else {
      append("chat", command === "ERROR" ? "err" : "", `${time()} ${command}`, payload);
    }
  };
  ws.onclose = (event) => {
    state.chat = null;
    $("chat-state").textContent = `offline (${event.code})`;
    $("chat-connect").textContent = "Join chat";
  };
}

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-text").value;
  if (!state.chat || state.chat.readyState !== WebSocket.OPEN || !text) return;
  state.chat.send($("chat-channel").value.padEnd(CHAT_COMMAND) + text);
  $("chat-text").value = "";
}

// ---- status and logs ----

function formatUptime(seconds) {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ${s % 60}s`;
}

async function refreshStatus() {
  const result = await api("/console/api/status");
  const status = result.body;
  if (!status) { setChip("status-state", "unreachable", "bad"); return; }
  setChip("status-state", status.status, status.status === "ok" ? "ok" : "bad");
  const now = performance.now();
  let rate = "…";
  if (state.lastTotals) {
    const seconds = (now - state.lastTotals.at) / 1000;
    rate = ((status.requests - state.lastTotals.requests) / seconds).toFixed(1);
  }
  state.lastTotals = { at: now, requests: status.requests };
  const rows = [
    ["roles", status.roles.join(", ")],
    ["connections", Object.entries(status.connections).map(([k, v]) => `${k} ${v}`).join(", ") || "none"],
    ["requests/s", rate],
    ["requests", status.requests],
    ["errors", status.errors],
    ["in flight", status.inflight],
    ["functions", status.functions],
    ["uptime", formatUptime(status.uptime)],
    ["checks", Object.entries(status.checks).map(([k, v]) => `${k} ${v}`).join(", ")],
    ["reload", status.reload.enabled ? `on, ${status.reload.reloads} ok of ${status.reload.attempts}` : "off"],
  ];
  if (status.game_config) rows.push(["game config", `v${status.game_config.version} ${status.game_config.etag}`]);
  const list = $("status");
  list.replaceChildren();
  for (const [name, value] of rows) list.append(el("dt", "", name), el("dd", "", String(value)));
  const errors = [];
  if (status.reload.error) errors.push(`reload failed, old version running: ${status.reload.error}`);
  if (status.game_config && status.game_config.error) errors.push(`game config: ${status.game_config.error}`);
  $("reload-error").textContent = errors.join("\n");
  if (status.functions !== state.functions.length || status.reload.reloads !== state.reloads) {
    state.reloads = status.reload.reloads;
    loadFunctions();
  }
}

function refreshLogs() {
  // One fetch at a time (the timer and a log link may both ask): lines are appended once.
  if (!state.logsLoading) state.logsLoading = fetchLogs().finally(() => { state.logsLoading = null; });
  return state.logsLoading;
}

async function fetchLogs() {
  const result = await api(`/console/api/logs?after=${state.logsAfter}`);
  if (!result.ok) return;
  const minimum = LEVELS.indexOf($("logs-level").value);
  for (const line of result.body.lines) {
    state.logsAfter = Math.max(state.logsAfter, line.seq);
    if (LEVELS.indexOf(line.level) < minimum) continue;
    const stamp = new Date(line.ts * 1000).toLocaleTimeString();
    const cid = line.cid ? ` cid=${line.cid}` : "";
    const entry = append("logs", line.level, `${stamp} ${line.level.toUpperCase()} ${line.logger}:`, line.msg + cid + (line.exc ? "\n" + line.exc : ""));
    if (line.cid) entry.dataset.cid = line.cid;
  }
}

function every(ms, fn) {
  const tick = async () => {
    try { await fn(); } catch (_) { /* the server may be restarting: try again next tick */ }
    setTimeout(tick, ms);
  };
  tick();
}

async function main() {
  state.info = (await api("/console/api/info")).body;
  $("node").textContent = `node ${state.info.node}${state.info.profile ? " · profile " + state.info.profile : ""} · v${state.info.version}`;
  await loadFunctions();
  showWho();
  if (state.info.ports.ws) connectGate();
  else setChip("gate-state", "no gate on this node", "bad");
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); authenticate("/auth/login"); });
  $("auth-register").addEventListener("click", () => authenticate("/auth/register"));
  $("auth-logout").addEventListener("click", logout);
  $("functions-filter").addEventListener("input", renderFunctions);
  $("call-form").addEventListener("submit", submitCall);
  $("chat-connect").addEventListener("click", connectChat);
  $("chat-form").addEventListener("submit", sendChat);
  for (const button of document.querySelectorAll("[data-clear]")) {
    button.addEventListener("click", () => $(button.dataset.clear).replaceChildren());
  }
  every(2000, refreshStatus);
  every(1000, refreshLogs);
  document.body.dataset.ready = "true";
}

main();
