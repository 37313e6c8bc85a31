// Responsiveness of the web console under a flood of lines: a benchmark
// that reports figures, not a pass/fail test (the functional checks are in
// tests/browser/console.test.mjs).
//
// Run: `bash .ci/browser.sh --bench [--rate N] [--seconds S] [--cap N]`
// (installs chromium and playwright-core if needed, builds the binary).
//
// What it does: the real tailcast binary follows a file; Debian's headless
// chromium shows it in the console with a cap of CAP lines; the file gets
// RATE lines a second for SECONDS seconds while a click on the theme button
// comes every second. Measured in the page: click → next frame (from the
// input event's timestamp), frames per second, main-thread long tasks
// (> 50 ms), DOM insertions into the log per frame; and from outside, how
// long the last line took to show and playwright's click round trip.
// Then a second phase: the keep is raised to 100,000 and 100,000 lines are
// written at once; measured: how long until all are retained, the JS heap
// and DOM node count with them (after a garbage collection, through the
// DevTools protocol), and how long typing a filter takes to show its first
// frame. Printed, and written as JSON to test-artifacts/console-bench.json.
// The exit status is 0 unless the run itself failed (the last line never
// shown, the cap not kept): speed never fails it.
//
// The view's retained count is read from the pane head ("shown / kept"),
// so the same script measures the console before and after virtualisation.

import fs from "node:fs";
import path from "node:path";

import { ROOT, appendLines, launchBrowser, lineTexts, openConsole, startServer, tempDir, waitFor } from "../tests/browser/lib.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const RATE = option("rate", 2000);
const SECONDS = option("seconds", 10);
const CAP = option("cap", 1000);
const TOTAL = RATE * SECONDS;
const BIG = option("big", 100000);

/** The pane head's "shown / kept" figures. */
async function paneCounts(page) {
  const text = await page.locator(".pane .pane-head .count").first().textContent();
  const [shown, kept] = text.split("/").map((s) => Number(s.replace(/\D/g, "")));
  return { shown, kept };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
};

