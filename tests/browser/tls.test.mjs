// The web console over HTTPS in headless chromium: the page and its
// streams use HTTP/2 (`nextHopProtocol`), and more than 6 streams are live
// at once on one connection (HTTP/1.1 would stall the 7th: 6 connections
// per host). The certificate is made with openssl here.
//
// Run: `bash .ci/browser.sh`.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { launchBrowser, openConsole, startServer, tempDir, waitFor } from "./lib.mjs";

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** A self-signed certificate for localhost and 127.0.0.1 in `dir`. */
function certificate(dir) {
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout", key, "-out", cert],
    { stdio: "ignore" },
  );
  return { cert, key };
}

test("over HTTPS the console and 8 more streams are live at once on HTTP/2", async (t) => {
  const dir = tempDir();
  const log = path.join(dir, "app.log");
  fs.writeFileSync(log, "first line\n");
  const { cert, key } = certificate(dir);
  const server = await startServer(["--tls-cert", cert, "--tls-key", key, `app=${log}`]);
  assert.match(server.url, /^https:\/\//);
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  t.after(async () => {
    await ctx.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const page = await openConsole(ctx, server.url);
  const navigation = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  assert.equal(navigation, "h2");
  const assets = await page.evaluate(() =>
    performance.getEntriesByType("resource").filter((e) => e.name.includes("/assets/")).map((e) => e.nextHopProtocol),
  );
  assert.ok(assets.length > 0);
  assert.deepEqual([...new Set(assets)], ["h2"]);

  // 8 EventSources on top of the console's own stream(s).
  await page.evaluate(() => {
    window.got = {};
    window.sources = [];
    for (let i = 0; i < 8; i++) {
      const source = new EventSource(`/realtime/tab${i}`);
      source.onmessage = (e) => {
        window.got[i] = e.data;
      };
      window.sources.push(source);
    }
  });
  await waitFor(() => page.evaluate(() => window.sources.every((s) => s.readyState === EventSource.OPEN)), {
    message: "8 EventSources open",
  });
  const health = await page.evaluate(() => fetch("/health").then((r) => r.json()));
  assert.ok(health.connections >= 9, `open streams: ${health.connections}`);
  for (let i = 0; i < 8; i++) {
    const status = await page.evaluate((i) => fetch(`/channels/tab${i}`, { method: "POST", body: `hello ${i}` }).then((r) => r.status), i);
    assert.equal(status, 200);
  }
  const got = await waitFor(
    () => page.evaluate(() => (Object.keys(window.got).length === 8 ? window.got : null)),
    { message: "an event on each of the 8 streams" },
  );
  for (let i = 0; i < 8; i++) assert.equal(got[i], `hello ${i}`);
  assert.deepEqual(page.errors, []);
});
