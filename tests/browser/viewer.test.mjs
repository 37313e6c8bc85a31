// The console as a log viewer (DESIGN.md "The console as a log viewer"),
// in headless chromium against the real binary: merged sources with a
// source filter, JSON columns, levels and highlight search, downloads,
// ANSI colours, and 100,000 retained lines in a virtualised list. Driven
// as a user would (click, type, download); assertions on what is shown,
// never on timings.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { ARTIFACTS, appendLines, launchBrowser, lineTexts, nextFrames, openConsole, screenshot, startServer, tempDir, waitFor } from "./lib.mjs";

let browser;

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  console.log(`screenshots: ${ARTIFACTS}`);
});

/** A server following fresh empty files `names`, and a browser context; both closed after the test. */
async function setup(t, { files = ["app.log"], args = [], context = {} } = {}) {
  const dir = tempDir();
  const paths = {};
  for (const name of files) {
    paths[name] = path.join(dir, name);
    fs.writeFileSync(paths[name], "");
  }
  const server = await startServer([...args, ...files.map((n) => `${n}=${paths[n]}`)]);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, ...context });
  t.after(async () => {
    await ctx.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, paths, server, ctx, url: server.url };
}

/** Publishes `body` on channel `name` (text/plain, or NDJSON when `ndjson`). */
async function publish(url, name, body, { ndjson = false } = {}) {
  const res = await fetch(`${url}/channels/${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { "Content-Type": ndjson ? "application/x-ndjson" : "text/plain" },
    body,
  });
  assert.equal(res.status, 200, `publish on ${name}: ${await res.text()}`);
}

/** The drawn rows as `{time, level, source, text, fields, height}`. */
function rows(page) {
  return page.$$eval(".pane .line:not(.marker)", (els) =>
    els.map((e) => ({
      time: e.querySelector(".c-time")?.textContent ?? null,
      level: e.querySelector(".c-level")?.textContent ?? null,
      source: e.querySelector(".c-source")?.textContent ?? null,
      text: e.querySelector(".text")?.textContent ?? null,
      fields: Object.fromEntries([...e.querySelectorAll(".c-field")].map((c) => [c.dataset.field, c.textContent])),
      height: e.getBoundingClientRect().height,
    })),
  );
}

/** WCAG contrast of every coloured span of the drawn rows against what is behind it; the lowest. */
function lowestContrast(page, selector) {
  return page.evaluate((selector) => {
    const parse = (c) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      return m ? m[1].split(/[\s,/]+/).filter(Boolean).map(Number) : null;
    };
    const lum = ([r, g, b]) => {
      const f = (c) => {
        const s = c / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const behind = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && (c.length < 4 || c[3] > 0.5)) return c;
      }
      return [255, 255, 255];
    };
    let lowest = { ratio: Infinity };
    for (const el of document.querySelectorAll(selector)) {
      const fg = parse(getComputedStyle(el).color);
      const bg = behind(el);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      const ratio = (a + 0.05) / (b + 0.05);
      if (ratio < lowest.ratio) lowest = { ratio, text: el.textContent, fg: fg.join(","), bg: bg.join(",") };
    }
    return lowest;
  }, selector);
}

test("a merged view of a log file and two channels on one connection: each line tagged and coloured by source, and a source filter that keeps every line", async (t) => {
  const { url, paths, ctx } = await setup(t, { files: ["api.log"] });
  const page = await ctx.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  const sse = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname === "/events") sse.push(u.search);
  });
  await page.goto(`${url}/#streams=log:api.log,news,jobs`);
  await waitFor(() => page.evaluate(() => document.body.dataset.conn === "open"), { message: "live" });
  appendLines(paths["api.log"], ["api 0", "api 1"]);
  await publish(url, "news", "news 0");
  await publish(url, "jobs", "jobs 0");
  await publish(url, "news", "news 1");
  await waitFor(async () => (await lineTexts(page)).length === 5, { message: "5 lines from three sources" });
  const tagged = await page.$$eval(".pane .line", (els) => els.map((e) => [e.querySelector(".tag").textContent, e.querySelector(".text").textContent, getComputedStyle(e.querySelector(".tag")).backgroundColor]));
  const bySource = {};
  for (const [source, text, colour] of tagged) {
    assert.ok(text.startsWith(source.split(".")[0]), `${text} tagged ${source}`);
    bySource[source] = bySource[source] || new Set();
    bySource[source].add(colour);
  }
  assert.deepEqual(Object.keys(bySource).sort(), ["api.log", "jobs", "news"]);
  for (const colours of Object.values(bySource)) assert.equal(colours.size, 1, "one colour per source");
  assert.equal(new Set(Object.values(bySource).map((c) => [...c][0])).size, 3, "a different colour per source");
  // The tags' white text is readable on their colours, in both themes.
  for (const theme of ["dark", "light"]) {
    await page.evaluate((theme) => (document.documentElement.dataset.theme = theme), theme);
    const low = await lowestContrast(page, ".pane .line .tag");
    assert.ok(low.ratio >= 4.5, `tag contrast in ${theme}: ${JSON.stringify(low)}`);
  }

  // The source filter: hide news; its lines go, the others stay, nothing reconnects.
  await page.click('.pane-head .src[data-source="news"]');
  await waitFor(async () => (await lineTexts(page)).join() === "api 0,api 1,jobs 0", { message: "news hidden" });
  assert.equal(await page.getAttribute('.pane-head .src[data-source="news"]', "aria-pressed"), "false");
  await publish(url, "news", "news 2");
  await publish(url, "jobs", "jobs 1");
  await waitFor(async () => (await lineTexts(page)).at(-1) === "jobs 1", { message: "jobs 1 while news is hidden" });
  assert.ok(!(await lineTexts(page)).includes("news 2"), "news 2 is kept hidden");
  await page.click('.pane-head .src[data-source="news"]');
  await waitFor(async () => (await lineTexts(page)).length === 7, { message: "news back" });
  const all = await lineTexts(page);
  assert.deepEqual(all.filter((l) => l.startsWith("news")), ["news 0", "news 1", "news 2"], "no news line lost while hidden");
  assert.deepEqual(all.filter((l) => l.startsWith("jobs")), ["jobs 0", "jobs 1"]);
  assert.equal(sse.length, 1, `one /events connection, never reopened: ${sse.join(" ")}`);
  assert.deepEqual(page.errors, []);
});

