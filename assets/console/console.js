// The tailcast web console.
//
// Data flow: one SseClient on `/events?channel=…` carries every selected
// stream (so a page never runs into the browser's six-connections-per-host
// limit); each event becomes a record (text, parsed JSON, level, time,
// message), queued on the pane that shows its stream; once per animation
// frame each pane (view.js, a virtualised list) takes its queued records
// in, drops what is past the cap and redraws the rows near its viewport in
// one DOM write. Nothing touches the DOM per event. This module decides
// what the panes show: filters (source, level, regex), the highlight
// search, columns, time zone; and runs downloads.
//
// The page state that a link should keep (selected streams, view mode,
// columns) is in the URL hash:
// `#streams=log:app.log,news&view=split&cols=time,labels.host,message`.

import { SseClient } from "./sse.js";
import { parseJsonLine, stripAnsi } from "./render.js";
import { Sparkline, formatBytes } from "./charts.js";
import { fetchHistory } from "./history.js";
import { DEFAULT_COLUMNS, collectPaths, detectLevel, jsonMessage, jsonTime, levelRank, parseColumns } from "./fields.js";
import { MERGED, Pane, buildLine, label, sourceColour } from "./view.js";
import { downloadHistory, downloadShown } from "./download.js";

const $ = (id) => document.getElementById(id);
const MIN_CAP = 100;
const MAX_CAP = 100000;

// ---------------------------------------------------------------- settings

const saved = (key, fallback) => {
  try {
    return localStorage.getItem(`tailcast.${key}`) ?? fallback;
  } catch {
    return fallback;
  }
};
const save = (key, value) => {
  try {
    localStorage.setItem(`tailcast.${key}`, value);
  } catch {
    /* private mode: settings last for this page only */
  }
};

const app = {
  /** Streams offered by `/api/streams`. */
  available: [],
  /** Names of the streams followed, in the order picked. */
  selected: [],
  view: "merged",
  cap: clampCap(Number(saved("cap", 5000))),
  pretty: saved("pretty", "0") === "1",
  running: true,
  /** Filter: `test` decides visibility, `mark` (global) highlights. */
  filter: null,
  client: null,
  /** Reconnects of clients that were replaced (selection changes). */
  reconnectsBefore: 0,
  total: 0,
  /** Events counted in the current second, and the last full second's count. */
  tick: 0,
  rate: 0,
  /** Arrival number of records, so a merged view keeps arrival order. */
  seq: 0,
  panes: new Map(),
  flushQueued: false,
  /** When the status bar was last drawn (performance.now()). */
  statusAt: 0,
  lastId: null,
  /** Per stream, the last hub sequence number shown (see `dedupe`). */
  lastSeq: new Map(),
  /** Arrival numbers of records loaded from history go down from here. */
  earlySeq: 0,
  /** The columns shown, in order (built-ins and dotted JSON paths). */
  columns: parseColumns(saved("columns", "")) || [...DEFAULT_COLUMNS],
  /** Times in UTC (else the browser's zone). */
  utc: saved("utc", "0") === "1",
  /** Lowest level shown (fields.js levelRank), 0: every line. */
  minLevel: 0,
  /** Streams of the merged view hidden by the source filter. */
  hiddenSources: new Set(),
  /** The highlight search: `{re, text}` or null. */
  search: null,
  /** The search's current match (a record). */
  current: null,
  /** Dotted paths seen in JSON lines: the column picker's suggestions. */
  paths: new Set(),
};

/** Lines asked for per "load earlier lines". */
const EARLIER_PAGE = 200;

function clampCap(n) {
  return Math.min(MAX_CAP, Math.max(MIN_CAP, Math.round(Number.isFinite(n) ? n : 5000)));
}

// ------------------------------------------------------------------- panes
//
// The views themselves are view.js's `Pane` (a virtualised list); what
// they show is decided here: `visible` (every filter), the columns,
// `marks` (filter and search highlights), the source tags.

/** Whether record `r` passes the filters: source, level, regex. */
function visible(r) {
  if (r.kind === "marker") return true;
  if (app.hiddenSources.size && app.hiddenSources.has(r.stream)) return false;
  if (app.minLevel && levelRank(r.level) < app.minLevel) return false;
  return !app.filter || app.filter.test.test(r.plain);
}

/** Highlights of a row: the regex filter's, then the search's. */
function marks() {
  const list = [];
  if (app.filter) list.push({ re: app.filter.mark, cls: "" });
  if (app.search) list.push({ re: app.search.re, cls: "hit" });
  return list;
}

/** Whether rows of `pane` carry a source tag: several streams merged, or a broadcast. */
function showSource(pane, r) {
  return pane.key === MERGED && (app.selected.length > 1 || (r && r.kind === "broadcast"));
}

/**
 * Fetches the lines before the oldest one kept from `/api/history` and
 * puts them on top, keeping the view where it is. Never past the cap: a
 * full view asks for a larger "keep" first.
 */
