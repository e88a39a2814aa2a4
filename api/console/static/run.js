// The run page's live parts: task states over the WebSocket (docs/websocket.md), ticking durations, a task's log
// (tail, then followed while it runs, with a line filter), and the rerun / cancel buttons (shown only to roles that
// may use them; the API decides anyway).
import { api, base, enableScripted, errorText, formatSize, tickDurations } from "./console.js";

const root = document.getElementById("run");
const runId = root.dataset.run;
const FINISHED = new Set(["succeeded", "failed", "cancelled", "error", "skipped"]);
const RUN_FINISHED = new Set(["succeeded", "failed", "cancelled", "error", "skipped"]);

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge s-${status}`;
  span.textContent = status;
  return span;
}

// A task's row is `#t-<name>`; its cells, in order: status, attempt, started, duration, exit code, message, results.
const CELL = { status: 1, attempt: 2, started: 3, duration: 4, exit: 5, msg: 6, results: 7 };
const rowOf = (name) => document.getElementById(`t-${name}`);
const cell = (row, which) => row.cells[CELL[which]];

function setTask(name, data, time) {
  const row = rowOf(name);
  const node = document.querySelector(`#dag a[data-task="${CSS.escape(name)}"]`);
  const status = data.status;
  if (node && status) {
    node.setAttribute("class", `node s-${status}`);
    node.querySelector("text.st").textContent = status;
  }
  if (!row) return;
  if (status) cell(row, "status").replaceChildren(badge(status));
  if (data.attempt) cell(row, "attempt").textContent = data.attempt;
  if ("exit_code" in data) cell(row, "exit").textContent = data.exit_code ?? "";
  if (data.message || data.reason) cell(row, "msg").textContent = data.message || data.reason;
  const dur = cell(row, "duration");
  if (status === "running" && time) {
    dur.dataset.start = time;
    delete dur.dataset.end;
    cell(row, "started").textContent = new Date(time).toISOString().slice(11, 19);
  }
  if (FINISHED.has(status) && time && dur.dataset.start) dur.dataset.end = time;
  tickDurations(row);
  if (logTask === name && FINISHED.has(status)) logState.textContent = `${name}: ${status}`;
}

function showRun(status, message) {
  root.dataset.status = status;
  document.getElementById("run-status").replaceChildren(badge(status));
  if (message !== undefined) document.getElementById("action-message").textContent = message || "";
  const finished = RUN_FINISHED.has(status);
  const show = (sel, on) => { const el = root.querySelector(sel); if (el) el.hidden = !on; };
  show('[data-action="cancel"]', !finished);
  show('[data-action="rerun"]', finished);
  show('[data-action="rerun-failed"]', ["failed", "error", "cancelled"].includes(status));
  show(".from-task", finished);
}

function setRun(status, message, time) {
  const was = root.dataset.status;
  showRun(status, message);
  const dur = document.getElementById("run-duration");
  if (status === "running" && time && !dur.dataset.start) dur.dataset.start = time;
  if (RUN_FINISHED.has(status) && time) dur.dataset.end = time;
  if (RUN_FINISHED.has(status) && !RUN_FINISHED.has(was)) refresh();
}

// The task table shows one page of the run's tasks (the page's filters and cursor in `data-query`); the counts
// above it are of every task, kept live by asking the API again at most once a second while states change.
const tasksTable = document.getElementById("tasks");
const PAGE_LIMIT = 100;

function showCounts(counts) {
  const box = document.getElementById("task-counts");
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const all = document.createElement("a");
  all.href = "?";
  all.dataset.status = "";
  all.textContent = `${total.toLocaleString("en")} task${total === 1 ? "" : "s"}`;
  const parts = [all];
  for (const status of Object.keys(counts).sort()) {
    const link = document.createElement("a");
    link.href = `?status=${encodeURIComponent(status)}`;
    link.dataset.status = status;
    const n = document.createElement("span");
    n.className = "n";
    n.textContent = counts[status].toLocaleString("en");
    link.append(badge(status), " ", n);
    parts.push(" ", link);
  }
  box.replaceChildren(...parts);
}

let countsStale = false;
async function refreshCounts() {
  if (!countsStale) return;
  countsStale = false;
  const res = await api(`/v1/runs/${encodeURIComponent(runId)}/tasks?limit=1`);
  if (res.ok) showCounts((await res.json()).counts);
}

