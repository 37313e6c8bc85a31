// The web console in a real browser: Debian's headless chromium, driven by
// playwright-core, against the real tailcast binary on 127.0.0.1.
//
// Functional checks only: every wait polls for a condition (the deadlines
// are watchdogs), and no test asserts a speed. The responsiveness figures
// (click to next frame, frame rate, long tasks) are measured by
// bench/console-bench.mjs (`bash .ci/browser.sh --bench`), which reports
// them instead.
//
// Run: `bash .ci/browser.sh`, or `cargo build && cd tests/browser && npm ci && npm test`.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import {
  ARTIFACTS,
  BIN,
  ROOT,
  appendLines,
  launchBrowser,
  lineTexts,
  nextFrames,
  openConsole,
  screenshot,
  serveStatic,
  sseCollect,
  startProxy,
  startServer,
  tempDir,
  waitFor,
  waitLive,
} from "./lib.mjs";

let browser;

before(async () => {
  fs.rmSync(ARTIFACTS, { recursive: true, force: true });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  console.log(`screenshots: ${ARTIFACTS}`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  console.log(`screenshots: ${ARTIFACTS}`);
});

/**
 * A server following fresh empty files `names` (stream NAME is file NAME),
 * and a browser context; both are closed after the test.
 */
async function setup(t, { files = ["app.log"], args = [], context = {} } = {}) {
  const dir = tempDir();
  const paths = {};
  for (const name of files) {
    paths[name] = path.join(dir, name);
    fs.writeFileSync(paths[name], "");
  }
  const server = await startServer([...args, ...files.map((n) => `${n}=${paths[n]}`)]);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...context });
  t.after(async () => {
    await ctx.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, paths, server, ctx, url: server.url };
}

const numbered = (prefix, from, to) => Array.from({ length: to - from }, (_, i) => `${prefix} ${from + i}`);

/** Waits until the view shows exactly `expected` (in this order). */
async function expectLines(page, expected, message, selector) {
  let shown;
  try {
    await waitFor(async () => {
      shown = await lineTexts(page, selector);
      return shown.length >= expected.length;
    }, { message });
  } finally {
    assert.deepEqual(shown, expected, message);
  }
}

/** Subscribers the server counts on channel `name` (from /api/streams). */
async function subscribers(serverUrl, name) {
  const list = await fetch(`${serverUrl}/api/streams`).then((r) => r.json());
  return list.find((s) => s.name === name)?.subscribers ?? 0;
}

/** Every line of the view, markers included: `{marker, text}` in page order. */
function viewLines(page) {
  return page.$$eval(".pane .line", (els) =>
    els.map((e) => ({ marker: e.classList.contains("marker"), text: e.querySelector(".text")?.textContent ?? e.textContent })),
  );
}

/** The chart's accessible label: each series' latest value, as its legend shows it. */
function chartLabel(page, id) {
  return page.evaluate((id) => document.getElementById(id).getAttribute("aria-label") || "", id);
}

/** The latest value of `series` in chart `id`, or null. */
async function chartValue(page, id, series) {
  const m = new RegExp(`(?:^|, )${series.replace("/", "\\/")} (-?[\\d.]+)`).exec(await chartLabel(page, id));
  return m ? Number(m[1]) : null;
}

/**
 * Pixels of series `i`'s colour in the right-most 6 CSS pixels of chart
 * `id`: where the line ends at the newest value (the legend is on the left).
 */
function seriesPixels(page, id, i) {
  return page.evaluate(
    ([id, i]) => {
      const canvas = document.getElementById(id);
      const probe = document.createElement("canvas").getContext("2d");
      probe.fillStyle = getComputedStyle(canvas).getPropertyValue(`--chart-${i}`).trim();
      probe.fillRect(0, 0, 1, 1);
      const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
      const ratio = canvas.width / canvas.clientWidth;
      const x0 = Math.floor(canvas.width - 6 * ratio);
      const data = canvas.getContext("2d").getImageData(x0, 0, canvas.width - x0, canvas.height).data;
      let n = 0;
      for (let p = 0; p < data.length; p += 4) {
        if (data[p + 3] > 0 && Math.abs(data[p] - r) + Math.abs(data[p + 1] - g) + Math.abs(data[p + 2] - b) < 60) n++;
      }
      return n;
    },
    [id, i],
  );
}

