// The operations console: a static page over /admin/api/*. Everything shown is set as text (never as HTML), every
// POST carries the login's CSRF token, and the server checks the role of every request itself.
"use strict";

const state = { me: null, csrf: "", player: null, table: null, tablePage: 0, logAfter: "", logTimer: 0, logRound: 0, tab: "players" };
const RANKS = { viewer: 0, moderator: 1, admin: 2 };
const FOLLOW_MS = 1000;
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, body) {
  const options = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = state.csrf;
    options.body = JSON.stringify(body);
  }
  const response = await fetch("/admin/api/" + path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    if (response.status === 401 && path !== "login") showLogin();
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return data;
}

function report(text, ok) {
  const line = $("action-result");
  line.textContent = text;
  line.className = ok ? "ok" : "refused";
}

async function act(label, path, body) {
  try {
    const data = await api(path, body);
    report(label + ": ok", true);
    return data;
  } catch (error) {
    report(label + ": " + error.code + ": " + error.message, false);
    return null;
  }
}

function fillTable(table, header, rows) {
  table.replaceChildren();
  const head = el("tr");
  for (const name of header) head.append(el("th", name));
  table.append(head);
  for (const row of rows) {
    const tr = el("tr");
    for (const cell of row) {
      const td = el("td");
      if (cell instanceof Node) td.append(cell); else td.textContent = cell === null || cell === undefined ? "" : typeof cell === "object" ? JSON.stringify(cell) : String(cell);
      tr.append(td);
    }
    table.append(tr);
  }
}

function showLogin() {
  clearTimeout(state.logTimer);
  state.me = null;
  $("main-view").hidden = true;
  $("login-view").hidden = false;
}

function showMain(me) {
  state.me = me;
  state.csrf = me.csrf;
  $("who").textContent = me.name + " (" + me.role + ") on " + (me.node || "");
  $("login-view").hidden = true;
  $("main-view").hidden = false;
  document.body.dataset.role = me.role;
  const rank = RANKS[me.role];
  for (const node of document.querySelectorAll(".needs-moderator")) node.hidden = rank < RANKS.moderator;
  for (const node of document.querySelectorAll(".needs-admin")) node.hidden = rank < RANKS.admin;
  for (const select of [$("inv-item"), $("gift-item")]) {
    select.replaceChildren(...(me.items || []).map((item) => el("option", item.name, { value: item.item })));
  }
  showTab(state.tab);
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("login", { name: $("login-name").value, password: $("login-pass").value });
    $("login-pass").value = "";
    showMain(await api("me"));
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

// Tabs --------------------------------------------------------------------------------------------------------

const LOADERS = {
  players: async () => {},
  tables: loadTables,
  leaderboards: loadBoards,
  jobs: loadJobs,
  nodes: loadNodes,
  metrics: loadMetrics,
  logs: () => startLogs(),
  audit: loadAudit,
};

function showTab(name) {
  state.tab = name;
  state.logRound += 1;  // a log request still under way is for a view no longer shown
  clearTimeout(state.logTimer);
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== "tab-" + name;
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.tab === name);
  LOADERS[name]().catch((error) => report(name + ": " + error.message, false));
}

async function refreshing(name, load) {
  if (state.tab !== name || !state.me) return;
  await load().catch(() => {});
  setTimeout(() => refreshing(name, load), REFRESH_MS);
}

// Players -----------------------------------------------------------------------------------------------------

async function searchPlayers(event) {
  event.preventDefault();
  const data = await api("players?q=" + encodeURIComponent($("player-q").value)).catch((error) => {
    report("search: " + error.message, false);
    return { players: [] };
  });
  const list = $("player-results");
  list.replaceChildren();
  for (const player of data.players) {
    const item = el("li", player.uid + " " + player.name + " (" + player.username + ", world " + player.world + ")", { "data-uid": player.uid });
    item.addEventListener("click", () => openPlayer(player.uid));
    list.append(item);
  }
  if (!data.players.length) list.append(el("li", "no player found"));
}

async function openPlayer(uid) {
  const player = await api("players/" + uid);
  state.player = player;
  $("player-detail").hidden = false;
  $("player-title").textContent = player.name + " (uid " + player.uid + ")";
  const profile = $("player-profile");
  profile.replaceChildren();
  for (const key of ["uid", "username", "name", "world", "family_id", "created_at", "tokens_valid_after", "connections_here"]) {
    profile.append(el("dt", key), el("dd", player[key] === null ? "-" : player[key], { "data-field": key }));
  }
  for (const key of ["mute", "ban"]) {
    if (!(key in player)) continue;
    const value = player[key];
    const text = value === null ? "no" : (value.until ? "until " + new Date(value.until).toISOString() : "permanent") + " by " + value.by + (value.reason ? ": " + value.reason : "");
    profile.append(el("dt", key), el("dd", text, { "data-field": key }));
  }
  if (player.inventory === null) fillTable($("player-inventory"), ["the inventory module is not installed"], []);
  else fillTable($("player-inventory"), ["item", "name", "count"], player.inventory.map((i) => [i.item, i.name, i.count]));
  const family = $("player-family");
  if (!player.family || !player.family.family_id) family.textContent = player.family === null ? "(no family module)" : "none";
  else family.textContent = player.family.name + " (id " + player.family.family_id + "): " + player.family.members.map((m) => m.name).join(", ");
  const friends = $("player-friends");
  friends.replaceChildren(...(player.friends || []).map((f) => el("li", f.uid + " " + f.name)));
  const box = player.mailbox;
  if (!box) fillTable($("player-mailbox"), ["mail is served by worker processes"], []);
  else fillTable($("player-mailbox"), ["from", "subject", "items", "unread", "sent"],
    box.mails.map((m) => [m.from_name, m.subject, m.items.map((i) => i.count + " x " + i.item).join(", "), m.unread ? "yes" : "", m.sent_at]));
}