async function loadEarlier(pane) {
  if (pane.loading || pane.exhausted) return;
  pane.flushPendingIntoRecords();
  const room = app.cap - pane.records.length;
  if (room <= 0) {
    pane.setEarlier("view full: raise keep", true);
    return;
  }
  const oldest = pane.records.find((r) => r.id && r.kind !== "marker");
  pane.loading = true;
  pane.setEarlier("loading…", true);
  try {
    const page = await fetchHistory(pane.streams(app.selected), {
      before: oldest ? oldest.id : null,
      limit: Math.min(EARLIER_PAGE, room),
    });
    // Lines that arrived live meanwhile are not shown twice.
    const known = new Set([...pane.records, ...pane.pending].map((r) => r.id));
    const events = page.events.filter((e) => !known.has(e.id)).reverse();
    // Arrival numbers below every record so far keep merged views in order.
    const base = app.earlySeq - events.length;
    app.earlySeq = base;
    pane.prepend(
      events.map((e, i) => {
        const record = historyRecord(e);
        record.n = base + i;
        return record;
      }),
    );
    pane.exhausted = !page.more;
    pane.setEarlier(pane.exhausted ? "start of history" : "⤒ earlier", pane.exhausted);
  } catch (e) {
    pane.setEarlier("⤒ earlier", false);
    pane.earlier.title = `Loading earlier lines failed: ${e.message}`;
  } finally {
    pane.loading = false;
  }
}

/** The context the panes read (see view.js). */
Object.assign(app, {
  visible,
  marks,
  showSource,
  loadEarlier,
  onRows: () => searchStale(),
});

/** Builds the panes for the current selection and view, keeping the lines. */
function layoutPanes() {
  const records = [];
  for (const pane of app.panes.values()) {
    pane.flushPendingIntoRecords();
    records.push(...pane.records);
  }
  records.sort((a, b) => a.n - b.n);
  const keep = new Set(app.selected);
  // A record seen in several panes (broadcast) is kept once.
  const unique = [...new Set(records)].filter((r) => keep.has(r.stream) || r.kind !== "line");

  const host = $("panes");
  host.replaceChildren();
  host.className = `panes ${app.view}`;
  for (const pane of app.panes.values()) pane.dispose();
  app.panes = new Map();
  if (!app.selected.length) {
    const empty = document.createElement("div");
    empty.className = "empty-view";
    empty.id = "empty-view";
    empty.textContent = app.available.length
      ? "Pick one or more streams in the sidebar (☰) to follow them."
      : "No stream yet: start tailcast with a log file, or publish to a channel.";
    host.appendChild(empty);
    return;
  }
  const keys = app.view === "split" ? app.selected : [MERGED];
  for (const key of keys) {
    const title = key === MERGED ? app.selected.map(label).join(" + ") : label(key);
    const pane = new Pane(key, title, app);
    app.panes.set(key, pane);
    host.appendChild(pane.root);
  }
  for (const name of [...app.hiddenSources]) if (!app.selected.includes(name)) app.hiddenSources.delete(name);
  for (const r of unique) for (const pane of panesFor(r.stream)) pane.records.push(r);
  for (const pane of app.panes.values()) {
    renderSources(pane);
    renderColumnsHead(pane);
    pane.rerender();
  }
}

/**
 * The source filter of a merged view of several streams: one button per
 * stream, in its colour; a click hides or shows its lines (the lines are
 * kept, and the connection stays as it is).
 */
function renderSources(pane) {
  pane.sourcesEl.replaceChildren();
  if (pane.key !== MERGED || app.selected.length < 2) return;
  for (const name of app.selected) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "src small";
    b.dataset.source = name;
    b.textContent = label(name);
    b.style.background = sourceColour(name);
    const on = !app.hiddenSources.has(name);
    b.setAttribute("aria-pressed", String(on));
    b.title = on ? `Hide the lines of ${name}` : `Show the lines of ${name}`;
    b.onclick = () => {
      if (app.hiddenSources.has(name)) app.hiddenSources.delete(name);
      else app.hiddenSources.add(name);
      renderSources(pane);
      pane.rerender();
    };
    pane.sourcesEl.appendChild(b);
  }
}

/** The column titles above a view's rows. */
function renderColumnsHead(pane) {
  const cells = [];
  for (const col of app.columns) {
    if (col === "source" && !showSource(pane, null)) continue;
    const span = document.createElement("span");
    span.className = { time: "cell c-time", level: "cell c-level", source: "tag c-source", message: "text" }[col] || "cell c-field";
    span.textContent = col === "time" ? `time (${app.utc ? "UTC" : "local"})` : col;
    cells.push(span);
  }
  pane.colsHead.replaceChildren(...cells);
}

/** The panes that show `stream`; broadcasts and unknown streams go to all. */
function panesFor(stream) {
  if (app.panes.has(MERGED)) return [app.panes.get(MERGED)];
  const pane = app.panes.get(stream);
  return pane ? [pane] : [...app.panes.values()];
}

function scheduleFlush() {
  if (app.flushQueued) return;
  app.flushQueued = true;
  requestAnimationFrame(() => {
    app.flushQueued = false;
    for (const pane of app.panes.values()) pane.flush();
    // The status bar follows closely, but at most ten times a second.
    const now = performance.now();
    if (now - app.statusAt > 100) updateStatus();
  });
}

// ------------------------------------------------------------- connection

/** `epoch-seq` ids: the hub-wide sequence number, for ordering checks. */
function idParts(id) {
  const i = id ? id.lastIndexOf("-") : -1;
  return i < 0 ? null : { epoch: id.slice(0, i), seq: Number(id.slice(i + 1)) };
}

function eventsUrl() {
  const q = new URLSearchParams();
  for (const name of app.selected) q.append("channel", name);
  return `/events?${q}`;
}