test("JSON lines as columns: time, level, source, message; fields picked, ordered and hidden by dotted path and kept in the URL; null, arrays, numbers, deep and non-JSON lines never break a row; a row expands to its object", async (t) => {
  const { url, paths, ctx } = await setup(t, { files: ["app.json.log"], context: { timezoneId: "UTC" } });
  const page = await openConsole(ctx, `${url}/#streams=log:app.json.log,ingest`);
  // Times in UTC, on screen and in the column title.
  await page.click("#tz");
  assert.equal(await page.textContent("#tz"), "UTC");
  const records = [
    { time: "2026-12-07T06:00:00.123456789Z", line: "GET /a 200", level: "info", labels: { host: "web-1", job: "nginx" } },
    { level: null, msg: "null level", labels: null },
    { time: 1733550000.5, message: "seconds time", level: "warn", labels: { host: "web-2" }, tags: ["a", "b"], n: 42 },
    { deep: { a: { b: { c: { d: 1 } } } }, msg: "deep", level: "error" },
  ];
  await publish(url, "ingest", `${records.map((r) => JSON.stringify(r)).join("\n")}\n"plain line, not json"\n`, { ndjson: true });
  appendLines(paths["app.json.log"], ['{"ts":1765087200000,"lvl":"debug","msg":"from a JSON log file","labels":{"host":"file-1"}}', "[1,2,3]", "{broken json"]);
  await waitFor(async () => (await lineTexts(page)).length === 8, { message: "8 lines" });
  assert.deepEqual(await page.$$eval(".pane .cols-head > *", (els) => els.map((e) => e.textContent)), ["time (UTC)", "level", "source", "message"]);
  const byText = Object.fromEntries((await rows(page)).map((r) => [r.text, r]));
  assert.deepEqual(byText["GET /a 200"], { time: "2026-12-07 06:00:00.123Z", level: "info", source: "ingest", text: "GET /a 200", fields: {}, height: 18 });
  assert.equal(byText["null level"].level, "", "a null level is blank");
  assert.equal(byText["seconds time"].time, "2024-12-07 05:40:00.500Z");
  assert.equal(byText["seconds time"].level, "warn");
  assert.equal(byText["from a JSON log file"].time, "2025-12-07 06:00:00.000Z");
  assert.equal(byText["from a JSON log file"].source, "app.json.log");
  assert.equal(byText["deep"].level, "error");
  for (const text of ["[1,2,3]", "{broken json", "plain line, not json"]) assert.ok(byText[text], `${text} shown as it is`);
  for (const r of Object.values(byText)) assert.equal(r.height, 18, `one row each: ${r.text}`);

  // Pick fields in the Columns box: labels.host (moved before the message), tags, n, a deep path; hide level.
  await page.click("#columns-btn");
  for (const field of ["labels.host", "tags", "n", "deep.a.b.c.d"]) {
    await page.fill("#columns-field", field);
    await page.press("#columns-field", "Enter");
    await waitFor(() => page.locator(`#columns-list li[data-column="${field}"]`).count().then((n) => n === 1), { message: `${field} added` });
  }
  // labels.host goes up past message (it was added right after it).
  await page.click('#columns-list li[data-column="labels.host"] button[data-act="up"]');
  await page.click('#columns-list li[data-column="level"] button[data-act="hide"]');
  await page.keyboard.press("Escape");
  const cols = "time,source,labels.host,message,tags,n,deep.a.b.c.d";
  await waitFor(() => new URL(page.url()).hash.includes(`cols=${cols}`), { message: "columns in the URL" });
  const check = async (p) => {
    assert.deepEqual(await p.$$eval(".pane .cols-head > *", (els) => els.map((e) => e.textContent)), ["time (UTC)", "source", "labels.host", "message", "tags", "n", "deep.a.b.c.d"]);
    const shown = Object.fromEntries((await rows(p)).map((r) => [r.text, r]));
    assert.equal(shown["GET /a 200"].level, null, "level hidden");
    assert.deepEqual(shown["GET /a 200"].fields, { "labels.host": "web-1", tags: "", n: "", "deep.a.b.c.d": "" });
    assert.deepEqual(shown["seconds time"].fields, { "labels.host": "web-2", tags: '["a","b"]', n: "42", "deep.a.b.c.d": "" });
    assert.deepEqual(shown["null level"].fields, { "labels.host": "", tags: "", n: "", "deep.a.b.c.d": "" });
    assert.deepEqual(shown["deep"].fields, { "labels.host": "", tags: "", n: "", "deep.a.b.c.d": "1" });
    assert.deepEqual(shown["plain line, not json"].fields, { "labels.host": "", tags: "", n: "", "deep.a.b.c.d": "" });
    // The cells line up: each column starts at the same x on every row.
    const xs = await p.$$eval(".pane .line:not(.marker)", (els) => els.map((e) => [...e.children].filter((c) => !c.classList.contains("type")).map((c) => Math.round(c.getBoundingClientRect().left)).join()));
    assert.equal(new Set(xs).size, 1, `aligned columns: ${[...new Set(xs)].join(" | ")}`);
    for (const r of Object.values(shown)) assert.equal(r.height, 18, `one row each: ${r.text}`);
  };
  await check(page);
  // Screenshots of the merged JSON view, both themes.
  await page.evaluate(() => (document.documentElement.dataset.theme = "dark"));
  t.diagnostic(`dark: ${await screenshot(page, "viewer-merged-json-dark")}`);
  await page.evaluate(() => (document.documentElement.dataset.theme = "light"));
  t.diagnostic(`light: ${await screenshot(page, "viewer-merged-json-light")}`);

  // A click expands a row to the whole object, pretty-printed as text; again folds it.
  await page.locator(".pane .line", { hasText: "seconds time" }).click();
  const open = page.locator(".pane .line.open");
  await waitFor(() => open.count().then((n) => n === 1), { message: "one row expanded" });
  assert.equal(await open.locator(".text").textContent(), JSON.stringify(records[2], null, 2));
  assert.ok((await open.boundingBox()).height > 18 * 10, "the expanded row is as high as its object");
  // The cells the expanded row still shows on its first line sit under their own headings.
  const misplaced = await page.$$eval(".pane .line.open [data-field]", (cells) => {
    const heads = Object.fromEntries([...document.querySelectorAll(".pane .cols-head > *")].map((h) => [h.textContent, Math.round(h.getBoundingClientRect().left)]));
    return cells.map((c) => [c.dataset.field, Math.round(c.getBoundingClientRect().left), heads[c.dataset.field]]).filter(([, x, head]) => x !== head);
  });
  assert.deepEqual(misplaced, [], "expanded row cells under their headings");
  // The rows below moved down (once the row is measured): none overlaps.
  await waitFor(async () => {
    const boxes = await page.$$eval(".pane .line", (els) => els.map((e) => e.getBoundingClientRect()).map((b) => [b.top, b.bottom]));
    return boxes.every((b, i) => i === 0 || b[0] >= boxes[i - 1][1] - 0.5);
  }, { message: "no row overlaps the expanded one" });
  await screenshot(page, "viewer-json-expanded");
  await open.click();
  await waitFor(() => open.count().then((n) => n === 0), { message: "folded again" });
  assert.deepEqual(page.errors, []);

  // A link (or a reload) opens the same columns. (The first page is closed
  // first: with its live charts, two pages would fill the browser's six
  // connections per host.)
  const link = page.url();
  await page.close();
  const again = await openConsole(ctx, link);
  // A channel has no backlog: its lines come from the history ("⤒ earlier").
  await again.click(".pane .earlier");
  await waitFor(async () => (await lineTexts(again)).length === 8, { message: "8 lines after reload" });
  assert.equal(await again.textContent("#tz"), "UTC", "the time zone choice is kept (local storage)");
  await check(again);
  assert.deepEqual(again.errors, []);

});