async function playerAction(label, path, body) {
  if (!state.player) return;
  const uid = state.player.uid;
  const done = await act(label, "players/" + uid + "/" + path, body);
  if (done) await openPlayer(uid).catch(() => {});
}

// Tables, leaderboards, jobs, nodes, audit -------------------------------------------------------------------

async function loadTables() {
  const data = await api("tables");
  const list = $("table-list");
  list.replaceChildren(...data.tables.map((table) => {
    const item = el("li", table.name, { "data-table": table.name });
    item.addEventListener("click", () => { state.table = table.name; state.tablePage = 0; loadRows(); });
    return item;
  }));
}

async function loadRows() {
  if (!state.table) return;
  const data = await api("tables/" + encodeURIComponent(state.table) + "?page=" + state.tablePage + "&size=50");
  const pages = Math.max(1, Math.ceil(data.total / data.size));
  $("table-page").textContent = data.table + ": page " + (data.page + 1) + " of " + pages + " (" + data.total + " rows)";
  fillTable($("table-rows"), data.columns, data.rows);
}

async function loadBoards() {
  const data = await api("leaderboards");
  const boards = $("boards");
  boards.replaceChildren();
  for (const [name, top] of Object.entries(data.boards)) {
    const table = el("table", null, { "data-board": name });
    fillTable(table, ["#", "uid", "name", "score"], top.map((row, i) => [i + 1, row.uid, row.name, row.score]));
    boards.append(el("h3", name), table);
  }
}

async function loadJobs() {
  const data = await api("jobs");
  $("job-counts").textContent = "ready " + data.counts.ready + ", delayed " + data.counts.delayed + ", dead " + data.counts.dead;
  const canChange = RANKS[state.me.role] >= RANKS.admin;
  fillTable($("dead-letters"), ["job", "name", "tries", "error", "failed", ""], data.dead.map((job) => {
    const id = job.job_id || job.entry_id;
    const buttons = el("span");
    if (canChange) {
      for (const change of ["retry", "drop"]) {
        const button = el("button", change, { "data-id": id, "data-change": change });
        button.addEventListener("click", async () => { await act(change + " " + id, "jobs/dead/" + id + "/" + change, {}); loadJobs(); });
        buttons.append(button, " ");
      }
    }
    return [id, job.name, job.tries, job.error.split("\n").filter(Boolean).pop() || "", new Date(job.failed_at * 1000).toISOString(), buttons];
  }));
}

async function loadNodes() {
  const data = await api("nodes");
  fillTable($("nodes"), ["node", "roles", "host", "pid", "version", "players", "inflight", "connections", "urls"],
    data.nodes.map((n) => [n.node, (n.roles || []).join(","), n.host, n.pid, n.version, n.players, n.inflight, n.connections, n.urls]));
}

async function loadAudit() {
  const data = await api("audit");
  fillTable($("audit"), ["when", "admin", "from", "action", "target", "outcome", "detail"],
    data.entries.map((e) => [new Date(e.at).toISOString(), e.admin, e.address, e.action, e.target, e.outcome, e.detail]));
}

// Metrics: small live graphs -----------------------------------------------------------------------------------

const SERIES = [
  ["requests/s", (a, b) => rate(a, b, "requests")],
  ["errors/s", (a, b) => rate(a, b, "errors")],
  ["in flight", (a, b) => b.inflight],
  ["connections", (a, b) => b.connections],
  ["players", (a, b) => b.players],
];

function rate(a, b, key) {
  const seconds = (b.t - a.t) / 1000;
  return seconds > 0 ? Math.max(0, (b[key] - a[key]) / seconds) : 0;
}

function graph(label, points) {
  const width = 240, height = 60;
  const box = el("div", null, { class: "graph", "data-series": label });
  const values = points.map((p) => p.v);
  const top = Math.max(1, ...values);
  const first = points.length ? points[0].t : 0, last = points.length ? points[points.length - 1].t : 1;
  const span = Math.max(1, last - first);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.map((p) => ((p.t - first) / span * width).toFixed(1) + "," + (height - p.v / top * (height - 4) - 2).toFixed(1)).join(" "));
  svg.append(line);
  const now = values.length ? values[values.length - 1] : 0;
  box.append(el("div", label + ": " + (Math.round(now * 100) / 100) + " (max " + (Math.round(top * 100) / 100) + ")"), svg);
  return box;
}