test("the page loads with no console errors, in dark, light and phone layouts", async (t) => {
  const { url, paths, ctx } = await setup(t, { context: { colorScheme: "dark" } });
  appendLines(paths["app.log"], [
    "2024-01-01 12:00:00,100 - log_app - INFO - service started",
    "2024-01-01 12:00:00,200 - log_app - WARNING - disk 91% full",
    "2024-01-01 12:00:00,300 - log_app - ERROR - cannot reach db",
    "2024-01-01 12:00:00,400 - log_app - DEBUG - retrying in 2s",
    '{"level":"info","msg":"json line","user":{"id":7,"roles":["admin"]}}',
    "\x1b[31mred\x1b[0m plain \x1b[1;32mbold green\x1b[0m",
  ]);
  const page = await openConsole(ctx, `${url}/`);
  const failed = [];
  page.on("requestfailed", (r) => failed.push(`${r.url()} ${r.failure()?.errorText}`));
  await waitFor(() => page.$$eval(".line", (els) => els.length === 6), { message: "6 backlog lines" });
  // Level colours, ANSI colours, pretty JSON on demand.
  assert.equal(await page.locator(".line.lvl-error").count(), 1);
  assert.equal(await page.locator(".line.lvl-warn").count(), 1);
  assert.equal(await page.locator(".line.lvl-debug").count(), 1);
  assert.equal(await page.locator(".line .ansi-fg-1").textContent(), "red");
  assert.equal(await page.locator(".line .ansi-fg-2.ansi-bold").textContent(), "bold green");
  assert.doesNotMatch(await page.locator(".line.json .text").textContent(), /\n/);
  await page.keyboard.press("j");
  assert.match(await page.locator(".line.json .text").textContent(), /\n {2}"user": \{/);
  await page.keyboard.press("j");
  // The screenshots show charts with a few points drawn.
  await waitFor(async () => Number(await page.getAttribute("#chart-events", "data-points")) >= 3, { message: "3 points on the events chart" });
  t.diagnostic(`dark: ${await screenshot(page, "console-dark")}`);
  await page.click("#theme");
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "light");
  t.diagnostic(`light: ${await screenshot(page, "console-light")}`);

  // A phone: the sidebar becomes a drawer behind the ☰ button.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  t.after(() => phone.close());
  const small = await openConsole(phone, `${url}/`);
  await waitFor(() => small.$$eval(".line", (els) => els.length === 6), { message: "6 lines on the phone" });
  assert.equal(await small.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true, "no horizontal scroll");
  assert.equal(await small.locator("#sidebar").isVisible(), true); // in the DOM, moved off screen
  const box = await small.locator("#sidebar").boundingBox();
  assert.ok(box.x + box.width <= 1, "drawer closed");
  t.diagnostic(`phone: ${await screenshot(small, "console-phone")}`);
  await small.tap("#sidebar-toggle");
  await waitFor(async () => (await small.locator("#sidebar").boundingBox()).x >= 0, { message: "drawer open" });
  t.diagnostic(`phone drawer: ${await screenshot(small, "console-phone-drawer")}`);

  assert.deepEqual([...page.errors, ...small.errors], [], "console errors");
  assert.deepEqual(failed, [], "failed requests");
});

test("lines appended to a followed file appear in order", async (t) => {
  const { url, paths, ctx, server } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  const witness = await sseCollect(`${server.url}/logs/app.log?tail=0`);
  t.after(() => witness.close());
  const expected = numbered("line", 0, 300);
  // In several writes, one ending in the middle of a line: the rest is
  // written once the server has sent everything before it.
  appendLines(paths["app.log"], expected.slice(0, 100));
  fs.appendFileSync(paths["app.log"], `${expected.slice(100, 200).join("\n")}\n${expected[200].slice(0, 3)}`);
  await waitFor(() => witness.events.some((e) => e.data === expected[199]), { message: "the server sent line 199" });
  fs.appendFileSync(paths["app.log"], `${expected[200].slice(3)}\n${expected.slice(201).join("\n")}\n`);
  await expectLines(page, expected, "all 300 lines in order");
  // The status bar counts them.
  await waitFor(async () => (await page.locator("#total").textContent()) === "300", { message: "total 300" });
  assert.deepEqual(page.errors, []);
});

test("Stop pauses the view and Start resumes with no line lost or repeated", async (t) => {
  const { url, paths, ctx, server } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  const file = paths["app.log"];
  appendLines(file, numbered("before", 0, 20));
  await expectLines(page, numbered("before", 0, 20), "lines before Stop");

  // An independent listener tells when the server has sent the paused lines.
  const witness = await sseCollect(`${server.url}/logs/app.log?tail=0`);
  t.after(() => witness.close());
  await page.click("#stop");
  await waitFor(() => page.evaluate(() => document.body.dataset.conn === "stopped"), { message: "stopped" });
  // Stopped means no connection: the witness is the only subscriber left.
  await waitFor(async () => (await subscribers(server.url, "log:app.log")) === 1, { message: "the page's connection closed" });
  appendLines(file, numbered("paused", 0, 30));
  await waitFor(() => witness.events.filter((e) => e.data.startsWith("paused")).length === 30, { message: "server sent the 30 paused lines" });
  await nextFrames(page);
  assert.equal((await lineTexts(page)).length, 20, "nothing is shown while stopped");

  await page.click("#start");
  await waitLive(page);
  appendLines(file, numbered("after", 0, 10));
  await expectLines(page, [...numbered("before", 0, 20), ...numbered("paused", 0, 30), ...numbered("after", 0, 10)], "every line once, in order");
  assert.equal(await page.locator(".line.marker").count(), 0, "no reset marker: nothing was missed");

  // The keyboard shortcut does the same.
  await page.keyboard.press("p");
  await waitFor(() => page.evaluate(() => document.body.dataset.conn === "stopped"), { message: "stopped by p" });
  appendLines(file, ["key 0"]);
  await waitFor(() => witness.events.some((e) => e.data === "key 0"), { message: "server sent key 0" });
  await page.keyboard.press("p");
  await waitFor(async () => (await lineTexts(page)).at(-1) === "key 0", { message: "key 0 after resume" });
});

