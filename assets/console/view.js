// One scrolling log view of the console (the merged view, or one stream's
// column in "side by side"), as a virtualised list: every retained record
// is kept in `records`, the ones that pass the filters in `rows`, and only
// the rows near the viewport are in the DOM. A collapsed row is exactly
// ROW_H pixels high; an expanded row (whole JSON object, or a long line
// wrapped) is measured once drawn, and the offsets of the rows are then
// kept in `tops`. The scroll container holds a sizer as high as all rows,
// and the drawn rows sit in one absolutely positioned block moved to the
// first drawn row's offset.
//
// Once per animation frame `flush()` moves the queued records in, drops
// what is past the cap, and redraws the window with one `replaceChildren`
// on the rows block (rows already drawn are reused), so the DOM changes
// once per frame whatever the event rate.

import { fillText, streamHue } from "./render.js";
import { cellText, formatTime, getPath } from "./fields.js";

/** Height of a collapsed row, in CSS pixels (console.css `.line`). */
export const ROW_H = 18;
/** Rows drawn above and below the viewport. */
const OVERSCAN = 12;
/** The pane key of the merged view. */
export const MERGED = "*";

/** Short label of a stream: `log:app.log` → `app.log`. */
export const label = (name) => (name.startsWith("log:") ? name.slice(4) : name);

/** A stream's stable colour, readable under white text in both themes. */
export const sourceColour = (name) => `hsl(${streamHue(name)} 55% 30%)`;

export class Pane {
  /**
   * @param {string} key   MERGED or a stream name
   * @param {string} title
   * @param {object} ctx   the console's state: `cap`, `columns`, `utc`,
   *   `pretty`, `visible(r)`, `marks()`, `sources(pane)`, `loadEarlier(pane)`,
   *   `onRows(pane)` (rows changed: search hits are stale)
   */
  constructor(key, title, ctx) {
    this.key = key;
    this.ctx = ctx;
    this.records = [];
    this.pending = [];
    this.rows = [];
    /** Offsets of the rows when some are expanded; null while all are ROW_H high. */
    this.tops = null;
    this.follow = true;
    this.unseen = 0;
    /** Records drawn now → their elements. */
    this.drawn = new Map();
    this.drawQueued = false;
    this.root = document.createElement("div");
    this.root.className = "pane";
    this.root.dataset.pane = key;
    const head = document.createElement("div");
    head.className = "pane-head";
    this.titleEl = document.createElement("span");
    this.titleEl.className = "title";
    this.titleEl.textContent = title;
    this.sourcesEl = document.createElement("span");
    this.sourcesEl.className = "sources";
    this.countEl = document.createElement("span");
    this.countEl.className = "count";
    this.countEl.title = "lines shown (after the filters) / lines kept";
    this.earlier = document.createElement("button");
    this.earlier.className = "earlier small";
    this.earlier.textContent = "⤒ earlier";
    this.earlier.title = "Load earlier lines from the server's history (also when scrolled to the top)";
    this.earlier.onclick = () => ctx.loadEarlier(this);
    head.append(this.titleEl, this.sourcesEl, this.countEl, this.earlier);
    this.colsHead = document.createElement("div");
    this.colsHead.className = "cols-head";
    this.log = document.createElement("div");
    this.log.className = "log";
    this.log.tabIndex = 0;
    this.sizer = document.createElement("div");
    this.sizer.className = "sizer";
    this.block = document.createElement("div");
    this.block.className = "rows";
    this.log.append(this.sizer, this.block);
    this.jump = document.createElement("button");
    this.jump.className = "jump";
    this.jump.hidden = true;
    this.jump.title = "Jump to the latest line (End)";
    this.jump.onclick = () => this.toBottom();
    this.root.append(head, this.colsHead, this.log, this.jump);
    // For tests and scripts: the texts of every row the view holds, in order
    // (the DOM has only those near the viewport).
    this.log.viewTexts = () => this.rows.filter((r) => r.kind !== "marker").map((r) => r.text);

    this.lastTop = 0;
    this.expectTop = null;
    // Auto-scroll: off as soon as the user scrolls up, on again at the bottom.
    this.log.addEventListener("wheel", (e) => {
      if (e.deltaY < 0) this.setFollow(false);
    }, { passive: true });
    this.log.addEventListener("scroll", () => {
      const top = this.log.scrollTop;
      const gap = this.log.scrollHeight - top - this.log.clientHeight;
      // A scroll to where the view itself put it is not the user's.
      const own = this.expectTop !== null && Math.abs(top - this.expectTop) < 1;
      this.expectTop = null;
      if (gap <= 8) this.setFollow(true);
      else if (top < this.lastTop - 2 && !own) this.setFollow(false);
      // Scrolled up to the top of a view that overflows: fetch what came before.
      if (top <= 4 && top < this.lastTop) ctx.loadEarlier(this);
      this.lastTop = top;
      this.scheduleDraw();
    }, { passive: true });
    // A click on a row expands it (the whole JSON object, or the whole line); again folds it.
    this.log.addEventListener("click", (e) => {
      const line = e.target.closest(".line");
      if (!line || !line._record || line._record.kind === "marker" || getSelection().toString()) return;
      this.toggle(line._record);
    });
    this.resize = new ResizeObserver(() => this.scheduleDraw());
    this.resize.observe(this.log);
  }