test("level filter from JSON levels and level words; a highlight search that hides nothing, with next and previous (buttons and keys)", async (t) => {
  const { url, paths, ctx } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  const lines = [
    "ERROR boom in db",
    "[WARN] disk almost full",
    "ts=1 level=error msg=db down",
    "INFO all good",
    "DEBUG detail of db",
    "no level here, db fine",
    '{"level":"warn","msg":"json warn"}',
    '{"level":50,"msg":"pino error"}',
    '{"level":null,"msg":"null level"}',
  ];
  appendLines(paths["app.log"], lines);
  await waitFor(async () => (await lineTexts(page)).length === lines.length, { message: "all lines" });
  await page.selectOption("#min-level", "3");
  await waitFor(async () => (await lineTexts(page)).length === 5, { message: "warn and above" });
  assert.deepEqual(await lineTexts(page), [lines[0], lines[1], lines[2], lines[6], lines[7]]);
  await page.selectOption("#min-level", "4");
  await waitFor(async () => (await lineTexts(page)).length === 3, { message: "errors only" });
  assert.deepEqual(await lineTexts(page), [lines[0], lines[2], lines[7]]);
  await page.selectOption("#min-level", "0");
  await waitFor(async () => (await lineTexts(page)).length === lines.length, { message: "every line again" });

  // Highlight "db": 4 rows match, none is hidden.
  await page.fill("#search", "db");
  await waitFor(async () => (await page.textContent("#search-count")) === "– / 4", { message: "4 matches counted" });
  assert.equal((await lineTexts(page)).length, lines.length, "nothing hidden");
  assert.equal(await page.locator(".pane .line mark.hit").count(), 4);
  const current = () => page.locator(".pane .line.current .text").textContent();
  await page.press("#search", "Enter");
  await waitFor(async () => (await current()) === lines[0], { message: "first match" });
  assert.equal(await page.textContent("#search-count"), "1 / 4");
  await page.press("#search", "Enter");
  await waitFor(async () => (await current()) === lines[2], { message: "second match" });
  await page.press("#search", "Shift+Enter");
  await waitFor(async () => (await current()) === lines[0], { message: "back to the first" });
  await page.click("#search-prev");
  await waitFor(async () => (await current()) === lines[5], { message: "previous wraps to the last" });
  await page.click("#search-next");
  await waitFor(async () => (await current()) === lines[0], { message: "next wraps to the first" });
  // n / N outside the box.
  await page.locator(".pane .log").focus();
  await page.keyboard.press("n");
  await waitFor(async () => (await current()) === lines[2], { message: "n" });
  await page.keyboard.press("N");
  await waitFor(async () => (await current()) === lines[0], { message: "N" });
  // With the regex filter (which hides) next to it.
  await page.fill("#filter", "^(ERROR|DEBUG)");
  await waitFor(async () => (await lineTexts(page)).length === 2, { message: "the filter hides" });
  await waitFor(async () => (await page.textContent("#search-count")).endsWith("/ 2"), { message: "matches among the shown rows" });
  await screenshot(page, "viewer-levels-search");

  // Far away in a long view: the match is scrolled into sight.
  await page.fill("#filter", "");
  await page.fill("#search", "");
  appendLines(paths["app.log"], Array.from({ length: 600 }, (_, i) => (i === 20 ? "a needle here" : `hay ${i}`)));
  await waitFor(async () => (await lineTexts(page)).at(-1) === "hay 599", { message: "600 more lines" });
  await page.fill("#search", "needle");
  await page.press("#search", "Enter");
  await waitFor(async () => (await page.locator(".pane .line.current").count()) === 1, { message: "the far match drawn" });
  const inView = await page.$eval(".pane .line.current", (el) => {
    const log = el.closest(".log").getBoundingClientRect();
    const b = el.getBoundingClientRect();
    return b.top >= log.top && b.bottom <= log.bottom;
  });
  assert.ok(inView, "the current match is inside the viewport");
  assert.deepEqual(page.errors, []);
});

