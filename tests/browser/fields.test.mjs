// Unit tests of the console's record fields (assets/console/fields.js):
// dotted paths, cell text, times, levels. In node, no browser; loaded from
// its source as a data: URL like ansi.test.mjs.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { ROOT } from "./lib.mjs";

const source = fs.readFileSync(path.join(ROOT, "assets/console/fields.js"), "utf8");
const f = await import(`data:text/javascript,${encodeURIComponent(source)}`);

test("dotted paths: nested objects and array indexes; missing, null and non-objects are undefined or blank", () => {
  const rec = { labels: { host: "web-1", n: null }, items: [{ id: 7 }], level: null, deep: { a: { b: { c: { d: false } } } } };
  assert.equal(f.getPath(rec, "labels.host"), "web-1");
  assert.equal(f.getPath(rec, "items.0.id"), 7);
  assert.equal(f.getPath(rec, "deep.a.b.c.d"), false);
  assert.equal(f.getPath(rec, "labels.host.x"), undefined);
  assert.equal(f.getPath(rec, "nope.x"), undefined);
  assert.equal(f.getPath([1, 2], "1"), 2);
  assert.deepEqual([null, undefined, "s", 0, false, [1, "a"], { k: null }].map(f.cellText), ["", "", "s", "0", "false", '[1,"a"]', '{"k":null}']);
});

test("the message of a JSON record: line, msg or message; null skipped", () => {
  assert.equal(f.jsonMessage({ line: "a", msg: "b" }), "a");
  assert.equal(f.jsonMessage({ line: null, msg: "b" }), "b");
  assert.equal(f.jsonMessage({ message: 42 }), "42");
  assert.equal(f.jsonMessage({ other: 1 }), undefined);
  assert.equal(f.jsonMessage([1, 2]), undefined);
});

test("times: RFC 3339 with nanoseconds, seconds, milliseconds and nanoseconds since the epoch; shown in UTC or with the zone's offset", () => {
  const ms = Date.UTC(2026, 11, 7, 6, 0, 0, 123);
  assert.equal(f.jsonTime({ time: "2026-12-07T06:00:00.123456789Z" }), ms);
  assert.equal(f.jsonTime({ ts: ms / 1000 }), ms);
  assert.equal(f.jsonTime({ timestamp: ms }), ms);
  assert.equal(f.jsonTime({ "@timestamp": "2026-12-07T07:00:00.123+01:00" }), ms);
  assert.equal(f.jsonTime({ time: ms * 1e6 }), ms);
  assert.equal(f.jsonTime({ time: "not a time" }), null);
  assert.equal(f.jsonTime({ time: null }), null);
  assert.equal(f.formatTime(ms, true), "2026-12-07 06:00:00.123Z");
  assert.match(f.formatTime(ms, false), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.123[+-]\d\d:\d\d$/);
  assert.equal(f.formatTime(null, true), "");
});

test("levels: JSON level names and pino numbers first, then a level word or level=… in the text", () => {
  assert.equal(f.detectLevel('{"level":"WARNING"}', { level: "WARNING" }), "warn");
  assert.equal(f.detectLevel("{}", { level: 50 }), "error");
  assert.equal(f.detectLevel("{}", { level: 30 }), "info");
  assert.equal(f.detectLevel('{"level":null,"msg":"ERROR inside"}', { level: null, msg: "ERROR inside" }), "error");
  assert.equal(f.detectLevel('{"level":null}', { level: null }), "");
  assert.equal(f.detectLevel("[WARN] disk", null), "warn");
  assert.equal(f.detectLevel("ts=1 level=error msg=x", null), "error");
  assert.equal(f.detectLevel("lvl: debug x", null), "debug");
  assert.equal(f.detectLevel("2024-01-01 - app - CRITICAL - x", null), "error");
  assert.equal(f.detectLevel("an error in lower case is not a level word", null), "");
  assert.ok(f.levelRank("error") > f.levelRank("warn") && f.levelRank("debug") > f.levelRank(""));
});

test("columns from the URL: dotted names kept in order, duplicates and garbage dropped", () => {
  assert.deepEqual(f.parseColumns("time,labels.host,message,labels.host"), ["time", "labels.host", "message"]);
  assert.deepEqual(f.parseColumns("a..b,<x>,ok"), ["ok"]);
  assert.equal(f.parseColumns(""), null);
  assert.equal(f.parseColumns(",,"), null);
});

test("the column picker's suggestions: leaf paths, nested objects followed, arrays as one value, bounded", () => {
  const paths = new Set();
  f.collectPaths({ a: 1, labels: { host: "x", k: { z: 1 } }, arr: [1], n: null }, paths);
  assert.deepEqual([...paths], ["a", "labels.host", "labels.k.z", "arr", "n"]);
  const many = new Set();
  f.collectPaths(Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i])), many, 200);
  assert.equal(many.size, 200);
});