  /** Lets go of the page (the view is being replaced). */
  dispose() {
    this.resize.disconnect();
    this.drawn.clear();
  }

  setFollow(on) {
    if (this.follow === on) return;
    this.follow = on;
    if (on) this.unseen = 0;
    this.updateJump();
  }

  updateJump() {
    this.jump.hidden = this.follow;
    this.jump.textContent = this.unseen ? `↓ ${this.unseen.toLocaleString()} new` : "↓ Jump to latest";
  }

  toBottom() {
    this.setFollow(true);
    this.draw();
  }

  /** The streams this pane shows. */
  streams(selected) {
    return this.key === MERGED ? selected : [this.key];
  }

  // ------------------------------------------------------------ geometry

  heightOf(r) {
    return r.open && r.h ? r.h : ROW_H;
  }

  /** Offsets of the rows (rebuilt when null and some row is expanded). */
  offsets() {
    if (this.tops) return this.tops;
    if (!this.rows.some((r) => r.open)) return null;
    const tops = new Array(this.rows.length + 1);
    let y = 0;
    for (let i = 0; i < this.rows.length; i++) {
      tops[i] = y;
      y += this.heightOf(this.rows[i]);
    }
    tops[this.rows.length] = y;
    this.tops = tops;
    return tops;
  }

  topOf(i) {
    const tops = this.offsets();
    return tops ? tops[i] : i * ROW_H;
  }

  totalHeight() {
    return this.topOf(this.rows.length);
  }

  /** The index of the row at offset `y`. */
  indexAt(y) {
    const tops = this.offsets();
    if (!tops) return Math.max(0, Math.min(this.rows.length - 1, Math.floor(y / ROW_H)));
    let lo = 0;
    let hi = this.rows.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (tops[mid] <= y) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(0, lo);
  }

  // ------------------------------------------------------------- records

  /** Queues a record; at most `cap` wait, since older ones would be dropped anyway. */
  add(record) {
    this.pending.push(record);
    if (this.pending.length > this.ctx.cap * 2) this.pending.splice(0, this.pending.length - this.ctx.cap);
  }

  /** Moves the queued records in, enforces the cap, and redraws: once per frame. */
  flush() {
    if (!this.pending.length) return;
    let batch = this.pending;
    this.pending = [];
    if (batch.length > this.ctx.cap) batch = batch.slice(-this.ctx.cap);
    let added = 0;
    for (const r of batch) {
      this.records.push(r);
      if (this.ctx.visible(r)) {
        this.rows.push(r);
        added++;
        if (r.open) this.tops = null;
        else if (this.tops) this.tops.push(this.tops[this.tops.length - 1] + ROW_H);
      }
    }
    this.dropOldest(this.records.length - this.ctx.cap);
    if (!this.follow && added) {
      this.unseen += added;
      this.updateJump();
    }
    if (added) this.ctx.onRows(this);
    this.draw();
  }