async function loadMetrics() {
  const render = async () => {
    const data = await api("metrics");
    const root = $("metrics");
    root.replaceChildren();
    for (const [node, samples] of Object.entries(data.nodes)) {
      const section = el("div", null, { "data-node": node });
      section.append(el("h3", node + " (" + samples.length + " samples, last hour)"));
      for (const [label, value] of SERIES) {
        const points = [];
        for (let i = 1; i < samples.length; i++) points.push({ t: samples[i].t, v: value(samples[i - 1], samples[i]) });
        section.append(graph(label, points));
      }
      root.append(section);
    }
  };
  await render();
  setTimeout(() => refreshing("metrics", render), REFRESH_MS);
}

// Logs -------------------------------------------------------------------------------------------------------

function logQuery() {
  const params = new URLSearchParams();
  for (const name of ["node", "level", "module", "uid", "cid", "text"]) {
    const value = $("log-" + name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function logLine(line) {
  const text = [new Date(line.ts * 1000).toISOString(), line.node, line.level.toUpperCase(), line.logger + ":", line.msg,
    line.uid ? "uid=" + line.uid : "", line.cid ? "cid=" + line.cid : ""].filter(Boolean).join(" ");
  const node = el("div", text + (line.exc ? "\n" + line.exc : ""), { class: "log " + line.level, "data-node": line.node });
  return node;
}

// Each (re)start of the log view is a round: an answer to an older round's request (other filters) is dropped.
async function startLogs() {
  clearTimeout(state.logTimer);
  const round = ++state.logRound;
  const data = await api("logs?" + logQuery());
  if (round !== state.logRound) return;
  $("log-lines").replaceChildren(...data.lines.map(logLine));
  state.logAfter = data.last;
  if (!data.shipping) report("log shipping is off on this node (admin.ship_logs)", false);
  scheduleFollow(round);
}

function scheduleFollow(round) {
  clearTimeout(state.logTimer);
  if (state.tab !== "logs" || !$("log-follow").checked || round !== state.logRound) return;
  state.logTimer = setTimeout(() => followLogs(round), FOLLOW_MS);
}

async function followLogs(round) {
  const params = logQuery();
  params.set("after", state.logAfter);
  try {
    const data = await api("logs?" + params);
    if (round !== state.logRound) return;
    const box = $("log-lines");
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.append(...data.lines.map(logLine));
    while (box.childElementCount > 2000) box.firstElementChild.remove();
    if (atEnd) box.scrollTop = box.scrollHeight;
    state.logAfter = data.last;
  } catch (error) {
    report("logs: " + error.message, false);
  }
  scheduleFollow(round);
}

// Wiring -----------------------------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", async () => { await act("log out", "logout", {}); showLogin(); });
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("player-form").addEventListener("submit", searchPlayers);
  $("inv-form").addEventListener("submit", (event) => {
    event.preventDefault();
    playerAction("inventory", "inventory", { item: Number($("inv-item").value), delta: Number($("inv-delta").value) });
  });
  $("mail-form").addEventListener("submit", (event) => {
    event.preventDefault();
    playerAction("mail", "mail", { subject: $("mail-subject").value, body: $("mail-body").value });
  });
  $("gift-form").addEventListener("submit", (event) => {
    event.preventDefault();
    playerAction("gift", "gift", { subject: $("gift-subject").value, items: [{ item: Number($("gift-item").value), count: Number($("gift-count").value) }] });
  });
  $("kick").addEventListener("click", () => playerAction("kick", "kick", {}));
  const sanction = () => {
    const body = { reason: $("sanction-reason").value };
    if ($("sanction-seconds").value) body.seconds = Number($("sanction-seconds").value);
    return body;
  };
  $("mute").addEventListener("click", () => playerAction("mute", "mute", sanction()));
  $("unmute").addEventListener("click", () => playerAction("unmute", "unmute", {}));
  $("ban").addEventListener("click", () => playerAction("ban", "ban", sanction()));
  $("unban").addEventListener("click", () => playerAction("unban", "unban", {}));
  $("revoke").addEventListener("click", () => playerAction("revoke sessions", "revoke", {}));
  $("table-prev").addEventListener("click", () => { if (state.tablePage > 0) { state.tablePage -= 1; loadRows(); } });
  $("table-next").addEventListener("click", () => { state.tablePage += 1; loadRows(); });
  $("log-filters").addEventListener("submit", (event) => { event.preventDefault(); startLogs(); });
  $("log-follow").addEventListener("change", () => scheduleFollow(state.logRound));
}

wire();
api("me").then(showMain, showLogin);