/**
 * (Re)opens the one multiplexed connection for the current selection.
 * `resume`: continue after the last id (nothing missed, no repeats); used
 * when streams were only removed. Otherwise the new connection starts
 * afresh, so newly added log streams show their backlog, and lines already
 * shown are skipped by sequence number.
 */
function connect(resume) {
  if (app.client) {
    app.reconnectsBefore += app.client.reconnects;
    app.client.stop();
    app.client = null;
  }
  if (!app.selected.length) {
    setConnState("idle", "");
    return;
  }
  const dedupe = !resume;
  const client = new SseClient({
    url: eventsUrl,
    lastId: resume ? app.lastId : null,
    onEvent: (ev) => onEvent(ev, client, dedupe),
    onState: (state, info) => {
      if (client !== app.client) return;
      if (state === "unauthorized") {
        setConnState("unauthorized", info.error);
        askSignIn(info.error === "token expired" ? "Your token expired: paste a new one to go on where you left off." : info.error);
        return;
      }
      if (state === "waiting") setConnState("waiting", `reconnecting in ${Math.round(info.delay / 100) / 10} s${info.error ? ` (${info.error})` : ""}`);
      else if (state === "failed") setConnState("failed", info.error);
      else setConnState(state, "");
      if (state === "open") loadStreams(); // subscriber counts changed
    },
  });
  app.client = client;
  if (app.running) client.start();
  else setConnState("stopped", "");
}

function onEvent(ev, client, dedupe) {
  if (client !== app.client) return;
  if (ev.id) app.lastId = ev.id;
  app.total++;
  app.tick++;
  let stream = null;
  let text = ev.data;
  if (ev.type === "reset") {
    let info = {};
    try {
      info = JSON.parse(ev.data);
    } catch {
      /* keep the raw text */
    }
    const name = info.channel || "?";
    const record = makeRecord(name, "reset", `⚠ reset on ${label(name)}: ${info.reason || ev.data} — earlier lines may be missing here`, ev.id, "marker");
    for (const pane of panesFor(name)) pane.add(record);
    scheduleFlush();
    return;
  }
  // Multiplexed events carry {"channel": ..., "data": ...}.
  if (ev.data.charCodeAt(0) === 123) {
    try {
      const env = JSON.parse(ev.data);
      if (env && typeof env.channel === "string" && "data" in env) {
        stream = env.channel;
        text = typeof env.data === "string" ? env.data : JSON.stringify(env.data);
      }
    } catch {
      /* not an envelope */
    }
  }
  if (ev.type === "broadcast" && !stream) stream = "broadcast";
  if (!stream) stream = app.selected.length === 1 ? app.selected[0] : "?";
  const parts = idParts(ev.id);
  if (parts) {
    const prev = app.lastSeq.get(stream);
    if (dedupe && prev && prev.epoch === parts.epoch && parts.seq <= prev.seq) return;
    app.lastSeq.set(stream, parts);
  }
  const kind = ev.type === "broadcast" || stream === "broadcast" ? "broadcast" : "line";
  const record = makeRecord(stream, ev.type, text, ev.id, kind);
  for (const pane of panesFor(stream)) pane.add(record);
  scheduleFlush();
}

/** A record for an event of `/api/history`. */
function historyRecord(e) {
  const kind = e.event === "broadcast" || e.channel === "broadcast" ? "broadcast" : "line";
  return makeRecord(e.channel, e.event, e.data, e.id, kind, true);
}

function makeRecord(stream, type, text, id, kind, fromHistory = false) {
  const plain = stripAnsi(text);
  const json = kind === "marker" ? null : parseJsonLine(plain) ?? null;
  if (json && app.paths.size < 200) collectPaths(json, app.paths);
  const own = json ? jsonTime(json) : null;
  const level = kind === "marker" ? "" : detectLevel(plain, json);
  let levelText = level;
  if (json && typeof json === "object" && !Array.isArray(json)) {
    const v = json.level ?? json.severity ?? json.lvl ?? json.levelname;
    if (typeof v === "string" || typeof v === "number") levelText = String(v);
  }
  const message = json ? jsonMessage(json) ?? text : text;
  return {
    n: app.seq++,
    stream,
    type,
    text,
    plain,
    id,
    kind,
    json,
    level,
    levelText,
    message,
    // The record's own time, else when this page received it (history: unknown).
    time: own ?? (fromHistory ? null : Date.now()),
    timeReceived: own === null,
    open: !!(json && app.pretty),
    h: 0,
  };
}

// ---------------------------------------------------------- history search

/** Where the current history search stands. */
const search = { q: "", before: null, count: 0 };

/**
 * Searches `/api/history` of the selected streams for the regex typed in
 * the box, newest first, 100 matches at a time; `more`: the next older
 * page of the same search.
 */