  /** Forgets the `n` oldest records; a view scrolled up stays on the same lines. */
  dropOldest(n) {
    if (n <= 0) return;
    const gone = this.records.splice(0, n);
    const last = gone[gone.length - 1];
    // Records are in arrival order (n), and the rows a subsequence of them.
    let k = 0;
    while (k < this.rows.length && this.rows[k].n <= last.n) k++;
    if (!k) return;
    const height = this.topOf(k);
    this.rows.splice(0, k);
    this.tops = null;
    if (!this.follow) this.scrollBy(-height);
  }

  scrollBy(dy) {
    this.scrollToY(this.log.scrollTop + dy);
  }

  /** Scrolls to `y` as the view's own move (not the user's). */
  scrollToY(y) {
    this.log.scrollTop = Math.max(0, y);
    this.expectTop = this.log.scrollTop;
    this.lastTop = this.log.scrollTop;
  }

  /** Puts `records` (oldest first, all older than what is kept) on top, keeping the view where it is. */
  prepend(records) {
    if (!records.length) return;
    this.records.unshift(...records);
    const shown = records.filter((r) => this.ctx.visible(r));
    this.rows.unshift(...shown);
    this.tops = null;
    this.setSizer();
    this.scrollBy(this.topOf(shown.length));
    this.ctx.onRows(this);
    this.draw();
  }

  /** Rebuilds the rows from the records (a filter, the columns or the cap changed). */
  rerender() {
    this.flushPendingIntoRecords();
    const over = this.records.length - this.ctx.cap;
    if (over > 0) this.records.splice(0, over);
    this.rows = this.records.filter((r) => this.ctx.visible(r));
    this.tops = null;
    this.drawn.clear();
    this.block.replaceChildren();
    this.ctx.onRows(this);
    this.draw();
  }

  /** Draws every row again (same rows; the columns, times or highlights changed). */
  redraw() {
    this.drawn.clear();
    this.block.replaceChildren();
    for (const r of this.rows) if (r.open) r.h = 0;
    this.tops = null;
    this.draw();
  }

  flushPendingIntoRecords() {
    for (const r of this.pending) this.records.push(r);
    this.pending = [];
  }

  clear() {
    this.records = [];
    this.pending = [];
    this.rows = [];
    this.tops = null;
    this.exhausted = false;
    this.setEarlier("⤒ earlier", false);
    this.drawn.clear();
    this.block.replaceChildren();
    this.unseen = 0;
    this.setFollow(true);
    this.ctx.onRows(this);
    this.draw();
  }

  setEarlier(text, disabled) {
    this.earlier.textContent = text;
    this.earlier.disabled = disabled;
  }

  /** Expands or folds a record's row. */
  toggle(r) {
    r.open = !r.open;
    r.h = 0;
    this.tops = null;
    const el = this.drawn.get(r);
    if (el) this.drawn.delete(r);
    this.draw();
  }

  /** Redraws the rows of record `r` if drawn (e.g. the search's current match moved). */
  redrawRecord(r) {
    if (this.drawn.has(r)) {
      this.drawn.delete(r);
      this.scheduleDraw();
    }
  }

  /** Scrolls so that row `i` is in the middle of the view. */
  reveal(i) {
    this.setFollow(false);
    this.setSizer();
    this.scrollToY(this.topOf(i) - Math.max(0, (this.log.clientHeight - ROW_H) / 2));
    this.draw();
  }

  // --------------------------------------------------------------- draw