test("Start after more lines than --history were missed shows a reset marker, then the retained lines", async (t) => {
  const { url, paths, ctx, server } = await setup(t, { args: ["--history", "5"] });
  const page = await openConsole(ctx, `${url}/`);
  const file = paths["app.log"];
  appendLines(file, numbered("before", 0, 3));
  await expectLines(page, numbered("before", 0, 3), "lines before Stop");
  const witness = await sseCollect(`${server.url}/logs/app.log?tail=0`);
  t.after(() => witness.close());
  await page.click("#stop");
  await waitFor(async () => (await subscribers(server.url, "log:app.log")) === 1, { message: "the page's connection closed" });
  appendLines(file, numbered("paused", 0, 20));
  // (The witness may lag past the history of 5 too: it only tells that
  // the server has read the last line.)
  await waitFor(() => witness.events.some((e) => e.data === "paused 19"), { message: "server sent the last paused line" });

  await page.click("#start");
  // 15 of the paused lines are gone from the server's history of 5: a
  // marker says so where they would have been, then come the 5 it kept.
  const expected = [
    ...numbered("before", 0, 3).map((text) => ({ marker: false, text })),
    { marker: true, text: "⚠ reset on app.log: too old — earlier lines may be missing here" },
    ...numbered("paused", 15, 20).map((text) => ({ marker: false, text })),
  ];
  let shown;
  await waitFor(async () => (shown = await viewLines(page)).length >= expected.length, { message: "the marker and the retained lines" });
  assert.deepEqual(shown, expected);
  await screenshot(page, "console-reset-marker");
  appendLines(file, ["after"]);
  await waitFor(async () => (await lineTexts(page)).at(-1) === "after", { message: "live again" });
  assert.equal(await page.locator(".line.marker").count(), 1);
});

test("the filter hides non-matching lines and highlights matches, live", async (t) => {
  const { url, paths, ctx } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  const file = paths["app.log"];
  const lines = Array.from({ length: 40 }, (_, i) => `2024-01-01 12:00:${String(i).padStart(2, "0")},000 - app - ${i % 4 === 0 ? "ERROR" : "INFO"} - request ${i} took ${i * 7}ms`);
  appendLines(file, lines);
  await expectLines(page, lines, "all lines");

  await page.press("body", "/");
  assert.equal(await page.evaluate(() => document.activeElement.id), "filter", "/ focuses the filter");
  await page.keyboard.type("error - request \\d+");
  const errors = lines.filter((l) => l.includes("ERROR"));
  await waitFor(async () => (await lineTexts(page)).length === errors.length, { message: "only ERROR lines" });
  // "error - " (typed halfway) keeps the same lines: wait for the whole regex's highlight.
  await waitFor(async () => (await page.locator(".line mark").first().textContent()) === "ERROR - request 0", { message: "the whole regex applied" });
  assert.deepEqual(await lineTexts(page), errors);
  assert.equal(await page.locator(".line mark").count(), errors.length, "one highlight per line");
  assert.match(await page.locator(".line mark").first().textContent(), /^ERROR - request 0$/);

  // New lines are filtered as they arrive.
  appendLines(file, ["2024-01-01 12:01:00,000 - app - INFO - late info", "2024-01-01 12:01:01,000 - app - ERROR - request 99 failed"]);
  await waitFor(async () => (await lineTexts(page)).at(-1) === "2024-01-01 12:01:01,000 - app - ERROR - request 99 failed", { message: "late ERROR shown" });
  assert.equal((await lineTexts(page)).length, errors.length + 1);
  await screenshot(page, "console-filter");

  // Case sensitive: "error" no longer matches "ERROR".
  await page.check("#filter-case");
  await waitFor(async () => (await lineTexts(page)).length === 0, { message: "case-sensitive filter hides all" });
  await page.uncheck("#filter-case");

  // Esc clears it: everything is back.
  await page.focus("#filter");
  await page.keyboard.press("Escape");
  await waitFor(async () => (await lineTexts(page)).length === lines.length + 2, { message: "all lines back" });
  assert.equal(await page.locator(".line mark").count(), 0);
});

