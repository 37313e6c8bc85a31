// Downloads from the console: the lines a view shows (after its filters),
// or a history from `/api/history` paged to its start, as text or NDJSON,
// with times formatted as on screen (browser zone or UTC).

import { fetchHistory } from "./history.js";
import { formatTime } from "./fields.js";

/** Events of a history download looked at, at most (memory bound of the page). */
export const HISTORY_MAX = 200000;
/** Events per `/api/history` request (the server's maximum). */
const PAGE = 1000;

/** One record as a text line: `TIME [SOURCE] TEXT` (no time: left out). */
function textLine(r, utc) {
  const time = formatTime(r.time, utc);
  return `${time ? `${time} ` : ""}[${r.stream}] ${r.plain}`;
}

/** One record as a JSON object: the time as shown, source, id, event type, level, data. */
function jsonLine(r, utc) {
  return JSON.stringify({
    time: formatTime(r.time, utc) || null,
    source: r.stream,
    id: r.id || null,
    event: r.type,
    level: r.level || null,
    data: r.json ?? r.plain,
  });
}

/** The file's text: one line per record (markers left out). */
export function formatRecords(records, format, utc) {
  const line = format === "ndjson" ? jsonLine : textLine;
  let out = "";
  for (const r of records) if (r.kind !== "marker") out += `${line(r, utc)}\n`;
  return out;
}

/** Hands `text` to the browser as a file download named `name`. */
export function saveFile(name, text, format) {
  const type = format === "ndjson" ? "application/x-ndjson" : "text/plain";
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** `tailcast-NAMES-YYYYMMDD-HHMMSS.log|ndjson` (names made file-safe). */
export function fileName(streams, format) {
  const names = streams.map((s) => s.replace(/^log:/, "").replace(/[^A-Za-z0-9_.-]+/g, "_")).join("+").slice(0, 80) || "view";
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `tailcast-${names}-${stamp}.${format === "ndjson" ? "ndjson" : "log"}`;
}

/** Downloads `records` (what a view shows, oldest first); returns how many lines. */
export function downloadShown(records, streams, { format, utc }) {
  const text = formatRecords(records, format, utc);
  saveFile(fileName(streams, format), text, format);
  return records.filter((r) => r.kind !== "marker").length;
}

/**
 * Downloads the history of `streams` through `/api/history`, newest page
 * first back to its start (at most HISTORY_MAX events looked at), keeping
 * the events `keep(record)` accepts, oldest first. `toRecord` turns an
 * event into a record; `progress(n)` reports events looked at so far.
 * Returns `{lines, looked, complete}`.
 */
export async function downloadHistory(streams, { format, utc, keep, toRecord, progress }) {
  const kept = [];
  let before = null;
  let looked = 0;
  let more = true;
  while (more && looked < HISTORY_MAX) {
    const page = await fetchHistory(streams, { before, limit: PAGE });
    for (const e of page.events) {
      const r = toRecord(e);
      if (keep(r)) kept.push(r);
    }
    looked += page.events.length;
    more = page.more;
    before = page.before;
    if (progress) progress(looked);
    if (!page.events.length && !before) break;
  }
  kept.reverse();
  saveFile(fileName(streams, format), formatRecords(kept, format, utc), format);
  return { lines: kept.length, looked, complete: !more };
}