async function runSearch(more) {
  if (!more) {
    search.q = $("history-q").value.trim();
    search.before = null;
    search.count = 0;
    $("history-results").replaceChildren();
  }
  const streams = [...app.selected];
  const summary = $("history-summary");
  if (!$("history-dialog").open) $("history-dialog").showModal();
  $("history-more").hidden = true;
  if (!streams.length) {
    summary.textContent = "pick a stream first";
    return;
  }
  summary.textContent = "searching…";
  try {
    const page = await fetchHistory(streams, { before: search.before, q: search.q, limit: 100 });
    const frag = document.createDocumentFragment();
    const pane = { key: MERGED };
    for (const e of page.events) frag.appendChild(buildLine(historyRecord(e), pane, app));
    $("history-results").appendChild(frag);
    search.before = page.before;
    search.count += page.events.length;
    const what = search.q ? `matching /${search.q}/` : "";
    summary.textContent = `${search.count.toLocaleString()} ${what} in ${streams.map(label).join(", ")}${page.more ? "" : " (all)"}`;
    $("history-more").hidden = !page.more;
  } catch (e) {
    summary.textContent = e.message;
    summary.classList.add("error-text");
    setTimeout(() => summary.classList.remove("error-text"), 3000);
  }
}

function setConnState(state, detail) {
  $("conn-dot").className = `dot ${state}`;
  $("conn-state").textContent = { open: "live", waiting: "reconnecting", connecting: "connecting" }[state] || state;
  $("conn-error").textContent = detail || "";
  document.body.dataset.conn = state;
  updateStatus();
}

// ------------------------------------------------------------- start/stop

async function stop() {
  if (!app.running) return;
  app.running = false;
  document.body.classList.remove("running");
  if (app.client) app.client.stop();
  setConnState("stopped", "");
  // Nothing received yet: remember where the hub is now, so Start resumes
  // from this moment rather than from whenever it is pressed.
  if (!app.lastId && app.selected.length) {
    app.stopMark = fetch("/api/streams")
      .then((r) => r.json())
      .then((list) => {
        const ids = list.map((s) => s.last_id).filter(Boolean).map(idParts).filter(Boolean);
        ids.sort((a, b) => b.seq - a.seq);
        if (ids.length && !app.lastId && app.client) app.client.lastId = `${ids[0].epoch}-${ids[0].seq}`;
      })
      .catch(() => {});
  }
}

async function start() {
  if (app.running) return;
  app.running = true;
  document.body.classList.add("running");
  if (app.stopMark) await app.stopMark;
  app.stopMark = null;
  if (app.client && app.running) app.client.start();
}

// --------------------------------------------------------------- streams

async function loadStreams() {
  try {
    const res = await fetch("/api/streams", { cache: "no-store" });
    if (res.status === 401) {
      // Refused (no token, or it expired): the same state as a stream's
      // 401 or `token-expired`, whichever the page hears first.
      const body = await res.json().catch(() => ({}));
      setConnState("unauthorized", body.detail);
      askSignIn(body.detail);
      return;
    }
    const list = await res.json();
    if (!Array.isArray(list)) throw new Error(list.detail || `${res.status}`);
    app.available = list;
  } catch (err) {
    $("conn-error").textContent = `cannot list streams: ${err.message}`;
    return;
  }
  renderStreams();
}

function renderStreams() {
  const list = $("streams");
  const names = new Set(app.available.map((s) => s.name));
  // Selected channels that do not exist yet are listed too.
  const rows = [...app.available];
  for (const name of app.selected) {
    if (!names.has(name)) rows.push({ name, kind: name.startsWith("log:") ? "log" : "channel", state: "new", subscribers: 0 });
  }
  list.replaceChildren();
  if (!rows.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "no streams yet";
    list.appendChild(li);
  }
  for (const s of rows) {
    const li = document.createElement("li");
    const lab = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = app.selected.includes(s.name);
    box.dataset.stream = s.name;
    box.onchange = () => {
      const next = box.checked ? [...app.selected, s.name] : app.selected.filter((n) => n !== s.name);
      select(next);
    };
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label(s.name);
    name.title = s.path ? `${s.name} — ${s.path}` : s.name;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = s.kind;
    const meta = document.createElement("span");
    meta.className = "meta";
    const bad = typeof s.state === "string" && s.state.startsWith("error");
    meta.textContent = s.kind === "log" && s.state !== "following" ? s.state : `${s.subscribers ?? 0} sub`;
    if (bad) meta.classList.add("state-bad");
    meta.title = `state: ${s.state}, subscribers: ${s.subscribers}, last id: ${s.last_id ?? "none"}`;
    lab.append(box, name, kind, meta);
    li.appendChild(lab);
    list.appendChild(li);
  }
  // Publish targets: channels (not logs) and broadcast.
  const targets = $("publish-targets");
  targets.replaceChildren();
  for (const name of ["broadcast", ...rows.filter((s) => s.kind === "channel" && s.name !== "broadcast").map((s) => s.name)]) {
    const option = document.createElement("option");
    option.value = name;
    targets.appendChild(option);
  }
}

/** Follows exactly `names`. */
function select(names) {
  const before = app.selected;
  names = [...new Set(names)];
  const added = names.some((n) => !before.includes(n));
  app.selected = names;
  writeHash();
  renderStreams();
  layoutPanes();
  connect(!added && !!app.lastId);
}

function readHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  const streams = q.get("streams");
  const view = q.get("view");
  return { streams: streams ? streams.split(",").filter(Boolean) : null, view, columns: parseColumns(q.get("cols")) };
}

function writeHash() {
  const q = new URLSearchParams();
  if (app.selected.length) q.set("streams", app.selected.join(","));
  if (app.view !== "merged") q.set("view", app.view);
  if (app.columns.join() !== DEFAULT_COLUMNS.join()) q.set("cols", app.columns.join(","));
  history.replaceState(null, "", `#${q.toString().replace(/%2C/g, ",").replace(/%3A/g, ":")}`);
}

