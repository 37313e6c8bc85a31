// Fields of a log record for the console's columns, level filter and
// downloads: dotted paths into JSON lines, the record's time, its level,
// and times formatted in the browser's zone or UTC. Pure functions (no
// DOM), so node can load this module too.

/** The columns every view starts with; `message` is `line`, `msg` or `message`. */
export const DEFAULT_COLUMNS = ["time", "level", "source", "message"];

/** Columns that are not a field path of the JSON object. */
export const BUILTIN_COLUMNS = new Set(DEFAULT_COLUMNS);

/** Where a JSON record keeps its message, its time and its level (first present wins). */
const MESSAGE_KEYS = ["line", "msg", "message"];
const TIME_KEYS = ["time", "ts", "timestamp", "@timestamp", "date"];
const LEVEL_KEYS = ["level", "severity", "lvl", "levelname"];

/** Level names, most severe first; `""` is a line with no level. */
export const LEVELS = ["error", "warn", "info", "debug"];
const RANK = { error: 4, warn: 3, info: 2, debug: 1, "": 0 };

/** How important `level` is (error 4 … debug 1, none 0). */
export const levelRank = (level) => RANK[level] ?? 0;

const WORDS = {
  FATAL: "error", PANIC: "error", EMERG: "error", ALERT: "error", CRIT: "error", CRITICAL: "error", ERROR: "error", ERR: "error",
  WARN: "warn", WARNING: "warn", NOTICE: "info", INFO: "info", DEBUG: "debug", TRACE: "debug",
};

/** A level word anywhere near the start: `ERROR`, `[WARN]`, `level=error`, `lvl: warn`. */
const WORD_RE = /\b(FATAL|PANIC|EMERG|ALERT|CRIT(?:ICAL)?|ERROR|ERR|WARN(?:ING)?|NOTICE|INFO|DEBUG|TRACE)\b/;
const KEYVAL_RE = /\b(?:level|lvl|severity)\s*[=:]\s*"?([A-Za-z]+)/i;

/** The level of a level word or name (any case), or `""`. */
export function levelWord(word) {
  return WORDS[String(word).toUpperCase()] || "";
}

/** The level named by a JSON value: a word, or a pino/bunyan number (10 trace … 60 fatal). */
function levelValue(v) {
  if (typeof v === "string") return levelWord(v.trim());
  if (typeof v === "number") return v >= 50 ? "error" : v >= 40 ? "warn" : v >= 30 ? "info" : v > 0 ? "debug" : "";
  return "";
}

/**
 * The level of a record: its JSON level field if it names one, else a
 * level word (upper case), or `level=…`, in the first 300 characters of
 * the text (`plain`: without ANSI codes).
 */
export function detectLevel(plain, json) {
  if (json && typeof json === "object" && !Array.isArray(json)) {
    for (const key of LEVEL_KEYS) {
      const level = levelValue(json[key]);
      if (level) return level;
    }
  }
  const head = plain.length > 300 ? plain.slice(0, 300) : plain;
  const m = WORD_RE.exec(head);
  if (m) return WORDS[m[1]];
  const kv = KEYVAL_RE.exec(head);
  return kv ? levelWord(kv[1]) : "";
}

/** The value at a dotted path (`labels.host`, `items.0.id`), or undefined. */
export function getPath(obj, path) {
  let v = obj;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[part];
  }
  return v;
}

/** A field value as cell text: missing and null are blank, objects compact JSON. */
export function cellText(v) {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** The message of a JSON object (`line`, `msg` or `message`), or undefined. */
export function jsonMessage(json) {
  if (!json || typeof json !== "object" || Array.isArray(json)) return undefined;
  for (const key of MESSAGE_KEYS) {
    if (json[key] !== undefined && json[key] !== null) return cellText(json[key]);
  }
  return undefined;
}

/**
 * The time a JSON object carries (ms since the epoch), or null: an
 * RFC 3339 string (any number of fraction digits), or a number of
 * seconds, milliseconds or nanoseconds since the epoch.
 */
export function jsonTime(json) {
  if (!json || typeof json !== "object" || Array.isArray(json)) return null;
  for (const key of TIME_KEYS) {
    const v = json[key];
    if (typeof v === "number" && Number.isFinite(v) && v > 0) {
      if (v > 1e17) return v / 1e6; // nanoseconds (Loki)
      if (v > 1e11) return v; // milliseconds
      return v * 1000; // seconds, maybe with a fraction
    }
    if (typeof v === "string" && v) {
      // Date.parse takes at most milliseconds reliably: cut longer fractions.
      const ms = Date.parse(v.replace(/(\.\d{3})\d+/, "$1"));
      if (Number.isFinite(ms)) return ms;
    }
  }
  return null;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/**
 * `YYYY-MM-DD HH:MM:SS.mmm` in UTC (suffix `Z`) or the browser's zone
 * (suffix its offset, e.g. `+01:00`), or `""` for no time.
 */
export function formatTime(ms, utc) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const get = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  const [y, mo, da, h, mi, s, ml] = get;
  let zone = "Z";
  if (!utc) {
    const off = -d.getTimezoneOffset();
    zone = `${off < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  }
  return `${y}-${pad(mo)}-${pad(da)} ${pad(h)}:${pad(mi)}:${pad(s)}.${pad(ml, 3)}${zone}`;
}

/**
 * Adds the dotted paths of `json`'s leaves (objects followed 4 deep,
 * arrays as one value) to `paths`, up to `max` paths in all: the
 * suggestions of the column picker.
 */
export function collectPaths(json, paths, max = 200, prefix = "", depth = 0) {
  if (!json || typeof json !== "object" || Array.isArray(json)) return;
  for (const key of Object.keys(json)) {
    if (paths.size >= max) return;
    const path = prefix ? `${prefix}.${key}` : key;
    const v = json[key];
    if (v && typeof v === "object" && !Array.isArray(v) && depth < 3) collectPaths(v, paths, max, path, depth + 1);
    else paths.add(path);
  }
}

/** Column names from a `cols=` value or saved list; unknown garbage is dropped. */
export function parseColumns(text) {
  if (typeof text !== "string" || !text) return null;
  const cols = text
    .split(",")
    .map((c) => c.trim())
    .filter((c) => /^[A-Za-z0-9_@$-]+(?:\.[A-Za-z0-9_@$-]+)*$/.test(c) && c.length <= 100);
  return cols.length ? [...new Set(cols)].slice(0, 30) : null;
}