async function main() {
  const dir = tempDir("tailcast-console-bench-");
  const file = path.join(dir, "app.log");
  fs.writeFileSync(file, "");
  const server = await startServer([`app.log=${file}`]);
  const browser = await launchBrowser();
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // Record main-thread long tasks from the start.
    await ctx.addInitScript(() => {
      window.__longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
      }).observe({ type: "longtask", buffered: true });
    });
    const page = await openConsole(ctx, `${server.url}/`);
    await page.fill("#cap", String(CAP));
    await page.press("#cap", "Enter");
    await waitFor(() => page.evaluate((cap) => document.getElementById("cap").value === String(cap), CAP), { message: "cap set" });
    await page.evaluate(() => {
      window.__clicks = [];
      window.__frames = 0;
      window.__inserts = 0;
      new MutationObserver((records) => {
        // Into a view: its `.log` (before virtualisation) or its `.rows` block.
        for (const r of records) if (r.addedNodes.length && (r.target.classList.contains("log") || r.target.classList.contains("rows"))) window.__inserts++;
      }).observe(document.getElementById("panes"), { childList: true, subtree: true });
      const count = () => {
        window.__frames++;
        requestAnimationFrame(count);
      };
      requestAnimationFrame(count);
      document.getElementById("theme").addEventListener("click", (e) => {
        const t0 = e.timeStamp;
        const handler = performance.now() - t0;
        requestAnimationFrame(() => window.__clicks.push({ handler, frame: performance.now() - t0 }));
      });
    });

    const t0 = await page.evaluate(() => performance.now());
    const start = Date.now();
    let written = 0;
    const clickTimes = [];
    let nextClick = start + 500;
    while (written < TOTAL) {
      const due = Math.min(TOTAL, Math.floor(((Date.now() - start) / 1000) * RATE));
      if (due > written) {
        const batch = [];
        for (; written < due; written++) batch.push(`2024-01-01 12:00:00,000 - load - ${written % 10 === 0 ? "ERROR" : "INFO"} - line ${written} ${"x".repeat(60)}`);
        appendLines(file, batch);
      }
      if (Date.now() >= nextClick) {
        const c0 = Date.now();
        await page.click("#theme");
        clickTimes.push(Date.now() - c0);
        nextClick += 1000;
      }
      // Pacing of the writer, not a wait for the page.
      await new Promise((r) => setTimeout(r, 5));
    }
    const writeSeconds = (Date.now() - start) / 1000;
    const last = `line ${TOTAL - 1} `;
    await waitFor(async () => ((await lineTexts(page)).at(-1) || "").includes(last), { message: "the last line shown", timeout: 120000 });
    const caughtUp = (Date.now() - start) / 1000;
    const stats = await page.evaluate(
      (since) => ({
        dom_rows: document.querySelectorAll(".pane .line").length,
        longTasks: window.__longTasks.filter((e) => e.start >= since),
        clicks: window.__clicks,
        frames: window.__frames,
        inserts: window.__inserts,
        elapsed: performance.now() - since,
      }),
      t0,
    );
    stats.lines = (await paneCounts(page)).kept;
    const long = stats.longTasks;
    const longTotal = long.reduce((s, e) => s + e.duration, 0);
    const frameMs = stats.clicks.map((c) => c.frame);
    const figures = {
      rate: RATE,
      seconds: SECONDS,
      cap: CAP,
      lines_written: TOTAL,
      write_s: writeSeconds,
      last_line_shown_after_s: caughtUp,
      kept_lines: stats.lines,
      dom_rows: stats.dom_rows,
      frames_per_s: stats.frames / (stats.elapsed / 1000),
      dom_insertions: stats.inserts,
      frames: stats.frames,
      long_tasks: long.length,
      long_tasks_ms: longTotal,
      long_task_max_ms: Math.max(0, ...long.map((e) => e.duration)),
      long_task_share: longTotal / stats.elapsed,
      click_to_frame_ms: frameMs,
      click_to_frame_median_ms: median(frameMs),
      click_round_trip_ms: clickTimes,
      chromium: browser.version(),
    };
    console.log(`console bench: ${TOTAL} lines at ${RATE}/s, cap ${CAP}`);
    console.log(`  last line shown after ${caughtUp.toFixed(1)} s (writing took ${writeSeconds.toFixed(1)} s)`);
    console.log(`  frames ${figures.frames_per_s.toFixed(1)}/s; DOM insertions ${stats.inserts} in ${stats.frames} frames`);
    console.log(`  long tasks ${long.length}, ${longTotal.toFixed(0)} ms (${(100 * figures.long_task_share).toFixed(1)} % of ${(stats.elapsed / 1000).toFixed(1)} s), longest ${figures.long_task_max_ms.toFixed(0)} ms`);
    console.log(`  click → next frame: median ${figures.click_to_frame_median_ms.toFixed(0)} ms (${frameMs.map((v) => v.toFixed(0)).join(" ")})`);
    console.log(`  click round trip via playwright: ${clickTimes.join(" ")} ms`);
    if (stats.lines !== Math.min(CAP, TOTAL)) throw new Error(`the view holds ${stats.lines} lines, not the cap of ${CAP}`);

    // Phase 2: 100,000 lines kept.
    await page.fill("#cap", String(BIG));
    await page.press("#cap", "Enter");
    await page.click("#clear");
    const b0 = Date.now();
    const big = [];
    for (let i = 0; i < BIG; i++) big.push(`2024-01-01 12:00:00,000 - big - ${i % 10 === 0 ? "ERROR" : "INFO"} - row ${i} ${"y".repeat(60)}`);
    appendLines(file, big);
    await waitFor(async () => (await paneCounts(page)).kept === BIG, { message: `${BIG} lines kept`, timeout: 300000, interval: 250 });
    figures.big_lines = BIG;
    figures.big_all_kept_after_s = (Date.now() - b0) / 1000;
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("HeapProfiler.enable");
    await cdp.send("HeapProfiler.collectGarbage");
    await cdp.send("Performance.enable");
    const metrics = Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
    figures.big_js_heap_mb = metrics.JSHeapUsedSize / 1048576;
    figures.big_dom_nodes = metrics.Nodes;
    figures.big_dom_rows = await page.evaluate(() => document.querySelectorAll(".pane .line").length);
    // Typing a filter: from the input event to the next frame after the view changed.
    await page.evaluate(() => {
      window.__filterFrame = null;
      const input = document.getElementById("filter");
      input.addEventListener("input", (e) => {
        const t0 = e.timeStamp;
        const counts = document.querySelector(".pane .pane-head .count");
        const before = counts.textContent;
        new MutationObserver((_, obs) => {
          if (counts.textContent === before) return;
          obs.disconnect();
          requestAnimationFrame(() => (window.__filterFrame = performance.now() - t0));
        }).observe(counts, { childList: true, characterData: true, subtree: true });
      }, { once: true });
    });
    await page.fill("#filter", "row 4242 ");
    const filterMs = await waitFor(() => page.evaluate(() => window.__filterFrame), { message: "filter applied", timeout: 120000 });
    figures.big_filter_to_frame_ms = filterMs;
    const c1 = Date.now();
    await page.click("#theme");
    figures.big_click_round_trip_ms = Date.now() - c1;
    console.log(`  ${BIG} lines kept after ${figures.big_all_kept_after_s.toFixed(1)} s: JS heap ${figures.big_js_heap_mb.toFixed(1)} MB, ${figures.big_dom_nodes} DOM nodes (${figures.big_dom_rows} rows)`);
    console.log(`  typing a filter over ${BIG} lines → next frame: ${filterMs.toFixed(0)} ms; a click's round trip ${figures.big_click_round_trip_ms} ms`);
    const out = path.join(ROOT, "test-artifacts", "console-bench.json");
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(`  figures: ${out}`);
  } finally {
    await browser.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`console bench failed: ${err.stack || err}`);
  process.exit(1);
});