// ---------------------------------------------------------------- filter

function applyFilter() {
  const input = $("filter");
  const source = input.value;
  const flags = $("filter-case").checked ? "" : "i";
  input.classList.remove("invalid");
  input.title = "Regex filter and highlight (/ to focus, Esc to clear)";
  if (!source) app.filter = null;
  else {
    try {
      app.filter = { test: new RegExp(source, flags), mark: new RegExp(source, `g${flags}`) };
    } catch (err) {
      // Not a valid regex (yet, while typing): match it as plain text.
      input.classList.add("invalid");
      input.title = `${err.message} — matching as plain text`;
      const literal = source.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      app.filter = { test: new RegExp(literal, flags), mark: new RegExp(literal, `g${flags}`) };
    }
  }
  for (const pane of app.panes.values()) pane.rerender();
}

function setMinLevel(value) {
  app.minLevel = Math.max(0, Math.min(4, Number(value) || 0));
  $("min-level").value = String(app.minLevel);
  for (const pane of app.panes.values()) pane.rerender();
}

// ------------------------------------------------------------ highlight
//
// The highlight search marks matches (plain text, any case) without
// hiding rows; Enter / n goes to the next matching row, Shift+Enter / N
// to the previous one, across the views in order.

/** The matching rows `[{pane, i}]`; null when stale (rows changed). */
let hits = null;
let hitsTimer = 0;

function searchStale() {
  if (!app.search) return;
  hits = null;
  // The count follows new lines, at most twice a second.
  if (!hitsTimer) hitsTimer = setTimeout(() => {
    hitsTimer = 0;
    updateSearchCount();
  }, 500);
}

/** The text a row shows (what the highlight marks). */
const shownText = (r) => (r.open && r.json ? JSON.stringify(r.json, null, 2) : stripAnsi(r.message));

function findHits() {
  if (hits) return hits;
  hits = [];
  if (!app.search) return hits;
  const test = app.search.test;
  for (const pane of app.panes.values()) {
    pane.rows.forEach((r, i) => {
      if (r.kind !== "marker" && test.test(shownText(r))) hits.push({ pane, i, r });
    });
  }
  return hits;
}

function updateSearchCount() {
  if (!app.search) {
    $("search-count").textContent = "";
    return;
  }
  const list = findHits();
  const at = list.findIndex((h) => h.r === app.current);
  $("search-count").textContent = list.length ? `${at >= 0 ? at + 1 : "–"} / ${list.length.toLocaleString()}` : "no match";
}

function applySearch() {
  const text = $("search").value;
  app.current = null;
  if (!text) app.search = null;
  else {
    const literal = text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    app.search = { text, re: new RegExp(literal, "gi"), test: new RegExp(literal, "i") };
  }
  hits = null;
  // The search hides nothing: the same rows, drawn with the new marks.
  for (const pane of app.panes.values()) pane.redraw();
  updateSearchCount();
}

/** Moves to the next (`step` 1) or previous (-1) matching row. */
function gotoHit(step) {
  if (!app.search) return;
  const list = findHits();
  if (!list.length) {
    updateSearchCount();
    return;
  }
  let at = list.findIndex((h) => h.r === app.current);
  if (at < 0) {
    // From the rows in view: the first match below the top (or above, going back).
    at = step > 0 ? -1 : list.length;
  }
  at = (at + step + list.length) % list.length;
  const old = app.current;
  const hit = list[at];
  app.current = hit.r;
  for (const pane of app.panes.values()) {
    if (old) pane.redrawRecord(old);
    pane.redrawRecord(hit.r);
  }
  hit.pane.reveal(hit.i);
  updateSearchCount();
}

// --------------------------------------------------------------- columns

function setColumns(columns) {
  app.columns = columns.length ? columns : [...DEFAULT_COLUMNS];
  save("columns", app.columns.join(","));
  writeHash();
  renderColumnsDialog();
  for (const pane of app.panes.values()) {
    renderColumnsHead(pane);
    pane.redraw();
  }
}

function renderColumnsDialog() {
  const list = $("columns-list");
  list.replaceChildren();
  app.columns.forEach((col, i) => {
    const li = document.createElement("li");
    li.dataset.column = col;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = col;
    const button = (text, title, act, disabled) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "icon small";
      b.textContent = text;
      b.title = title;
      b.disabled = disabled;
      b.dataset.act = act;
      b.onclick = () => {
        const next = [...app.columns];
        if (act === "hide") next.splice(i, 1);
        else {
          const j = act === "up" ? i - 1 : i + 1;
          [next[i], next[j]] = [next[j], next[i]];
        }
        setColumns(next);
      };
      return b;
    };
    li.append(name, button("↑", `Move ${col} left`, "up", i === 0), button("↓", `Move ${col} right`, "down", i === app.columns.length - 1), button("✕", `Hide ${col}`, "hide", app.columns.length === 1));
    list.appendChild(li);
  });
  const options = $("columns-paths");
  options.replaceChildren();
  for (const path of [...DEFAULT_COLUMNS, ...[...app.paths].sort()]) {
    if (app.columns.includes(path)) continue;
    const o = document.createElement("option");
    o.value = path;
    options.appendChild(o);
  }
}