test("a click on one JSON line pretty-prints just that line; a second click folds it", async (t) => {
  const { url, paths, ctx } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  appendLines(paths["app.log"], ['{"level":"info","n":1,"tags":["a","b"]}', "plain text", '{"level":"warn","n":2}']);
  await waitFor(async () => (await lineTexts(page)).length === 3, { message: "3 lines" });
  const state = () =>
    page.$$eval(".pane .line", (els) => els.map((e) => ({ json: e.classList.contains("json"), pretty: e.classList.contains("pretty"), text: e.querySelector(".text").textContent })));
  const before = await state();
  assert.deepEqual(before.map((l) => [l.json, l.pretty]), [[true, false], [false, false], [true, false]]);

  await page.locator(".pane .line").first().click();
  await waitFor(async () => (await state())[0].pretty, { message: "the first line expanded" });
  const open = await state();
  assert.equal(open[0].text, JSON.stringify({ level: "info", n: 1, tags: ["a", "b"] }, null, 2));
  assert.deepEqual(open.slice(1), before.slice(1), "the other lines are unchanged");

  await page.locator(".pane .line").first().click();
  await waitFor(async () => !(await state())[0].pretty, { message: "the first line folded" });
  assert.deepEqual(await state(), before);
  assert.deepEqual(page.errors, []);
});

test("two streams at once, merged and side by side, on one connection", async (t) => {
  const { url, paths, ctx } = await setup(t, { files: ["api.log", "web.log"] });
  const page = await ctx.newPage();
  const sse = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname === "/events" || u.pathname.startsWith("/logs/")) sse.push(u.pathname + u.search);
  });
  await page.goto(`${url}/#streams=log:api.log,log:web.log`);
  await waitLive(page);
  assert.deepEqual(await page.$$eval("#streams input:checked", (els) => els.map((e) => e.dataset.stream)), ["log:api.log", "log:web.log"]);
  for (let i = 0; i < 10; i++) {
    appendLines(paths["api.log"], [`api ${i}`]);
    appendLines(paths["web.log"], [`web ${i}`]);
  }
  await waitFor(async () => (await lineTexts(page)).length === 20, { message: "20 lines from two files" });
  const merged = await page.$$eval(".line", (els) => els.map((e) => `${e.querySelector(".tag").textContent}|${e.querySelector(".text").textContent}`));
  // Each line is labelled with its stream; each stream's lines are in order.
  assert.deepEqual(merged.filter((l) => l.startsWith("api.log|")), numbered("api", 0, 10).map((l) => `api.log|${l}`));
  assert.deepEqual(merged.filter((l) => l.startsWith("web.log|")), numbered("web", 0, 10).map((l) => `web.log|${l}`));
  assert.equal(merged.length, 20);
  await screenshot(page, "console-two-streams-merged");

  await page.selectOption("#view-mode", "split");
  await waitFor(() => page.locator(".pane").count().then((n) => n === 2), { message: "two panes" });
  appendLines(paths["web.log"], ["web 10"]);
  await expectLines(page, numbered("api", 0, 10), "api pane", '.pane[data-pane="log:api.log"] .line .text');
  await expectLines(page, numbered("web", 0, 11), "web pane", '.pane[data-pane="log:web.log"] .line .text');
  await screenshot(page, "console-two-streams-split");
  assert.deepEqual(sse, ["/events?channel=log%3Aapi.log&channel=log%3Aweb.log"], "one multiplexed connection");
});

test("the URL follows the selection and the view; s switches the view, ? shows the shortcuts", async (t) => {
  const { url, ctx } = await setup(t, { files: ["api.log", "web.log"] });
  const page = await openConsole(ctx, `${url}/`);
  // With no selection in the URL, the first log stream is shown.
  await waitFor(async () => new URL(page.url()).hash === "#streams=log:api.log", { message: "hash of the first stream" });

  await page.check('#streams input[data-stream="log:web.log"]');
  await waitFor(async () => new URL(page.url()).hash === "#streams=log:api.log,log:web.log", { message: "hash with both streams" });
  await page.press("body", "s");
  await waitFor(() => page.locator(".pane").count().then((n) => n === 2), { message: "side by side after s" });
  assert.equal(new URL(page.url()).hash, "#streams=log:api.log,log:web.log&view=split");
  assert.equal(await page.inputValue("#view-mode"), "split");
  await page.uncheck('#streams input[data-stream="log:api.log"]');
  await waitFor(async () => new URL(page.url()).hash === "#streams=log:web.log&view=split", { message: "hash after unticking api.log" });
  await page.press("body", "s");
  await waitFor(async () => new URL(page.url()).hash === "#streams=log:web.log", { message: "merged again after s" });
  assert.equal(await page.inputValue("#view-mode"), "merged");

  // A link to that URL opens the same view.
  const copy = await openConsole(ctx, `${url}/#streams=log:web.log,log:api.log&view=split`);
  assert.deepEqual(await copy.$$eval(".pane", (els) => els.map((e) => e.dataset.pane)), ["log:web.log", "log:api.log"]);

  await page.press("body", "?");
  await waitFor(() => page.locator("#help-dialog").isVisible(), { message: "help shown" });
  assert.match(await page.locator("#help-dialog").textContent(), /Merged \/ side by side/);
  await page.keyboard.press("Escape");
  await waitFor(async () => !(await page.locator("#help-dialog").isVisible()), { message: "help closed" });
  assert.deepEqual([...page.errors, ...copy.errors], []);
});

