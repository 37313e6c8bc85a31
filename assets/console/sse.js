// A Server-Sent Events client built on fetch(), for the tailcast console.
//
// Why not EventSource: it only reports event types the page listens for by
// name, so events published with a custom `?event=TYPE` would be invisible,
// and it hides reconnects from the page. This client parses the stream per
// the WHATWG "server-sent events" rules, sees every type, reconnects by
// itself after the server's `retry:` delay with `Last-Event-ID`, and counts
// its reconnects. One client is one HTTP connection.

/** The server's notice that the stream's token expired; the stream then ends. */
const TOKEN_EXPIRED = "token-expired";

/** Client errors (4xx) mean the request itself is wrong: retrying won't help. */
const FATAL_STATUS = (status) => status >= 400 && status < 500 && status !== 408 && status !== 429;

/** Longest wait between two reconnect attempts, in ms. */
const MAX_DELAY_MS = 15000;

/** A stream that sent no byte (not even a `: ping`) for this long is reopened. */
const STALL_MS = 45000;

export class SseClient {
  /**
   * @param {object} opts
   * @param {() => string} opts.url      the URL to open (asked again on every connect)
   * @param {(ev: {type: string, data: string, id: string}) => void} opts.onEvent
   * @param {(state: string, info?: object) => void} [opts.onState]
   *        states: connecting, open, waiting (info.delay ms), stopped, failed (info.error),
   *        unauthorized (info.error: a 401, or the token expired; `start()` again
   *        after signing in resumes from `lastId`)
   * @param {string|null} [opts.lastId]  resume after this id on the first connect
   */
  constructor(opts) {
    this.opts = opts;
    this.lastId = opts.lastId ?? null;
    this.retryMs = 3000;
    this.reconnects = 0;
    this.running = false;
    this.failures = 0;
    this.ctrl = null;
    this.timer = 0;
    this.watchdog = 0;
  }

  /** Opens the connection (no-op when already running). */
  start() {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    this.connect(false);
  }

  /** Closes the connection; `lastId` is kept, so `start()` resumes. */
  stop() {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
    this.state("stopped");
  }

  state(name, info) {
    this.stateName = name;
    if (this.opts.onState) this.opts.onState(name, info || {});
  }

  async connect(isRetry) {
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.state("connecting");
    try {
      const headers = { Accept: "text/event-stream" };
      if (this.lastId) headers["Last-Event-ID"] = this.lastId;
      const res = await fetch(this.opts.url(), { headers, signal: ctrl.signal, cache: "no-store" });
      const type = res.headers.get("content-type") || "";
      if (!res.ok || !type.startsWith("text/event-stream")) {
        const detail = await errorDetail(res);
        if (res.status === 401) {
          this.running = false;
          this.state("unauthorized", { error: detail });
          return;
        }
        if (FATAL_STATUS(res.status)) {
          this.running = false;
          this.state("failed", { error: `${res.status}: ${detail}` });
          return;
        }
        throw new Error(`${res.status}: ${detail}`);
      }
      if (isRetry) this.reconnects += 1;
      this.failures = 0;
      this.expired = false;
      this.state("open");
      await this.read(res.body, ctrl);
    } catch (err) {
      if (ctrl.signal.aborted && ctrl !== this.ctrl) return; // replaced or stopped
      this.lastError = String(err && err.message ? err.message : err);
    } finally {
      clearInterval(this.watchdog);
    }
    if (!this.running || ctrl !== this.ctrl) return;
    if (this.expired) {
      // The same credentials would get a 401: ask for new ones first.
      this.running = false;
      this.state("unauthorized", { error: "token expired" });
      return;
    }
    // The stream ended or failed: wait, then reconnect with Last-Event-ID.
    // The first retry uses the server's `retry:`; later ones back off.
    this.failures += 1;
    const delay = Math.min(this.retryMs * 2 ** Math.min(this.failures - 1, 3), MAX_DELAY_MS);
    this.state("waiting", { delay, error: this.lastError });
    this.timer = setTimeout(() => {
      if (this.running && ctrl === this.ctrl) this.connect(true);
    }, delay);
  }

  /** Reads the body to its end, dispatching events as they complete. */
  async read(body, ctrl) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let seen = Date.now();
    this.watchdog = setInterval(() => {
      if (Date.now() - seen > STALL_MS) ctrl.abort();
    }, 5000);
    const parser = new Parser((ev) => {
      if (ev.retry !== undefined) this.retryMs = ev.retry;
      else {
        if (ev.id !== null) this.lastId = ev.id || null;
        if (ev.type === TOKEN_EXPIRED) this.expired = true;
        else if (ev.dispatch) this.opts.onEvent(ev);
      }
    });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      seen = Date.now();
      parser.feed(value);
    }
  }
}

/**
 * The WHATWG event-stream parser: lines end in CRLF, LF or CR; `data:`
 * lines join with LF; an empty line dispatches; `:` starts a comment.
 */
export class Parser {
  constructor(emit) {
    this.emit = emit;
    this.rest = "";
    this.data = [];
    this.type = "";
    this.id = null; // the id field of the event being read, if any
    this.lastId = "";
  }

  feed(chunk) {
    let text = this.rest + chunk;
    // A CR at the very end may be the first half of a CRLF: keep it.
    let hold = "";
    if (text.endsWith("\r")) {
      hold = "\r";
      text = text.slice(0, -1);
    }
    const lines = text.split(/\r\n|\r|\n/);
    this.rest = lines.pop() + hold;
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.charCodeAt(0) === 58 /* ':' */) return; // comment, e.g. `: ping`
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.type = value;
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.emit({ retry: Number(value), id: null });
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  dispatch() {
    if (this.id !== null) this.lastId = this.id;
    const id = this.id;
    const hasData = this.data.length > 0;
    const ev = { type: this.type || "message", data: this.data.join("\n"), id, lastEventId: this.lastId, dispatch: hasData };
    this.data = [];
    this.type = "";
    this.id = null;
    if (hasData || id !== null) this.emit(ev);
  }
}

async function errorDetail(res) {
  try {
    const text = await res.text();
    try {
      const json = JSON.parse(text);
      return json.detail || json.error || text;
    } catch {
      return text.slice(0, 200) || res.statusText;
    }
  } catch {
    return res.statusText;
  }
}
