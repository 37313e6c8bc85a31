// Consumes an SSE stream with the npm `eventsource` package (the WHATWG
// EventSource for Node), which reconnects by itself honouring `retry:` and
// sending Last-Event-ID. Prints one JSON line per event: {"id","type","data"},
// plus {"open": true} on each (re)connection and {"error": ...} on drops.
// Usage: node eventsource_client.mjs URL [TYPE,TYPE...]
import { EventSource } from 'eventsource';

const [url, types = 'message'] = process.argv.slice(2);
const es = new EventSource(url);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
es.onopen = () => print({ open: true });
es.onerror = (e) => print({ error: String(e.message ?? e.type) });
for (const type of types.split(',')) {
  es.addEventListener(type, (e) => print({ id: e.lastEventId, type: e.type, data: e.data }));
}