test("the live charts plot the server's figures: open connections, events per second, sensor readings", async (t) => {
  const { url, ctx, server } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  // The page holds three connections: /events, /metrics and /stream.
  await waitFor(async () => (await chartValue(page, "chart-events", "connections")) === 3, { message: "3 connections plotted" });
  const extra = await sseCollect(`${server.url}/realtime/extra`);
  await waitFor(async () => (await chartValue(page, "chart-events", "connections")) === 4, { message: "4 connections plotted" });
  extra.close();
  await waitFor(async () => (await chartValue(page, "chart-events", "connections")) === 3, { message: "3 connections again" });

  // A burst of publishes shows in events/s (the demo feed adds a few).
  await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`${server.url}/channels/burst`, { method: "POST", body: String(i) })));
  await waitFor(async () => (await chartValue(page, "chart-events", "events/s")) >= 20, { message: "the burst plotted in events/s" });

  // The lines are drawn up to the newest value.
  await waitFor(async () => Number(await page.getAttribute("#chart-events", "data-points")) >= 2, { message: "2 points" });
  await nextFrames(page);
  assert.ok((await seriesPixels(page, "chart-events", 0)) > 0, "events/s line drawn");
  assert.ok((await seriesPixels(page, "chart-events", 1)) > 0, "connections line drawn");
  assert.ok((await seriesPixels(page, "chart-cpu", 0)) > 0, "CPU line drawn");

  // The demo feed's sensor readings (one every 4 s) reach their chart.
  await waitFor(async () => /temperature [\d.]+/.test(await chartLabel(page, "chart-sensor")), { message: "a sensor reading plotted" });
  assert.match(await page.locator("#demo-counts").textContent(), /sensor [1-9]/);
  assert.deepEqual(page.errors, []);
});

test("the publish box delivers to a channel and broadcasts", async (t) => {
  const { url, ctx, server } = await setup(t);
  const witness = await sseCollect(`${server.url}/realtime/news`);
  t.after(() => witness.close());
  const page = await openConsole(ctx, `${url}/#streams=news`);
  await page.fill("#publish-target", "news");
  await page.fill("#publish-event", "headline");
  await page.fill("#publish-data", "hello from the publish box");
  await page.click("#publish-send");
  await waitFor(() => page.locator("#publish-result").textContent().then((s) => /^sent, id /.test(s)), { message: "publish result" });
  await waitFor(async () => (await lineTexts(page)).includes("hello from the publish box"), { message: "the line in the view" });
  assert.equal(await page.locator(".line .type").first().textContent(), "[headline]");
  await waitFor(() => witness.events.some((e) => e.type === "headline" && e.data === "hello from the publish box"), { message: "another subscriber got it" });

  // Ctrl+Enter sends too; broadcast reaches every stream.
  await page.fill("#publish-target", "broadcast");
  await page.fill("#publish-event", "");
  await page.fill("#publish-data", "attention all");
  await page.press("#publish-data", "Control+Enter");
  await waitFor(() => page.locator(".line.broadcast").count().then((n) => n === 1), { message: "broadcast line" });
  // A JSON line shows its message (`message`) in the message column; a click expands the whole object.
  assert.equal(await page.locator(".line.broadcast .text").textContent(), "attention all");
  await page.locator(".line.broadcast").click();
  await waitFor(async () => /"message": "attention all"/.test(await page.locator(".line.broadcast .text").textContent()), { message: "the whole broadcast object" });
  await waitFor(() => witness.events.some((e) => e.type === "broadcast" && JSON.parse(e.data).message === "attention all"), { message: "broadcast on /realtime/news" });

  // A bad channel name is reported, not thrown.
  await page.fill("#publish-target", "no spaces allowed");
  await page.fill("#publish-data", "x");
  await page.click("#publish-send");
  await waitFor(() => page.locator("#publish-result.error").count().then((n) => n === 1), { message: "error shown" });
  await screenshot(page, "console-publish");
  assert.deepEqual(page.errors.filter((e) => !/status of 400/.test(e)), []);
});

