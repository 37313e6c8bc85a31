// ANSI SGR ("Select Graphic Rendition") colour sequences in log lines,
// parsed into styled segments. A pure ES module with no DOM access, so
// node can load it too (tests/browser/ansi.test.mjs); render.js turns the
// segments into spans with textContent, never markup.
//
// Handled: 0 reset; 1 bold, 2 dim, 3 italic, 4 underline and 22/23/24 to
// undo them; 30–37, 90–97 foreground and 40–47, 100–107 background (the 16
// palette colours, as classes `ansi-fg-N` / `ansi-bg-N` so each theme has
// its own palette); 38;5;n / 48;5;n (256 colours) and 38;2;r;g;b /
// 48;2;r;g;b (true colour), also with `:` separators; 39 and 49 default
// colours. Other CSI sequences (cursor moves, erase) and OSC sequences
// (titles, links) are dropped; an ESC with no sequence after it, or a
// sequence cut off at the end of the line, is dropped with its parameters.
// Unknown or malformed SGR parameters (e.g. `38;5` with no index, a colour
// component over 255) change nothing.

const ESC = "\x1b";

/** CSI (`ESC [ params final`), OSC (`ESC ] … BEL|ST`), a cut-off CSI, or a lone ESC. */
const SEQ_RE = /\x1b\[([0-9;:?<=>]*)([\x40-\x7e])?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[\x40-\x5f]?/g;

/** Colours 0–15 are classes (themed); 16–255 are the xterm cube and greys. */
function xterm256(n) {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return [v, v, v];
  }
  const m = n - 16;
  const level = (x) => (x === 0 ? 0 : 55 + x * 40);
  return [level(Math.floor(m / 36)), level(Math.floor(m / 6) % 6), level(m % 6)];
}

/** Relative luminance (WCAG) of an sRGB colour, 0 (black) to 1 (white). */
export function luminance([r, g, b]) {
  const lin = (c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

const PLAIN = () => ({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });

/**
 * Reads an extended colour (after 38 or 48) from `codes` at `i`: returns
 * `[colour, next index]`, colour a palette index 0–15, an `[r, g, b]`, or
 * undefined when malformed (then the rest of the parameters are skipped,
 * as terminals do).
 */
function extended(codes, i) {
  const mode = codes[i + 1];
  if (mode === 5) {
    const n = codes[i + 2];
    if (!Number.isInteger(n) || n < 0 || n > 255) return [undefined, codes.length];
    return [n < 16 ? n : xterm256(n), i + 2];
  }
  if (mode === 2) {
    const rgb = codes.slice(i + 2, i + 5);
    if (rgb.length < 3 || !rgb.every((c) => Number.isInteger(c) && c >= 0 && c <= 255)) return [undefined, codes.length];
    return [rgb, i + 4];
  }
  return [undefined, codes.length];
}

/** The SGR state after the parameters `params` (e.g. "1;31"). */
export function applySgr(prev, params) {
  const s = { ...prev };
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : /^\d+$/.test(p) ? Number(p) : NaN));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(s, PLAIN());
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
    else if (c === 38 || c === 48) {
      const [colour, next] = extended(codes, i);
      if (colour !== undefined) {
        if (c === 38) s.fg = colour;
        else s.bg = colour;
      }
      i = next;
    }
    // Anything else (blink, inverse, fonts, NaN from a malformed parameter) is ignored.
  }
  return s;
}

/**
 * A segment's look: CSS classes and, for 256/true colours, `color` and
 * `background` values. A 256-colour or true-colour foreground with less
 * than 3:1 contrast against black gets class `ansi-dark`, one with less
 * than 3:1 against white `ansi-light` (when it has no background of its
 * own), so the style sheet gives it a backdrop in the theme where it
 * would be hard to read.
 */
function look(s) {
  const cls = [];
  let color = null;
  let background = null;
  if (s.bold) cls.push("ansi-bold");
  if (s.dim) cls.push("ansi-dim");
  if (s.italic) cls.push("ansi-italic");
  if (s.underline) cls.push("ansi-underline");
  if (typeof s.bg === "number") cls.push(`ansi-bg-${s.bg}`);
  else if (s.bg) background = `rgb(${s.bg.join(",")})`;
  if (typeof s.fg === "number") cls.push(`ansi-fg-${s.fg}`);
  else if (s.fg) {
    color = `rgb(${s.fg.join(",")})`;
    if (!s.bg) {
      const l = luminance(s.fg);
      // Under 3:1 against black (dark theme) or white (light theme).
      if (l < 0.1) cls.push("ansi-dark");
      else if (l > 0.3) cls.push("ansi-light");
    }
  }
  return { cls: cls.length ? cls : null, color, background };
}

/**
 * Splits `text` into `[{text, cls, color, background}]` segments; text
 * without ESC is one plain segment (the fast path). Adjacent text with the
 * same look stays one segment; empty segments are left out.
 */
export function parseAnsi(text) {
  if (!text.includes(ESC)) return [{ text, cls: null, color: null, background: null }];
  const segments = [];
  let state = PLAIN();
  let current = look(state);
  let last = 0;
  const push = (chunk) => {
    if (!chunk) return;
    const prev = segments[segments.length - 1];
    if (prev && sameLook(prev, current)) prev.text += chunk;
    else segments.push({ text: chunk, ...current });
  };
  SEQ_RE.lastIndex = 0;
  for (let m; (m = SEQ_RE.exec(text)); ) {
    push(text.slice(last, m.index));
    last = SEQ_RE.lastIndex;
    if (m[2] === "m" && !/[?<=>]/.test(m[1])) {
      state = applySgr(state, m[1]);
      current = look(state);
    }
  }
  push(text.slice(last));
  return segments;
}

function sameLook(a, b) {
  return (a.cls || []).join(" ") === (b.cls || []).join(" ") && a.color === b.color && a.background === b.background;
}

/** The text without escape sequences (what filters and downloads use). */
export function stripAnsi(text) {
  return text.includes(ESC) ? text.replace(SEQ_RE, "") : text;
}
