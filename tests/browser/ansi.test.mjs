// Unit tests of the console's ANSI SGR parser (assets/console/ansi.js),
// in node: no browser. The module has no imports, and the asset folder
// has no package.json saying "module", so it is loaded from its source
// as a data: URL (an ES module whatever the file name).

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { ROOT } from "./lib.mjs";

const source = fs.readFileSync(path.join(ROOT, "assets/console/ansi.js"), "utf8");
const { parseAnsi, stripAnsi, applySgr } = await import(`data:text/javascript,${encodeURIComponent(source)}`);

/** Segments as `[text, "classes", color, background]` for short assertions. */
const segs = (text) => parseAnsi(text).map((s) => [s.text, (s.cls || []).join(" "), s.color, s.background]);

test("text without ESC is one plain segment", () => {
  assert.deepEqual(segs("plain <b>text</b>"), [["plain <b>text</b>", "", null, null]]);
});

test("the 16 colours, foreground and background, as themed classes", () => {
  assert.deepEqual(segs("\x1b[31mred\x1b[0m \x1b[97mwhite\x1b[39m x"), [
    ["red", "ansi-fg-1", null, null],
    [" ", "", null, null],
    ["white", "ansi-fg-15", null, null],
    [" x", "", null, null],
  ]);
  assert.deepEqual(segs("\x1b[30;47ma\x1b[90;100mb\x1b[37;107mc\x1b[49md"), [
    ["a", "ansi-bg-7 ansi-fg-0", null, null],
    ["b", "ansi-bg-8 ansi-fg-8", null, null],
    ["c", "ansi-bg-15 ansi-fg-7", null, null],
    ["d", "ansi-fg-7", null, null],
  ]);
});

test("bold, dim, italic, underline and their resets", () => {
  assert.deepEqual(segs("\x1b[1;2;3;4mall\x1b[22mno-weight\x1b[23;24mnone\x1b[1m\x1b[mreset"), [
    ["all", "ansi-bold ansi-dim ansi-italic ansi-underline", null, null],
    ["no-weight", "ansi-italic ansi-underline", null, null],
    // Same look after 1 then 0: one segment.
    ["nonereset", "", null, null],
  ]);
});

test("256 colours: 0-15 stay classes, the cube and greys become rgb", () => {
  assert.deepEqual(segs("\x1b[38;5;9ma\x1b[38;5;196mb\x1b[48;5;232mc\x1b[0m"), [
    ["a", "ansi-fg-9", null, null],
    ["b", "", "rgb(255,0,0)", null],
    ["c", "", "rgb(255,0,0)", "rgb(8,8,8)"],
  ]);
  // Colon separators (ITU T.416) mean the same.
  // Pure blue is too dark for a black background: flagged (see the next test).
  assert.deepEqual(segs("\x1b[38:5:21mx"), [["x", "ansi-dark", "rgb(0,0,255)", null]]);
});

test("true colour; one under 3:1 against black or white is flagged for the themes", () => {
  assert.deepEqual(segs("\x1b[38;2;10;20;30mdark\x1b[38;2;250;250;240mlight\x1b[38;2;200;40;40mred\x1b[48;2;1;2;3mon-bg"), [
    ["dark", "ansi-dark", "rgb(10,20,30)", null],
    ["light", "ansi-light", "rgb(250,250,240)", null],
    ["red", "", "rgb(200,40,40)", null],
    ["on-bg", "", "rgb(200,40,40)", "rgb(1,2,3)"],
  ]);
});

test("malformed and unterminated sequences change nothing and are dropped", () => {
  // 38;5 with no index, a component over 255, a non-number: ignored.
  assert.equal(stripAnsi("\x1b[38;5ma\x1b[38;2;300;0;0mb"), "ab");
  assert.deepEqual(segs("\x1b[38;5ma\x1b[38;2;300;0;0mb"), [["ab", "", null, null]]);
  // An unknown parameter is skipped; the good ones in the same sequence apply.
  assert.deepEqual(segs("\x1b[31;999md"), [["d", "ansi-fg-1", null, null]]);
  // A letter ends a CSI: `ESC[31;z` is a (non-SGR) sequence of its own, "md" is text.
  assert.deepEqual(segs("\x1b[31;zmd"), [["md", "", null, null]]);
  // Cut off at the end of the line, or an ESC alone: dropped, text kept.
  assert.deepEqual(segs("ok\x1b[31"), [["ok", "", null, null]]);
  assert.deepEqual(segs("a\x1bb\x1b"), [["ab", "", null, null]]);
  // A CSI without its final byte does not swallow the text after it.
  assert.deepEqual(segs("\x1b[1 text"), [[" text", "", null, null]]);
  // Cursor moves, erase, OSC titles and private modes are dropped without effect.
  assert.deepEqual(segs("\x1b[2J\x1b[10;3Hx\x1b]0;title\x07y\x1b[?25lz"), [["xyz", "", null, null]]);
});

test("stripAnsi leaves exactly the text", () => {
  assert.equal(stripAnsi("\x1b[1;31mERROR\x1b[0m disk \x1b[38;2;1;2;3mfull\x1b[m"), "ERROR disk full");
  assert.equal(stripAnsi("<img src=x onerror=alert(1)>"), "<img src=x onerror=alert(1)>");
});

test("applySgr: an empty parameter list is a reset; unknown codes are ignored", () => {
  const bold = applySgr({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false }, "1;5;7;31");
  assert.deepEqual(bold, { fg: 1, bg: null, bold: true, dim: false, italic: false, underline: false });
  assert.deepEqual(applySgr(bold, ""), { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });
});