function addColumn(e) {
  e.preventDefault();
  const input = $("columns-field");
  const cols = parseColumns(input.value.trim());
  if (!cols) {
    input.classList.add("invalid");
    return;
  }
  input.classList.remove("invalid");
  input.value = "";
  setColumns([...app.columns.filter((c) => !cols.includes(c)), ...cols]);
}

// ------------------------------------------------------------ time zone

function setUtc(on) {
  app.utc = on;
  save("utc", on ? "1" : "0");
  $("tz").textContent = on ? "UTC" : "Local";
  $("tz").setAttribute("aria-pressed", String(on));
  $("download-zone").textContent = on ? "UTC" : `the browser's zone (${Intl.DateTimeFormat().resolvedOptions().timeZone || "local"})`;
  for (const pane of app.panes.values()) {
    renderColumnsHead(pane);
    pane.redraw();
  }
}

// -------------------------------------------------------------- download

async function runDownload(e) {
  e.preventDefault();
  const what = new FormData($("download-form")).get("what");
  const format = $("download-format").value;
  const status = $("download-status");
  status.className = "muted small";
  const streams = [...app.selected];
  try {
    if (what === "history") {
      if (!streams.length) throw new Error("pick a stream first");
      status.textContent = "fetching…";
      const res = await downloadHistory(streams, {
        format,
        utc: app.utc,
        keep: visible,
        toRecord: historyRecord,
        progress: (n) => (status.textContent = `fetching… ${n.toLocaleString()} events`),
      });
      status.textContent = `${res.lines.toLocaleString()} lines of ${res.looked.toLocaleString()}${res.complete ? "" : " (stopped at the limit)"}`;
    } else {
      const rows = [];
      for (const pane of app.panes.values()) {
        pane.flush();
        for (const r of pane.rows) rows.push(r);
      }
      // Side by side: every view's lines, in arrival order, once each.
      const unique = [...new Set(rows)].sort((a, b) => a.n - b.n);
      const n = downloadShown(unique, streams, { format, utc: app.utc });
      status.textContent = `${n.toLocaleString()} lines`;
    }
  } catch (err) {
    status.className = "error-text small";
    status.textContent = err.message;
  }
}

// --------------------------------------------------------------- publish