test("after the server restarts, the page reconnects by itself", async (t) => {
  const { paths, ctx, server, dir } = await setup(t, { args: ["--retry", "500"] });
  // The page talks to the server through a proxy whose port stays the
  // same, so the new server does not need the old one's port back.
  const proxy = await startProxy(server.addr);
  t.after(() => proxy.close());
  const page = await openConsole(ctx, `${proxy.url}/`);
  const file = paths["app.log"];
  appendLines(file, ["before restart"]);
  await expectLines(page, ["before restart"], "line before the restart");

  await server.stop();
  await waitFor(() => page.evaluate(() => ["waiting", "connecting"].includes(document.body.dataset.conn)), { message: "page notices the drop" });
  const again = await startServer(["--retry", "500", `app.log=${file}`]);
  t.after(() => again.stop());
  proxy.setTarget(again.addr);
  await waitLive(page);
  appendLines(file, ["after restart 0", "after restart 1"]);
  await waitFor(async () => (await lineTexts(page)).at(-1) === "after restart 1", { message: "lines from the new server" });
  const texts = await lineTexts(page);
  assert.ok(texts.includes("after restart 0"));
  await waitFor(async () => Number(await page.locator("#reconnects").textContent()) >= 1, { message: "reconnect counted" });
  // The old run's id is unknown to the new server: the page shows where lines may be missing.
  assert.match(await page.locator(".line.marker").first().textContent(), /reset on app\.log/);
  await screenshot(page, "console-after-restart");
  assert.ok(fs.existsSync(dir));
});

test("scrolled to the top, a view loads earlier lines from the server's history", async (t) => {
  const data = tempDir();
  t.after(() => fs.rmSync(data, { recursive: true, force: true }));
  const { url, paths, ctx, server } = await setup(t, { args: ["--backlog", "100", "--data-dir", data] });
  const file = paths["app.log"];
  // Published before the page opens: it gets only the last 100 as backlog.
  appendLines(file, numbered("old", 0, 300));
  await waitFor(async () => {
    const resp = await fetch(`${server.url}/api/history?channel=log:app.log&limit=1`);
    return (await resp.json()).events[0]?.data === "old 299";
  }, { message: "300 lines published" });
  const page = await openConsole(ctx, `${url}/`);
  await expectLines(page, numbered("old", 200, 300), "the backlog");
  const top = () => page.$eval(".log", (l) => {
    l.scrollTop = 0;
    l.dispatchEvent(new Event("scroll"));
  });
  await top();
  await waitFor(async () => (await lineTexts(page))[0] === "old 0", { message: "earlier lines on top" });
  assert.deepEqual(await lineTexts(page), numbered("old", 0, 300), "every line once, in order");
  // The view stayed where it was: the line that was first is still in sight.
  const firstShown = await page.$eval(".log", (l) => {
    const box = l.getBoundingClientRect();
    return [...l.querySelectorAll(".line")].find((e) => e.getBoundingClientRect().bottom > box.top)?.textContent;
  });
  assert.notEqual(firstShown, "old 0");
  await top();
  await waitFor(() => page.locator(".earlier").textContent().then((t) => t === "start of history"), { message: "the start is reached" });
  appendLines(file, ["live after"]);
  await waitFor(async () => (await lineTexts(page)).at(-1) === "live after", { message: "live lines go on" });
  await screenshot(page, "console-earlier-lines");
  assert.deepEqual(page.errors, []);
});

test("the history search box finds matching lines, newest first, page by page", async (t) => {
  const { url, paths, ctx, server } = await setup(t, { files: ["app.log", "db.log"] });
  const newest = async (channel) => {
    const resp = await fetch(`${server.url}/api/history?channel=${channel}&limit=1`);
    return (await resp.json()).events[0]?.data;
  };
  const lines = Array.from({ length: 260 }, (_, i) => `${i % 2 ? "INFO" : "ERROR"} app ${i}`);
  appendLines(paths["app.log"], lines);
  await waitFor(async () => (await newest("log:app.log")) === "INFO app 259", { message: "app lines published" });
  appendLines(paths["db.log"], ["ERROR db 0", "INFO db 1"]);
  await waitFor(async () => (await newest("log:db.log")) === "INFO db 1", { message: "db lines published" });
  const page = await openConsole(ctx, `${url}/#streams=log:app.log,log:db.log`);
  await page.fill("#history-q", "^ERROR");
  await page.press("#history-q", "Enter");
  const results = () => lineTexts(page, "#history-results .line .text");
  await waitFor(async () => (await results()).length === 100, { message: "first 100 matches" });
  const first = await results();
  assert.equal(first[0], "ERROR db 0", "newest first across both streams");
  assert.equal(first[1], "ERROR app 258");
  assert.ok(first.every((l) => l.startsWith("ERROR")));
  assert.match(await page.locator("#history-summary").textContent(), /100 matching/);
  await page.click("#history-more");
  await waitFor(async () => (await results()).length === 131, { message: "all 131 matches" });
  const all = await results();
  assert.equal(all.at(-1), "ERROR app 0");
  assert.equal(new Set(all).size, 131, "no match twice");
  assert.equal(await page.locator("#history-more").isVisible(), false);
  await screenshot(page, "console-history-search");
  // A bad regex is reported, not thrown.
  await page.keyboard.press("Escape");
  await page.fill("#history-q", "(");
  await page.press("#history-q", "Enter");
  await waitFor(() => page.locator("#history-summary").textContent().then((t) => /regex/.test(t)), { message: "regex error shown" });
  assert.deepEqual(page.errors.filter((e) => !e.includes("400")), []);
});