test("download what is shown and a channel's history, as text and NDJSON, with the filters, times as on screen in the browser's zone or UTC", async (t) => {
  const { url, ctx } = await setup(t, { args: ["--history", "5000"], context: { timezoneId: "Asia/Kolkata" } });
  // 1,500 JSON events and a plain line: more than one page of /api/history.
  const events = Array.from({ length: 1500 }, (_, i) => JSON.stringify({ time: new Date(Date.UTC(2026, 11, 7, 6, 0, 0, i)).toISOString(), level: i % 3 ? "info" : "error", line: `event ${i} ${i % 2 ? "odd" : "even"}` }));
  const page = await openConsole(ctx, `${url}/#streams=jobs`);
  await publish(url, "jobs", `${events.join("\n")}\n`, { ndjson: true });
  await publish(url, "jobs", "plain live line odd");
  await waitFor(async () => (await lineTexts(page)).at(-1) === "plain live line odd", { message: "the live line" });
  await page.fill("#filter", "odd");
  await page.selectOption("#min-level", "0");
  await waitFor(async () => (await lineTexts(page)).every((l) => l.includes("odd")), { message: "filtered" });
  const shown = await lineTexts(page);

  const download = async (what, format) => {
    await page.click("#download-btn");
    await page.check(`#download-form input[value="${what}"]`);
    await page.selectOption("#download-format", format);
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#download-go")]);
    const file = path.join(ARTIFACTS, dl.suggestedFilename());
    await dl.saveAs(file);
    const status = await page.textContent("#download-status");
    await page.keyboard.press("Escape");
    return { name: dl.suggestedFilename(), text: fs.readFileSync(file, "utf8"), status };
  };

  // What is shown, as text, in the browser's zone (Asia/Kolkata, +05:30).
  assert.equal(await page.textContent("#tz"), "Local");
  const screenTimes = await page.$$eval(".pane .line .c-time", (els) => els.map((e) => e.textContent));
  const text = await download("shown", "text");
  assert.match(text.name, /^tailcast-jobs-\d{8}-\d{6}\.log$/);
  const textLines = text.text.trimEnd().split("\n");
  assert.equal(textLines.length, shown.length, "one line per row shown");
  for (const l of textLines) assert.match(l, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+05:30 \[jobs\] .*odd/);
  assert.equal(textLines.at(-2), `2026-12-07 11:30:01.499+05:30 [jobs] ${events[1499]}`);
  // The times are those on screen.
  for (const time of screenTimes.slice(-5, -1)) assert.ok(textLines.some((l) => l.startsWith(time)), `${time} in the file`);

  // UTC: the screen and the NDJSON change alike.
  await page.click("#tz");
  await waitFor(async () => (await page.$$eval(".pane .line .c-time", (els) => els.map((e) => e.textContent))).every((s) => s.endsWith("Z")), { message: "UTC on screen" });
  const nd = await download("shown", "ndjson");
  const objs = nd.text.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(objs.length, shown.length);
  assert.deepEqual(objs.at(-2), { time: "2026-12-07 06:00:01.499Z", source: "jobs", id: objs.at(-2).id, event: "message", level: "info", data: JSON.parse(events[1499]) });
  assert.equal(objs.at(-1).data, "plain live line odd");

  // The whole history (paged: 1,501 events), with the filters: odd events, error level and above.
  await page.selectOption("#min-level", "4");
  const hist = await download("history", "ndjson");
  const hobjs = hist.text.trimEnd().split("\n").map((l) => JSON.parse(l));
  const expected = events.map((e) => JSON.parse(e)).filter((e, i) => i % 2 === 1 && i % 3 === 0);
  assert.equal(hobjs.length, expected.length, "every matching event of the history, once");
  assert.deepEqual(hobjs.map((o) => o.data), expected, "oldest first");
  assert.equal(hobjs[0].time, "2026-12-07 06:00:00.003Z");
  assert.equal(hist.status, `${expected.length} lines of 1,501`);
  assert.deepEqual(page.errors, []);
});