async function publish(event) {
  event.preventDefault();
  const target = $("publish-target").value.trim();
  const type = $("publish-event").value.trim();
  const data = $("publish-data").value;
  const result = $("publish-result");
  result.className = "muted";
  result.textContent = "sending…";
  try {
    let res;
    if (target === "broadcast") {
      // The tutorial's body shape; a JSON object typed in is sent as it is.
      let body = parseJsonLine(data.trim());
      if (!body || Array.isArray(body)) body = { message: data, timestamp: new Date().toISOString() };
      res = await fetch("/api/broadcast", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    } else {
      const q = type ? `?event=${encodeURIComponent(type)}` : "";
      res = await fetch(`/channels/${encodeURIComponent(target)}${q}`, { method: "POST", headers: { "Content-Type": "text/plain" }, body: data });
    }
    const text = await res.text();
    let json = {};
    try {
      json = JSON.parse(text);
    } catch {
      /* plain answer */
    }
    if (!res.ok) throw new Error(json.detail || json.error || `${res.status} ${text}`);
    result.textContent = json.id ? `sent, id ${json.id}, ${json.subscribers ?? "?"} subscriber(s)` : "sent";
    $("publish-data").value = "";
    if (!app.available.some((s) => s.name === target)) loadStreams();
  } catch (err) {
    result.className = "error";
    result.textContent = err.message;
  }
}

// ---------------------------------------------------------------- charts

const charts = {};
let metricsClient = null;
let demoClient = null;
const demoCounts = {};

function setupCharts() {
  const pct = (v) => `${v.toFixed(0)}%`;
  const rate = (v) => `${formatBytes(v)}/s`;
  charts.cpu = new Sparkline($("chart-cpu"), { series: ["CPU"], max: 100, format: pct });
  charts.mem = new Sparkline($("chart-mem"), { series: ["memory"], max: 100, format: pct });
  charts.net = new Sparkline($("chart-net"), { series: ["rx", "tx"], format: rate });
  charts.events = new Sparkline($("chart-events"), { series: ["events/s", "connections"], format: (v) => v.toFixed(0) });
  charts.sensor = new Sparkline($("chart-sensor"), { series: ["sensor"], format: (v) => v.toFixed(1), perSeries: true });

  for (const chart of Object.values(charts)) chart.schedule(); // empty frames and legends

  metricsClient = new SseClient({
    url: () => "/metrics",
    onEvent: (ev) => {
      if (ev.type !== "metrics") return;
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      charts.cpu.push(m.cpu_percent);
      charts.mem.push(m.memory_total_bytes ? (100 * m.memory_used_bytes) / m.memory_total_bytes : null);
      charts.mem.series[0] = `memory ${formatBytes(m.memory_used_bytes || 0)} of ${formatBytes(m.memory_total_bytes || 0)}`;
      charts.net.push(m.net_rx_bytes_per_s, m.net_tx_bytes_per_s);
      charts.events.push(m.events_per_s, m.connections);
    },
    onState: (state, info) => {
      $("metrics-state").textContent = `/metrics ${state === "open" ? "live" : state}${info.error ? `: ${info.error}` : ""}`;
    },
  });
  demoClient = new SseClient({
    url: () => "/stream",
    onEvent: (ev) => {
      demoCounts[ev.type] = (demoCounts[ev.type] || 0) + 1;
      $("demo-counts").textContent = Object.entries(demoCounts).map(([k, v]) => `${k} ${v}`).join(" · ");
      if (ev.type === "sensor") pushSensor(ev.data);
      else if (ev.type === "message" || ev.type === "notification") $("demo-last").textContent = `[${ev.type}] ${ev.data}`;
    },
    onState: (state, info) => {
      $("demo-state").textContent = `/stream ${state === "open" ? "live" : state}${info.error ? `: ${info.error}` : ""}`;
    },
  });
  // Connect only while the charts are open and the page is visible: every
  // connection counts against the browser's per-host limit.
  const sync = () => {
    const on = $("charts").open && document.visibilityState === "visible";
    for (const c of [metricsClient, demoClient]) on ? c.start() : c.running && c.stop();
  };
  app.syncCharts = sync;
  $("charts").addEventListener("toggle", () => {
    save("charts", $("charts").open ? "1" : "0");
    sync();
  });
  document.addEventListener("visibilitychange", sync);
  $("charts").open = saved("charts", "1") === "1";
  sync();
}

/** Charts the numeric fields of a sensor reading (up to three). */
function pushSensor(data) {
  let reading;
  try {
    reading = JSON.parse(data);
  } catch {
    return;
  }
  const flat = reading && typeof reading.readings === "object" ? reading.readings : reading;
  const numeric = Object.entries(flat || {}).filter(([, v]) => typeof v === "number").slice(0, 3);
  if (!numeric.length) return;
  const chart = charts.sensor;
  const names = numeric.map(([k]) => k);
  if (chart.series.join() !== names.join()) {
    charts.sensor = new Sparkline($("chart-sensor"), { series: names, format: (v) => v.toFixed(1), perSeries: true });
  }
  charts.sensor.push(...numeric.map(([, v]) => v));
}

// ---------------------------------------------------------------- sign-in
//
// With access control on, a 401 (or `token-expired` on the stream) opens
// the sign-in box: the pasted token goes to POST /api/session, which sets
// an HttpOnly cookie, and the stream resumes from its last event id, so no
// line is lost. The page never stores the token itself.

function askSignIn(reason) {
  $("signin-reason").textContent = reason || "This server needs a token.";
  $("signin-error").textContent = "";
  document.body.dataset.auth = "needed";
  if (!$("signin").open) $("signin").showModal();
  $("signin-token").focus();
}

function setSignedIn(session) {
  const on = !!(session && session.signed_in);
  $("signout").hidden = !on;
  $("whoami").hidden = !on;
  $("whoami").textContent = on ? session.sub || "signed in" : "";
  if (on) document.body.dataset.auth = "signed-in";
}

async function signIn(event) {
  event.preventDefault();
  if (event.submitter && event.submitter.value === "cancel") {
    $("signin").close();
    return;
  }
  const token = $("signin-token").value.trim();
  if (!token) return;
  $("signin-error").textContent = "";
  let res;
  let body = {};
  try {
    res = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    body = await res.json().catch(() => ({}));
  } catch (err) {
    $("signin-error").textContent = err.message;
    return;
  }
  if (!res.ok) {
    $("signin-error").textContent = body.detail || `${res.status}`;
    return;
  }
  $("signin-token").value = "";
  $("signin").close();
  setSignedIn({ signed_in: true, sub: body.sub });
  await loadStreams();
  if (!app.selected.length) {
    const firstLog = app.available.find((s) => s.kind === "log");
    if (firstLog) select([firstLog.name]);
  } else if (app.client && app.running && !app.client.running) {
    app.client.start(); // resumes after app.lastId
  }
  if (app.syncCharts) app.syncCharts();
}

async function signOut() {
  await fetch("/api/session", { method: "DELETE" }).catch(() => {});
  setSignedIn(null);
  if (app.client) app.client.stop();
  for (const c of [metricsClient, demoClient]) if (c && c.running) c.stop();
  setConnState("unauthorized", "signed out");
  askSignIn("Signed out. Paste a token to sign in again.");
}

// ------------------------------------------------------------ status bar

function updateStatus() {
  app.statusAt = performance.now();
  const reconnects = app.reconnectsBefore + (app.client ? app.client.reconnects : 0);
  $("reconnects").textContent = reconnects;
  $("last-id").textContent = app.lastId || "–";
  $("rate").textContent = app.rate.toLocaleString();
  $("total").textContent = app.total.toLocaleString();
  let shown = 0;
  for (const pane of app.panes.values()) shown += pane.rows.length;
  $("shown").textContent = shown.toLocaleString();
}

// ------------------------------------------------------------- controls

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  save("theme", theme);
  for (const chart of Object.values(charts)) chart.schedule();
}

function setPretty(on) {
  app.pretty = on;
  save("pretty", on ? "1" : "0");
  $("pretty").setAttribute("aria-pressed", String(on));
  for (const pane of app.panes.values()) {
    for (const r of pane.records) {
      if (r.json) {
        r.open = on;
        r.h = 0;
      }
    }
    pane.rerender();
  }
}

function setView(view) {
  app.view = view === "split" ? "split" : "merged";
  $("view-mode").value = app.view;
  writeHash();
  layoutPanes();
}

function toggleRunning() {
  if (app.running) stop();
  else start();
}