test("auto-scroll stops when scrolled up and resumes at the bottom", async (t) => {
  const { url, paths, ctx } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  const file = paths["app.log"];
  appendLines(file, numbered("scroll", 0, 200));
  await waitFor(async () => (await lineTexts(page)).length === 200, { message: "200 lines" });
  const gap = () => page.$eval(".log", (l) => l.scrollHeight - l.scrollTop - l.clientHeight);
  await waitFor(async () => (await gap()) <= 2, { message: "following the bottom" });

  await page.hover(".log");
  await page.mouse.wheel(0, -600);
  await waitFor(() => page.locator(".jump").isVisible(), { message: "jump button shown" });
  const top = await page.$eval(".log", (l) => l.scrollTop);
  appendLines(file, numbered("more", 0, 50));
  await waitFor(async () => (await lineTexts(page)).length === 250, { message: "250 lines" });
  await nextFrames(page);
  assert.ok(Math.abs((await page.$eval(".log", (l) => l.scrollTop)) - top) < 5, "view stays where the user is");
  assert.match(await page.locator(".jump").textContent(), /50 new/);

  await page.click(".jump");
  await waitFor(async () => (await gap()) <= 2, { message: "at the bottom again" });
  appendLines(file, ["last one"]);
  await waitFor(async () => (await lineTexts(page)).at(-1) === "last one", { message: "last line" });
  await waitFor(async () => (await gap()) <= 2, { message: "still following" });
  assert.equal(await page.locator(".jump").isVisible(), false);
});

test("a flood of 20,000 lines keeps the cap and the order, in one DOM insertion per frame, and clicks still work", async (t) => {
  // The views are virtualised lists (assets/console/view.js): the DOM holds
  // only the rows near the viewport, redrawn with one replaceChildren on the
  // view's `.rows` block per frame. So this checks the cap on the lines the
  // view keeps (its `viewTexts()`, and the "shown / kept" count in its head)
  // and a small DOM, where it used to count DOM lines equal to the cap.
  const CAP = 1000;
  const TOTAL = 20000;
  const { url, paths, ctx } = await setup(t);
  const page = await openConsole(ctx, `${url}/`);
  await page.fill("#cap", String(CAP));
  await page.press("#cap", "Enter");
  await waitFor(() => page.evaluate(() => document.getElementById("cap").value === "1000"), { message: "cap set" });
  await page.evaluate(() => {
    window.__frames = 0;
    // DOM insertions into the log views: one per frame, not one per event.
    window.__inserts = 0;
    new MutationObserver((records) => {
      for (const r of records) if (r.addedNodes.length && (r.target.classList.contains("rows") || r.target.classList.contains("log"))) window.__inserts++;
    }).observe(document.getElementById("panes"), { childList: true, subtree: true });
    const count = () => {
      window.__frames++;
      requestAnimationFrame(count);
    };
    requestAnimationFrame(count);
  });
  const line = (i) => `2024-01-01 12:00:00,000 - load - ${i % 10 === 0 ? "ERROR" : "INFO"} - line ${i} ${"x".repeat(60)}`;
  for (let from = 0; from < TOTAL; from += 2000) {
    appendLines(paths["app.log"], Array.from({ length: 2000 }, (_, i) => line(from + i)));
    // A person's click in the middle of the flood is handled.
    const theme = await page.evaluate(() => document.documentElement.dataset.theme);
    await page.click("#theme");
    assert.notEqual(await page.evaluate(() => document.documentElement.dataset.theme), theme, "the click toggled the theme");
  }
  const last = `line ${TOTAL - 1} `;
  await waitFor(async () => ((await lineTexts(page)).at(-1) || "").includes(last), { message: "the last line kept" });
  await waitFor(() => page.locator("#total").textContent().then((s) => Number(s.replace(/\D/g, "")) === TOTAL), { message: "total counts every line once" });
  // Following: the last line is drawn, at the bottom.
  await waitFor(async () => ((await page.locator(".pane .line .text").last().textContent()) || "").includes(last), { message: "the last line drawn" });
  await screenshot(page, "console-load");
  const stats = await page.evaluate(() => ({
    rows: document.querySelectorAll(".pane .line").length,
    count: document.querySelector(".pane .pane-head .count").textContent,
    frames: window.__frames,
    inserts: window.__inserts,
  }));
  assert.equal(stats.count, "1,000 / 1,000", "the view keeps exactly the cap");
  assert.ok(stats.rows > 10 && stats.rows < 300, `only the rows near the viewport are in the DOM: ${stats.rows}`);
  const kept = (await lineTexts(page)).map((l) => Number(/ line (\d+) /.exec(l)[1]));
  assert.deepEqual(kept, Array.from({ length: CAP }, (_, i) => TOTAL - CAP + i), "the newest lines, in order");
  assert.ok(stats.inserts <= stats.frames + 5, `batched: ${stats.inserts} insertions in ${stats.frames} frames`);
  assert.deepEqual(page.errors, []);
});

