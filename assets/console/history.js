// History from `/api/history`: earlier lines for a view scrolled to its top,
// and the history search box. Ids are `EPOCH-SEQ` with one hub-wide
// sequence, so pages of several streams merge by that number and one id
// is a valid `before` for all of them.

/** The hub-wide sequence number of an id (0 if it has none). */
export function seqOf(id) {
  const i = id ? id.lastIndexOf("-") : -1;
  const n = i < 0 ? NaN : Number(id.slice(i + 1));
  return Number.isFinite(n) ? n : 0;
}

/**
 * Events of `streams` older than `before` (an id, or null for the newest)
 * whose data matches the regex `q` (or all): at most `limit`, newest
 * first. `more` tells whether older matches may exist, `before` is where
 * the next call starts.
 */
export async function fetchHistory(streams, { before = null, q = "", limit = 200 } = {}) {
  const pages = await Promise.all(
    streams.map(async (channel) => {
      const params = new URLSearchParams({ channel, limit: String(limit) });
      if (before) params.set("before", before);
      if (q) params.set("q", q);
      const resp = await fetch(`/api/history?${params}`);
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(body.detail || `history: HTTP ${resp.status}`);
      return body;
    }),
  );
  // Every page is complete from its `next_before` up (or entirely): only
  // what all of them cover is kept, so the next call neither skips nor
  // repeats an event.
  let floor = null;
  for (const p of pages) {
    if (p.next_before && (!floor || seqOf(p.next_before) > seqOf(floor))) floor = p.next_before;
  }
  let events = pages.flatMap((p) => p.events);
  if (floor) events = events.filter((e) => seqOf(e.id) >= seqOf(floor));
  events.sort((a, b) => seqOf(b.id) - seqOf(a.id));
  if (events.length > limit) {
    events = events.slice(0, limit);
    return { events, more: true, before: events[events.length - 1].id };
  }
  return { events, more: Boolean(floor), before: floor };
}