function bindControls() {
  $("start").onclick = start;
  $("stop").onclick = stop;
  $("clear").onclick = () => app.panes.forEach((p) => p.clear());
  $("refresh").onclick = loadStreams;
  $("theme").onclick = () => setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  $("pretty").onclick = () => setPretty(!app.pretty);
  $("view-mode").onchange = (e) => setView(e.target.value);
  $("help").onclick = () => $("help-dialog").showModal();
  $("sidebar-toggle").onclick = () => {
    const open = document.body.classList.toggle("drawer-open");
    $("sidebar-toggle").setAttribute("aria-expanded", String(open));
  };
  $("panes").addEventListener("pointerdown", () => document.body.classList.remove("drawer-open"));

  let filterTimer = 0;
  $("filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(applyFilter, 80);
  });
  $("filter-case").onchange = applyFilter;
  $("min-level").onchange = (e) => setMinLevel(e.target.value);

  let searchTimer = 0;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applySearch, 80);
  });
  $("search").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      clearTimeout(searchTimer);
      if (($("search").value || null) !== (app.search ? app.search.text : null)) applySearch();
      gotoHit(e.shiftKey ? -1 : 1);
    } else if (e.key === "Escape") {
      $("search").value = "";
      applySearch();
      $("search").blur();
    }
  });
  $("search-next").onclick = () => gotoHit(1);
  $("search-prev").onclick = () => gotoHit(-1);

  $("columns-btn").onclick = () => {
    renderColumnsDialog();
    $("columns-dialog").showModal();
  };
  $("columns-add").addEventListener("submit", addColumn);
  $("columns-reset").onclick = () => setColumns([...DEFAULT_COLUMNS]);
  $("tz").onclick = () => setUtc(!app.utc);
  $("download-btn").onclick = () => {
    $("download-status").textContent = "";
    $("download-dialog").showModal();
  };
  $("download-form").addEventListener("submit", runDownload);

  $("cap").value = app.cap;
  $("cap").addEventListener("change", () => {
    app.cap = clampCap(Number($("cap").value));
    $("cap").value = app.cap;
    save("cap", app.cap);
    for (const pane of app.panes.values()) pane.rerender();
  });

  $("add-channel").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("add-channel-name").value.trim();
    if (!name) return;
    $("add-channel-name").value = "";
    if (!app.selected.includes(name)) select([...app.selected, name]);
    if (!$("publish-target").value) $("publish-target").value = name;
  });

  $("history-search").addEventListener("submit", (e) => {
    e.preventDefault();
    runSearch(false);
  });
  $("history-more").onclick = () => runSearch(true);

  $("publish").addEventListener("submit", publish);
  $("signin-form").addEventListener("submit", signIn);
  $("signout").onclick = signOut;
  $("publish-data").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("publish").requestSubmit();
  });

  document.addEventListener("keydown", onKey);
}

function onKey(e) {
  const t = e.target;
  const typing = t.matches && t.matches("input, textarea, select");
  if (e.key === "Escape" && t === $("filter")) {
    $("filter").value = "";
    applyFilter();
    $("filter").blur();
    return;
  }
  const dialogs = ["help-dialog", "history-dialog", "signin", "columns-dialog", "download-dialog"];
  if (typing || e.ctrlKey || e.metaKey || e.altKey || dialogs.some((id) => $(id).open)) return;
  switch (e.key) {
    case "p":
    case " ":
      if (t.tagName === "BUTTON" && e.key === " ") return; // Space presses the focused button
      e.preventDefault();
      toggleRunning();
      break;
    case "/":
      e.preventDefault();
      $("filter").focus();
      $("filter").select();
      break;
    case "End":
    case "G":
      e.preventDefault();
      app.panes.forEach((p) => p.toBottom());
      break;
    case "j":
      setPretty(!app.pretty);
      break;
    case "t":
      $("theme").click();
      break;
    case "n":
      gotoHit(1);
      break;
    case "N":
      gotoHit(-1);
      break;
    case "u":
      setUtc(!app.utc);
      break;
    case "s":
      setView(app.view === "split" ? "merged" : "split");
      break;
    case "?":
      $("help-dialog").showModal();
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------------ boot

async function main() {
  document.body.classList.add("running");
  $("pretty").setAttribute("aria-pressed", String(app.pretty));
  bindControls();
  setInterval(() => {
    app.rate = app.tick;
    app.tick = 0;
  }, 1000);
  setInterval(updateStatus, 250);
  setInterval(() => {
    if (document.visibilityState === "visible") loadStreams();
  }, 10000);
  setupCharts();

  const hash = readHash();
  if (hash.view) app.view = hash.view === "split" ? "split" : "merged";
  if (hash.columns) app.columns = hash.columns;
  setUtc(app.utc);
  $("view-mode").value = app.view;
  fetch("/api/session", { cache: "no-store" })
    .then((r) => (r.ok ? r.json() : null))
    .then(setSignedIn)
    .catch(() => {});
  await loadStreams();
  const firstLog = app.available.find((s) => s.kind === "log");
  select(hash.streams || (firstLog ? [firstLog.name] : []));
  window.addEventListener("hashchange", () => {
    const h = readHash();
    if (h.view && h.view !== app.view) setView(h.view);
    if (h.streams && h.streams.join() !== app.selected.join()) select(h.streams);
    if (h.columns && h.columns.join() !== app.columns.join()) setColumns(h.columns);
  });
}

main();
