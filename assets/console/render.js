// Turning one log line into DOM: ANSI colours, level colours, filter
// highlight and pretty JSON. Pure functions of the text, no global state.

const ESC = "\x1b";

/** Matches CSI sequences (colours and cursor moves) and OSC sequences. */
const ANSI_RE = /\x1b\[([0-9;?]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g;

/** The 16 basic colours as CSS classes: ansi-fg-0 … ansi-fg-15. */
const BASIC = 16;

/** xterm 256-colour palette entry as CSS `rgb()`. */
function xterm256(n) {
  if (n < BASIC) return null; // handled by classes, so themes can restyle them
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  n -= 16;
  const level = (x) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(n / 36))},${level(Math.floor(n / 6) % 6)},${level(n % 6)})`;
}

/**
 * Splits text with ANSI SGR codes into styled segments:
 * `[{text, cls: string[], style: string}]`. Other escape sequences are
 * dropped. Text without ESC is one plain segment (the fast path).
 */
export function parseAnsi(text) {
  if (!text.includes(ESC)) return [{ text, cls: null, style: null }];
  const segments = [];
  let sgr = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
  let last = 0;
  const push = (chunk) => {
    if (!chunk) return;
    const cls = [];
    let style = "";
    if (sgr.bold) cls.push("ansi-bold");
    if (sgr.dim) cls.push("ansi-dim");
    if (sgr.italic) cls.push("ansi-italic");
    if (sgr.underline) cls.push("ansi-underline");
    if (typeof sgr.fg === "number") cls.push(`ansi-fg-${sgr.fg}`);
    else if (sgr.fg) style += `color:${sgr.fg};`;
    if (typeof sgr.bg === "number") cls.push(`ansi-bg-${sgr.bg}`);
    else if (sgr.bg) style += `background:${sgr.bg};`;
    segments.push({ text: chunk, cls: cls.length ? cls : null, style: style || null });
  };
  ANSI_RE.lastIndex = 0;
  for (let m; (m = ANSI_RE.exec(text)); ) {
    push(text.slice(last, m.index));
    last = ANSI_RE.lastIndex;
    if (m[2] === "m") sgr = applySgr(sgr, m[1]);
  }
  push(text.slice(last));
  return segments;
}

function applySgr(prev, params) {
  const s = { ...prev };
  const codes = params === "" ? [0] : params.split(";").map((p) => Number(p) || 0);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(s, { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 39) s.fg = null;
    else if (c === 49) s.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
      const n = codes[i + 2] ?? 0;
      const colour = n < BASIC ? n : xterm256(n);
      if (c === 38) s.fg = colour;
      else s.bg = colour;
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
      const colour = `rgb(${codes[i + 2] ?? 0},${codes[i + 3] ?? 0},${codes[i + 4] ?? 0})`;
      if (c === 38) s.fg = colour;
      else s.bg = colour;
      i += 4;
    }
  }
  return s;
}

/** The text without escape sequences (what the filter matches against). */
export function stripAnsi(text) {
  return text.includes(ESC) ? text.replace(ANSI_RE, "") : text;
}

const LEVEL_RE = /\b(FATAL|CRIT(?:ICAL)?|ERROR|ERR|WARN(?:ING)?|INFO|DEBUG|TRACE)\b/;
const JSON_LEVEL_RE = /"(?:level|severity|lvl|levelname)"\s*:\s*"(\w+)"/i;
const LEVELS = {
  FATAL: "error", CRIT: "error", CRITICAL: "error", ERROR: "error", ERR: "error",
  WARN: "warn", WARNING: "warn", INFO: "info", DEBUG: "debug", TRACE: "debug",
};

/** `error`, `warn`, `info`, `debug` or `""`, from the first 300 characters. */
export function detectLevel(plain) {
  const head = plain.length > 300 ? plain.slice(0, 300) : plain;
  let m = LEVEL_RE.exec(head);
  if (!m && head.charCodeAt(0) === 123 /* { */) m = JSON_LEVEL_RE.exec(head);
  return m ? LEVELS[m[1].toUpperCase()] || "" : "";
}

/** The parsed value when the whole line is a JSON object or array, else undefined. */
export function parseJsonLine(plain) {
  const c = plain.charCodeAt(0);
  if (c !== 123 && c !== 91) return undefined; // { or [
  try {
    const value = JSON.parse(plain);
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fills `el` with `text` (ANSI segments) and `<mark>`s around every match of
 * `regex` (a global RegExp, or null).
 */
export function fillText(el, text, regex) {
  const segments = parseAnsi(text);
  if (!regex && segments.length === 1 && !segments[0].cls && !segments[0].style) {
    el.textContent = text;
    return;
  }
  const ranges = regex ? matchRanges(segments.map((s) => s.text).join(""), regex) : [];
  let offset = 0;
  let r = 0;
  for (const seg of segments) {
    const host = seg.cls || seg.style ? document.createElement("span") : el;
    if (host !== el) {
      if (seg.cls) host.className = seg.cls.join(" ");
      if (seg.style) host.style.cssText = seg.style;
      el.appendChild(host);
    }
    // Cut this segment at the highlight ranges that overlap it.
    const end = offset + seg.text.length;
    let pos = offset;
    while (pos < end) {
      while (r < ranges.length && ranges[r][1] <= pos) r++;
      const range = ranges[r];
      if (!range || range[0] >= end) {
        host.append(seg.text.slice(pos - offset));
        pos = end;
      } else if (range[0] > pos) {
        host.append(seg.text.slice(pos - offset, range[0] - offset));
        pos = range[0];
      } else {
        const stop = Math.min(range[1], end);
        const mark = document.createElement("mark");
        mark.textContent = seg.text.slice(pos - offset, stop - offset);
        host.appendChild(mark);
        pos = stop;
      }
    }
    offset = end;
  }
}

/** `[start, end)` of each non-empty match, at most 200 per line. */
function matchRanges(text, regex) {
  const out = [];
  regex.lastIndex = 0;
  for (let m; out.length < 200 && (m = regex.exec(text)); ) {
    if (m[0] === "") {
      regex.lastIndex++;
      continue;
    }
    out.push([m.index, m.index + m[0].length]);
  }
  return out;
}

/** A stable colour for a stream label, from its name. */
export function streamHue(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return h % 360;
}
