// Helpers of the browser tests: the real tailcast binary on 127.0.0.1,
// Debian's chromium driven by playwright-core, polling with deadlines.

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The binary under test: $TAILCAST_BIN, else target/debug/tailcast. */
export const BIN =
  process.env.TAILCAST_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "debug", "tailcast");

/** Screenshots go here (gitignored). */
export const ARTIFACTS = process.env.TAILCAST_ARTIFACTS || path.join(ROOT, "test-artifacts", "browser");

/** Launch flags: no sandbox (root), and no background traffic to anywhere. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  // launch() gives chromium a new empty --user-data-dir of its own.
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

/** A new temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = "tailcast-browser-") {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Starts `tailcast serve --addr ADDR ARGS...` and waits for its
 * `tailcast listening on http://ADDR` line.
 */
export async function startServer(args, { addr = "127.0.0.1:0", timeout = 15000 } = {}) {
  const proc = spawn(BIN, ["serve", "--addr", addr, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => {
    stderr += d;
  });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`tailcast did not start in ${timeout} ms: ${stderr}`)), timeout);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /tailcast listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`tailcast exited with ${code}: ${stderr}`));
    });
  });
  proc.stdout.resume();
  return {
    url,
    addr: new URL(url).host,
    proc,
    stderr: () => stderr,
    /** SIGTERM, then wait for the exit (SIGKILL after 6 s). */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 6000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Polls `fn` until it returns a truthy value; throws `message` at the
 * deadline. The default deadline is a watchdog, far above what a loaded
 * machine needs: nothing waits a fixed time for something to happen.
 */
export async function waitFor(fn, { timeout = 30000, interval = 50, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${describe(last)})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

function describe(v) {
  if (v instanceof Error) return v.message;
  try {
    return JSON.stringify(v)?.slice(0, 300);
  } catch {
    return String(v);
  }
}

/** Resolves after the page has rendered two more animation frames (the console flushes once per frame). */
export function nextFrames(page) {
  return page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
}

/**
 * A TCP proxy on 127.0.0.1 in front of `target` ("host:port"). Its address
 * stays the same when the server behind it is restarted elsewhere
 * (`setTarget`), so no test needs a port back after a restart. While the
 * target is down, connections are closed at once, as a refused connection
 * would be.
 */
export async function startProxy(target) {
  let upstream = target;
  const sockets = new Set();
  const server = net.createServer((client) => {
    const [host, port] = upstream.split(":");
    const backend = net.connect(Number(port), host);
    for (const s of [client, backend]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(backend);
    backend.pipe(client);
    const end = () => {
      client.destroy();
      backend.destroy();
    };
    client.on("error", end).on("close", end);
    backend.on("error", end).on("close", end);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    setTarget(next) {
      upstream = next;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

export function appendLines(file, lines) {
  fs.appendFileSync(file, lines.map((l) => `${l}\n`).join(""));
}

/**
 * Opens a page, records console errors and page errors in `page.errors`,
 * and waits until the console's connection is live.
 */
export async function openConsole(context, url, { live = true } = {}) {
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") page.errors.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => page.errors.push(`pageerror: ${err.message}`));
  await page.goto(url);
  if (live) await waitLive(page);
  return page;
}

export async function waitLive(page, timeout = 30000) {
  await waitFor(() => page.evaluate(() => document.body.dataset.conn === "open"), { timeout, message: "connection state live" });
}

/**
 * The texts of the log lines shown (not markers), in page order.
 *
 * The console's views are virtualised lists: only the rows near the
 * viewport are in the DOM. So, with the default selector, this reads
 * every row a view holds (what scrolling would show) from the view's
 * `viewTexts()`, and checks that the rows in the DOM are a run of them
 * in the same order (an error otherwise). A console without virtual
 * lists (an older binary, for the benchmark) is read from the DOM. With
 * another selector (e.g. the history search results), the DOM is read.
 */
export async function lineTexts(page, selector = ".pane .line:not(.marker) .text") {
  if (selector !== ".pane .line:not(.marker) .text") return page.$$eval(selector, (els) => els.map((e) => e.textContent));
  const result = await page.evaluate(() => {
    const out = [];
    for (const log of document.querySelectorAll(".pane .log")) {
      const dom = [...log.querySelectorAll(".line:not(.marker)")].map((l) => (l._record ? l._record.text : l.querySelector(".text").textContent));
      if (typeof log.viewTexts !== "function") {
        out.push(...[...log.querySelectorAll(".line:not(.marker) .text")].map((e) => e.textContent));
        continue;
      }
      const all = log.viewTexts();
      if (dom.length) {
        const at = all.indexOf(dom[0]);
        const run = at < 0 ? [] : all.slice(at, at + dom.length);
        if (run.join("\n") !== dom.join("\n")) return { error: `the DOM rows are not a run of the view's rows: ${JSON.stringify(dom.slice(0, 3))}…` };
      }
      out.push(...all);
    }
    return { out };
  });
  if (result.error) throw new Error(result.error);
  return result.out;
}

/** A static file server on 127.0.0.1 (another origin than tailcast). */
export async function serveStatic(dir) {
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, "http://x").pathname);
    const file = path.join(dir, name);
    if (name === "favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (!fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(fs.readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/**
 * Reads an SSE endpoint from Node (a second, independent client): returns
 * `{events, close}` where `events` fills with `{type, data, id}`.
 */
export async function sseCollect(url) {
  const ctrl = new AbortController();
  const res = await fetch(url, { headers: { Accept: "text/event-stream" }, signal: ctrl.signal });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  const events = [];
  (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    let ev = { type: "message", data: [], id: null };
    try {
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === "") {
            if (ev.data.length) events.push({ type: ev.type, data: ev.data.join("\n"), id: ev.id });
            ev = { type: "message", data: [], id: null };
          } else if (line.startsWith("data:")) ev.data.push(line.slice(5).replace(/^ /, ""));
          else if (line.startsWith("event:")) ev.type = line.slice(6).trim();
          else if (line.startsWith("id:")) ev.id = line.slice(3).trim();
        }
      }
    } catch {
      /* aborted */
    }
  })();
  return { events, close: () => ctrl.abort() };
}