/** The run and this page's tasks as the API has them now: exit codes, results and artifacts after the end, and a
 * safety net for live events the WebSocket cannot promise (docs/websocket.md: on Postgres, an event committed more
 * than a second after its id was taken is stored but not pushed). Bounded by the page, not the run's size. */
async function refresh() {
  const query = tasksTable.dataset.query;
  const [runRes, pageRes] = await Promise.all([
    api(`/v1/runs/${encodeURIComponent(runId)}?tasks=0`),
    api(`/v1/runs/${encodeURIComponent(runId)}/tasks?limit=${PAGE_LIMIT}${query ? `&${query}` : ""}`),
  ]);
  if (!runRes.ok || !pageRes.ok) return;
  const run = await runRes.json();
  const page = await pageRes.json();
  showRun(run.status, run.message);
  showCounts(page.counts);
  const rdur = document.getElementById("run-duration");
  if (run.started_at) rdur.dataset.start = run.started_at;
  if (run.finished_at) rdur.dataset.end = run.finished_at;
  for (const t of page.items) {
    setTask(t.name, { status: t.status, attempt: t.attempt, exit_code: t.exit_code, message: t.message, reason: t.reason });
    const row = rowOf(t.name);
    if (!row) continue;
    const dur = cell(row, "duration");
    if (t.started_at) dur.dataset.start = t.started_at;
    if (t.finished_at) dur.dataset.end = t.finished_at;
    const results = cell(row, "results");
    {
      results.replaceChildren();
      for (const [k, v] of Object.entries(t.results || {})) {
        const div = document.createElement("div");
        div.textContent = `${k} = ${typeof v === "string" ? v : JSON.stringify(v)}`;
        results.append(div);
      }
      for (const [k, a] of Object.entries(t.artifacts || {})) {
        const div = document.createElement("div");
        div.className = "downloads";
        const link = document.createElement("a");
        link.href = `${base}/v1/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(t.name)}/${encodeURIComponent(k)}`;
        link.download = "";
        link.title = a.digest;
        link.textContent = k;
        const code = document.createElement("code");
        code.textContent = `${a.path} (${a.type}, ${formatSize(a.size)})`;
        div.append(link, " ", code);
        results.append(div);
      }
    }
  }
  tickDurations();
}

// -- live states ------------------------------------------------------------------------------------------------
let lastEvent = 0;
let delay = 500;

