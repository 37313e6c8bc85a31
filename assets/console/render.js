// Turning one log line into DOM: ANSI colours (parsed by ansi.js), level
// colours, filter highlight and pretty JSON. Pure functions of the text,
// no global state. Text always goes in with textContent / text nodes,
// never as markup.

import { parseAnsi, stripAnsi } from "./ansi.js";

export { stripAnsi };

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
 * Fills `el` with `text` (ANSI segments) and `<mark>`s around the matches
 * of `marks`: a global RegExp, or a list of `{re, cls}` (a global RegExp
 * and the mark's class; where two overlap, the earlier in the list wins),
 * or null.
 */
export function fillText(el, text, marks) {
  const segments = parseAnsi(text);
  const list = !marks ? [] : marks instanceof RegExp ? [{ re: marks, cls: "" }] : marks;
  if (!list.length && segments.length === 1 && !segments[0].cls && !segments[0].color && !segments[0].background) {
    el.textContent = text;
    return;
  }
  const ranges = list.length ? markRanges(segments.map((s) => s.text).join(""), list) : [];
  let offset = 0;
  let r = 0;
  for (const seg of segments) {
    const host = seg.cls || seg.color || seg.background ? document.createElement("span") : el;
    if (host !== el) {
      if (seg.cls) host.className = seg.cls.join(" ");
      // CSSOM properties, which the Content-Security-Policy allows (a
      // style attribute in markup it would not).
      if (seg.color) host.style.color = seg.color;
      if (seg.background) host.style.background = seg.background;
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
        if (range[2]) mark.className = range[2];
        mark.textContent = seg.text.slice(pos - offset, stop - offset);
        host.appendChild(mark);
        pos = stop;
      }
    }
    offset = end;
  }
}

/** The ranges of every list entry's matches, sorted, overlaps left out. */
function markRanges(text, list) {
  const all = [];
  for (const { re, cls } of list) for (const [a, b] of matchRanges(text, re)) all.push([a, b, cls]);
  if (list.length === 1) return all;
  all.sort((x, y) => x[0] - y[0]);
  const out = [];
  for (const range of all) if (!out.length || range[0] >= out[out.length - 1][1]) out.push(range);
  return out;
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