test("examples/client.html from another origin receives lines (--cors-origin '*')", async (t) => {
  const { url, paths, ctx } = await setup(t, { args: ["--cors-origin", "*"] });
  const other = await serveStatic(path.join(ROOT, "examples"));
  t.after(() => other.close());
  assert.notEqual(new URL(other.url).origin, new URL(url).origin);
  const page = await ctx.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(`${other.url}/client.html?server=${encodeURIComponent(url)}`);
  // Written after the page connected, so they are not backlog.
  await waitFor(() => fetch(`${url}/api/streams`).then((r) => r.json()).then((l) => l[0].subscribers >= 1), { message: "client connected" });
  appendLines(paths["app.log"], numbered("cross-origin", 0, 5));
  await waitFor(async () => (await page.$$eval("#logs div", (els) => els.length)) === 5, { message: "5 lines in #logs" });
  assert.deepEqual(await page.$$eval("#logs div", (els) => els.map((e) => e.textContent)), numbered("cross-origin", 0, 5));
  await screenshot(page, "example-client");
  assert.deepEqual(errors, []);
});

test("sign in with a pasted token, lines appear, sign out, sign in again after token-expired", async (t) => {
  const keys = tempDir("tailcast-keys-");
  t.after(() => fs.rmSync(keys, { recursive: true, force: true }));
  const secret = path.join(keys, "secret");
  fs.writeFileSync(secret, "browser-test-secret-browser-test-secret\n");
  const mint = (ttl, sub) =>
    execFileSync(BIN, ["token", "--secret-file", secret, "--subscribe", "log:*", "--sub", sub, "--ttl", ttl]).toString().trim();
  const { url, paths, ctx } = await setup(t, { args: ["--jwt-secret-file", secret] });
  const page = await openConsole(ctx, `${url}/`, { live: false });
  await waitFor(() => page.locator("#signin").evaluate((d) => d.open), { message: "the sign-in box opens on a 401" });

  // A bad token is refused in the box, which stays open.
  await page.fill("#signin-token", "not-a-token");
  await page.click("#signin-send");
  await waitFor(async () => (await page.locator("#signin-error").textContent()).includes("malformed"), { message: "refusal shown" });

  // A short-lived token: 5 s plus the server's 5 s leeway, room enough for
  // the sign-in and the first lines on a loaded machine.
  await page.fill("#signin-token", mint("5s", "short"));
  await page.click("#signin-send");
  await waitLive(page);
  assert.equal(await page.locator("#whoami").textContent(), "short");
  const file = paths["app.log"];
  appendLines(file, numbered("before", 0, 10));
  await expectLines(page, numbered("before", 0, 10), "lines after sign-in");
  await screenshot(page, "auth-signed-in");

  // The token expires: the stream says so and the box asks again.
  await waitFor(() => page.locator("#signin").evaluate((d) => d.open), { timeout: 40000, message: "the box asks again after token-expired" });
  assert.match(await page.locator("#signin-reason").textContent(), /expired/);
  assert.equal(await page.evaluate(() => document.body.dataset.conn), "unauthorized");
  appendLines(file, numbered("while-out", 0, 10));
  await screenshot(page, "auth-expired");
  await page.fill("#signin-token", mint("1h", "long"));
  await page.click("#signin-send");
  await waitLive(page);
  await expectLines(page, [...numbered("before", 0, 10), ...numbered("while-out", 0, 10)], "resumed with nothing lost");
  assert.equal(await page.locator(".line.marker").count(), 0, "no reset: nothing was missed");

  // Sign out, then in again.
  await page.click("#signout");
  await waitFor(() => page.locator("#signin").evaluate((d) => d.open), { message: "the box opens on sign-out" });
  assert.equal(await page.locator("#signout").isHidden(), true);
  const session = await page.evaluate(() => fetch("/api/session").then((r) => r.json()));
  assert.equal(session.signed_in, false, "the cookie is gone");
  await page.fill("#signin-token", mint("1h", "again"));
  await page.click("#signin-send");
  await waitLive(page);
  appendLines(file, numbered("after", 0, 5));
  await expectLines(page, [...numbered("before", 0, 10), ...numbered("while-out", 0, 10), ...numbered("after", 0, 5)], "lines after signing in again");
  // 401s are the sign-in prompts; 403s the charts (/metrics, /stream) this token may not read.
  assert.deepEqual(page.errors.filter((e) => !/status of 40[13]/.test(e)), []);
});