function apply(e) {
  if (e.id <= lastEvent || e.run_id !== runId) return;
  lastEvent = e.id;
  if (e.kind === "task.status" && e.task) { setTask(e.task, e.data, e.time); countsStale = true; }
  else if (e.kind === "run.status") setRun(e.data.status, e.data.message, e.time);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${base}/v1/ws`, ["odin.v1"]);
  ws.onmessage = (msg) => {
    const m = JSON.parse(msg.data);
    if (m.type === "subscribed") refresh();  // what changed between the page's rendering and the subscription
    else if (m.type === "welcome") {
      delay = 500;
      ws.send(JSON.stringify({ type: "subscribe", id: "run", run: runId, since: lastEvent }));
      root.dataset.live = "yes";
    } else if (m.type === "event") apply(m.event);
    else if (m.type === "events") m.events.forEach(apply);
    else if (m.type === "error" && m.status === 4401) location.reload();
  };
  ws.onclose = () => {
    root.dataset.live = "no";
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  };
}

// -- a task's log -----------------------------------------------------------------------------------------------
const panel = document.getElementById("log-panel");
const logEl = document.getElementById("log");
const logState = document.getElementById("log-state");
const search = document.getElementById("log-search");
let logTask = null;
let logLines = [];
let logAbort = null;

function renderLog() {
  const q = search.value.trim().toLowerCase();
  const lines = q ? logLines.filter((l) => l.toLowerCase().includes(q)) : logLines;
  logEl.textContent = lines.join("\n");
  if (!q) logEl.scrollTop = logEl.scrollHeight;
}

async function openLog(task) {
  logAbort?.abort();
  logAbort = new AbortController();
  logTask = task;
  logLines = [];
  panel.hidden = false;
  document.getElementById("log-title").textContent = `Log of ${task}`;
  logState.textContent = "loading…";
  renderLog();
  loadEvents(task);
  const status = rowOf(task)?.querySelector(".badge")?.textContent;
  const follow = !FINISHED.has(status);
  const path = `/v1/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(task)}/logs?tail=1000${follow ? "&follow=true" : ""}`;
  try {
    const res = await api(path, { signal: logAbort.signal });
    if (!res.ok) { logState.textContent = await errorText(res); return; }
    logState.textContent = follow ? "following…" : "";
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let partial = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const parts = (partial + value).split("\n");
      partial = parts.pop();
      logLines.push(...parts);
      renderLog();
    }
    if (partial) logLines.push(partial);
    renderLog();
    logState.textContent = logLines.length ? "end of log" : "the log is empty";
  } catch (e) {
    if (e.name !== "AbortError") logState.textContent = `cannot read the log: ${e.message}`;
  }
}

// -- a task's events: Odin's state changes, and Kubernetes events when the executor is Kubernetes ---------------
const eventsTable = document.getElementById("events");
const eventsState = document.getElementById("events-state");

function eventRow(time, source, kind, object, message) {
  const tr = document.createElement("tr");
  for (const text of [time ? new Date(time).toISOString().replace("T", " ").slice(0, 19) : "", source, kind, object, message]) {
    const td = document.createElement("td");
    td.textContent = text ?? "";
    tr.append(td);
  }
  return tr;
}

async function loadEvents(task) {
  eventsTable.hidden = true;
  eventsState.textContent = "loading events…";
  const res = await api(`/v1/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(task)}/events`);
  if (logTask !== task) return;
  if (!res.ok) { eventsState.textContent = await errorText(res); return; }
  const body = await res.json();
  const rows = [
    ...(body.platform || []).map((e) => [e.time, "Kubernetes", `${e.type ?? ""} ${e.reason ?? ""}`.trim(), e.object, `${e.message ?? ""}${e.count > 1 ? ` (×${e.count})` : ""}`]),
    ...body.events.map((e) => [e.time, "Odin", e.kind, e.task, [e.data.status, e.data.reason, e.data.message].filter(Boolean).join(": ")]),
  ].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  eventsTable.tBodies[0].replaceChildren(...rows.map((r) => eventRow(...r)));
  eventsTable.hidden = rows.length === 0;
  eventsState.textContent = rows.length === 0 ? "no events" : (body.platform || []).length ? "" : "Odin's events (no Kubernetes events for this task)";
}

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("#tasks th button");
  if (button) { openLog(button.closest("tr").id.slice(2)); return; }
  const node = ev.target.closest("#dag a[data-task]");
  if (node) { openLog(node.dataset.task); rowOf(node.dataset.task)?.querySelector("button").focus(); }
});
search.addEventListener("input", renderLog);

// -- the frozen spec, fetched when opened (a 1,000-task spec would double the page's weight) ---------------------
document.getElementById("spec").addEventListener("toggle", async (ev) => {
  const pre = document.getElementById("spec-text");
  if (!ev.target.open || pre.dataset.loaded) return;
  const res = await api(`/v1/runs/${encodeURIComponent(runId)}?tasks=0`);
  pre.textContent = res.ok ? JSON.stringify((await res.json()).spec, null, 2) : await errorText(res);
  pre.dataset.loaded = "yes";
});

// -- actions ----------------------------------------------------------------------------------------------------
async function act(action) {
  const out = document.getElementById("action-message");
  const path = `/v1/runs/${encodeURIComponent(runId)}/${action === "cancel" ? "cancel" : "rerun"}`;
  const body = action === "rerun-failed" ? { failed_only: true }
    : action === "rerun-from" ? { task: document.getElementById("rerun-task").value }
    : action === "rerun" ? {} : undefined;
  out.textContent = action === "cancel" ? "cancelling…" : "starting a rerun…";
  const res = await api(path, { method: "POST", body });
  if (!res.ok) { out.textContent = await errorText(res); return; }
  const run = await res.json();
  if (action === "cancel") out.textContent = "cancel requested";
  else location.href = `${base}/console/runs/${encodeURIComponent(run.id)}`;
}

root.addEventListener("click", (ev) => {
  const button = ev.target.closest("button[data-action]");
  if (button) act(button.dataset.action);
});

enableScripted();
tickDurations();
setInterval(tickDurations, 1000);
setInterval(() => { if (!RUN_FINISHED.has(root.dataset.status)) refresh(); }, 5000);
setInterval(refreshCounts, 1000);
connect();