  scheduleDraw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.draw();
    });
  }

  setSizer() {
    const h = `${this.totalHeight()}px`;
    if (this.sizer.style.height !== h) this.sizer.style.height = h;
  }

  /** Draws the rows near the viewport: one DOM write. */
  draw() {
    this.setSizer();
    if (this.follow) {
      const bottom = Math.max(0, this.log.scrollHeight - this.log.clientHeight);
      if (Math.abs(this.log.scrollTop - bottom) >= 1) this.scrollToY(bottom);
      else this.lastTop = this.log.scrollTop;
    }
    const n = this.rows.length;
    const top = this.log.scrollTop;
    const first = n ? Math.max(0, this.indexAt(top) - OVERSCAN) : 0;
    const last = n ? Math.min(n - 1, this.indexAt(top + this.log.clientHeight) + OVERSCAN) : -1;
    const keep = new Map();
    const els = [];
    for (let i = first; i <= last; i++) {
      const r = this.rows[i];
      let el = this.drawn.get(r);
      if (!el) el = buildLine(r, this, this.ctx);
      keep.set(r, el);
      els.push(el);
    }
    const same = els.length === this.block.childElementCount && els.every((el, i) => this.block.children[i] === el);
    if (!same) this.block.replaceChildren(...els);
    this.drawn = keep;
    const y = `translateY(${this.topOf(first)}px)`;
    if (this.block.style.transform !== y) this.block.style.transform = y;
    // Expanded rows are measured once drawn; a change moves the rows below.
    let moved = false;
    for (const [r, el] of keep) {
      if (r.open) {
        const h = el.offsetHeight;
        if (h && h !== r.h) {
          r.h = h;
          moved = true;
        }
      }
    }
    if (moved) {
      this.tops = null;
      this.scheduleDraw();
    }
    this.updateCount();
  }

  updateCount() {
    const text = `${this.rows.length.toLocaleString()} / ${this.records.length.toLocaleString()}`;
    if (this.countEl.textContent !== text) this.countEl.textContent = text;
  }
}

/** Cell classes per built-in column. */
const CELL = { time: "cell c-time", level: "cell c-level", source: "tag c-source" };

/**
 * The DOM of one record: a cell per column (`ctx.columns`), the message
 * filling the rest. Text goes in as text nodes only.
 */
export function buildLine(r, pane, ctx) {
  const div = document.createElement("div");
  div._record = r;
  let cls = "line";
  if (r.kind === "marker") cls += ` marker ${r.markerClass || ""}`;
  if (r.kind === "broadcast") cls += " broadcast";
  if (r.level) cls += ` lvl-${r.level}`;
  if (r.json) cls += " json";
  if (r.open) cls += r.json ? " open pretty" : " open";
  if (ctx.current === r) cls += " current";
  div.className = cls;
  div.dataset.stream = r.stream;
  if (r.kind === "marker") {
    div.textContent = r.text;
    return div;
  }
  const withSource = ctx.showSource(pane, r);
  const marks = ctx.marks();
  // An expanded JSON row shows the cells before the message on its first
  // line, under their headings, and the whole object below in the message's
  // place. Cells after the message are left out there: they would slide
  // under the wrong headings, and the object below holds them.
  let columns = ctx.columns;
  if (r.open && r.json) {
    const m = columns.indexOf("message");
    columns = m >= 0 ? columns.slice(0, m + 1) : [...columns, "message"];
  }
  for (const col of columns) {
    if (col === "message") {
      if (r.type !== "message" && !(r.kind === "broadcast" && r.type === "broadcast")) {
        const type = document.createElement("span");
        type.className = "type";
        type.textContent = `[${r.type}]`;
        div.appendChild(type);
      }
      const text = document.createElement("span");
      text.className = "text";
      fillText(text, r.open && r.json ? JSON.stringify(r.json, null, 2) : r.message, marks);
      div.appendChild(text);
      continue;
    }
    if (col === "source" && !withSource) continue;
    const cell = document.createElement("span");
    cell.className = CELL[col] || "cell c-field";
    if (col === "time") {
      cell.textContent = formatTime(r.time, ctx.utc);
      if (r.timeReceived) cell.classList.add("received");
    } else if (col === "level") {
      cell.textContent = r.levelText;
    } else if (col === "source") {
      cell.textContent = label(r.stream);
      cell.style.background = sourceColour(r.stream);
    } else {
      cell.textContent = cellText(r.json ? getPath(r.json, col) : undefined);
      cell.dataset.field = col;
    }
    if (cell.textContent) cell.title = cell.textContent;
    div.appendChild(cell);
  }
  if (r.id) div.title = `id ${r.id}`;
  return div;
}