test("ANSI colours render as coloured text, readable in both themes; markup in a line stays text", async (t) => {
  const { url, paths, ctx } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  const xss = '<img src=x onerror="window.__xss=1;alert(1)">';
  appendLines(paths["app.log"], [
    "\x1b[31mred\x1b[0m \x1b[1;4mbold-under\x1b[22;24m \x1b[92mbright-green\x1b[39m end",
    "\x1b[38;5;208morange\x1b[0m \x1b[38;2;10;10;10mnear-black\x1b[0m \x1b[38;2;250;250;250mnear-white\x1b[0m \x1b[30mblack\x1b[0m \x1b[97mwhite\x1b[0m",
    "\x1b[47mon-white\x1b[0m \x1b[44mon-blue\x1b[0m \x1b[43;30mblack-on-yellow\x1b[49m \x1b[31",
    xss,
    "<script>window.__xss=2</script><b>bold?</b>",
  ]);
  await waitFor(async () => (await lineTexts(page)).length === 5, { message: "5 lines" });
  const texts = await page.$$eval(".pane .line .text", (els) => els.map((e) => e.textContent));
  assert.deepEqual(texts, [
    "red bold-under bright-green end",
    "orange near-black near-white black white",
    "on-white on-blue black-on-yellow ",
    xss,
    "<script>window.__xss=2</script><b>bold?</b>",
  ]);
  assert.equal(await page.locator(".line .ansi-fg-1").textContent(), "red");
  assert.equal(await page.locator(".line .ansi-bold.ansi-underline").textContent(), "bold-under");
  assert.equal(await page.locator(".line .ansi-fg-10").textContent(), "bright-green");
  assert.equal(await page.locator(".line span", { hasText: /^orange$/ }).evaluate((e) => getComputedStyle(e).color), "rgb(255, 135, 0)");
  // Markup stays text: no element was made from it, nothing ran.
  assert.equal(await page.locator(".log img, .log script, .log b").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(dialogs, []);
  // Readable: every coloured span has a contrast of 3:1 or more with what is behind it, in both themes.
  await page.mouse.move(0, 0);
  for (const theme of ["dark", "light"]) {
    await page.evaluate((theme) => (document.documentElement.dataset.theme = theme), theme);
    await nextFrames(page);
    const low = await lowestContrast(page, ".pane .line .text span");
    assert.ok(low.ratio >= 3, `lowest contrast in ${theme}: ${JSON.stringify(low)}`);
    t.diagnostic(`${theme}: lowest contrast ${low.ratio.toFixed(2)} (${low.text}); ${await screenshot(page, `viewer-ansi-${theme}`)}`);
  }
  assert.deepEqual(page.errors, []);
});

test("100,000 lines kept in a virtualised list: a small DOM, the first line at the top, a filter and End that answer", async (t) => {
  const N = 100000;
  const { url, paths, ctx } = await setup(t, { args: ["--history", String(N)] });
  const page = await openConsole(ctx, `${url}/`);
  await page.fill("#cap", String(N));
  await page.press("#cap", "Enter");
  await waitFor(() => page.evaluate(() => document.getElementById("cap").value === "100000"), { message: "keep 100000" });
  const line = (i) => `2024-01-01 12:00:00,000 - big - ${i % 10 === 0 ? "ERROR" : "INFO"} - row ${i} ${"y".repeat(40)}`;
  fs.appendFileSync(paths["app.log"], Array.from({ length: N }, (_, i) => `${line(i)}\n`).join(""));
  const count = () => page.textContent(".pane .pane-head .count");
  await waitFor(async () => (await count()) === "100,000 / 100,000", { timeout: 120000, interval: 250, message: "100,000 lines kept" });
  const domRows = () => page.$$eval(".pane .line", (els) => els.length);
  assert.ok((await domRows()) < 300, `DOM rows while following: ${await domRows()}`);
  await waitFor(async () => ((await page.locator(".pane .line .text").last().textContent()) || "") === line(N - 1), { message: "following: the last line drawn" });

  // Scrolled to the top (the scroll bar dragged up): the first line kept.
  const firstInView = () =>
    page.$eval(".pane .log", (log) => {
      const box = log.getBoundingClientRect();
      return [...log.querySelectorAll(".line")].find((e) => e.getBoundingClientRect().bottom > box.top + 1)?.querySelector(".text").textContent;
    });
  await page.$eval(".pane .log", (l) => {
    l.scrollTop = 0;
  });
  await waitFor(async () => (await firstInView()) === line(0), { message: "the first line at the top" });
  assert.ok((await domRows()) < 300, "DOM rows at the top");
  await waitFor(() => page.locator(".jump").isVisible(), { message: "not following while scrolled up" });

  // A filter over 100,000 lines: 10 rows.
  await page.fill("#filter", "row 9999\\d ");
  await waitFor(async () => (await count()) === "10 / 100,000", { message: "10 rows match" });
  assert.deepEqual(await lineTexts(page), Array.from({ length: 10 }, (_, i) => line(99990 + i)));
  await page.focus("#filter");
  await page.keyboard.press("Escape");
  await waitFor(async () => (await count()) === "100,000 / 100,000", { message: "every row back" });

  // End jumps to the latest line.
  await page.locator(".pane .log").focus();
  await page.keyboard.press("End");
  await waitFor(async () => ((await page.locator(".pane .line .text").last().textContent()) || "") === line(N - 1), { message: "End: the last line drawn" });
  const gap = await page.$eval(".pane .log", (l) => l.scrollHeight - l.scrollTop - l.clientHeight);
  assert.ok(gap <= 2, `at the bottom (gap ${gap})`);
  assert.ok((await domRows()) < 300, "DOM rows at the bottom");
  // Still following: a new line shows at the bottom.
  appendLines(paths["app.log"], ["one more"]);
  await waitFor(async () => (await page.locator(".pane .line .text").last().textContent()) === "one more", { message: "the new line drawn" });
  assert.equal(await count(), "100,000 / 100,000", "the cap holds");
  await screenshot(page, "viewer-100k");
  assert.deepEqual(page.errors, []);
});
